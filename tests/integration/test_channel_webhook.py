"""Webhooks end to end: DynamoDB subscriptions, Secrets Manager keys, and a real HTTP receiver
on 127.0.0.1 that checks every delivery with the `standardwebhooks` package."""

from __future__ import annotations

import socket
import threading
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import boto3
import pytest
from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError

from notifications.channels.base import RenderedMessage
from notifications.channels.webhook import (
    DynamoSubscriptionStore,
    SecretsManagerSigningKeys,
    WebhookProvider,
    WebhookSubscription,
)
from notifications.errors import PermanentError, RetryableError
from notifications.models import Channel, NotificationRequested, notification_id

REGION = "us-east-1"
TABLE = "webhook-subscriptions"
PREFIX = "notifications/webhooks/"


def now() -> datetime:
    """The real time when asked: `standardwebhooks` checks the signed timestamp against its own
    clock (5 minutes' tolerance), and a suite on a loaded machine can reach this file later."""
    return datetime.now(UTC).replace(microsecond=0)


@dataclass
class Delivery:
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class Receiver:
    """An HTTP endpoint that records each delivery and answers with queued responses."""

    url: str = ""
    deliveries: list[Delivery] = field(default_factory=list)
    answers: deque[tuple[int, dict[str, str]]] = field(default_factory=deque)

    def answer(self, status: int, headers: dict[str, str] | None = None) -> None:
        self.answers.append((status, headers or {}))

    def verified_by(self, secret: str) -> list[Any]:
        """Each delivery's payload as `standardwebhooks` verifies it with ``secret``."""
        return [
            Webhook(secret).verify(delivery.body, delivery.headers) for delivery in self.deliveries
        ]


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    state = Receiver()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            state.deliveries.append(Delivery(self.path, dict(self.headers.items()), body))
            status, headers = state.answers.popleft() if state.answers else (204, {})
            self.send_response(status)
            for name, value in headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, args=(0.01,), daemon=True)
    thread.start()
    state.url = f"http://127.0.0.1:{server.server_address[1]}/hooks/orders"
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


@dataclass
class Monotonic:
    now: float = 1000.0

    def __call__(self) -> float:
        return self.now


@dataclass
class Webhooks:
    store: DynamoSubscriptionStore
    admin_keys: SecretsManagerSigningKeys
    sender_keys: SecretsManagerSigningKeys
    monotonic: Monotonic
    provider: WebhookProvider

    def subscribe(
        self, url: str, subscription_id: str = "sub-1", events: tuple[str, ...] = ("OrderPlaced",)
    ) -> str:
        secret = self.admin_keys.create(subscription_id)
        self.store.put(
            WebhookSubscription(
                subscription_id, url, events, True, self.admin_keys.secret_name(subscription_id)
            )
        )
        return secret


