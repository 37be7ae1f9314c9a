"""Webhook subscriptions for operators: the table, and the signing secrets in Secrets Manager."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from urllib.parse import urlsplit

from notifications.channels.webhook import (
    DynamoSubscriptionStore,
    SecretsManagerSigningKeys,
    WebhookSubscription,
)
from notifyctl.target import StackTarget

LOOPBACK_HOSTS = {"127.0.0.1", "localhost", "::1"}


class Webhooks:
    def __init__(self, target: StackTarget) -> None:
        self.store = DynamoSubscriptionStore(target.output("WebhookSubscriptionsTableName"))
        # The prefix the sender reads secrets under, as the stack configured it.
        configuration = target.client("lambda").get_function_configuration(
            FunctionName=target.output("SenderFunctionName")
        )
        prefix = configuration["Environment"]["Variables"]["WEBHOOK_SECRET_PREFIX"]
        self.keys = SecretsManagerSigningKeys(prefix, cache_seconds=0)

    def add(
        self, url: str, event_types: Sequence[str], subscription_id: str | None = None
    ) -> tuple[WebhookSubscription, str]:
        parts = urlsplit(url)
        local = parts.scheme == "http" and parts.hostname in LOOPBACK_HOSTS
        if parts.scheme != "https" and not local:
            raise ValueError("webhook URLs must be https:// (http only for loopback in local runs)")
        if not event_types:
            raise ValueError("give at least one --event-type")
        subscription_id = subscription_id or f"wh-{uuid.uuid4().hex[:12]}"
        if self.store.get(subscription_id) is not None:
            raise ValueError(f"subscription {subscription_id} exists already")
        secret = self.keys.create(subscription_id)
        subscription = WebhookSubscription(
            subscription_id=subscription_id,
            url=url,
            event_types=tuple(event_types),
            secret_id=self.keys.secret_name(subscription_id),
        )
        self.store.put(subscription)
        return subscription, secret

    def list(self) -> list[WebhookSubscription]:
        return sorted(self.store.list_all(), key=lambda s: s.subscription_id)

    def remove(self, subscription_id: str) -> bool:
        if self.store.get(subscription_id) is None:
            return False
        self.store.delete(subscription_id)
        self.keys.delete(subscription_id)
        return True

    def rotate(self, subscription_id: str) -> str:
        return self.keys.rotate(subscription_id)

    def finish_rotation(self, subscription_id: str) -> None:
        self.keys.retire_old(subscription_id)
