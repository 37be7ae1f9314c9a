from dataclasses import dataclass
from datetime import UTC, datetime

import pytest

from notifications.fanout import InvalidEvent, parse_event
from notifications.models import Channel
from notifications.preferences import Preferences
from notifications.routing import NO_CONTACT_POINT, plan_notifications
from tests.samples import load_event


@dataclass(frozen=True)
class StaticSubscription:
    subscription_id: str


NOW = datetime(2026, 11, 28, 12, 0, 1, tzinfo=UTC)


def plan(sample, preferences=None, subscriptions=()):
    envelope, event = parse_event(load_event(sample))
    return plan_notifications(envelope, event, preferences, list(subscriptions), NOW)


def test_user_registered_sends_a_welcome_email_to_the_address_in_the_event():
    planned = plan("fan_out/user-registered.json")
    assert [(p.request.channel, p.request.recipient, p.request.template_id) for p in planned] == [
        (Channel.EMAIL, "alice@example.com", "welcome")
    ]
    assert planned[0].suppressed_reason is None


def test_order_placed_goes_to_every_contact_point_and_webhook_subscriber():
    prefs = Preferences(
        user_id="user-123",
        email="alice@example.com",
        phone="+14155550100",
        push_endpoints=("arn:aws:sns:us-east-1:123456789012:endpoint/GCM/app/abc",),
    )
    planned = plan("fan_out/order-placed.json", prefs, [StaticSubscription("sub-1")])
    assert sorted(p.request.channel.value for p in planned) == ["email", "push", "sms", "webhook"]
    assert {p.request.template_id for p in planned if p.request.channel != Channel.WEBHOOK} == {
        "order_confirm"
    }
    webhook = next(p.request for p in planned if p.request.channel is Channel.WEBHOOK)
    assert webhook.recipient == "sub-1"


def test_notification_ids_are_deterministic():
    first = [p.request.notification_id for p in plan("fan_out/user-registered.json")]
    again = [p.request.notification_id for p in plan("fan_out/user-registered.json")]
    assert first == again


def test_opt_outs_and_missing_contact_points_are_suppressed_with_a_reason():
    prefs = Preferences(
        user_id="user-123",
        phone="+14155550100",
        opted_out_channels=frozenset({Channel.SMS}),
    )
    planned = {
        p.request.channel: p.suppressed_reason for p in plan("fan_out/order-placed.json", prefs)
    }
    assert planned == {Channel.EMAIL: NO_CONTACT_POINT, Channel.SMS: "opted_out_channel:sms"}


@pytest.mark.parametrize(
    ("mutate", "reason", "field"),
    [
        (lambda e: e["detail"].pop("user_id"), "invalid_event", "detail.user_id"),
        (
            lambda e: e["detail"]["total"].update(currency="euro"),
            "invalid_event",
            "detail.total.currency",
        ),
        (lambda e: e["detail"].update(placed_at="yesterday"), "invalid_event", "detail.placed_at"),
        (lambda e: e.update({"detail-type": "OrderShipped"}), "unknown_event_type", "OrderShipped"),
        (lambda e: e.pop("id"), "malformed_envelope", "id"),
    ],
)
def test_invalid_events_name_the_field(mutate, reason, field):
    event = load_event("fan_out/order-placed.json")
    mutate(event)
    with pytest.raises(InvalidEvent) as caught:
        parse_event(event)
    assert caught.value.reason == reason
    assert field in caught.value.message
