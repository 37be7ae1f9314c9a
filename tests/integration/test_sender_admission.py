"""Batch admission on the local stack: one transaction per batch for the rate slots and claims
of first attempts; whatever it cannot settle goes one by one, with the same outcomes."""

from collections import Counter

import botocore.client
import pytest

from notifications.adapters.ledger import DynamoLedger
from notifications.adapters.sqs import SqsQueues
from notifications.channels.email import SesEmailProvider
from notifications.errors import RetryableError
from tests.observe import sent_emails
from tests.samples import welcome


@pytest.fixture
def dynamodb_calls(monkeypatch):
    """(operation, table) of every DynamoDB request made from now on."""
    calls = []
    real = botocore.client.BaseClient._make_api_call

    def counting(self, operation, params):
        if self.meta.service_model.service_name == "dynamodb":
            calls.append((operation, params.get("TableName")))
        return real(self, operation, params)

    monkeypatch.setattr(botocore.client.BaseClient, "_make_api_call", counting)
    return calls


def rate_counters(stack):
    items = stack.clients.client("dynamodb").scan(TableName=stack.physical_id("PolicyStateTable"))[
        "Items"
    ]
    return {i["pk"]["S"]: int(i["count"]["N"]) for i in items if i["pk"]["S"].startswith("rate#")}


def test_a_batch_of_first_attempts_takes_its_slots_and_claims_in_one_request(stack, dynamodb_calls):
    # Given ten new email notifications in one batch
    SqsQueues().enqueue(stack.queue_url("EmailQueue"), [welcome(n) for n in range(10)])

    # When the sender handles the batch
    assert stack.pump() == 10

    # Then all ten were sent once, and recorded SENT after one attempt
    assert len(sent_emails()) == 10
    ledger = DynamoLedger(stack.physical_id("LedgerTable"))
    records = [ledger.get(welcome(n).notification_id) for n in range(10)]
    assert [(r["status"], r["attempts"]) for r in records] == [("SENT", 1)] * 10
    assert all(r["recipient_masked"] != f"user{n}@example.com" for n, r in enumerate(records))
    # And each user's rate counter holds its one slot
    assert rate_counters(stack) == {f"rate#email#user:user-{n}": 1 for n in range(10)}
    # And the writes were one transaction plus one SENT update per message
    operations = Counter(operation for operation, _ in dynamodb_calls)
    assert operations["TransactWriteItems"] == 1
    ledger_table = stack.physical_id("LedgerTable")
    assert operations["UpdateItem"] == 10
    assert all(table == ledger_table for op, table in dynamodb_calls if op == "UpdateItem")


def test_a_duplicate_in_a_batch_of_new_ones_is_skipped_and_the_rest_admitted(stack, dynamodb_calls):
    # Given a notification already sent, redelivered in a batch with four new ones
    queues = SqsQueues()
    queues.enqueue(stack.queue_url("EmailQueue"), [welcome(0)])
    stack.drain()
    dynamodb_calls.clear()
    queues.enqueue(stack.queue_url("EmailQueue"), [welcome(n) for n in range(5)])

    # When the sender handles the batch
    assert stack.pump() == 5

    # Then each user got exactly one email
    assert sorted(e.destinations[0] for e in sent_emails()) == [
        f"user{n}@example.com" for n in range(5)
    ]
    # And the first transaction was refused (the duplicate's claim), the second admitted the
    # four new ones; the duplicate went one by one: a rate slot (the limit comes before the
    # claim, as always one by one), then its claim found it SENT
    operations = Counter(operation for operation, _ in dynamodb_calls)
    assert operations["TransactWriteItems"] == 2
    assert rate_counters(stack) == {
        "rate#email#user:user-0": 2,
        **{f"rate#email#user:user-{n}": 1 for n in range(1, 5)},
    }


