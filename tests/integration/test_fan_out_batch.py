"""The fan-out behind its buffer queue: EventBridge -> FanOutQueue -> FanOutFunction in batches.

What a batch costs in AWS requests (one BatchGetItem, one SendMessageBatch per channel across
events), what happens to a malformed record and to a failed enqueue, and where an event the
fan-out keeps failing on ends up (EventsDLQ, by FanOutQueue's redrive)."""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

import pytest
from botocore.client import BaseClient
from typer.testing import CliRunner

from notifications.adapters.preferences import DynamoPreferencesStore
from notifications.preferences import Preferences
from notifyctl.cli import app
from notifyctl.local.pollers import SqsEventSourcePoller
from tests.samples import load_event, phone

SOURCE = "com.example.shop"
_original_call = BaseClient._make_api_call


@pytest.fixture
def aws_requests(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, dict[str, Any]]]:
    """Every botocore request made from now on, as (operation, parameters)."""
    calls: list[tuple[str, dict[str, Any]]] = []

    def counting(client: BaseClient, operation: str, params: dict[str, Any]) -> Any:
        calls.append((operation, params))
        return _original_call(client, operation, params)

    monkeypatch.setattr(BaseClient, "_make_api_call", counting)
    return calls


def failing_sends(monkeypatch: pytest.MonkeyPatch, queue_url: str) -> None:
    """SQS reports every SendMessageBatch entry to ``queue_url`` as failed (a service error,
    not the sender's fault), however often it is resent."""

    def call(client: BaseClient, operation: str, params: dict[str, Any]) -> Any:
        if operation == "SendMessageBatch" and params["QueueUrl"] == queue_url:
            failed = [
                {"Id": e["Id"], "SenderFault": False, "Code": "InternalError"}
                for e in params["Entries"]
            ]
            return {"Successful": [], "Failed": failed}
        return _original_call(client, operation, params)

    monkeypatch.setattr(BaseClient, "_make_api_call", call)


def fan_out_poller(stack) -> SqsEventSourcePoller:
    (poller,) = [
        p
        for p in stack.pollers
        if isinstance(p, SqsEventSourcePoller) and p.function is stack.function("FanOutFunction")
    ]
    return poller


def order(user_id: str, n: int) -> dict[str, Any]:
    detail = load_event("fan_out/order-placed.json")["detail"]
    return detail | {"user_id": user_id, "order_id": f"order-{n}"}


def payment(user_id: str, n: int) -> dict[str, Any]:
    detail = load_event("fan_out/payment-received.json")["detail"]
    return detail | {"user_id": user_id, "order_id": f"order-{n}"}


def store_users(stack, count: int) -> list[str]:
    store = DynamoPreferencesStore(stack.physical_id("PreferencesTable"))
    users = [f"user-{n}" for n in range(count)]
    for n, user in enumerate(users):
        store.put(Preferences(user_id=user, email=f"{user}@example.com", phone=phone(n)))
    return users


def bodies(stack, logical_id: str) -> list[dict[str, Any]]:
    """Every message waiting on a queue, read without consuming it."""
    found: list[dict[str, Any]] = []
    while batch := stack.clients.sqs.receive_message(
        QueueUrl=stack.queue_url(logical_id), MaxNumberOfMessages=10, VisibilityTimeout=30
    ).get("Messages", []):
        found.extend(json.loads(m["Body"]) for m in batch)
    return found


def raw_messages(stack, logical_id: str) -> list[dict[str, Any]]:
    """Up to ten messages with every attribute, left visible."""
    return stack.clients.sqs.receive_message(
        QueueUrl=stack.queue_url(logical_id),
        MaxNumberOfMessages=10,
        VisibilityTimeout=0,
        MessageAttributeNames=["All"],
        AttributeNames=["All"],
    ).get("Messages", [])


def sqs_record(message_id: str, event: Any) -> dict[str, Any]:
    body = event if isinstance(event, str) else json.dumps(event)
    return {
        "messageId": message_id,
        "receiptHandle": f"handle-{message_id}",
        "body": body,
        "attributes": {"ApproximateReceiveCount": "1"},
        "messageAttributes": {},
        "eventSource": "aws:sqs",
    }


def test_a_batch_of_several_users_costs_one_batch_get_and_one_send_per_channel(stack, aws_requests):
    # Given five users with an email address and a phone, and an order and a payment of each
    # waiting in FanOutQueue, put there by the stack's own rules
    users = store_users(stack, 5)
    published = set()
    for n, user in enumerate(users):
        published.add(stack.publish("OrderPlaced", order(user, n), source=SOURCE))
        published.add(stack.publish("PaymentReceived", payment(user, n), source=SOURCE))
    aws_requests.clear()

    # When the fan-out's event source mapping hands it one batch
    handled = fan_out_poller(stack).poll_once()

    # Then the ten events were one batch, and their preferences one BatchGetItem of five keys
    assert handled == 10
    operations = Counter(operation for operation, _ in aws_requests)
    assert operations["BatchGetItem"] == 1
    assert operations["GetItem"] == 0
    (batch_get,) = [p for op, p in aws_requests if op == "BatchGetItem"]
    (keys,) = [table["Keys"] for table in batch_get["RequestItems"].values()]
    assert sorted(k["user_id"]["S"] for k in keys) == users  # wire format: the low-level client
    # And each channel got one SendMessageBatch carrying the requests of all ten events
    sends = [p for op, p in aws_requests if op == "SendMessageBatch"]
    assert operations["SendMessage"] == 0
    assert sorted(p["QueueUrl"] for p in sends) == sorted(
        [stack.queue_url("EmailQueue"), stack.queue_url("SmsQueue")]
    )
    for send in sends:
        events = {json.loads(e["MessageBody"])["event_id"] for e in send["Entries"]}
        assert events == published
    # And every request waits on its channel queue; the buffer is empty
    assert len(bodies(stack, "EmailQueue")) == len(bodies(stack, "SmsQueue")) == 10
    assert raw_messages(stack, "FanOutQueue") == []


