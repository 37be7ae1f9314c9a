"""Concurrent sends within a batch (sending.py): a slow send does not hold up the others, a
send that does not answer in time is given up, and nothing is claimed or sent past the
invocation's remaining-time cut.

The sender is wired from the deployed stack's environment (``build_sender``, as its function
does at a cold start) and handed one real batch from the email queue; its email provider is
moto's SES wrapped by a gate the test controls. No assertion depends on how long anything took.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from typing import Any

from notifications.adapters.ledger import DynamoLedger
from notifications.adapters.sqs import SqsQueues
from notifications.channels.base import ChannelProvider, ProviderReceipt, RenderedMessage
from notifications.models import Channel, NotificationRequested
from notifications.registry import build_provider
from notifications.sending import LazyProviders, Sender, build_sender
from notifications.settings import SenderSettings
from tests.integration.test_sender_backoff import all_messages
from tests.observe import sent_emails
from tests.samples import welcome

# Only a safety net so that a broken build fails instead of hanging: no test expects to wait it.
NEVER = 20.0


class Context:
    """A Lambda context whose remaining time the test sets."""

    def __init__(self, remaining_ms: int = 30_000) -> None:
        self.remaining_ms = remaining_ms

    def get_remaining_time_in_millis(self) -> int:
        return self.remaining_ms


class Gated:
    """SES as deployed, with a hook the test runs around each send."""

    def __init__(
        self,
        inner: ChannelProvider,
        before: Callable[[NotificationRequested], None] = lambda r: None,
        after: Callable[[NotificationRequested], None] = lambda r: None,
    ) -> None:
        self.inner, self.before, self.after = inner, before, after

    def send(self, request: NotificationRequested, message: RenderedMessage) -> ProviderReceipt:
        self.before(request)
        receipt = self.inner.send(request, message)
        self.after(request)
        return receipt


def wire(stack: Any, provider: Callable[[ChannelProvider], ChannelProvider], **env: str) -> Sender:
    environment = {**stack.function("SenderFunction").environment, **env}
    settings = SenderSettings.from_env(environment)
    sender = build_sender(settings)
    sender.providers = LazyProviders(
        {channel: (lambda c=channel: build_provider(c, settings)) for channel in Channel},
        provider,
    )
    return sender


def batch_of(stack: Any, requests: list[NotificationRequested]) -> dict[str, Any]:
    """The requests on the email queue, received as the event source mapping would hand them."""
    url = stack.queue_url("EmailQueue")
    SqsQueues().enqueue(url, requests)
    arn = stack.clients.sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])[
        "Attributes"
    ]["QueueArn"]
    messages = stack.clients.sqs.receive_message(
        QueueUrl=url, MaxNumberOfMessages=10, AttributeNames=["All"]
    )["Messages"]
    assert len(messages) == len(requests)
    order = {request.notification_id: n for n, request in enumerate(requests)}
    return {
        "Records": [
            {
                "messageId": m["MessageId"],
                "receiptHandle": m["ReceiptHandle"],
                "body": m["Body"],
                "attributes": m["Attributes"],
                "messageAttributes": {},
                "eventSource": "aws:sqs",
                "eventSourceARN": arn,
                "awsRegion": "us-east-1",
            }
            for m in sorted(messages, key=lambda m: order[json.loads(m["Body"])["notification_id"]])
        ]
    }


def ledger(stack: Any) -> DynamoLedger:
    return DynamoLedger(stack.physical_id("LedgerTable"))


def test_a_slow_send_does_not_delay_the_other_nine(stack):
    # Given a batch of ten where user0's provider call does not answer until the other nine
    # were sent (one after another, the nine would wait for it: it would never answer)
    requests = [welcome(n) for n in range(10)]
    others_sent = threading.Event()
    count = {"sent": 0}
    lock = threading.Lock()
    seen = {}

    def before(request: NotificationRequested) -> None:
        if request.recipient == "user0@example.com":
            seen["others_sent_first"] = others_sent.wait(NEVER)

    def after(request: NotificationRequested) -> None:
        with lock:
            count["sent"] += 1 if request.recipient != "user0@example.com" else 0
            if count["sent"] == 9:
                others_sent.set()

    sender = wire(stack, lambda inner: Gated(inner, before, after))
    event = batch_of(stack, requests)

    # When the sender handles it
    response = sender.process_batch(event, Context())

    # Then the nine were sent while user0's call was in flight, and all ten are SENT
    assert seen == {"others_sent_first": True}
    assert response == {"batchItemFailures": []}
    assert sorted(e.destinations[0] for e in sent_emails()) == sorted(
        f"user{n}@example.com" for n in range(10)
    )
    assert {ledger(stack).get(r.notification_id)["status"] for r in requests} == {"SENT"}

    # And with SENDER_CONCURRENCY=1 (the sequential path) sends go one at a time
    in_flight, peak = [0], [0]

    def entering(request: NotificationRequested) -> None:
        with lock:
            in_flight[0] += 1
            peak[0] = max(peak[0], in_flight[0])

    def leaving(request: NotificationRequested) -> None:
        with lock:
            in_flight[0] -= 1

    sequential = wire(stack, lambda inner: Gated(inner, entering, leaving), SENDER_CONCURRENCY="1")
    more = [welcome(n) for n in range(10, 15)]
    assert sequential.process_batch(batch_of(stack, more), Context()) == {"batchItemFailures": []}
    assert peak == [1]
    assert len(sent_emails()) == 15

    # And with PROVIDER_LATENCY modelling 2 s per email and a 0.2 s send timeout, as deployed
    # (build_sender's own providers), both sends are given up: each send took its modelled time
    environment = stack.function("SenderFunction").environment
    slow = build_sender(
        SenderSettings.from_env(
            {**environment, "PROVIDER_LATENCY": "email=fixed:2000", "SEND_TIMEOUT_SECONDS": "0.2"}
        )
    )
    late = [welcome(n) for n in range(20, 22)]
    response = slow.process_batch(batch_of(stack, late), Context())
    assert len(response["batchItemFailures"]) == 2
    assert {ledger(stack).get(r.notification_id)["last_reason"] for r in late} == {"send_timeout"}


def test_records_past_the_remaining_time_cut_are_put_back_unclaimed(stack, clock):
    # Given one-by-one claims (no batch admission) and an invocation whose time runs short
    # once the fourth record is claimed (less than the 10 s send timeout + settle margin left)
    requests = [welcome(n) for n in range(10)]
    context = Context()
    sender = wire(stack, lambda inner: inner, BATCH_ADMISSION="false")
    claim = sender.ledger.begin_attempt
    claims = []

    def counted_claim(*args: Any, **kwargs: Any) -> Any:
        granted = claim(*args, **kwargs)
        claims.append(granted)
        if len(claims) == 4:
            context.remaining_ms = 11_000
        return granted

    sender.ledger.begin_attempt = counted_claim  # type: ignore[method-assign]
    event = batch_of(stack, requests)

    # When the sender handles the batch
    response = sender.process_batch(event, context)

    # Then four were sent; the other six were never claimed (no ledger record, so no attempt
    # spent) and are back on the email queue, each once, the batch acknowledging them
    assert response == {"batchItemFailures": []}
    assert sorted(e.destinations[0] for e in sent_emails()) == [
        f"user{n}@example.com" for n in range(4)
    ]
    assert [ledger(stack).get(r.notification_id) for r in requests[4:]] == [None] * 6
    clock.advance(2)  # the put-back copies are delayed 1 s; the originals stay in flight
    back = all_messages(stack, stack.queue_url("EmailQueue"))
    assert sorted(m["Body"] for m in back) == sorted(r["body"] for r in event["Records"][4:])

    # And when the batch admission took ten claims ahead and the time runs short before the
    # first send, nothing is sent and each claim is given back (no attempt, no lease)
    requests = [welcome(n) for n in range(10, 20)]
    context = Context()
    sender = wire(stack, lambda inner: inner)
    assert sender.admission is not None
    admit = sender.admission.admit

    def admit_then_run_short(*args: Any, **kwargs: Any) -> Any:
        admitted = admit(*args, **kwargs)
        context.remaining_ms = 11_000
        return admitted

    sender.admission.admit = admit_then_run_short  # type: ignore[method-assign]
    response = sender.process_batch(batch_of(stack, requests), context)

    assert response == {"batchItemFailures": []}
    assert len(sent_emails()) == 4
    records = [ledger(stack).get(r.notification_id) for r in requests]
    assert [(r["attempts"], "lease_until" in r) for r in records] == [(0, False)] * 10
    clock.advance(2)
    assert len(all_messages(stack, stack.queue_url("EmailQueue"))) == 10


def test_a_send_past_its_timeout_is_given_up_and_its_late_answer_dropped(stack, clock):
    # Given two workers, a 0.3 s send timeout and a provider whose first two calls send but do
    # not answer until the test lets them; the third record finds every worker busy
    release = threading.Event()
    calls = []

    def after(request: NotificationRequested) -> None:
        calls.append(request.recipient)
        if len(calls) <= 2:
            release.wait(NEVER)

    sender = wire(
        stack,
        lambda inner: Gated(inner, after=after),
        SENDER_CONCURRENCY="2",
        SEND_TIMEOUT_SECONDS="0.3",
        BATCH_ADMISSION="false",
    )
    sender.pool_workers = 2
    requests = [welcome(n) for n in range(3)]
    event = batch_of(stack, requests)

    # When the sender handles the batch, and only then the two calls answer
    response = sender.process_batch(event, Context())
    release.set()
    pool = sender.pool()
    assert pool is not None
    pool.shutdown(wait=True)

    # Then the two unanswered sends are retryable send_timeout failures (reported to SQS),
    # still so after their late answers; the third never started, was never sent, and is back
    # on the queue with its claim given back (the first two come back after their 1 s backoff)
    first_two = {m["messageId"] for m in event["Records"][:2]}
    assert {f["itemIdentifier"] for f in response["batchItemFailures"]} == first_two
    for request in requests[:2]:
        record = ledger(stack).get(request.notification_id)
        assert (record["status"], record["last_reason"]) == ("RETRYING", "send_timeout")
    assert sorted(calls) == ["user0@example.com", "user1@example.com"]
    third = ledger(stack).get(requests[2].notification_id)
    assert (third["attempts"], "lease_until" in third) == (0, False)
    clock.advance(2)
    back = all_messages(stack, stack.queue_url("EmailQueue"))
    assert sorted(m["Body"] for m in back) == sorted(r["body"] for r in event["Records"])
