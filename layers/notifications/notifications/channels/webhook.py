"""Webhooks: subscriptions in DynamoDB, signing secrets in Secrets Manager, and deliveries
signed per the Standard Webhooks spec, sent only to public HTTPS endpoints."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import TYPE_CHECKING, Any, Protocol

from notifications.adapters.aws import LazyClient
from notifications.adapters.dynamodb import DynamoTable, conditional, dynamodb
from notifications.caching import TtlCache
from notifications.channels.aws_errors import classify_aws_error
from notifications.channels.base import ProviderReceipt, RenderedMessage
from notifications.channels.ssrf import (
    HttpResponse,
    PinnedHttpTransport,
    Resolver,
    Target,
    check_url,
    system_resolver,
)
from notifications.errors import PermanentError, RetryableError
from notifications.models import NotificationRequested

if TYPE_CHECKING:
    from mypy_boto3_secretsmanager import SecretsManagerClient

SECRET_PREFIX = "whsec_"  # noqa: S105 (the format prefix, not a secret)
WILDCARD_EVENT = "*"
DEFAULT_MAX_PAYLOAD_BYTES = 256 * 1024
MAX_RETRY_AFTER_SECONDS = 12 * 60 * 60  # the longest SQS visibility timeout
USER_AGENT = "notifications-webhooks/1.0"


# --------------------------------------------------------------------------- subscriptions


@dataclass(frozen=True)
class WebhookSubscription:
    subscription_id: str
    url: str
    event_types: tuple[str, ...]
    enabled: bool = True
    secret_id: str | None = None
    disabled_reason: str | None = None

    def wants(self, event_type: str) -> bool:
        return WILDCARD_EVENT in self.event_types or event_type in self.event_types


class SubscriptionStore(Protocol):
    def get(self, subscription_id: str) -> WebhookSubscription | None: ...

    def disable(self, subscription_id: str, reason: str) -> None: ...


class CachedSubscriptionStore:
    """A subscription store whose reads are cached per instance for ``ttl_seconds``: the
    sender would otherwise read the subscription once per webhook delivery. A disabled or
    deleted subscription stops receiving within ``ttl_seconds`` (the fan-out's subscription
    list has the same delay); ``disable`` goes through at once and evicts the entry."""

    def __init__(
        self,
        store: SubscriptionStore,
        ttl_seconds: float = 60.0,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.store = store
        self._cache: TtlCache[str, WebhookSubscription | None] = TtlCache(ttl_seconds, monotonic)

    def get(self, subscription_id: str) -> WebhookSubscription | None:
        return self._cache.get(subscription_id, lambda: self.store.get(subscription_id))

    def disable(self, subscription_id: str, reason: str) -> None:
        self.store.disable(subscription_id, reason)
        self._cache.evict(subscription_id)


class DynamoSubscriptionStore:
    """Subscriptions in a DynamoDB table keyed by ``subscription_id`` (string), through the
    low-level client (``adapters.dynamodb.DynamoTable``) like every other table of the layer:
    the sender's send pool reads them from its worker threads, and the client is thread-safe.

    ``list_for_event`` scans with a filter: subscriptions are few (tens, not millions)."""

    def __init__(
        self,
        table_name: str,
        *,
        client_factory: Callable[[], Any] = dynamodb,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.table_name = table_name
        self.table = DynamoTable(table_name, client_factory)
        self._clock = clock

    @staticmethod
    def _from_item(item: Mapping[str, Any]) -> WebhookSubscription:
        return WebhookSubscription(
            subscription_id=str(item["subscription_id"]),
            url=str(item["url"]),
            event_types=tuple(str(value) for value in item.get("event_types", [])),
            enabled=bool(item.get("enabled", False)),
            secret_id=item.get("secret_id"),
            disabled_reason=item.get("disabled_reason"),
        )

    def put(self, subscription: WebhookSubscription) -> None:
        item: dict[str, Any] = {
            "subscription_id": subscription.subscription_id,
            "url": subscription.url,
            "event_types": list(subscription.event_types),
            "enabled": subscription.enabled,
            "updated_at": self._clock().isoformat(),
        }
        if subscription.secret_id:
            item["secret_id"] = subscription.secret_id
        if subscription.disabled_reason:
            item["disabled_reason"] = subscription.disabled_reason
        try:
            self.table.put_item(Item=item)
        except Exception as error:
            raise classify_aws_error(error) from error

    def get(self, subscription_id: str) -> WebhookSubscription | None:
        try:
            item = self.table.get_item(
                Key={"subscription_id": subscription_id}, ConsistentRead=True
            )
        except Exception as error:
            raise classify_aws_error(error) from error
        return self._from_item(item) if item else None

    def list_all(self) -> list[WebhookSubscription]:
        return self._scan({})

    def list_for_event(self, event_type: str) -> list[WebhookSubscription]:
        """Enabled subscriptions to ``event_type`` (or to every event, ``*``)."""
        return self._scan(
            {
                "FilterExpression": "enabled = :on AND "
                "(contains(event_types, :type) OR contains(event_types, :all))",
                "ExpressionAttributeValues": {
                    ":on": True,
                    ":type": event_type,
                    ":all": WILDCARD_EVENT,
                },
            }
        )

    def _scan(self, options: dict[str, Any]) -> list[WebhookSubscription]:
        try:
            found = [self._from_item(item) for item in self.table.scan(**options)]
        except Exception as error:
            raise classify_aws_error(error) from error
        return sorted(found, key=lambda subscription: subscription.subscription_id)

    def disable(self, subscription_id: str, reason: str) -> None:
        """Disable a subscription (idempotent; a missing one stays missing)."""
        try:
            conditional(
                self.table.update_item,
                Key={"subscription_id": subscription_id},
                UpdateExpression="SET enabled = :off, disabled_reason = :why, disabled_at = :at",
                ConditionExpression="attribute_exists(subscription_id)",
                ExpressionAttributeValues={
                    ":off": False,
                    ":why": reason,
                    ":at": self._clock().isoformat(),
                },
            )
        except Exception as error:
            raise classify_aws_error(error) from error

    def delete(self, subscription_id: str) -> None:
        try:
            self.table.delete_item(Key={"subscription_id": subscription_id})
        except Exception as error:
            raise classify_aws_error(error) from error


# --------------------------------------------------------------------------- signing keys


def new_secret() -> str:
    """A fresh Standard Webhooks secret: ``whsec_`` + base64 of 32 random bytes."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(32)).decode("ascii")


