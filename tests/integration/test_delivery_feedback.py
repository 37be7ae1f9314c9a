"""Delivery feedback: SES events and SMS delivery logs update the ledger; a hard bounce or a
complaint suppresses the address, so the next notification to it is SUPPRESSED."""

import base64
import gzip
import json
from datetime import UTC, datetime

import pytest

from notifications.adapters.ledger import DynamoLedger
from notifications.adapters.preferences import DynamoPreferencesStore
from notifications.models import Channel
from notifications.preferences import Preferences
from tests.observe import sent_emails
from tests.samples import load_event, welcome

NOW = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
SAMPLE_ID = "6b1f6d0e-0b7c-5a3f-9d52-7f1f2a4c9e10"  # the tag in events/delivery_feedback/ses-*


@pytest.fixture
def sent_to_alice(stack):
    """A SENT order email to Alice under the sample's notification id."""
    ledger = DynamoLedger(stack.physical_id("LedgerTable"))
    request = welcome(1).model_copy(
        update={
            "notification_id": SAMPLE_ID,
            "recipient": "alice@example.com",
            "user_id": "user-123",
        }
    )
    ledger.begin_attempt(request, lease_until=NOW, now=NOW)
    ledger.record_sent(SAMPLE_ID, "010001ses-message-id", 900, NOW)
    DynamoPreferencesStore(stack.physical_id("PreferencesTable")).put(
        Preferences(user_id="user-123", email="alice@example.com")
    )
    return ledger


@pytest.mark.parametrize(
    ("sample", "status", "suppressed"),
    [
        ("ses-delivery.json", "DELIVERED", False),
        ("ses-bounce.json", "BOUNCED", True),
        ("ses-complaint.json", "COMPLAINED", True),
    ],
)
def test_ses_events_update_the_ledger(stack, sent_to_alice, sample, status, suppressed):
    invocation = stack.function("DeliveryFeedbackFunction").invoke(
        load_event(f"delivery_feedback/{sample}")
    )

    assert invocation.ok, invocation.error
    assert invocation.result == {"recorded": 1}
    record = sent_to_alice.get(SAMPLE_ID)
    assert record["status"] == "SENT"  # the send succeeded; feedback is recorded beside it
    assert record["delivery_status"] == status
    prefs = DynamoPreferencesStore(stack.physical_id("PreferencesTable")).get("user-123")
    assert ("alice@example.com" in prefs.suppressed_emails) is suppressed


def test_a_bounced_address_gets_no_further_email(stack, sent_to_alice):
    # Given Alice's address hard-bounced
    stack.function("DeliveryFeedbackFunction").invoke(
        load_event("delivery_feedback/ses-bounce.json")
    )
    # When she places an order
    result = stack.function("FanOutFunction").invoke(load_event("fan_out/order-placed.json"))
    # Then the order email is SUPPRESSED with the reason, and nothing is enqueued
    assert result.result["enqueued"] == {}
    assert result.result["suppressed"] == 1
    (record,) = [
        r
        for r in sent_to_alice.scan()
        if r["status"] == "SUPPRESSED" and r["channel"] == Channel.EMAIL.value
    ]
    assert record["suppressed_reason"] == "address_suppressed"


def test_sms_delivery_logs_update_the_ledger_by_provider_message_id(stack):
    ledger = DynamoLedger(stack.physical_id("LedgerTable"))
    ids = {}
    for n, message_id in ((1, "sms-message-id-0001"), (2, "sms-message-id-0002")):
        request = welcome(n).model_copy(
            update={"channel": Channel.SMS, "recipient": "+14155550100"}
        )
        ledger.begin_attempt(request, lease_until=NOW, now=NOW)
        ledger.record_sent(request.notification_id, message_id, 500, NOW)
        ids[message_id] = request.notification_id

    invocation = stack.function("DeliveryFeedbackFunction").invoke(
        load_event("delivery_feedback/sms-delivery-logs.json")
    )

    assert invocation.result == {"recorded": 2, "unmatched": 0}
    assert ledger.get(ids["sms-message-id-0001"])["delivery_status"] == "DELIVERED"
    assert ledger.get(ids["sms-message-id-0002"])["delivery_status"] == "UNDELIVERED"


def test_feedback_for_an_unknown_notification_changes_nothing(stack):
    invocation = stack.function("DeliveryFeedbackFunction").invoke(
        load_event("delivery_feedback/ses-bounce.json")
    )
    assert invocation.result == {"recorded": 0}
    assert list(DynamoLedger(stack.physical_id("LedgerTable")).scan()) == []


def sms_delivery_logs(message_id: str, provider_response: str) -> dict:
    """A CloudWatch Logs subscription event with one failed SMS delivery status record."""
    record = {
        "notification": {"messageId": message_id, "timestamp": "2026-11-28 12:07:00.000"},
        "delivery": {"destination": "+14155550103", "providerResponse": provider_response},
        "status": "FAILURE",
    }
    payload = {"logEvents": [{"id": "1", "timestamp": 1, "message": json.dumps(record)}]}
    data = base64.b64encode(gzip.compress(json.dumps(payload).encode())).decode()
    return {"awslogs": {"data": data}}


@pytest.mark.parametrize(
    ("provider_response", "falls_back"),
    [
        ("Invalid phone number", True),  # the number cannot receive SMS
        ("Phone is currently unreachable/unavailable", False),  # it may later
    ],
)
def test_an_sms_the_carrier_refused_for_good_falls_back_to_email(
    stack, provider_response, falls_back
):
    # Given Hana, who wants payments by SMS, then email, and whose payment SMS was sent
    DynamoPreferencesStore(stack.physical_id("PreferencesTable")).put(
        Preferences(
            user_id="hana",
            email="hana@example.com",
            phone="+14155550103",
            channel_chains={"payment": ("sms", "email")},
        )
    )
    payment = load_event("fan_out/payment-received.json")["detail"] | {"user_id": "hana"}
    stack.publish("PaymentReceived", payment, source="com.example.shop")
    stack.drain()
    ledger = DynamoLedger(stack.physical_id("LedgerTable"))
    (sms,) = list(ledger.scan())
    assert (sms["channel"], sms["status"]) == ("sms", "SENT")
    assert sent_emails() == []

    # When SNS's delivery status log says the carrier refused it
    invocation = stack.function("DeliveryFeedbackFunction").invoke(
        sms_delivery_logs(sms["provider_message_id"], provider_response)
    )
    assert invocation.result == {"recorded": 1, "unmatched": 0}
    stack.drain()

    # Then a permanent refusal falls back to email, linked to the SMS; a passing one does not
    record = ledger.get(sms["notification_id"])
    assert record["delivery_status"] == "UNDELIVERED"
    assert "feedback_request" not in record
    emails = [r for r in ledger.scan() if r["channel"] == "email"]
    if falls_back:
        (email,) = emails
        assert (email["status"], email["fallback_of"]) == ("SENT", sms["notification_id"])
        assert record["fallback_notification_id"] == email["notification_id"]
        assert [e.destinations for e in sent_emails()] == [("hana@example.com",)]
    else:
        assert emails == []
        assert sent_emails() == []
        assert "fallback_decided_at" not in record
