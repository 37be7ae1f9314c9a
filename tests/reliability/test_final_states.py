"""A notification in a final state stays there when SQS or EventBridge delivers it again.

Delivery is at least once everywhere, so a duplicate message can arrive after a notification
was dead-lettered or purged. Only an operator's redrive (REDRIVEN) may send it again.
"""

from __future__ import annotations

from datetime import UTC, datetime

from notifications.adapters.ledger import DynamoLedger
from notifications.adapters.sqs import SqsQueues
from notifications.channels.email import SesEmailProvider
from notifications.errors import PermanentError
from tests.reliability.helpers import (
    dead_letters_recorded,
    enqueue,
    ledger_items,
    provider_calls,
    welcome,
)


def dead_letter_once(stack, monkeypatch, request):
    real_send = SesEmailProvider.send
    failing = [True]

    def send(self, request_, message):
        if failing[0]:
            raise PermanentError("provider_rejected", "rejected once")
        return real_send(self, request_, message)

    monkeypatch.setattr(SesEmailProvider, "send", send)
    enqueue(stack, [request])
    stack.drain()
    assert ledger_items(stack)[request.notification_id]["status"] == "DEAD_LETTERED"
    failing[0] = False  # the provider is healthy again


def test_a_duplicate_delivery_of_a_dead_letter_is_not_sent(stack, monkeypatch):
    # Given a notification dead-lettered by a permanent failure
    request = welcome(1)
    dead_letter_once(stack, monkeypatch, request)

    # When SQS delivers a duplicate of its message
    SqsQueues().enqueue(stack.queue_url("EmailQueue"), [request])
    stack.drain()

    # Then nothing is sent: it stays DEAD_LETTERED (an operator redrives it), one alarm record
    assert provider_calls(stack)["email"] == 0
    assert ledger_items(stack)[request.notification_id]["status"] == "DEAD_LETTERED"
    assert dead_letters_recorded(stack) == 1


def test_a_duplicate_delivery_of_a_purged_notification_is_not_sent(stack, monkeypatch, clock):
    # Given a dead letter an operator purged ("must never go out", docs/operations.md)
    request = welcome(2)
    dead_letter_once(stack, monkeypatch, request)
    ledger = DynamoLedger(stack.physical_id("LedgerTable"))
    assert ledger.mark_purged(request.notification_id, datetime.now(UTC), "ops")

    # When a duplicate of its message arrives
    SqsQueues().enqueue(stack.queue_url("EmailQueue"), [request])
    stack.drain()

    # Then it is not sent
    assert provider_calls(stack)["email"] == 0
    assert ledger_items(stack)[request.notification_id]["status"] == "PURGED"


def test_a_redriven_notification_is_sent(stack, monkeypatch):
    # Given a dead letter an operator redrove (REDRIVEN, fresh attempt budget)
    request = welcome(3)
    dead_letter_once(stack, monkeypatch, request)
    ledger = DynamoLedger(stack.physical_id("LedgerTable"))
    assert ledger.mark_redriven(request.notification_id, datetime.now(UTC), "ops")

    # When its message is back on the queue
    SqsQueues().enqueue(stack.queue_url("EmailQueue"), [request])
    stack.drain()

    # Then it is sent, once
    assert provider_calls(stack)["email"] == 1
    assert ledger_items(stack)[request.notification_id]["status"] == "SENT"
