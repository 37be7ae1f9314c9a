"""Webhook endpoints each on their own (issue 15), on the local stack with a real HTTP receiver:
a retry schedule set through WebhookRetrySchedule, per-endpoint health instead of the channel
breaker, the disable horizon with its operational event, and enable + replay with the same
webhook-id. Expected times are written as numbers."""

from __future__ import annotations

import json
import threading
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import boto3
import pytest
from typer.testing import CliRunner

from notifications.adapters.dynamodb import DynamoTable
from notifications.channels.webhook import (
    DynamoSubscriptionStore,
    SecretsManagerSigningKeys,
    WebhookSubscription,
)
from notifications.models import Channel, NotificationRequested, notification_id, utc_iso
from notifyctl.cli import app
from tests.reliability.helpers import enqueue, ledger_items, queue_depth
from tests.samples import SAMPLE_TIME

# 7 attempts over 615 s: far beyond the old budget (3 attempts, 1 s + 2 s).
SCHEDULE = "5,10,20,60,120,400"
OPERATIONS_SOURCE = "notifications.platform"


class Receiver:
    """Two endpoints on one server: /down/<sub> answers 503 until ``recover_at`` (clock
    seconds), /up/<sub> always 200. Records (path, webhook-id, status, clock time) per POST."""

    def __init__(self, clock: Any) -> None:
        self.clock = clock
        self.recover_at = float("inf")
        self.posts: list[tuple[str, str, int, float]] = []
        self.url = ""

    def ok(self, path: str) -> list[str]:
        """The webhook-ids the endpoint at ``path`` accepted, in order."""
        return [wid for p, wid, status, _ in self.posts if p == path and status == 200]

    def failed(self, path: str) -> int:
        return sum(1 for p, _, status, _ in self.posts if p == path and status != 200)


@pytest.fixture
def receiver(clock) -> Iterator[Receiver]:
    state = Receiver(clock)

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.rfile.read(int(self.headers["Content-Length"]))
            down = self.path.startswith("/down/") and state.clock.now() < state.recover_at
            status = 503 if down else 200
            state.posts.append((self.path, self.headers["webhook-id"], status, state.clock.now()))
            self.send_response(status)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, args=(0.01,), daemon=True)
    thread.start()
    state.url = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def subscribe(stack, receiver: Receiver, subscription_id: str, path: str) -> None:
    keys = SecretsManagerSigningKeys("notifications/dev/webhooks/")
    keys.create(subscription_id)
    DynamoSubscriptionStore(stack.physical_id("WebhookSubscriptionsTable")).put(
        WebhookSubscription(
            subscription_id,
            f"{receiver.url}{path}",
            ("OrderPlaced",),
            True,
            keys.secret_name(subscription_id),
        )
    )


def order(subscription_id: str, n: int) -> NotificationRequested:
    event_id = f"evt-{n}"
    return NotificationRequested(
        notification_id=notification_id(
            event_id, Channel.WEBHOOK, subscription_id, "order-webhook"
        ),
        channel=Channel.WEBHOOK,
        recipient=subscription_id,
        template_id="order-webhook",
        category="orders",
        data={"order_id": f"o-{n}", "total": {"amount": "19.99", "currency": "EUR"}},
        event_id=event_id,
        event_type="OrderPlaced",
        correlation_id=event_id,
        occurred_at=SAMPLE_TIME,
        requested_at=SAMPLE_TIME,
    )


def watch_operational_events(stack) -> str:
    """A rule of the test's own on the stack's bus, as a team would route the platform's
    operational events, to a queue the test reads."""
    sqs, events = stack.clients.sqs, stack.clients.events
    url = sqs.create_queue(QueueName="ops-events")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    events.put_rule(
        Name="ops-events",
        EventBusName=stack.bus_name,
        EventPattern=json.dumps({"source": [OPERATIONS_SOURCE]}),
    )
    events.put_targets(
        Rule="ops-events", EventBusName=stack.bus_name, Targets=[{"Id": "q", "Arn": arn}]
    )
    return url


def operational_events(stack, url: str) -> list[dict[str, Any]]:
    found = []
    while messages := stack.clients.sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get(
        "Messages", []
    ):
        for message in messages:
            found.append(json.loads(message["Body"]))
            stack.clients.sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
    return found


def notifyctl(*args: str) -> str:
    result = CliRunner().invoke(app, ["--stack-name", "notifications-local", *args])
    assert result.exit_code == 0, result.output
    return result.output


def policy_items(stack, pk: str) -> dict[str, dict[str, Any]]:
    items = DynamoTable(stack.physical_id("PolicyStateTable")).query(
        KeyConditionExpression="pk = :pk", ExpressionAttributeValues={":pk": pk}
    )
    return {str(item["sk"]): item for item in items}


