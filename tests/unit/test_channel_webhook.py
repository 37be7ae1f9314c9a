"""Webhook deliveries: Standard Webhooks signatures, status mapping and subscription rules."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError

from notifications.channels.base import RenderedMessage
from notifications.channels.ssrf import HttpResponse, Target
from notifications.channels.webhook import (
    CachedSubscriptionStore,
    WebhookProvider,
    WebhookSubscription,
    new_secret,
    parse_retry_after,
    sign,
)
from notifications.errors import NotificationError, PermanentError, RetryableError
from notifications.models import Channel, NotificationRequested

# A fixed clock. Standard Webhooks receivers refuse timestamps more than 5 minutes from their
# own clock, so the fixed instant is taken from the wall clock once, when the module loads.
NOW = datetime.now(UTC).replace(microsecond=0)
NID = "7d0c5b1e-2f1a-5b8e-9c3d-4e5f6a7b8c9d"
OLD_SECRET = new_secret()
NEW_SECRET = new_secret()
PAYLOAD: dict[str, object] = {
    "type": "OrderPlaced",
    "data": {"order_id": "42", "total": "19.99", "note": "café"},
}


def make_request(
    subscription_id: str = "sub-1", event_type: str = "OrderPlaced"
) -> NotificationRequested:
    return NotificationRequested(
        notification_id=NID,
        channel=Channel.WEBHOOK,
        recipient=subscription_id,
        template_id="order-webhook",
        category="orders",
        event_id="evt-1",
        event_type=event_type,
        correlation_id="evt-1",
        occurred_at=NOW,
        requested_at=NOW,
    )


@dataclass
class FakeStore:
    subscriptions: dict[str, WebhookSubscription]
    disabled: list[tuple[str, str]] = field(default_factory=list)

    def get(self, subscription_id: str) -> WebhookSubscription | None:
        return self.subscriptions.get(subscription_id)

    def disable(self, subscription_id: str, reason: str) -> None:
        self.disabled.append((subscription_id, reason))


@dataclass
class FakeKeys:
    secrets: list[str]

    def active_secrets(self, subscription_id: str) -> list[str]:
        return list(self.secrets)


@dataclass
class FakeTransport:
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    error: Exception | None = None
    posts: list[tuple[Target, bytes, dict[str, str], float]] = field(default_factory=list)

    def post(
        self, target: Target, body: bytes, headers: Mapping[str, str], timeout: float
    ) -> HttpResponse:
        self.posts.append((target, body, dict(headers), timeout))
        if self.error is not None:
            raise self.error
        return HttpResponse(self.status, self.headers)


def public_dns(host: str, port: int) -> Sequence[str]:
    return ["93.184.216.34"]


def provider(
    transport: FakeTransport,
    secrets: Sequence[str] = (NEW_SECRET,),
    subscription: WebhookSubscription | None = None,
    **options: Any,
) -> tuple[WebhookProvider, FakeStore]:
    subscription = subscription or WebhookSubscription(
        subscription_id="sub-1", url="https://hooks.example.com/in", event_types=("OrderPlaced",)
    )
    store = FakeStore({subscription.subscription_id: subscription})
    options.setdefault("clock", lambda: NOW)
    built = WebhookProvider(
        subscriptions=store,
        keys=FakeKeys(list(secrets)),
        transport=transport,
        resolver=public_dns,
        **options,
    )
    return built, store


def signed_now() -> datetime:
    """The real time: `standardwebhooks` checks a signed timestamp against its own clock (5
    minutes' tolerance), and a loaded suite can reach these tests long after import."""
    return datetime.now(UTC).replace(microsecond=0)


def test_a_delivery_is_signed_so_a_standard_webhooks_receiver_verifies_it() -> None:
    # Given a subscription with one secret
    transport = FakeTransport()
    signed_at = signed_now()
    sender, _ = provider(transport, clock=lambda: signed_at)

    # When a notification is delivered
    receipt = sender.send(make_request(), RenderedMessage(payload=PAYLOAD))

    # Then the receiver's library verifies it and gets the payload back
    target, body, headers, timeout = transport.posts[0]
    assert Webhook(NEW_SECRET).verify(body, headers) == PAYLOAD
    assert headers["webhook-id"] == NID
    assert headers["webhook-timestamp"] == str(int(signed_at.timestamp()))
    assert headers["content-type"] == "application/json"
    assert (target.host, target.address, timeout) == ("hooks.example.com", "93.184.216.34", 10.0)
    assert receipt.detail == {"status": "200"}


def test_a_signature_from_another_secret_does_not_verify() -> None:
    transport = FakeTransport()
    sender, _ = provider(transport, secrets=(OLD_SECRET,), clock=signed_now)
    sender.send(make_request(), RenderedMessage(payload=PAYLOAD))
    _, body, headers, _ = transport.posts[0]
    with pytest.raises(WebhookVerificationError):
        Webhook(NEW_SECRET).verify(body, headers)


def test_during_a_rotation_both_the_old_and_the_new_secret_verify() -> None:
    # Given a subscription whose secret is being rotated (newest first)
    transport = FakeTransport()
    sender, _ = provider(transport, secrets=(NEW_SECRET, OLD_SECRET), clock=signed_now)

    # When a notification is delivered
    sender.send(make_request(), RenderedMessage(payload=PAYLOAD))

    # Then it carries two signatures, and receivers holding either secret verify it
    _, body, headers, _ = transport.posts[0]
    assert len(headers["webhook-signature"].split(" ")) == 2
    assert Webhook(NEW_SECRET).verify(body, headers) == PAYLOAD
    assert Webhook(OLD_SECRET).verify(body, headers) == PAYLOAD


def test_the_signature_matches_the_spec_example() -> None:
    # The example from the Standard Webhooks specification
    secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
    body = b'{"test": 2432232314}'
    assert sign(secret, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, body) == (
        "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
    )


@pytest.mark.parametrize(
    ("status", "headers", "kind", "reason", "retry_after"),
    [
        (500, {}, RetryableError, "provider_unavailable", None),
        (503, {"retry-after": "30"}, RetryableError, "provider_unavailable", 30.0),
        (429, {"retry-after": "120"}, RetryableError, "provider_throttled", 120.0),
        (429, {}, RetryableError, "provider_throttled", None),
        (400, {}, PermanentError, "provider_rejected", None),
        (401, {}, PermanentError, "provider_rejected", None),
        (404, {}, PermanentError, "provider_rejected", None),
        (301, {"location": "https://10.0.0.1/"}, PermanentError, "webhook_redirect", None),
        (307, {"location": "https://elsewhere.example/"}, PermanentError, "webhook_redirect", None),
    ],
)
def test_responses_are_classified(
    status: int,
    headers: dict[str, str],
    kind: type[NotificationError],
    reason: str,
    retry_after: float | None,
) -> None:
    sender, _ = provider(FakeTransport(status=status, headers=headers))
    with pytest.raises(kind) as failure:
        sender.send(make_request(), RenderedMessage(payload=PAYLOAD))
    assert failure.value.reason == reason
    assert getattr(failure.value, "retry_after", None) == retry_after


def test_a_redirect_is_not_followed() -> None:
    transport = FakeTransport(status=302, headers={"location": "https://169.254.169.254/"})
    sender, _ = provider(transport)
    with pytest.raises(PermanentError):
        sender.send(make_request(), RenderedMessage(payload=PAYLOAD))
    assert len(transport.posts) == 1


def test_410_gone_disables_the_subscription() -> None:
    sender, store = provider(FakeTransport(status=410))
    with pytest.raises(PermanentError) as failure:
        sender.send(make_request(), RenderedMessage(payload=PAYLOAD))
    assert failure.value.reason == "subscription_gone"
    assert store.disabled == [("sub-1", "410 Gone")]


@pytest.mark.parametrize(
    ("error", "reason"),
    [
        (TimeoutError("timed out"), "provider_timeout"),
        (ConnectionRefusedError(111, "refused"), "provider_unavailable"),
        (ConnectionResetError(104, "reset"), "provider_unavailable"),
    ],
)
def test_timeouts_and_connection_errors_are_retryable(error: Exception, reason: str) -> None:
    sender, _ = provider(FakeTransport(error=error))
    with pytest.raises(RetryableError) as failure:
        sender.send(make_request(), RenderedMessage(payload=PAYLOAD))
    assert failure.value.reason == reason


def test_a_disabled_subscription_is_not_called() -> None:
    transport = FakeTransport()
    disabled = WebhookSubscription(
        "sub-1", "https://hooks.example.com/", ("OrderPlaced",), enabled=False
    )
    sender, _ = provider(transport, subscription=disabled)
    with pytest.raises(PermanentError) as failure:
        sender.send(make_request(), RenderedMessage(payload=PAYLOAD))
    assert failure.value.reason == "subscription_disabled"
    assert transport.posts == []


def test_an_event_the_subscription_no_longer_wants_is_not_delivered() -> None:
    transport = FakeTransport()
    sender, _ = provider(transport)
    with pytest.raises(PermanentError) as failure:
        sender.send(make_request(event_type="PaymentReceived"), RenderedMessage(payload=PAYLOAD))
    assert failure.value.reason == "subscription_not_subscribed"
    assert transport.posts == []


def test_an_unknown_subscription_is_permanent() -> None:
    sender, _ = provider(FakeTransport())
    with pytest.raises(PermanentError) as failure:
        sender.send(make_request("sub-unknown"), RenderedMessage(payload=PAYLOAD))
    assert failure.value.reason == "subscription_not_found"


def test_a_payload_over_the_bound_is_permanent() -> None:
    transport = FakeTransport()
    sender, _ = provider(transport, max_payload_bytes=100)
    with pytest.raises(PermanentError) as failure:
        sender.send(make_request(), RenderedMessage(payload={"blob": "x" * 200}))
    assert failure.value.reason == "payload_too_large"
    assert transport.posts == []


def test_a_private_target_is_refused_before_any_connection() -> None:
    transport = FakeTransport()
    internal = WebhookSubscription("sub-1", "https://169.254.169.254/latest", ("*",))
    sender, _ = provider(transport, subscription=internal)
    with pytest.raises(PermanentError) as failure:
        sender.send(make_request(), RenderedMessage(payload=PAYLOAD))
    assert failure.value.reason == "unsafe_target"
    assert transport.posts == []


def test_dns_rebinding_cannot_move_the_connection() -> None:
    # Given a host that resolves to a public address first and to loopback afterwards
    answers = iter([["93.184.216.34"], ["127.0.0.1"], ["127.0.0.1"]])

    def rebinding(host: str, port: int) -> Sequence[str]:
        return next(answers)

    transport = FakeTransport()
    sender, _ = provider(transport)
    sender.resolver = rebinding

    # When a notification is delivered
    sender.send(make_request(), RenderedMessage(payload=PAYLOAD))

    # Then the connection goes to the address that was checked, and the name goes in SNI/Host
    target = transport.posts[0][0]
    assert (target.address, target.host) == ("93.184.216.34", "hooks.example.com")


@pytest.mark.parametrize(
    ("header", "seconds"),
    [
        ("120", 120.0),
        ("0", 0.0),
        ((NOW + timedelta(seconds=90)).strftime("%a, %d %b %Y %H:%M:%S GMT"), 90.0),
        ((NOW - timedelta(seconds=90)).strftime("%a, %d %b %Y %H:%M:%S GMT"), 0.0),
        ("99999999", 43200.0),
        ("soon", None),
        (None, None),
    ],
    # Fixed ids: the dates depend on the clock, and pytest-xdist needs the same ids everywhere.
    ids=["seconds", "zero", "date-ahead", "date-past", "huge", "garbage", "absent"],
)
def test_retry_after_is_read_as_seconds_or_a_date(
    header: str | None, seconds: float | None
) -> None:
    assert parse_retry_after(header, NOW) == seconds


@dataclass
class CountingStore:
    """A store that counts reads and really disables."""

    subscription: WebhookSubscription
    reads: int = 0

    def get(self, subscription_id: str) -> WebhookSubscription | None:
        self.reads += 1
        return self.subscription if subscription_id == self.subscription.subscription_id else None

    def disable(self, subscription_id: str, reason: str) -> None:
        self.subscription = replace(self.subscription, enabled=False, disabled_reason=reason)


def cached_provider(transport: FakeTransport) -> tuple[WebhookProvider, CountingStore, list[float]]:
    now = [0.0]
    store = CountingStore(
        WebhookSubscription(
            subscription_id="sub-1",
            url="https://hooks.example.com/in",
            event_types=("OrderPlaced",),
        )
    )
    built = WebhookProvider(
        subscriptions=CachedSubscriptionStore(store, ttl_seconds=60, monotonic=lambda: now[0]),
        keys=FakeKeys([NEW_SECRET]),
        transport=transport,
        resolver=public_dns,
        clock=lambda: NOW,
    )
    return built, store, now


def test_the_sender_reads_a_subscription_once_a_minute_not_once_a_delivery() -> None:
    # Given a provider over a cached subscription store
    transport = FakeTransport()
    sender, store, now = cached_provider(transport)
    # When it delivers three times within a minute, then once a minute later
    for at in (0.0, 10.0, 59.9):
        now[0] = at
        sender.send(make_request(), RenderedMessage(payload=PAYLOAD))
    assert store.reads == 1
    now[0] = 60.0
    sender.send(make_request(), RenderedMessage(payload=PAYLOAD))
    # Then four deliveries went out on two reads
    assert len(transport.posts) == 4
    assert store.reads == 2


def test_a_410_disables_the_cached_subscription_at_once() -> None:
    # Given a cached subscription whose endpoint answers 410 Gone
    transport = FakeTransport(status=410)
    sender, _, _ = cached_provider(transport)
    with pytest.raises(PermanentError):
        sender.send(make_request(), RenderedMessage(payload=PAYLOAD))
    # When the next delivery comes within the same minute
    with pytest.raises(PermanentError) as failure:
        sender.send(make_request(), RenderedMessage(payload=PAYLOAD))
    # Then it is refused as disabled without calling the endpoint again
    assert failure.value.reason == "subscription_disabled"
    assert len(transport.posts) == 1