@pytest.fixture
def webhooks(moto_account: None) -> Webhooks:
    boto3.client("dynamodb", region_name=REGION).create_table(
        TableName=TABLE,
        KeySchema=[{"AttributeName": "subscription_id", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "subscription_id", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )

    def secrets() -> Any:
        return boto3.client("secretsmanager", region_name=REGION)

    store = DynamoSubscriptionStore(
        TABLE,
        client_factory=lambda: boto3.client("dynamodb", region_name=REGION),
        clock=now,
    )
    monotonic = Monotonic()
    sender_keys = SecretsManagerSigningKeys(PREFIX, client_factory=secrets, monotonic=monotonic)
    provider = WebhookProvider(store, sender_keys, timeout=5.0, allow_loopback=True, clock=now)
    return Webhooks(
        store,
        SecretsManagerSigningKeys(PREFIX, client_factory=secrets),
        sender_keys,
        monotonic,
        provider,
    )


def make_request(number: int, subscription_id: str = "sub-1") -> NotificationRequested:
    event_id = f"evt-{number}"
    return NotificationRequested(
        notification_id=notification_id(
            event_id, Channel.WEBHOOK, subscription_id, "order-webhook"
        ),
        channel=Channel.WEBHOOK,
        recipient=subscription_id,
        template_id="order-webhook",
        category="orders",
        event_id=event_id,
        event_type="OrderPlaced",
        correlation_id=event_id,
        occurred_at=now(),
        requested_at=now(),
    )


def payload(number: int) -> dict[str, object]:
    return {
        "type": "OrderPlaced",
        "data": {"order_id": str(number), "total": {"amount": "19.99", "currency": "EUR"}},
    }


def test_every_delivery_verifies_with_the_standardwebhooks_package(
    webhooks: Webhooks, receiver: Receiver
) -> None:
    # Given a subscription with a signing secret in Secrets Manager
    secret = webhooks.subscribe(receiver.url)

    # When three notifications are delivered
    for number in range(3):
        webhooks.provider.send(make_request(number), RenderedMessage(payload=payload(number)))

    # Then the receiver got three POSTs, each verifying with the secret, ids matching notifications
    assert receiver.verified_by(secret) == [payload(number) for number in range(3)]
    assert [delivery.headers["webhook-id"] for delivery in receiver.deliveries] == [
        make_request(number).notification_id for number in range(3)
    ]
    assert {delivery.path for delivery in receiver.deliveries} == {"/hooks/orders"}


def test_during_a_rotation_deliveries_verify_with_the_old_and_the_new_secret(
    webhooks: Webhooks, receiver: Receiver
) -> None:
    # Given a subscription whose secret an operator rotates (as `notifyctl webhooks rotate-secret`)
    old = webhooks.subscribe(receiver.url)
    new = webhooks.admin_keys.rotate("sub-1")
    webhooks.monotonic.now += 61  # the sender's key cache expires

    # When a notification is delivered during the rotation
    webhooks.provider.send(make_request(1), RenderedMessage(payload=payload(1)))

    # Then receivers holding either secret verify it
    assert receiver.verified_by(old) == [payload(1)]
    assert receiver.verified_by(new) == [payload(1)]

    # And once the rotation ends, only the new secret verifies
    webhooks.admin_keys.retire_old("sub-1")
    webhooks.monotonic.now += 61
    receiver.deliveries.clear()
    webhooks.provider.send(make_request(2), RenderedMessage(payload=payload(2)))
    assert receiver.verified_by(new) == [payload(2)]
    with pytest.raises(WebhookVerificationError):
        receiver.verified_by(old)


def test_410_gone_disables_the_subscription_in_dynamodb(
    webhooks: Webhooks, receiver: Receiver
) -> None:
    # Given a receiver that answers 410 Gone
    webhooks.subscribe(receiver.url)
    receiver.answer(410)

    # When a notification is delivered, Then it fails permanently
    with pytest.raises(PermanentError) as failure:
        webhooks.provider.send(make_request(1), RenderedMessage(payload=payload(1)))
    assert failure.value.reason == "subscription_gone"

    # And the subscription row is disabled, so it gets no more events
    item = boto3.client("dynamodb", region_name=REGION).get_item(
        TableName=TABLE, Key={"subscription_id": {"S": "sub-1"}}
    )["Item"]
    assert item["enabled"] == {"BOOL": False}
    assert item["disabled_reason"] == {"S": "410 Gone"}
    assert webhooks.store.list_for_event("OrderPlaced") == []
    with pytest.raises(PermanentError) as again:
        webhooks.provider.send(make_request(2), RenderedMessage(payload=payload(2)))
    assert again.value.reason == "subscription_disabled"
    assert len(receiver.deliveries) == 1


@pytest.mark.parametrize(
    ("status", "headers", "reason", "retry_after"),
    [
        (429, {"Retry-After": "120"}, "provider_throttled", 120.0),
        (503, {"Retry-After": "30"}, "provider_unavailable", 30.0),
        (500, {}, "provider_unavailable", None),
    ],
)
def test_throttling_and_server_errors_are_retryable_with_retry_after(
    webhooks: Webhooks,
    receiver: Receiver,
    status: int,
    headers: dict[str, str],
    reason: str,
    retry_after: float | None,
) -> None:
    webhooks.subscribe(receiver.url)
    receiver.answer(status, headers)
    with pytest.raises(RetryableError) as failure:
        webhooks.provider.send(make_request(1), RenderedMessage(payload=payload(1)))
    assert (failure.value.reason, failure.value.retry_after) == (reason, retry_after)


def test_other_4xx_are_permanent_and_redirects_are_not_followed(
    webhooks: Webhooks, receiver: Receiver
) -> None:
    webhooks.subscribe(receiver.url)
    receiver.answer(302, {"Location": receiver.url + "/elsewhere"})
    receiver.answer(422)
    for expected in ("webhook_redirect", "provider_rejected"):
        with pytest.raises(PermanentError) as failure:
            webhooks.provider.send(make_request(1), RenderedMessage(payload=payload(1)))
        assert failure.value.reason == expected
    assert [delivery.path for delivery in receiver.deliveries] == ["/hooks/orders", "/hooks/orders"]


def test_a_refused_connection_is_retryable(webhooks: Webhooks) -> None:
    # Given a subscription to a port nobody listens on
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    webhooks.subscribe(f"http://127.0.0.1:{port}/hooks")

    with pytest.raises(RetryableError) as failure:
        webhooks.provider.send(make_request(1), RenderedMessage(payload=payload(1)))
    assert failure.value.reason == "provider_unavailable"


def test_without_the_local_flag_the_loopback_receiver_is_refused(
    webhooks: Webhooks, receiver: Receiver
) -> None:
    webhooks.subscribe(receiver.url)
    webhooks.provider.allow_loopback = False
    with pytest.raises(PermanentError) as failure:
        webhooks.provider.send(make_request(1), RenderedMessage(payload=payload(1)))
    assert failure.value.reason == "unsafe_target"
    assert receiver.deliveries == []


def test_the_subscription_store_lists_by_event_and_deletes(webhooks: Webhooks) -> None:
    store = webhooks.store
    store.put(
        WebhookSubscription("sub-a", "https://a.example/h", ("OrderPlaced", "PaymentReceived"))
    )
    store.put(WebhookSubscription("sub-b", "https://b.example/h", ("*",)))
    store.put(WebhookSubscription("sub-c", "https://c.example/h", ("UserRegistered",)))
    store.put(WebhookSubscription("sub-d", "https://d.example/h", ("OrderPlaced",), enabled=False))

    assert [s.subscription_id for s in store.list_for_event("OrderPlaced")] == ["sub-a", "sub-b"]
    assert [s.subscription_id for s in store.list_for_event("UserRegistered")] == ["sub-b", "sub-c"]
    store.disable("sub-b", "operator")
    store.disable("sub-missing", "operator")  # idempotent, creates nothing
    store.delete("sub-a")
    assert store.list_for_event("OrderPlaced") == []
    assert store.get("sub-missing") is None
    assert [s.subscription_id for s in store.list_all()] == ["sub-b", "sub-c", "sub-d"]


def test_a_missing_signing_secret_is_permanent(webhooks: Webhooks, receiver: Receiver) -> None:
    webhooks.store.put(WebhookSubscription("sub-1", receiver.url, ("OrderPlaced",)))
    with pytest.raises(PermanentError) as failure:
        webhooks.provider.send(make_request(1), RenderedMessage(payload=payload(1)))
    assert failure.value.reason == "signing_key_missing"
    assert receiver.deliveries == []
