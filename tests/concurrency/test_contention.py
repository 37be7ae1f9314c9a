"""Exactly-once under concurrent senders: the application on the runtime's process mode, each
channel's mapping running five invocations at once against the same ledger, rate-limit
counters and breaker (docs/local-runtime.md, "Contention suite")."""

from __future__ import annotations

import json
import os
import socket
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from notifications.adapters.sqs import SqsQueues
from notifications.models import Channel, NotificationRequested, notification_id
from notifyctl.local.clock import ControlledClock
from notifyctl.local.stack import LocalStack
from notifyctl.subscriptions import Webhooks
from notifyctl.target import StackTarget
from tests.concurrency.conftest import channel_poller, set_batch_size
from tests.reliability.helpers import (
    ledger_items,
    provider_calls,
    queue_depth,
    sends_per_recipient,
    welcome,
)
from tests.samples import SAMPLE_TIME, load_event

Deploy = Callable[..., LocalStack]


def test_a_the_same_notification_in_five_concurrent_invocations_is_sent_once(
    concurrent_stack: Deploy,
) -> None:
    # Given one notification queued five times, and batches of one message
    stack = concurrent_stack()
    set_batch_size(stack, "EmailQueue", 1)
    request = welcome(1, Channel.EMAIL)
    for _ in range(5):
        SqsQueues().enqueue(stack.queue_url("EmailQueue"), [request])

    # When one round runs: five invocations at once, one copy each
    assert stack.pump() == 5
    assert len(channel_poller(stack, "EmailQueue").invocations) == 5
    stack.drain()

    # Then the provider sent it once, the ledger says SENT, and every copy is gone
    assert provider_calls(stack)["email"] == 1
    assert sends_per_recipient(stack)["user1@example.com"] == 1
    assert {nid: item["status"] for nid, item in ledger_items(stack).items()} == {
        request.notification_id: "SENT"
    }
    assert queue_depth(stack, "EmailQueue") == 0


def burst(stack: LocalStack, users: int) -> set[str]:
    """Half the users register (their events reach the fan-out twice: EventBridge delivers
    at least once); the other half get an SMS queued directly, every fifth one twice. Returns
    the ids of the notifications meant to go out."""
    fan_out_url = stack.queue_url("FanOutQueue")
    intended: set[str] = set()
    sms: list[NotificationRequested] = []
    for n in range(users):
        if n % 2 == 0:
            event = load_event("fan_out/user-registered.json")
            event["id"] = f"evt-burst-{n}"
            event["detail"].update(user_id=f"user-{n}", email=f"user{n}@example.com")
            for _ in range(2):
                stack.clients.sqs.send_message(QueueUrl=fan_out_url, MessageBody=json.dumps(event))
        else:
            request = welcome(n, Channel.SMS)
            sms.extend([request, request] if n % 5 == 0 else [request])
            intended.add(request.notification_id)
    SqsQueues().enqueue(stack.queue_url("SmsQueue"), sms)
    return intended


def assert_exactly_once(stack: LocalStack, intended_sms: set[str], users: int) -> None:
    items = ledger_items(stack)
    # every intended notification has one ledger record: the SMS ones and one email per
    # registered user, whatever the duplicates
    assert intended_sms <= set(items)
    assert len(items) == users
    outcome = Counter(item["status"] for item in items.values())
    assert set(outcome) <= {"SENT", "DEAD_LETTERED"}, outcome
    # and the providers accepted exactly the SENT ones, one send per recipient at most
    calls = provider_calls(stack)
    failed = Counter(
        invocation.error.error_type
        for poller in stack.pollers
        for invocation in getattr(poller, "invocations", [])
        if invocation.error is not None
    )
    assert calls["email"] + calls["sms"] == outcome["SENT"], (calls, outcome, failed)
    assert max(sends_per_recipient(stack).values()) == 1
    for queue in ("FanOutQueue", "EmailQueue", "SmsQueue", "NotificationsDLQ"):
        assert queue_depth(stack, queue) == 0, queue


def test_b_a_burst_with_duplicates_at_fan_out_and_channel_queues_is_sent_exactly_once(
    concurrent_stack: Deploy,
) -> None:
    # Given 50 notifications (`make soak`: 2,000), duplicated at the fan-out and the channel
    # queue, with the provider failing 30% of the calls and 3 attempts each
    users = int(os.environ.get("CONTENTION_BURST", "50"))
    # (a 120 s sender timeout: a kill mid-send is test (e)'s subject, not this one's)
    stack = concurrent_stack(FailureRate="0.3", MaxAttempts=3, SenderTimeoutSeconds="120")
    intended_sms = burst(stack, users)

    # When five senders per channel drain it
    stack.drain(max_rounds=10_000)

    # Then each is exactly once SENT xor DEAD_LETTERED, and provider sends == SENT
    assert_exactly_once(stack, intended_sms, users)


