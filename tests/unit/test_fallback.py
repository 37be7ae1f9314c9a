"""Channel fallback chains: which dead letters get a successor, on which channel, with which id."""

from datetime import UTC, datetime

import pytest

from notifications.fallback import next_notification
from notifications.fanout import parse_event
from notifications.models import Channel
from notifications.preferences import Preferences
from notifications.routing import plan_notifications
from tests.samples import SAMPLE_TIME, load_event, welcome

NOW = datetime(2026, 11, 28, 12, 5, tzinfo=UTC)
ENDPOINT = "arn:aws:sns:us-east-1:123456789012:endpoint/GCM/shop/1"


def bob(**changes):
    base = {
        "user_id": "user-1",
        "email": "bob@example.com",
        "phone": "+14155550100",
        "push_endpoints": (ENDPOINT,),
        "channel_chains": {"account": ("push", "sms", "email")},
    }
    return Preferences.model_validate(base | changes)


def push_welcome():
    request = welcome(1)
    return request.model_copy(update={"channel": Channel.PUSH, "recipient": ENDPOINT})


def test_a_disabled_endpoint_falls_back_to_the_next_channel_with_a_deterministic_id():
    decision = next_notification(push_welcome(), "endpoint_disabled", "permanent", bob(), NOW)
    successor = decision.request
    assert (successor.channel, successor.recipient) == (Channel.SMS, "+14155550100")
    assert successor.fallback_of == push_welcome().notification_id
    assert successor.requested_at == NOW
    assert successor.template_id == "welcome"
    assert successor.event_id == "evt-1"
    again = next_notification(push_welcome(), "endpoint_disabled", "permanent", bob(), NOW)
    assert again.request.notification_id == successor.notification_id
    assert successor.notification_id != push_welcome().notification_id


@pytest.mark.parametrize(
    ("reason", "failure_class", "falls_back"),
    [
        ("invalid_recipient", "permanent", True),
        ("endpoint_disabled", "permanent", True),
        ("provider_timeout", "exhausted", True),  # push is marked fallback-eligible
        ("template_error", "permanent", False),  # would fail on any channel
        ("provider_rejected", "permanent", False),
    ],
)
def test_only_reachability_failures_fall_back(reason, failure_class, falls_back):
    decision = next_notification(push_welcome(), reason, failure_class, bob(), NOW)
    assert (decision.request is not None) is falls_back


def test_exhausted_attempts_on_email_do_not_fall_back():
    chains = {"account": ("email", "sms")}
    decision = next_notification(
        welcome(1), "provider_timeout", "exhausted", bob(channel_chains=chains), NOW
    )
    assert decision.request is None


def test_an_opted_out_channel_is_skipped_and_the_next_one_chosen():
    prefs = bob(opted_out_channels=frozenset({Channel.SMS}))
    decision = next_notification(push_welcome(), "endpoint_disabled", "permanent", prefs, NOW)
    assert decision.request.channel is Channel.EMAIL
    assert decision.skipped == ("sms: opted_out_channel:sms",)


def test_a_channel_without_contact_point_is_skipped_and_the_end_of_the_chain_is_none():
    prefs = bob(phone=None, email=None)
    decision = next_notification(push_welcome(), "endpoint_disabled", "permanent", prefs, NOW)
    assert decision.request is None
    assert decision.why_none == "chain_exhausted"
    assert decision.skipped == ("sms: no_contact_point", "email: no_contact_point")


def test_without_a_users_chain_the_routes_own_channels_are_not_repeated():
    # The account route sends email only; its chain (email, sms, push) adds SMS after email
    prefs = bob(channel_chains={})
    decision = next_notification(welcome(1), "invalid_recipient", "permanent", prefs, NOW)
    assert decision.request.channel is Channel.SMS
    # An order's route already sent on email, SMS and push: nothing left to fall back to
    order = welcome(1).model_copy(
        update={
            "channel": Channel.PUSH,
            "recipient": ENDPOINT,
            "event_type": "OrderPlaced",
            "category": "order",
        }
    )
    decision = next_notification(order, "endpoint_disabled", "permanent", prefs, NOW)
    assert decision.request is None


def test_webhooks_never_fall_back():
    hook = welcome(1).model_copy(update={"channel": Channel.WEBHOOK, "recipient": "sub-1"})
    assert next_notification(hook, "subscription_gone", "permanent", bob(), NOW).request is None


def test_a_users_chain_sends_on_its_first_reachable_channel_only():
    envelope, event = parse_event(load_event("fan_out/payment-received.json"))
    prefs = bob(
        user_id="user-123",
        push_endpoints=(),
        channel_chains={"payment": ("push", "sms", "email")},
    )
    planned = plan_notifications(envelope, event, prefs, [], SAMPLE_TIME)
    assert [(p.request.channel, p.request.recipient) for p in planned] == [
        (Channel.SMS, "+14155550100")
    ]
