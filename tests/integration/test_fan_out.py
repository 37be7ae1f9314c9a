"""Fan-out: each domain event puts the right requests on the right channel queues."""

import json

from notifications.adapters.ledger import DynamoLedger
from notifications.adapters.preferences import DynamoPreferencesStore
from notifications.preferences import Preferences
from tests.samples import load_event

QUEUES = {"email": "EmailQueue", "sms": "SmsQueue", "push": "PushQueue", "webhook": "WebhookQueue"}


def queued(stack):
    """Every request waiting on each channel queue, read without consuming it."""
    found = {}
    for channel, logical_id in QUEUES.items():
        url = stack.queue_url(logical_id)
        messages = stack.clients.sqs.receive_message(
            QueueUrl=url, MaxNumberOfMessages=10, VisibilityTimeout=0
        ).get("Messages", [])
        found[channel] = [json.loads(m["Body"]) for m in messages]
    return found


def ledger_item(stack, notification_id):
    return DynamoLedger(stack.physical_id("LedgerTable")).get(notification_id)


def test_user_registered_enqueues_one_welcome_email(stack):
    # Given the deployed stack, When the fan-out receives Alice's UserRegistered
    result = stack.function("FanOutFunction").invoke(load_event("fan_out/user-registered.json"))

    # Then one welcome email request waits on the email queue, and nothing elsewhere
    assert result.ok, result.error
    assert result.result["enqueued"] == {"email": 1}
    found = queued(stack)
    assert [(r["recipient"], r["template_id"]) for r in found["email"]] == [
        ("alice@example.com", "welcome")
    ]
    assert found["sms"] == found["push"] == found["webhook"] == []
    # And the ledger has no record yet: it starts with the sender's first claim
    assert ledger_item(stack, found["email"][0]["notification_id"]) is None


def test_order_placed_reaches_every_contact_point(stack):
    # Given Alice's stored contact points
    DynamoPreferencesStore(stack.physical_id("PreferencesTable")).put(
        Preferences(
            user_id="user-123",
            email="alice@example.com",
            phone="+14155550100",
            push_endpoints=("arn:aws:sns:us-east-1:123456789012:endpoint/GCM/shop/0001",),
        )
    )
    # When her order is fanned out
    result = stack.function("FanOutFunction").invoke(load_event("fan_out/order-placed.json"))

    # Then one order confirmation per contact point, each on its channel's queue
    assert result.ok, result.error
    found = queued(stack)
    assert [r["recipient"] for r in found["email"]] == ["alice@example.com"]
    assert [r["recipient"] for r in found["sms"]] == ["+14155550100"]
    assert [r["template_id"] for r in found["push"]] == ["order_confirm"]


def test_a_duplicate_event_yields_the_same_notification_ids(stack):
    fan_out = stack.function("FanOutFunction")
    event = load_event("fan_out/user-registered.json")

    fan_out.invoke(event)
    fan_out.invoke(event)  # EventBridge delivers at least once

    ids = [r["notification_id"] for r in queued(stack)["email"]]
    assert len(ids) == 2
    assert ids[0] == ids[1]


def test_an_invalid_event_lands_in_events_dlq_with_its_reason_and_is_not_retried(stack):
    result = stack.function("FanOutFunction").invoke(
        load_event("fan_out/order-placed-invalid.json")
    )

    assert result.ok  # handled: a retry could never succeed
    assert result.result["rejected_reason"] == "invalid_event"
    messages = stack.clients.sqs.receive_message(
        QueueUrl=stack.queue_url("EventsDLQ"), MessageAttributeNames=["All"]
    )["Messages"]
    assert len(messages) == 1
    attributes = messages[0]["MessageAttributes"]
    assert attributes["reason"]["StringValue"] == "invalid_event"
    assert "detail.user_id" in attributes["error"]["StringValue"]
    assert json.loads(messages[0]["Body"])["detail"]["order_id"] == "order-1001"
