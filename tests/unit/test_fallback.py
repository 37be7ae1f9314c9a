"""Channel fallback chains: which dead letters get a successor, on which channel, with which id."""

from datetime import UTC, datetime

import pytest

from notifications.fallback import FallbackTrigger, next_notification
from notifications.fanout import parse_event
from notifications.feedback import from_ses_event, from_sms_record
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


SECOND = "arn:aws:sns:us-east-1:123456789012:endpoint/GCM/shop/2"


def test_routing_links_the_notifications_of_one_channel_and_keeps_bounce_fallbacks():
    # Given Bob with two push endpoints and his own chain for payments: email, then SMS
    envelope, event = parse_event(load_event("fan_out/payment-received.json"))
    prefs = bob(user_id="user-123", push_endpoints=(ENDPOINT, SECOND), channel_chains={})
    planned = {
        p.request.recipient: p.request
        for p in plan_notifications(envelope, event, prefs, [], SAMPLE_TIME)
    }
    # Then each push names the other as its sibling; email and SMS have none
    first, second = planned[ENDPOINT], planned[SECOND]
    assert first.siblings == (second.notification_id,)
    assert second.siblings == (first.notification_id,)
    assert planned["bob@example.com"].siblings == ()
    # And without his own chain the route sent every channel at once: no bounce fallback
    assert not any(r.keep_for_fallback for r in planned.values())

    # When his own chain puts email first, the email is kept for a bounce (SMS reachable)
    chained = bob(user_id="user-123", channel_chains={"payment": ("email", "sms")})
    (email,) = [p.request for p in plan_notifications(envelope, event, chained, [], SAMPLE_TIME)]
    assert (email.channel, email.keep_for_fallback) == (Channel.EMAIL, True)
    # But not when the next channel cannot reach him (no phone)
    unreachable = bob(user_id="user-123", phone=None, channel_chains={"payment": ("email", "sms")})
    (email,) = [
        p.request for p in plan_notifications(envelope, event, unreachable, [], SAMPLE_TIME)
    ]
    assert email.keep_for_fallback is False


def test_siblings_ask_for_the_same_successor():
    a, b = push_welcome(), push_welcome().model_copy(update={"recipient": SECOND})
    a = a.model_copy(update={"notification_id": "00000000-0000-4000-8000-00000000000a"})
    b = b.model_copy(update={"notification_id": "00000000-0000-4000-8000-00000000000b"})
    a, b = (
        a.model_copy(update={"siblings": (b.notification_id,)}),
        b.model_copy(update={"siblings": (a.notification_id,)}),
    )
    from_a = next_notification(a, "endpoint_disabled", "permanent", bob(), NOW).request
    from_b = next_notification(b, "endpoint_disabled", "permanent", bob(), NOW).request
    assert from_a.notification_id == from_b.notification_id
    assert (from_a.channel, from_a.siblings) == (Channel.SMS, ())
    # A successor on SMS is kept for its own bounce when the chain goes on (email next)
    assert from_a.keep_for_fallback is True


class Ledger:
    def __init__(self, records):
        self.records = records
        self.decisions = {}

    def get(self, notification_id):
        return self.records.get(notification_id)

    def record_fallback(self, notification_id, decision, now):
        self.decisions[notification_id] = decision


class Queues:
    def __init__(self):
        self.sent = []

    def enqueue(self, queue_url, requests):
        self.sent.extend((queue_url, r.channel) for r in requests)


class Store:
    def get(self, user_id):
        return bob()


@pytest.mark.parametrize(
    ("sibling", "why_none"),
    [
        (None, "sibling_pending"),  # still queued: no record yet
        ({"status": "RETRYING"}, "sibling_pending"),
        ({"status": "DEFERRED"}, "sibling_pending"),
        ({"status": "SENT"}, "sibling_reached"),
        ({"status": "DEAD_LETTERED"}, None),
        ({"status": "SUPPRESSED"}, None),
        ({"status": "SENT", "delivery_permanent": True}, None),  # bounced for good
    ],
)
def test_a_channel_falls_back_only_when_every_sibling_failed_for_good(sibling, why_none):
    sibling_id = "00000000-0000-4000-8000-00000000000b"
    failed = push_welcome().model_copy(update={"siblings": (sibling_id,)})
    ledger, queues = Ledger({sibling_id: sibling} if sibling else {}), Queues()
    trigger = FallbackTrigger(Store(), queues, {Channel.SMS: "sms-queue"}, ledger)

    decision = trigger.after_failure(failed, "endpoint_disabled", "permanent", NOW)

    assert decision.why_none == why_none
    assert ledger.decisions[failed.notification_id] == decision
    assert queues.sent == ([] if why_none else [("sms-queue", Channel.SMS)])


@pytest.mark.parametrize(
    ("bounce_type", "permanent"),
    [("Permanent", True), ("Transient", False), ("Undetermined", False)],
)
def test_only_a_permanent_ses_bounce_is_a_fallback_trigger(bounce_type, permanent):
    event = load_event("delivery_feedback/ses-bounce.json")
    event["detail"]["bounce"]["bounceType"] = bounce_type
    feedback = from_ses_event(event)
    assert (feedback.delivery_status, feedback.permanent) == ("BOUNCED", permanent)


@pytest.mark.parametrize(
    ("response", "permanent"),
    [
        ("Invalid phone number", True),
        ("Phone number is opted out", True),
        ("Phone has blocked SMS", True),
        ("Phone is on a blocked list", True),
        ("Phone is currently unreachable/unavailable", False),
        ("Phone carrier has blocked this message", False),
        ("Unknown error attempting to reach phone", False),
    ],
)
def test_only_sms_refusals_that_mean_the_number_cannot_receive_sms_are_permanent(
    response, permanent
):
    record = {"notification": {"messageId": "m-1"}, "delivery": {"providerResponse": response}}
    _, failed = from_sms_record(record | {"status": "FAILURE"})
    assert (failed.delivery_status, failed.permanent) == ("UNDELIVERED", permanent)
    _, delivered = from_sms_record(record | {"status": "SUCCESS"})
    assert delivered.permanent is False
