"""No function builds a boto3 DynamoDB *resource*, not even on its first invocation: every
table goes through the low-level client (``adapters/dynamodb.py``). Building the resource
model is tens of milliseconds of a cold start (docs/performance.md, "Cold start").

The functions run in this process (the local runtime's in-process mode shares boto3 with the
test), so making ``boto3.session.Session.resource`` refuse (``boto3.resource`` goes through
it too) makes any resource a function would build fail the invocation it is built in."""

from __future__ import annotations

import json
from typing import Any

import boto3.session
import pytest

from notifications.adapters.ledger import DynamoLedger
from notifications.adapters.policy_state import DynamoBreakerStore
from notifications.adapters.preferences import DynamoPreferencesStore
from notifications.models import Channel
from notifications.preferences import Preferences
from tests.integration.test_event_samples import aimed_at
from tests.integration.test_sender_backoff import all_messages
from tests.observe import sent_emails
from tests.samples import load_event, welcome

FEEDBACK_ID = "6b1f6d0e-0b7c-5a3f-9d52-7f1f2a4c9e10"  # the tag in events/delivery_feedback/ses-*


@pytest.fixture
def resources_refused(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """From here on, building a boto3 resource raises; the services asked for are listed."""
    asked: list[str] = []

    def refuse(self: Any, service_name: str, *args: Any, **kwargs: Any) -> Any:
        asked.append(service_name)
        raise AssertionError(f"a boto3 resource was built: {service_name}")

    monkeypatch.setattr(boto3.session.Session, "resource", refuse)
    return asked


def test_every_function_handles_its_first_invocation_without_a_dynamodb_resource(
    stack, resources_refused
):
    ledger = DynamoLedger(stack.physical_id("LedgerTable"))

    # When the fan-out gets its first batch (a registration, an order, a payment, an invalid
    # order): preferences read in one BatchGetItem, written, ledger and queue
    fan_out = stack.function("FanOutFunction").invoke(
        aimed_at(stack, "fan_out/sqs-batch.json", "FanOutQueue")
    )
    # Then the three emails wait on the email queue and Alice's preferences are stored
    assert fan_out.ok, fan_out.error
    assert fan_out.result == {"batchItemFailures": []}
    emails = all_messages(stack, stack.queue_url("EmailQueue"))
    assert sorted(json.loads(m["Body"])["template_id"] for m in emails) == [
        "order_confirm",
        "payment_received",
        "welcome",
    ]
    preferences = DynamoPreferencesStore(stack.physical_id("PreferencesTable"))
    assert preferences.get("user-123") is not None

    # When the sender gets its first batch (breaker read, admission transaction, SES, SENT)
    sender = stack.function("SenderFunction").invoke(
        aimed_at(stack, "sender/sqs-batch.json", "EmailQueue")
    )
    # Then both emails went out and the ledger says SENT
    assert sender.ok, sender.error
    assert sender.result == {"batchItemFailures": []}
    assert sorted(e.subject for e in sent_emails()) == [
        "Order #order-1001 confirmed",
        "Welcome to MyApp, Alice!",
    ]
    sent = [r for r in ledger.scan() if r["status"] == "SENT"]
    assert len(sent) == 2

    # When the DLQ alarm function gets its first batch
    alarm = stack.function("DlqAlarmFunction").invoke(
        aimed_at(stack, "dlq_alarm/dlq-batch.json", "NotificationsDLQ")
    )
    # Then both dead letters are recorded
    assert alarm.ok, alarm.error
    dead = {r["dead_letter_reason"] for r in ledger.scan() if r["status"] == "DEAD_LETTERED"}
    assert dead == {"provider_timeout", "max_receive_count_exceeded"}

    # Given the email breaker closed again but its mapping still off
    breakers = DynamoBreakerStore(stack.physical_id("PolicyStateTable"))
    breakers.set_mapping_disabled(Channel.EMAIL, True)
    # When the breaker check runs for the first time
    check = stack.function("BreakerCheckFunction").invoke({})
    # Then it switched the email mapping back on and recorded it
    assert check.ok, check.error
    assert check.result == {"enabled": ["email"], "disabled": []}
    assert breakers.read(Channel.EMAIL).mapping_disabled is False

    # Given a SENT email to Alice under the feedback sample's notification id
    request = welcome(1).model_copy(
        update={
            "notification_id": FEEDBACK_ID,
            "recipient": "alice@example.com",
            "user_id": "user-123",
        }
    )
    ledger.begin_attempt(request, lease_until=request.requested_at, now=request.requested_at)
    ledger.record_sent(FEEDBACK_ID, "010001ses-message-id", 900, request.requested_at)
    preferences.put(Preferences(user_id="user-123", email="alice@example.com"))
    # When the feedback function gets its first event, a hard bounce
    feedback = stack.function("DeliveryFeedbackFunction").invoke(
        load_event("delivery_feedback/ses-bounce.json")
    )
    # Then the ledger has the bounce and Alice's address is suppressed
    assert feedback.ok, feedback.error
    assert feedback.result == {"recorded": 1}
    assert ledger.get(FEEDBACK_ID)["delivery_status"] == "BOUNCED"
    assert "alice@example.com" in preferences.get("user-123").suppressed_emails

    # And no function asked for a resource at all
    assert resources_refused == []
