"""Idempotency: the ledger claim lets each notification be sent once, with one known window."""

import json
from datetime import datetime

import pytest

from notifications.adapters.ledger import DynamoLedger
from notifications.adapters.sqs import SqsQueues
from notifications.channels.email import SesEmailProvider
from notifications.models import utc_iso
from notifyctl.local.pollers import sqs_event_record
from tests.observe import sent_emails
from tests.samples import load_event, welcome


def receive_all(stack, logical_id):
    return stack.clients.sqs.receive_message(
        QueueUrl=stack.queue_url(logical_id),
        MaxNumberOfMessages=10,
        AttributeNames=["All"],
        MessageAttributeNames=["All"],
    )["Messages"]


def queue_arn(stack, logical_id):
    return stack.clients.sqs.get_queue_attributes(
        QueueUrl=stack.queue_url(logical_id), AttributeNames=["QueueArn"]
    )["Attributes"]["QueueArn"]


def test_the_same_domain_event_delivered_twice_sends_once(stack):
    # Given the same UserRegistered event handed to the fan-out twice (at-least-once delivery)
    event = load_event("fan_out/user-registered.json")
    fan_out = stack.function("FanOutFunction")

    # When both are fanned out and the stack drains
    assert fan_out.invoke(event).ok
    assert fan_out.invoke(json.loads(json.dumps(event))).ok
    stack.drain()

    # Then one welcome email, one SENT record
    assert [e.destinations[0] for e in sent_emails()] == ["alice@example.com"]
    items = list(DynamoLedger(stack.physical_id("LedgerTable")).scan())
    assert [(i["status"], i["attempts"]) for i in items] == [("SENT", 1)]


def test_one_message_in_two_concurrent_invocations_sends_once(stack, monkeypatch):
    # Given one request on the email queue, received by an invocation
    SqsQueues().enqueue(stack.queue_url("EmailQueue"), [welcome(1)])
    (message,) = receive_all(stack, "EmailQueue")
    event = {"Records": [sqs_event_record(message, queue_arn(stack, "EmailQueue"), "us-east-1")]}
    sender = stack.function("SenderFunction")
    real_send = SesEmailProvider.send
    second = []

    def send_while_a_second_invocation_runs(self, request, rendered):
        # While the first invocation is inside the provider, the same record reaches a second
        if not second:
            second.append(sender.invoke(event))
        return real_send(self, request, rendered)

    monkeypatch.setattr(SesEmailProvider, "send", send_while_a_second_invocation_runs)

    # When the first invocation runs
    first = sender.invoke(event)

    # Then one email; the second invocation backed off (item failure), the first succeeded
    assert len(sent_emails()) == 1
    assert second[0].ok
    assert [f["itemIdentifier"] for f in second[0].result["batchItemFailures"]] == [
        message["MessageId"]
    ]
    assert first.ok
    assert first.result["batchItemFailures"] == []
    assert (
        DynamoLedger(stack.physical_id("LedgerTable")).get(welcome(1).notification_id)["status"]
        == "SENT"
    )


@pytest.mark.parametrize("crashes", [1])
def test_a_crash_between_provider_and_record_sends_again_after_the_lease(
    stack, clock, monkeypatch, crashes
):
    # Given a sender that dies after SES accepted the email but before SENT is written
    ledger_class = DynamoLedger
    real_record_sent = ledger_class.record_sent
    crashed = []

    def record_sent(self, *args, **kwargs):
        if len(crashed) < crashes:
            crashed.append(True)
            raise RuntimeError("process killed")
        return real_record_sent(self, *args, **kwargs)

    monkeypatch.setattr(ledger_class, "record_sent", record_sent)
    SqsQueues().enqueue(stack.queue_url("EmailQueue"), [welcome(2)])

    # When the stack runs: the message comes back after its visibility timeout (well after the
    # claim's lease, which ends with the invocation) and is sent again
    stack.drain()

    # Then the documented window shows: the email went out twice, recorded SENT after 2 attempts
    assert len(sent_emails()) == 1 + crashes
    item = DynamoLedger(stack.physical_id("LedgerTable")).get(welcome(2).notification_id)
    assert (item["status"], item["attempts"]) == ("SENT", 1 + crashes)


def test_the_first_claim_creates_the_described_record_with_the_address_masked(stack):
    # Given Alice's welcome email fanned out (no ledger record while it waits in the queue)
    assert stack.function("FanOutFunction").invoke(load_event("fan_out/user-registered.json")).ok
    (message,) = receive_all(stack, "EmailQueue")
    request = json.loads(message["Body"])
    ledger = DynamoLedger(stack.physical_id("LedgerTable"))
    assert ledger.get(request["notification_id"]) is None

    # When the stack drains
    stack.drain()

    # Then the record says what was sent to whom, masked, since when, and no raw address
    item = ledger.get(request["notification_id"])
    assert item is not None
    assert item["status"] == "SENT"
    assert item["channel"] == "email"
    assert item["event_type"] == "UserRegistered"
    assert item["template_id"] == "welcome"
    requested_at = datetime.fromisoformat(request["requested_at"].replace("Z", "+00:00"))
    assert item["created_at"] == utc_iso(requested_at)
    assert item["recipient_masked"] != "alice@example.com"
    assert "alice@example.com" not in json.dumps(item, default=str)