def test_a_down_endpoint_loses_nothing_and_its_neighbour_waits_for_nothing(
    deploy_stack, clock, receiver
):
    # Given two subscribers on a short schedule (7 attempts over 615 s), one endpoint down
    # (sends one at a time: which of a batch's sends go out before the endpoint's first failure
    # is known is then fixed; with concurrent sends those already in flight each spend their
    # attempt. Concurrency is the 10 s endpoint test's.)
    stack = deploy_stack(
        WebhookAllowLoopback="true", WebhookRetrySchedule=SCHEDULE, SenderConcurrency="1"
    )
    subscribe(stack, receiver, "sub-down", "/down/a")
    subscribe(stack, receiver, "sub-up", "/up/b")
    events_url = watch_operational_events(stack)
    start = clock.now()
    receiver.recover_at = start + 300  # down for 5 minutes: 100x the old 3 s budget
    first = [order(sub, n) for n in range(5) for sub in ("sub-down", "sub-up")]

    # When one batch holds five notifications for each endpoint
    enqueue(stack, first)
    stack.pump()

    # Then the healthy endpoint got its five at once, the failing one was tried once only:
    # its other four wait for its health without spending an attempt
    assert len(receiver.ok("/up/b")) == 5
    assert all(at == start for path, _, _, at in receiver.posts if path == "/up/b")
    assert receiver.failed("/down/a") == 1
    items = ledger_items(stack)
    down_ids = [r.notification_id for r in first if r.recipient == "sub-down"]
    assert sorted(items[i]["attempts"] for i in down_ids) == [0, 0, 0, 0, 1]
    # And `notifyctl dlq show` gives the retrying one's next attempt: 5 s, the schedule's first
    shown = json.loads(notifyctl("dlq", "show", first[0].notification_id))
    assert shown["status"] == "RETRYING"
    assert shown["next_attempt_at"] == "2026-11-28T12:00:05.000+00:00"
    assert shown["errors"][0]["reason"] == "provider_unavailable"
    health = policy_items(stack, "endpoint")["sub-down"]
    assert health["consecutive_failures"] == 1
    healthy = policy_items(stack, "endpoint")["sub-up"]
    assert healthy["consecutive_failures"] == 0  # its last success only
    assert healthy["last_success_at"] == start
    assert "failing_since" not in healthy
    # And neither the channel breaker nor the webhook queue's polling moved
    assert "webhook" not in policy_items(stack, "breaker")

    # When more orders come in 100 s later, while the endpoint is still down
    clock.advance(100)
    later = [order(sub, n) for n in range(5, 8) for sub in ("sub-down", "sub-up")]
    enqueue(stack, later)
    arrived = clock.now()
    stack.drain(until=lambda: len(receiver.ok("/up/b")) == 8)

    # Then the healthy endpoint's arrive without delay
    up_later = {r.notification_id for r in later if r.recipient == "sub-up"}
    assert {wid for path, wid, status, at in receiver.posts if at == arrived} >= up_later

    # When the endpoint recovers and everything drains
    stack.drain()

    # Then every notification of the down endpoint arrived exactly once, none lost, none in
    # the DLQ, each well within the schedule's attempts
    everything = first + later
    down_all = [r.notification_id for r in everything if r.recipient == "sub-down"]
    assert Counter(receiver.ok("/down/a")) == Counter(dict.fromkeys(down_all, 1))
    assert Counter(receiver.ok("/up/b")) == Counter(
        {r.notification_id: 1 for r in everything if r.recipient == "sub-up"}
    )
    items = ledger_items(stack)
    assert {items[r.notification_id]["status"] for r in everything} == {"SENT"}
    assert all(items[i]["attempts"] <= 7 for i in down_all)
    assert queue_depth(stack, "NotificationsDLQ") == 0
    assert min(
        at for path, _, status, at in receiver.posts if status == 200 and "down" in path
    ) >= (start + 300)
    # And the endpoint was probed on the schedule, not hammered: one failed POST per wait
    # (failed at 0 s, probed at 100 s, then 10, 20, 60, 120 s after each failed probe)
    assert receiver.failed("/down/a") <= 6
    # And its health is back, with one WebhookEndpointRecovered event on the bus
    health = policy_items(stack, "endpoint")["sub-down"]
    assert health["consecutive_failures"] == 0
    assert "failing_since" not in health
    recovered = [
        e
        for e in operational_events(stack, events_url)
        if e["detail-type"] == "WebhookEndpointRecovered"
    ]
    assert len(recovered) == 1
    assert recovered[0]["source"] == OPERATIONS_SOURCE
    assert recovered[0]["detail"]["subscription_id"] == "sub-down"
    assert recovered[0]["detail"]["consecutive_failures"] == receiver.failed("/down/a")