def test_a_user_over_the_limit_in_one_batch_goes_one_by_one(deploy_stack):
    # Given a limit of two per minute and three notifications for user 0 in one batch, with
    # two for other users
    stack = deploy_stack(RateLimitPerMinute=2)
    mine = [welcome(0, event=f"evt-0-{i}") for i in range(3)]
    SqsQueues().enqueue(stack.queue_url("EmailQueue"), [*mine, welcome(1), welcome(2)])

    # When the sender handles the batch
    assert stack.pump() == 5

    # Then two of user 0's are sent and the third deferred to the next minute; the others sent
    ledger = DynamoLedger(stack.physical_id("LedgerTable"))
    statuses = sorted(ledger.get(r.notification_id)["status"] for r in mine)
    assert statuses == ["DEFERRED", "SENT", "SENT"]
    assert sorted(e.destinations[0] for e in sent_emails()) == [
        "user0@example.com",
        "user0@example.com",
        "user1@example.com",
        "user2@example.com",
    ]
    assert rate_counters(stack)["rate#email#user:user-0"] == 2


def test_claims_taken_ahead_are_given_back_when_the_circuit_opens_mid_batch(
    deploy_stack, monkeypatch
):
    # Given a breaker that opens after two provider failures, two sends in flight at a time,
    # and an email provider that is down
    stack = deploy_stack(BreakerFailureThreshold=2, SenderConcurrency=2)
    calls = []

    def down(self, request, message):
        calls.append(request.notification_id)
        raise RetryableError("provider_unavailable", "SES is down")

    monkeypatch.setattr(SesEmailProvider, "send", down)
    requests = [welcome(n) for n in range(6)]
    SqsQueues().enqueue(stack.queue_url("EmailQueue"), requests)

    # When the sender handles the batch (all six claimed ahead)
    assert stack.pump() == 6

    # Then two were tried and opened the circuit; the other four were never tried, hold no
    # lease, are charged no attempt, and wait for the circuit as DEFERRED
    assert calls == [r.notification_id for r in requests[:2]]
    ledger = DynamoLedger(stack.physical_id("LedgerTable"))
    tried = [ledger.get(r.notification_id) for r in requests[:2]]
    waiting = [ledger.get(r.notification_id) for r in requests[2:]]
    assert [r["attempts"] for r in tried] == [1, 1]
    assert [(r["status"], r["attempts"]) for r in waiting] == [("DEFERRED", 0)] * 4
    assert all("lease_until" not in r for r in waiting)
    assert all(r["deferred_reason"] == "circuit_open" for r in waiting)


def test_with_batch_admission_off_each_message_takes_its_own_slot_and_claim(
    deploy_stack, dynamodb_calls
):
    # Given the stack deployed with BatchAdmission=false (dollars over requests)
    stack = deploy_stack(BatchAdmission="false")
    dynamodb_calls.clear()
    SqsQueues().enqueue(stack.queue_url("EmailQueue"), [welcome(n) for n in range(5)])

    # When the sender handles the batch
    assert stack.pump() == 5

    # Then no transaction: a counter update, a claim and a SENT update per message
    assert len(sent_emails()) == 5
    operations = Counter(operation for operation, _ in dynamodb_calls)
    assert operations["TransactWriteItems"] == 0
    assert operations["UpdateItem"] == 15
    assert rate_counters(stack) == {f"rate#email#user:user-{n}": 1 for n in range(5)}


def test_a_message_received_before_goes_one_by_one_without_cancelling_the_batch(
    stack, clock, dynamodb_calls
):
    # Given a message received once already (a retry: it comes back after its visibility
    # timeout) in a batch with four new ones
    url = stack.queue_url("EmailQueue")
    SqsQueues().enqueue(url, [welcome(0)])
    sqs = stack.clients.sqs
    (first,) = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=1)["Messages"]
    sqs.change_message_visibility(
        QueueUrl=url, ReceiptHandle=first["ReceiptHandle"], VisibilityTimeout=0
    )
    SqsQueues().enqueue(url, [welcome(n) for n in range(1, 5)])
    clock.advance(1)
    dynamodb_calls.clear()

    # When the sender handles the batch
    assert stack.pump() == 5

    # Then all five are sent; the retry took its own slot and claim, and the one transaction
    # for the four new ones went through at the first try
    assert len(sent_emails()) == 5
    operations = Counter(operation for operation, _ in dynamodb_calls)
    assert operations["TransactWriteItems"] == 1
    assert operations["UpdateItem"] == 5 + 2
