"""Webhook subscriptions for operators: the table, the signing secrets in Secrets Manager,
each endpoint's health (the policy state table) and the replay of its undelivered
notifications (the ledger)."""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

import msgspec

from notifications.adapters.ledger import DynamoLedger
from notifications.adapters.policy_state import DynamoHealthStore
from notifications.adapters.sqs import SqsQueues
from notifications.channels.webhook import (
    DynamoSubscriptionStore,
    SecretsManagerSigningKeys,
    WebhookSubscription,
)
from notifications.endpoint_health import EndpointHealth
from notifications.models import Channel, NotificationRequested, NotificationStatus, utc_iso
from notifyctl.target import StackTarget

# What `webhooks list` counts as pending: on the endpoint's schedule, waiting for its health, or
# kept while it is disabled.
PENDING_STATUSES = (
    NotificationStatus.RETRYING,
    NotificationStatus.DEFERRED,
    NotificationStatus.ENDPOINT_DISABLED,
)
# What `webhooks replay` re-sends: dead-lettered and kept-while-disabled notifications.
REPLAYABLE_STATUSES = (NotificationStatus.DEAD_LETTERED, NotificationStatus.ENDPOINT_DISABLED)


@dataclass(frozen=True)
class EndpointView:
    """One subscription with its endpoint's health, as `webhooks list` shows it."""

    subscription: WebhookSubscription
    health: EndpointHealth
    pending: int


@dataclass(frozen=True)
class ReplayItem:
    notification_id: str
    status: str
    created_at: str
    request: NotificationRequested


@dataclass(frozen=True)
class ReplayOutcome:
    notification_id: str
    ok: bool
    detail: str


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
        self.target = target
        self.health = DynamoHealthStore(target.output("PolicyStateTableName"))
        self.ledger = DynamoLedger(target.output("LedgerTableName"))

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

    # -- endpoint health -------------------------------------------------------------------------

    def endpoints(self) -> list[EndpointView]:
        """Every subscription with its health and pending count."""
        health = {h.subscription_id: h for h in self.health.read_all()}
        pending: Counter[str] = Counter()
        for status in PENDING_STATUSES:
            for record in self.ledger.by_status(status.value):
                if record.get("channel") == Channel.WEBHOOK.value:
                    pending[str(record.get("recipient_masked"))] += 1
        return [
            EndpointView(
                s,
                health.get(s.subscription_id, EndpointHealth(s.subscription_id)),
                pending[s.subscription_id],
            )
            for s in self.list()
        ]

    def enable(self, subscription_id: str, now: datetime) -> bool:
        """Re-enable a disabled endpoint (health, and the subscription if it was switched
        off); False when neither was disabled."""
        enabled = self.health.enable(subscription_id, now)
        subscription = self.store.get(subscription_id)
        if subscription is not None and not subscription.enabled:
            self.store.put(replace(subscription, enabled=True, disabled_reason=None))
            enabled = True
        return enabled

    # -- replay ----------------------------------------------------------------------------------

    def replayable(
        self, subscription_id: str, since: datetime, until: datetime | None
    ) -> list[ReplayItem]:
        """The endpoint's dead-lettered and kept notifications created in the window, oldest
        first."""
        low, high = utc_iso(since), utc_iso(until or datetime.now(UTC))
        found: list[ReplayItem] = []
        for status in REPLAYABLE_STATUSES:
            for record in self.ledger.by_status(status.value):
                item = _replay_item(record, subscription_id)
                if item is not None and low <= item.created_at <= high:
                    found.append(item)
        return sorted(found, key=lambda item: (item.created_at, item.notification_id))

    def replay(self, item: ReplayItem, now: datetime, operator: str) -> ReplayOutcome:
        """Back onto the webhook queue with the same notification id (the same `webhook-id`)
        and a fresh attempt budget; the record becomes REDRIVEN with an audit entry."""
        if not self.ledger.mark_replayed(item.notification_id, item.status, now, operator):
            return ReplayOutcome(item.notification_id, False, "its status changed meanwhile")
        request = item.request.model_copy(update={"redrive_count": item.request.redrive_count + 1})
        try:
            SqsQueues().enqueue(self.target.output("WebhookQueueUrl"), [request])
        except Exception as exc:  # noqa: BLE001 - reported per notification, the record restored
            self.ledger.undo_replay(
                item.notification_id, item.status, datetime.now(UTC), operator, str(exc)
            )
            return ReplayOutcome(item.notification_id, False, f"enqueue failed: {exc}")
        return ReplayOutcome(item.notification_id, True, "re-enqueued")

    def record_replay(
        self,
        subscription_id: str,
        since: datetime,
        until: datetime | None,
        outcomes: Sequence[ReplayOutcome],
        now: datetime,
        operator: str,
    ) -> None:
        """The audit record of one replay (policy state table, ``pk = "replay"``)."""
        self.health.record_replay(
            subscription_id,
            {
                "since": utc_iso(since),
                "until": utc_iso(until) if until else None,
                "by": operator,
                "replayed": [o.notification_id for o in outcomes if o.ok],
                "failed": [o.notification_id for o in outcomes if not o.ok],
            },
            now,
        )


def _replay_item(record: dict[str, Any], subscription_id: str) -> ReplayItem | None:
    if record.get("channel") != Channel.WEBHOOK.value:
        return None
    if record.get("recipient_masked") != subscription_id:
        return None
    try:
        request = NotificationRequested.model_validate_json(str(record.get("payload", "")))
    except msgspec.DecodeError:  # msgspec.ValidationError is one too
        return None  # no payload (purged) or not a request: nothing to re-send
    return ReplayItem(
        str(record["notification_id"]),
        str(record["status"]),
        str(record.get("created_at", "")),
        request,
    )