def test_past_the_disable_horizon_an_endpoint_is_disabled_keeps_all_and_replays_once(
    deploy_stack, clock, receiver
):
    # Given one endpoint that never answers, a 36 s disable horizon, and an alarm function
    # that records dead letters (none expected)
    stack = deploy_stack(
        WebhookAllowLoopback="true",
        WebhookRetrySchedule="5,10,20,40,80,160",
        WebhookDisableAfterHours="0.01",
        SenderConcurrency="1",  # as above: the failures counted are then fixed
    )
    subscribe(stack, receiver, "sub-gone", "/down/g")
    subscribe(stack, receiver, "sub-fine", "/up/f")
    events_url = watch_operational_events(stack)
    start = clock.now()
    requests = [order("sub-gone", n) for n in range(4)]
    enqueue(stack, [*requests, order("sub-fine", 9)])

    # When it has failed continuously past the horizon (probes at 0, 5, 15, 35, 75 s)
    stack.drain()

    # Then it is disabled, with one WebhookEndpointDisabled event on the bus
    health = policy_items(stack, "endpoint")["sub-gone"]
    assert round(float(health["disabled_at"]) - start) == 75  # (drain steps add milliseconds)
    assert health["failing_since"] == start
    disabled = [
        e
        for e in operational_events(stack, events_url)
        if e["detail-type"] == "WebhookEndpointDisabled"
    ]
    assert len(disabled) == 1
    assert disabled[0]["detail"]["subscription_id"] == "sub-gone"
    assert disabled[0]["detail"]["consecutive_failures"] == 5
    assert disabled[0]["detail"]["last_reason"] == "provider_unavailable"
    assert receiver.failed("/down/g") == 5
    # And its four notifications are kept with their bodies: not sent, not dead-lettered
    items = ledger_items(stack)
    assert {items[r.notification_id]["status"] for r in requests} == {"ENDPOINT_DISABLED"}
    assert all(items[r.notification_id]["payload"] for r in requests)
    assert queue_depth(stack, "NotificationsDLQ") == 0
    assert queue_depth(stack, "WebhookQueue") == 0
    # And its neighbour was not held back
    assert receiver.ok("/up/f") == [order("sub-fine", 9).notification_id]
    # And `webhooks list` shows it disabled with four pending
    listed = {
        row["subscription_id"]: row for row in json.loads(notifyctl("webhooks", "list", "--json"))
    }
    assert listed["sub-gone"]["health"] == "disabled"
    assert listed["sub-gone"]["pending"] == 4
    assert listed["sub-gone"]["consecutive_failures"] == 5
    assert listed["sub-fine"]["health"] == "healthy"
    assert listed["sub-fine"]["pending"] == 0

    # When the customer fixes it, an operator enables it and replays the window
    receiver.recover_at = clock.now()
    clock.advance(60)
    notifyctl("webhooks", "enable", "sub-gone")
    # (and a dead letter of the endpoint whose body is not a request: skipped, not a crash)
    boto3.client("dynamodb").put_item(
        TableName=stack.physical_id("LedgerTable"),
        Item={
            "notification_id": {"S": "not-a-request"},
            "channel": {"S": "webhook"},
            "recipient_masked": {"S": "sub-gone"},
            "status": {"S": "DEAD_LETTERED"},
            "created_at": {"S": utc_iso(datetime.fromtimestamp(clock.now(), UTC))},
            "updated_at": {"S": utc_iso(datetime.fromtimestamp(clock.now(), UTC))},
            "payload": {"S": "{not json"},
        },
    )
    dry = notifyctl("webhooks", "replay", "sub-gone", "--since", "2h", "--dry-run")
    assert "4 notification(s) would be replayed to sub-gone" in dry
    assert receiver.ok("/down/g") == []  # a dry run sends nothing
    replayed = notifyctl("webhooks", "replay", "sub-gone", "--since", "2h")
    assert "4 of 4 replayed to sub-gone" in replayed
    stack.drain()

    # Then each arrives exactly once, with its own notification id as webhook-id
    assert Counter(receiver.ok("/down/g")) == Counter({r.notification_id: 1 for r in requests})
    items = ledger_items(stack)
    assert {items[r.notification_id]["status"] for r in requests} == {"SENT"}
    assert all(items[r.notification_id]["audit"][-1]["action"] == "replay" for r in requests)
    # And the replay left one audit record naming what it re-sent
    audits = policy_items(stack, "replay")
    assert len(audits) == 1
    (audit,) = audits.values()
    assert audit["subscription_id"] == "sub-gone"
    assert sorted(audit["replayed"]) == sorted(r.notification_id for r in requests)
    # And a second replay finds nothing left to send
    again = notifyctl("webhooks", "replay", "sub-gone", "--since", "2h")
    assert "0 of 0 replayed" in again
    # And the endpoint is healthy again
    assert json.loads(notifyctl("webhooks", "list", "--json"))[0]["health"] == "healthy"


