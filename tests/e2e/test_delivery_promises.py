"""Delivery promises end to end on the local stack, with non-default parameters so that a
template value that never reaches the sender shows: the backoff parameters, a provider's
Retry-After, the slack between the attempt limit and maxReceiveCount, and the attempt cap when
crashes and deferrals get in the way. Expected delays are written as numbers."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, datetime, time, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from notifications.adapters.ledger import DynamoLedger
from notifications.channels.webhook import (
    DynamoSubscriptionStore,
    SecretsManagerSigningKeys,
    WebhookSubscription,
)
from notifications.models import Channel, NotificationRequested, QuietHours, notification_id
from notifications.templates import TemplateRenderer
from tests.reliability.helpers import (
    drain_messages,
    enqueue,
    ledger_items,
    set_mapping,
    welcome,
)
from tests.samples import SAMPLE_TIME

EPSILON = 0.05


def visible_and_in_flight(stack, logical_id: str) -> tuple[int, int]:
    attributes = stack.clients.sqs.get_queue_attributes(
        QueueUrl=stack.queue_url(logical_id), AttributeNames=["All"]
    )["Attributes"]
    return (
        int(attributes["ApproximateNumberOfMessages"]),
        int(attributes["ApproximateNumberOfMessagesNotVisible"]),
    )


def returns_after(stack, clock, logical_id: str, seconds: float) -> None:
    """The queue's one message is invisible until just before ``seconds`` from now and
    visible just after."""
    assert visible_and_in_flight(stack, logical_id) == (0, 1)
    clock.advance(seconds - EPSILON)
    assert visible_and_in_flight(stack, logical_id) == (0, 1), f"back before {seconds} s"
    clock.advance(2 * EPSILON)
    assert visible_and_in_flight(stack, logical_id) == (1, 0), f"not back after {seconds} s"


def pause_alarm_function(stack) -> None:
    set_mapping(stack, "DlqAlarmFunction", "NotificationsDLQ", enabled=False)


# -- item 4: the template's backoff parameters reach the sender ----------------------------------

BACKOFF = {
    "FailureRate": 1,
    "MaxAttempts": 4,
    "InitialDelaySeconds": 7,
    "BackoffMultiplier": 3,
    "MaxDelaySeconds": 50,
}


def test_non_default_backoff_parameters_set_each_retry_delay(deploy_stack, clock):
    # Given a provider that always fails, 4 attempts, delays 7 s x 3 per attempt, capped at 50 s
    stack = deploy_stack(**BACKOFF, BackoffJitter="false")
    pause_alarm_function(stack)
    enqueue(stack, [welcome(1)])

    # When attempts 1, 2 and 3 fail, then each comes back after 7, 21 and 50 (not 63) seconds
    # (the pumps also run the breaker check's schedule once a minute has passed)
    for delay in (7, 21, 50):
        stack.pump()
        returns_after(stack, clock, "EmailQueue", delay)

    # When attempt 4 fails, then it is dead-lettered by the sender with its reason
    stack.pump()
    assert visible_and_in_flight(stack, "EmailQueue") == (0, 0)
    (letter,) = drain_messages(stack, "NotificationsDLQ")
    attributes = {k: v["StringValue"] for k, v in letter["MessageAttributes"].items()}
    assert attributes["reason"] == "injected_fault"
    assert attributes["failure_class"] == "exhausted"
    assert attributes["attempts"] == "4"


def test_jittered_delays_follow_the_non_default_caps(deploy_stack, clock):
    # Given the same parameters with full jitter on, and the jitter's generator seeded
    stack = deploy_stack(**BACKOFF, BackoffJitter="true")
    stack.function("SenderFunction").environment["BACKOFF_JITTER_SEED"] = "13"
    pause_alarm_function(stack)
    enqueue(stack, [welcome(1)])

    # When attempts 1, 2 and 3 fail, then each waits a whole-second draw from [0, cap] for the
    # caps 7, 21 and 50: with seed 13, random.Random(13).uniform gives 1.81, 14.39 and 34.20,
    # so 2, 15 and 35 s (without jitter 7, 21, 50; with the default parameters at most 1, 2, 4)
    for delay, cap in ((2, 7), (15, 21), (35, 50)):
        assert 0 <= delay <= cap
        stack.pump()
        returns_after(stack, clock, "EmailQueue", delay)


# -- item 5: a provider's Retry-After sets the visibility -----------------------------------------


@pytest.fixture
def throttling_endpoint() -> Iterator[dict[str, Any]]:
    """An HTTP endpoint that answers 429 with Retry-After: 120 once, then 204."""
    state: dict[str, Any] = {"answers": [(429, {"Retry-After": "120"})], "posts": 0}

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.rfile.read(int(self.headers["Content-Length"]))
            state["posts"] += 1
            status, headers = state["answers"].pop(0) if state["answers"] else (204, {})
            self.send_response(status)
            for name, value in headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, args=(0.01,), daemon=True)
    thread.start()
    state["url"] = f"http://127.0.0.1:{server.server_address[1]}/hooks/orders"
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def webhook_request(subscription_id: str) -> NotificationRequested:
    return NotificationRequested(
        notification_id=notification_id(
            "evt-ra", Channel.WEBHOOK, subscription_id, "order-webhook"
        ),
        channel=Channel.WEBHOOK,
        recipient=subscription_id,
        template_id="order-webhook",
        category="orders",
        data={"order_id": "o-1", "total": {"amount": "19.99", "currency": "EUR"}},
        event_id="evt-ra",
        event_type="OrderPlaced",
        correlation_id="evt-ra",
        occurred_at=SAMPLE_TIME,
        requested_at=SAMPLE_TIME,
    )


def test_a_webhooks_retry_after_sets_the_next_attempt(deploy_stack, clock, throttling_endpoint):
    # Given a webhook subscriber answering 429 with Retry-After: 120 (the backoff would say 1 s)
    stack = deploy_stack(WebhookAllowLoopback="true")
    keys = SecretsManagerSigningKeys("notifications/dev/webhooks/")
    keys.create("sub-ra")
    DynamoSubscriptionStore(stack.physical_id("WebhookSubscriptionsTable")).put(
        WebhookSubscription(
            "sub-ra", throttling_endpoint["url"], ("OrderPlaced",), True, keys.secret_name("sub-ra")
        )
    )
    request = webhook_request("sub-ra")
    enqueue(stack, [request])

    # When the sender delivers it and the endpoint throttles
    assert stack.pump() == 1
    assert throttling_endpoint["posts"] == 1

    # Then the message comes back after 120 s, not after the 1 s backoff
    returns_after(stack, clock, "WebhookQueue", 120)
    item = ledger_items(stack)[request.notification_id]
    assert item["status"] == "RETRYING"
    assert item["last_reason"] == "provider_throttled"

    # And the next attempt goes through
    stack.drain()
    assert throttling_endpoint["posts"] == 2
    assert ledger_items(stack)[request.notification_id]["status"] == "SENT"


# -- item 2: receives that are no attempt do not redrive early ------------------------------------


def test_receives_that_were_no_attempt_do_not_redrive_a_message_early(stack, clock):
    # Given a notification (MaxAttempts 3) received three times by invocations that were
    # throttled, so never handled, and once while a vanished invocation held its lease
    request = welcome(3)
    enqueue(stack, [request])
    url = stack.queue_url("EmailQueue")
    for _ in range(3):
        received = stack.clients.sqs.receive_message(QueueUrl=url, VisibilityTimeout=30)
        assert len(received["Messages"]) == 1
        clock.advance(31)
    ledger = DynamoLedger(stack.physical_id("LedgerTable"))
    now = datetime.fromtimestamp(clock.now(), UTC)
    ledger.begin_attempt(request, lease_until=now + timedelta(seconds=40), now=now)
    stack.pump()  # put back until the lease ends: a 4th receive, no attempt
    assert visible_and_in_flight(stack, "EmailQueue") == (0, 1)

    # When the stack runs on
    stack.drain()

    # Then SQS did not move it to the DLQ after 3 receives: it was sent, on its 2nd attempt
    # (the vanished invocation's claim counts as the 1st), at its 5th receive
    item = ledger_items(stack)[request.notification_id]
    assert item["status"] == "SENT"
    assert item["attempts"] == 2
    assert drain_messages(stack, "NotificationsDLQ") == []


# -- item 6: the attempt cap holds across crashes and deferrals -----------------------------------


class ProcessKilled(BaseException):
    """The Lambda process dies (OOM kill): nothing after it runs."""


def test_the_attempt_cap_holds_across_crashes_and_a_deferral(stack, clock, monkeypatch):
    # Given a notification whose every attempt kills the process after its claim, and whose
    # user's quiet hours (12:08-12:20 UTC) begin after its third attempt (12:00, 12:03, 12:06):
    # the deferral puts it back as a new message, whose receive count starts again at 1
    request = welcome(6).model_copy(
        update={"quiet_hours": QuietHours(start=time(12, 8), end=time(12, 20), timezone="UTC")}
    )
    enqueue(stack, [request])
    renders = []

    def render(self, request_):
        renders.append(clock.now())
        raise ProcessKilled("killed after the claim")

    monkeypatch.setattr(TemplateRenderer, "render", render)

    # When the stack runs until nothing is left to do
    crashes = 0
    while True:
        try:
            stack.drain(max_rounds=10_000)
            break
        except ProcessKilled:
            crashes += 1
            assert crashes <= 3

    # Then three attempts crashed, it waited out the quiet hours, and at 12:20 the sender
    # dead-lettered it for its spent attempts instead of making a fourth
    assert crashes == 3
    assert len(renders) == 3
    item = ledger_items(stack)[request.notification_id]
    assert item["status"] == "DEAD_LETTERED"
    assert item["dead_letter_reason"] == "attempts_exhausted"
    assert item["failure_class"] == "exhausted"
    assert item["attempts"] == 4  # the refused fourth claim is counted, no send made
    assert [d["reason"] for d in item["deferrals"]] == ["quiet_hours"]