def _secret_bytes(secret: str) -> bytes:
    encoded = secret.removeprefix(SECRET_PREFIX)
    return base64.b64decode(encoded + "=" * (-len(encoded) % 4))


def sign(secret: str, message_id: str, timestamp: int, body: bytes) -> str:
    """``v1,<base64 HMAC-SHA256 of "id.timestamp.body">`` for one secret."""
    signed = f"{message_id}.{timestamp}.".encode() + body
    digest = hmac.new(_secret_bytes(secret), signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode("ascii")


def signature_header(secrets_: Sequence[str], message_id: str, timestamp: int, body: bytes) -> str:
    """The ``webhook-signature`` value: one signature per active secret, space-separated."""
    return " ".join(sign(secret, message_id, timestamp, body) for secret in secrets_)


class SigningKeys(Protocol):
    def active_secrets(self, subscription_id: str) -> list[str]: ...


class SecretsManagerSigningKeys:
    """Signing secrets in Secrets Manager, one secret per subscription named
    ``<prefix><subscription_id>``, holding a JSON list of ``whsec_`` secrets, newest first.

    A rotation puts a new secret in front and keeps the previous one, so deliveries carry both
    signatures until ``retire_old`` drops it. Reads are cached for ``cache_seconds``."""

    def __init__(
        self,
        prefix: str,
        *,
        client_factory: Callable[[], SecretsManagerClient] | None = None,
        cache_seconds: float = 60.0,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.prefix = prefix
        self._secrets: LazyClient[SecretsManagerClient] = LazyClient(
            "secretsmanager", client_factory
        )
        self._cache: TtlCache[str, list[str]] = TtlCache(cache_seconds, monotonic)

    def secret_name(self, subscription_id: str) -> str:
        return f"{self.prefix}{subscription_id}"

    def create(self, subscription_id: str) -> str:
        """Create the subscription's secret; returns the new ``whsec_`` value."""
        secret = new_secret()
        try:
            self._secrets().create_secret(
                Name=self.secret_name(subscription_id), SecretString=json.dumps([secret])
            )
        except Exception as error:
            raise classify_aws_error(error) from error
        self._cache.evict(subscription_id)
        return secret

    def active_secrets(self, subscription_id: str) -> list[str]:
        return list(self._cache.get(subscription_id, lambda: self._read(subscription_id)))

    def _read(self, subscription_id: str) -> list[str]:
        try:
            response = self._secrets().get_secret_value(SecretId=self.secret_name(subscription_id))
        except Exception as error:
            raise classify_aws_error(
                error, {"ResourceNotFoundException": "signing_key_missing"}
            ) from error
        values = json.loads(response["SecretString"])
        if not isinstance(values, list) or not values:
            raise PermanentError("signing_key_missing", "the signing secret holds no keys")
        return [str(value) for value in values]

    def _write(self, subscription_id: str, values: list[str]) -> None:
        try:
            self._secrets().put_secret_value(
                SecretId=self.secret_name(subscription_id), SecretString=json.dumps(values)
            )
        except Exception as error:
            raise classify_aws_error(error) from error
        self._cache.evict(subscription_id)

    def rotate(self, subscription_id: str, keep_old: int = 1) -> str:
        """Put a new secret first, keep the ``keep_old`` newest old ones; returns the new one."""
        secret = new_secret()
        self._write(subscription_id, [secret, *self._read(subscription_id)[:keep_old]])
        return secret

    def retire_old(self, subscription_id: str) -> None:
        """End a rotation: keep only the newest secret."""
        self._write(subscription_id, self._read(subscription_id)[:1])

    def delete(self, subscription_id: str) -> None:
        try:
            self._secrets().delete_secret(
                SecretId=self.secret_name(subscription_id), ForceDeleteWithoutRecovery=True
            )
        except Exception as error:
            raise classify_aws_error(error) from error
        self._cache.evict(subscription_id)


# --------------------------------------------------------------------------- delivery


class WebhookTransport(Protocol):
    def post(
        self, target: Target, body: bytes, headers: Mapping[str, str], timeout: float
    ) -> HttpResponse: ...


def parse_retry_after(value: str | None, now: datetime) -> float | None:
    """Seconds from a ``Retry-After`` header (delta-seconds or HTTP-date), capped at 12 h."""
    if not value:
        return None
    value = value.strip()
    seconds: float
    if value.isdigit():
        seconds = float(value)
    else:
        try:
            moment = parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
        seconds = (moment - now).total_seconds()
    return float(min(max(seconds, 0.0), MAX_RETRY_AFTER_SECONDS))


@dataclass
class WebhookProvider:
    """Delivers ``message.payload`` as JSON to the subscription named by the request's
    recipient (a ``subscription_id``), signed with each of its active secrets."""

    subscriptions: SubscriptionStore
    keys: SigningKeys
    timeout: float = 10.0
    allow_loopback: bool = False
    max_payload_bytes: int = DEFAULT_MAX_PAYLOAD_BYTES
    transport: WebhookTransport = field(default_factory=PinnedHttpTransport)
    resolver: Resolver = system_resolver
    clock: Callable[[], datetime] = lambda: datetime.now(UTC)

    def body(self, message: RenderedMessage) -> bytes:
        body = json.dumps(
            message.payload, separators=(",", ":"), ensure_ascii=False, default=str
        ).encode("utf-8")
        if len(body) > self.max_payload_bytes:
            raise PermanentError(
                "payload_too_large",
                f"{len(body)} bytes exceeds the bound of {self.max_payload_bytes} bytes",
            )
        return body

    def headers(
        self, request: NotificationRequested, body: bytes, secrets_: Sequence[str]
    ) -> dict[str, str]:
        timestamp = int(self.clock().timestamp())
        return {
            "content-type": "application/json",
            "user-agent": USER_AGENT,
            "webhook-id": request.notification_id,
            "webhook-timestamp": str(timestamp),
            "webhook-signature": signature_header(
                secrets_, request.notification_id, timestamp, body
            ),
        }

    def send(self, request: NotificationRequested, message: RenderedMessage) -> ProviderReceipt:
        subscription = self.subscriptions.get(request.recipient)
        if subscription is None:
            raise PermanentError("subscription_not_found", "the subscription no longer exists")
        if not subscription.enabled:
            raise PermanentError("subscription_disabled", "the subscription is disabled")
        if not subscription.wants(request.event_type):
            raise PermanentError(
                "subscription_not_subscribed",
                f"the subscription no longer wants {request.event_type}",
            )
        body = self.body(message)
        target = check_url(
            subscription.url, resolver=self.resolver, allow_loopback=self.allow_loopback
        )
        headers = self.headers(
            request, body, self.keys.active_secrets(subscription.subscription_id)
        )
        try:
            response = self.transport.post(target, body, headers, self.timeout)
        except TimeoutError as error:
            raise RetryableError("provider_timeout", "the webhook timed out") from error
        except OSError as error:  # connection refused or reset, TLS failures
            raise RetryableError(
                "provider_unavailable", f"connection failed: {type(error).__name__}"
            ) from error
        except Exception as error:  # http.client protocol errors
            raise RetryableError(
                "provider_unavailable", f"bad response: {type(error).__name__}"
            ) from error
        return self._outcome(subscription, response)

    def _outcome(
        self, subscription: WebhookSubscription, response: HttpResponse
    ) -> ProviderReceipt:
        status = response.status
        if 200 <= status < 300:
            return ProviderReceipt(provider_message_id=None, detail={"status": str(status)})
        if status == 410:
            self.subscriptions.disable(subscription.subscription_id, "410 Gone")
            raise PermanentError("subscription_gone", "the endpoint answered 410 Gone")
        if status == 429:
            raise RetryableError(
                "provider_throttled",
                "the endpoint answered 429",
                retry_after=parse_retry_after(response.headers.get("retry-after"), self.clock()),
            )
        if status >= 500:
            raise RetryableError(
                "provider_unavailable",
                f"the endpoint answered {status}",
                retry_after=parse_retry_after(response.headers.get("retry-after"), self.clock()),
            )
        if 300 <= status < 400:
            raise PermanentError("webhook_redirect", f"the endpoint redirected ({status})")
        raise PermanentError("provider_rejected", f"the endpoint answered {status}")