def test_a_malformed_record_in_the_middle_is_dead_lettered_and_the_rest_enqueued(stack):
    # Given a batch in FanOutQueue: a good event, a body that is not JSON, an invalid event
    # (an order without its user) and another good event
    users = store_users(stack, 2)
    sqs, buffer = stack.clients.sqs, stack.queue_url("FanOutQueue")
    invalid = load_event("fan_out/order-placed-invalid.json")
    for body in (
        {**load_event("fan_out/order-placed.json"), "id": "evt-a"} | {"detail": order(users[0], 1)},
        "{not json",
        invalid,
        {**load_event("fan_out/order-placed.json"), "id": "evt-b"} | {"detail": order(users[1], 2)},
    ):
        sqs.send_message(
            QueueUrl=buffer, MessageBody=body if isinstance(body, str) else json.dumps(body)
        )

    # When the fan-out handles the batch
    assert fan_out_poller(stack).poll_once() == 4

    # Then both bad records are in EventsDLQ as they arrived, each with its reason
    rejected = raw_messages(stack, "EventsDLQ")
    reasons = {m["MessageAttributes"]["reason"]["StringValue"]: m for m in rejected}
    assert set(reasons) == {"malformed_envelope", "invalid_event"}
    assert reasons["malformed_envelope"]["Body"] == "{not json"
    assert "detail.user_id" in reasons["invalid_event"]["MessageAttributes"]["error"]["StringValue"]
    assert json.loads(reasons["invalid_event"]["Body"]) == invalid
    # And the good events around them are enqueued, and nothing is left to retry
    assert sorted(r["event_id"] for r in bodies(stack, "EmailQueue")) == ["evt-a", "evt-b"]
    assert raw_messages(stack, "FanOutQueue") == []


def test_an_enqueue_failure_on_one_channel_fails_exactly_the_events_on_it(stack, monkeypatch):
    # Given user-0 with email and SMS, user-1 with email only, and SQS failing every send to
    # the SMS queue
    users = store_users(stack, 1)
    DynamoPreferencesStore(stack.physical_id("PreferencesTable")).put(
        Preferences(user_id="user-1", email="user-1@example.com")
    )
    failing_sends(monkeypatch, stack.queue_url("SmsQueue"))
    envelope = load_event("fan_out/order-placed.json")
    batch = {
        "Records": [
            sqs_record("m-sms", envelope | {"id": "evt-0", "detail": order(users[0], 0)}),
            sqs_record("m-email", envelope | {"id": "evt-1", "detail": order("user-1", 1)}),
            sqs_record("m-pay", envelope | {"id": "evt-2", "detail": order("user-1", 2)}),
        ]
    }

    # When the fan-out gets the batch
    invocation = stack.function("FanOutFunction").invoke(batch)

    # Then only the event with an SMS to send is reported failed, so SQS offers it again
    assert invocation.ok, invocation.error
    assert invocation.result == {"batchItemFailures": [{"itemIdentifier": "m-sms"}]}
    # And the other events' requests went out (user-0's email too: its resend is a duplicate
    # the sender's ledger claim drops)
    emails = sorted(r["event_id"] for r in bodies(stack, "EmailQueue"))
    assert emails == ["evt-0", "evt-1", "evt-2"]
    assert bodies(stack, "SmsQueue") == []


def test_an_event_the_fan_out_keeps_failing_ends_in_events_dlq_after_five_receives(
    stack, monkeypatch, clock
):
    # Given SQS failing every send to the email queue
    failing_sends(monkeypatch, stack.queue_url("EmailQueue"))

    # When Alice registers and the stack runs until nothing is left to do
    event_id = stack.publish(
        "UserRegistered", load_event("fan_out/user-registered.json")["detail"], source=SOURCE
    )
    stack.drain()

    # Then the fan-out tried it five times (FanOutQueue's maxReceiveCount), no more
    tries = [
        r for r in stack.logs if r.function == "FanOutFunction" and "event not fanned out" in r.line
    ]
    assert len(tries) == 5
    # And the queue's redrive moved the event, as EventBridge delivered it, to EventsDLQ
    (moved,) = raw_messages(stack, "EventsDLQ")
    assert json.loads(moved["Body"])["id"] == event_id
    assert "reason" not in moved.get("MessageAttributes", {})
    assert raw_messages(stack, "FanOutQueue") == []
    # And the operator sees why
    clock.advance(0.01)  # moto shows a released message only once time has moved past it
    listed = json.loads(
        CliRunner()
        .invoke(app, ["--stack-name", stack.stack_name, "events-dlq", "list", "--json"])
        .output
    )
    assert [(e["event_id"], e["reason"], e["error"]) for e in listed] == [
        (
            event_id,
            "max_receive_count_exceeded",
            "fan-out failed after 5 receives; its logs name the error",
        )
    ]
    assert listed[0]["origin"] == "fan-out failed (FanOutQueue redrive)"