def test_a_10_s_endpoint_in_a_batch_does_not_delay_the_other_nine(deploy_stack, clock):
    # Given a receiver whose /slow endpoint holds its answer (up to the 10 s webhook timeout)
    # until the other nine deliveries have arrived, and records the order of what happens
    happened: list[str] = []
    nine_arrived = threading.Event()
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.rfile.read(int(self.headers["Content-Length"]))
            slow = self.path.startswith("/slow")
            with lock:
                happened.append("slow asked" if slow else "fast")
                if sum(1 for h in happened if h == "fast") == 9:
                    nine_arrived.set()
            if slow:
                nine_arrived.wait(timeout=10)
                with lock:
                    happened.append("slow answered")
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, args=(0.01,), daemon=True)
    thread.start()
    try:
        stack = deploy_stack(WebhookAllowLoopback="true")
        url = f"http://127.0.0.1:{server.server_address[1]}"
        receiver = Receiver(clock)
        receiver.url = url
        subscribe(stack, receiver, "sub-slow", "/slow")
        for n in range(9):
            subscribe(stack, receiver, f"sub-{n}", f"/fast/{n}")
        requests = [order("sub-slow", 0)] + [order(f"sub-{n}", n + 1) for n in range(9)]

        # When one batch holds the slow endpoint's notification first and nine others
        enqueue(stack, requests)
        assert stack.pump() == 10

        # Then the nine arrived before the slow endpoint answered: none waited for it (the
        # sends start together, so the slow request may reach the receiver before or after
        # some of the fast ones; a sequential batch would ask it first and answer it first)
        assert sorted(happened) == ["fast"] * 9 + ["slow answered", "slow asked"]
        assert happened.index("slow asked") < happened.index("slow answered")
        assert happened[-1] == "slow answered"
        # And all ten were delivered
        items = ledger_items(stack)
        assert {items[r.notification_id]["status"] for r in requests} == {"SENT"}
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def test_every_dead_letter_is_an_event_on_the_bus_and_never_an_unknown_source(deploy_stack, clock):
    # Given a team's rule on the platform's operational events, and a webhook notification for
    # a subscription that no longer exists (a permanent failure)
    stack = deploy_stack()
    events_url = watch_operational_events(stack)
    gone = order("sub-removed", 1)
    enqueue(stack, [gone])

    # When the sender dead-letters it and the alarm function records it
    stack.drain()

    # Then one NotificationDeadLettered event says what, why and for which endpoint
    (event,) = operational_events(stack, events_url)
    assert event["source"] == OPERATIONS_SOURCE
    assert event["detail-type"] == "NotificationDeadLettered"
    detail = event["detail"]
    assert detail["notification_id"] == gone.notification_id
    assert detail["channel"] == "webhook"
    assert detail["subscription_id"] == "sub-removed"
    assert detail["reason"] == "subscription_not_found"
    assert detail["failure_class"] == "permanent"
    # And the fan-out's catch-all rules did not take it for an unknown source's event
    assert queue_depth(stack, "EventsDLQ") == 0
    assert ledger_items(stack)[gone.notification_id]["status"] == "DEAD_LETTERED"


def test_replay_and_enable_refuse_bad_input_in_one_line(deploy_stack, clock):
    stack = deploy_stack(WebhookAllowLoopback="true")
    subscribe(stack, Receiver(clock), "sub-ok", "/up/1")

    def run(*args: str) -> tuple[int, str]:
        result = CliRunner().invoke(app, ["--stack-name", "notifications-local", *args])
        return result.exit_code, result.output

    code, output = run("webhooks", "replay", "sub-ok", "--since", "2q")
    assert code == 2
    assert "--since takes 30m, 2h, 7d or an ISO time, not '2q'" in output
    assert "Traceback" not in output
    code, output = run("webhooks", "replay", "sub-ok", "--since", "1h", "--until", "2h")
    assert code == 2
    assert "--until '2h' is before --since '1h'" in output
    code, output = run("webhooks", "replay", "sub-nope", "--since", "1h")
    assert code == 1  # as every unknown id (notifyctl/ids.py)
    assert "sub-nope" in output
    assert "Traceback" not in output
    code, output = run("webhooks", "enable", "sub-ok")
    assert code == 1
    assert "subscription 'sub-ok' is not disabled" in output
    code, output = run("webhooks", "replay", "sub-ok", "--since", "1h")
    assert code == 0
    assert "0 of 0 replayed to sub-ok" in output