def closed_port() -> int:
    """A loopback port nothing listens on: connections to it are refused at once."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def webhook_request(n: int, subscription: str = "sub-down") -> NotificationRequested:
    event_id = f"evt-order-{n}"
    return NotificationRequested(
        notification_id=notification_id(event_id, Channel.WEBHOOK, subscription, "order-webhook"),
        channel=Channel.WEBHOOK,
        recipient=subscription,
        template_id="order-webhook",
        category="orders",
        data={"order_id": str(n), "total": {"amount": "19.99", "currency": "EUR"}},
        event_id=event_id,
        event_type="OrderPlaced",
        correlation_id=event_id,
        occurred_at=SAMPLE_TIME,
        requested_at=SAMPLE_TIME,
    )


def test_c_a_down_endpoint_failing_mid_round_lets_through_only_the_batches_in_flight(
    concurrent_stack: Deploy,
) -> None:
    # Given a webhook subscriber that is down (connection refused) and 100 deliveries: ten
    # batches of 10, five taken at once. (Issue 15: webhooks have per-endpoint health, not the
    # channel breaker, which stays for email, SMS and push.)
    stack = concurrent_stack(WebhookAllowLoopback="true", BreakerFailureThreshold=5, MaxAttempts=10)
    Webhooks(StackTarget(stack.stack_name, region=stack.clients.region)).add(
        f"http://127.0.0.1:{closed_port()}/hook", ["OrderPlaced"], "sub-down"
    )
    SqsQueues().enqueue(stack.queue_url("WebhookQueue"), [webhook_request(n) for n in range(100)])

    # When a round runs (the endpoint's first failures land while its five batches are in
    # flight), and more rounds run while it is not due for a probe (the clock does not move)
    assert stack.pump() == 50
    for _ in range(3):
        stack.pump()

    # Then at most those five batches' 50 sends were attempted, none once it was known failing
    attempts = sum(int(item.get("attempts", 0)) for item in ledger_items(stack).values())
    assert 1 <= attempts <= 50
    # And the webhook queue is still polled (no channel-wide stop): the rest wait on the
    # endpoint's health without spending attempts
    assert channel_poller(stack, "WebhookQueue").active
    statuses = Counter(item["status"] for item in ledger_items(stack).values())
    assert "SENT" not in statuses
    assert statuses["DEFERRED"] >= 50


def test_d_a_rate_limit_is_never_exceeded_across_concurrent_invocations(
    concurrent_stack: Deploy,
) -> None:
    # Given a limit of 2 sends per minute per user, and 8 emails to one user in batches of
    # 2 (four invocations at once take slots of the same counter)
    stack = concurrent_stack(RateLimitPerMinute=2)
    set_batch_size(stack, "EmailQueue", 2)
    requests = [welcome(1, Channel.EMAIL, event=f"evt-rate-{k}") for k in range(8)]
    SqsQueues().enqueue(stack.queue_url("EmailQueue"), requests)

    # When the stack drains (the clock jumps to each deferral's next window)
    stack.drain(max_rounds=1_000)

    # Then all 8 were sent, never more than 2 in a minute
    items = ledger_items(stack)
    assert Counter(item["status"] for item in items.values()) == {"SENT": 8}
    per_minute = Counter(
        int(datetime.fromisoformat(item["updated_at"]).timestamp()) // 60 for item in items.values()
    )
    assert max(per_minute.values()) == 2
    assert provider_calls(stack)["email"] == 8


@dataclass
class HoldingReceiver:
    """A webhook receiver on 127.0.0.1 that records every POST's arrival (monotonic time) and
    `webhook-id`, holds the first `hold_first` of them `hold_seconds` before answering, and
    answers the others 200 at once."""

    hold_first: int
    hold_seconds: float
    arrivals: list[tuple[float, str]] = field(default_factory=list)
    port: int = 0

    def ids(self) -> list[str]:
        return [webhook_id for _, webhook_id in self.arrivals]

    @contextmanager
    def running(self) -> Iterator[HoldingReceiver]:
        receiver, lock = self, threading.Lock()

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("Content-Length", 0)))
                with lock:
                    receiver.arrivals.append((time.monotonic(), self.headers["webhook-id"]))
                    held = len(receiver.arrivals) <= receiver.hold_first
                if held:
                    time.sleep(receiver.hold_seconds)
                try:
                    self.send_response(200)
                    self.end_headers()
                except OSError:  # the sender that asked is gone
                    pass

            def log_message(self, *args: Any) -> None:
                return

        server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)  # daemon handler threads
        self.port = server.server_address[1]
        threading.Thread(target=server.serve_forever, daemon=True).start()
        try:
            yield self
        finally:
            server.shutdown()
            server.server_close()


def test_e_a_timeout_mid_batch_sends_nothing_after_the_deadline_and_recovers_the_claims(
    concurrent_stack: Deploy, clock: ControlledClock
) -> None:
    # Given a sender timeout of 10 s (queue visibility 60 s, template.yaml SenderTimeouts) and
    # a webhook subscriber that holds the first request 12 s: past the sender's deadline (and
    # its 10 s webhook read timeout, which starts after the invocation did). Sends one at a
    # time (SenderConcurrency=1): concurrent sends give the held one up at their send timeout
    # and return before the deadline (tests/integration/test_sender_concurrency.py)
    stack = concurrent_stack(
        WebhookAllowLoopback="true", SenderTimeoutSeconds="10", SenderConcurrency="1"
    )
    receiver = HoldingReceiver(hold_first=1, hold_seconds=12)
    with receiver.running():
        Webhooks(StackTarget(stack.stack_name, region=stack.clients.region)).add(
            f"http://127.0.0.1:{receiver.port}/hook", ["OrderPlaced"], "sub-slow"
        )
        requests = [webhook_request(n, "sub-slow") for n in range(5)]
        SqsQueues().enqueue(stack.queue_url("WebhookQueue"), requests)
        poller = channel_poller(stack, "WebhookQueue")

        # When one round takes the five as one batch, and its invocation blocks on the first
        started = time.monotonic()
        assert stack.pump() == 5
        returned = time.monotonic()

        # Then the invocation timed out, killed at its 10 s deadline
        [killed] = poller.invocations
        assert killed.error is not None
        assert killed.error.error_type == "Sandbox.Timedout"
        assert returned - started >= 10
        # and it sent one request (the one in flight), before the deadline; wait until the
        # webhook read timeout would have ended that request (10 s after it started, + 2 s
        # margin): a sender still alive would have sent the batch's other four by then
        [(in_flight_at, in_flight)] = receiver.arrivals
        assert in_flight_at - started < 10
        time.sleep(max(0.0, in_flight_at + 12 - time.monotonic()))
        assert receiver.ids() == [in_flight]
        # and nothing was recorded SENT: the batch admission claimed all five (one attempt
        # each) under a lease of the invocation's remaining time + 5 s, at most 15 s
        lease_end = datetime.fromtimestamp(clock.now() + 15, UTC)
        items = ledger_items(stack)
        assert sorted(items) == sorted(request.notification_id for request in requests)
        for item in items.values():
            assert (item["status"], int(item["attempts"])) == ("SENDING", 1)
            assert datetime.fromisoformat(item["lease_until"]) <= lease_end

        # When the clock reaches just before the visibility timeout: the batch stays hidden
        clock.advance(59)
        assert stack.pump() == 0
        # and then past it (the claims' lease, 10 s remaining + 5 s, expired long before)
        clock.advance(2)
        stack.drain()

    # Then later invocations, not the killed one, sent the whole batch: usually one; on a
    # loaded machine the 10 s sender may put back the records it can no longer start in time
    # (a copy with DelaySeconds 1, no attempt spent: docs/performance.md section 6), which
    # then come in another batch (CI once saw three invocations)
    later = poller.invocations[1:]
    assert later
    assert [invocation.error for invocation in later] == [None] * len(later)
    assert {
        nid: (item["status"], int(item["attempts"])) for nid, item in ledger_items(stack).items()
    } == {request.notification_id: ("SENT", 2) for request in requests}
    assert queue_depth(stack, "WebhookQueue") == 0
    assert queue_depth(stack, "NotificationsDLQ") == 0
    # and the receiver saw every webhook-id once, but the one in flight at the kill twice: the
    # documented duplicate window, one per killed invocation (docs/architecture.md,
    # "Idempotency": the provider accepted and the process died before the SENT record;
    # docs/reliability.md, "Sender runs past its timeout")
    seen = Counter(receiver.ids())
    assert seen == {request.notification_id: 1 for request in requests} | {in_flight: 2}
    assert sum(seen.values()) == 6
