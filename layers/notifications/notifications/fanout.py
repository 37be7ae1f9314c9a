"""Fan-out: one domain event in, one notification request per (channel, recipient) out."""

from __future__ import annotations

import json
import time
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

from pydantic import ValidationError

from notifications.caching import TtlCache
from notifications.errors import PermanentError
from notifications.ledger import Ledger
from notifications.models import EVENT_TYPES, Channel, DomainEvent, EventEnvelope
from notifications.observability import ChannelMetrics, logger
from notifications.preferences import Preferences, PreferencesStore
from notifications.queues import DeadLetter, NotificationQueues
from notifications.routing import ROUTING_TABLE, Subscription, plan_notifications
from notifications.settings import FanOutSettings

MAX_ERROR_LENGTH = 1000


class SubscriptionDirectory(Protocol):
    def list_for_event(self, event_type: str) -> Sequence[Subscription]: ...


class CachedSubscriptions:
    """Subscriptions per event type, read at most once a minute per instance: the fan-out
    would otherwise scan the subscriptions table for every event. A new or removed
    subscription takes effect within ``ttl_seconds``."""

    def __init__(
        self,
        directory: SubscriptionDirectory,
        ttl_seconds: float = 60.0,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.directory = directory
        self._cache: TtlCache[str, Sequence[Subscription]] = TtlCache(ttl_seconds, monotonic)

    def list_for_event(self, event_type: str) -> Sequence[Subscription]:
        return self._cache.get(event_type, lambda: self.directory.list_for_event(event_type))


class InvalidEvent(PermanentError):
    """A domain event that can never be fanned out; it goes to EventsDLQ with the reason."""


@dataclass
class FanOutResult:
    event_id: str | None
    event_type: str | None
    enqueued: dict[str, int] = field(default_factory=dict)
    suppressed: int = 0
    rejected_reason: str | None = None


def parse_event(event: Mapping[str, Any]) -> tuple[EventEnvelope, DomainEvent]:
    """Validate an EventBridge event and its ``detail``; ``InvalidEvent`` names every bad field."""
    try:
        envelope = EventEnvelope.model_validate(event)
    except ValidationError as exc:
        raise InvalidEvent("malformed_envelope", _describe(exc, prefix="")) from exc
    model = EVENT_TYPES.get(envelope.detail_type)
    if model is None or envelope.detail_type not in ROUTING_TABLE:
        raise InvalidEvent(
            "unknown_event_type",
            f"detail-type {envelope.detail_type[:100]!r} has no route "
            f"(known: {', '.join(sorted(ROUTING_TABLE))})",
        )
    try:
        return envelope, model.model_validate(envelope.detail)
    except ValidationError as exc:
        raise InvalidEvent("invalid_event", _describe(exc, prefix="detail.")) from exc


def _describe(exc: ValidationError, prefix: str) -> str:
    """Field paths and messages only: input values may hold personal data or be huge."""
    text = "; ".join(
        f"{prefix}{'.'.join(str(p) for p in err['loc']) or '(root)'}: {err['msg']}"
        for err in exc.errors(include_url=False, include_input=False)
    )
    return text[:MAX_ERROR_LENGTH]


class FanOut:
    def __init__(
        self,
        settings: FanOutSettings,
        queues: NotificationQueues,
        ledger: Ledger,
        preferences: PreferencesStore,
        subscriptions: SubscriptionDirectory,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.settings = settings
        self.queues = queues
        self.ledger = ledger
        self.preferences = preferences
        self.subscriptions = subscriptions
        self.clock = clock

    def handle(self, event: Mapping[str, Any]) -> FanOutResult:
        try:
            envelope, domain_event = parse_event(event)
        except InvalidEvent as exc:
            return self._reject(event, exc)
        now = self.clock()
        user_id = getattr(domain_event, "user_id", None)
        prefs = self.preferences.get(user_id) if user_id else None
        if prefs is None and envelope.detail_type == "UserRegistered":
            prefs = self._first_preferences(domain_event)
        route = ROUTING_TABLE[envelope.detail_type]
        subscriptions = (
            self.subscriptions.list_for_event(envelope.detail_type) if route.webhooks else []
        )
        planned = plan_notifications(envelope, domain_event, prefs, subscriptions, now)

        # Suppressions are recorded here (the reason is known only here); a notification to
        # send gets its ledger record from the sender's first claim. Always enqueue: a
        # duplicate event enqueues again, and the sender's ledger guard drops the duplicate.
        metrics = ChannelMetrics()
        by_channel: dict[Channel, list[Any]] = defaultdict(list)
        for item in planned:
            if item.suppressed_reason is None:
                by_channel[item.request.channel].append(item.request)
            else:
                self.ledger.record_suppressed(item.request, item.suppressed_reason, now)
                metrics.count("Suppressed", item.request.channel.value)
        for channel, requests in by_channel.items():
            self.queues.enqueue(self.settings.queue_url(channel), requests)
        metrics.flush()
        result = FanOutResult(
            event_id=envelope.id,
            event_type=envelope.detail_type,
            enqueued={c.value: len(r) for c, r in by_channel.items()},
            suppressed=sum(1 for p in planned if p.suppressed_reason),
        )
        logger.info(
            "event fanned out",
            extra={
                "event_id": envelope.id,
                "event_type": envelope.detail_type,
                "enqueued": result.enqueued,
                "suppressed": result.suppressed,
            },
        )
        return result

    def _first_preferences(self, event: DomainEvent) -> Preferences:
        """A newly registered user's first preferences: the address and locale they signed up
        with, so later orders and payments reach them."""
        data = event.model_dump()
        prefs = Preferences(
            user_id=data["user_id"], email=data["email"], locale=data.get("locale") or "en"
        )
        self.preferences.put(prefs)
        return prefs

    def _reject(self, event: Mapping[str, Any], error: InvalidEvent) -> FanOutResult:
        event_id = event.get("id") if isinstance(event.get("id"), str) else None
        event_type = event.get("detail-type") if isinstance(event.get("detail-type"), str) else None
        self.queues.dead_letter(
            self.settings.events_dlq_url,
            json.dumps(event, default=str),
            DeadLetter(
                reason=error.reason,
                error=error.message,
                failure_class="permanent",
                attempts=1,
                source_queue="fan-out",
                notification_id=None,
                channel=None,
            ),
        )
        logger.warning(
            "event rejected",
            extra={
                "event_id": event_id,
                "event_type": str(event_type)[:100],
                "reason": error.reason,
                "error": error.message,
            },
        )
        return FanOutResult(event_id=event_id, event_type=event_type, rejected_reason=error.reason)


def build_fan_out() -> FanOut:
    """Wire the fan-out from the environment, once per cold start."""
    from notifications.channels.webhook import DynamoSubscriptionStore
    from notifications.ledger import DynamoLedger
    from notifications.preferences import DynamoPreferencesStore
    from notifications.queues import SqsQueues

    settings = FanOutSettings.from_env()
    return FanOut(
        settings,
        SqsQueues(),
        DynamoLedger(settings.ledger_table),
        DynamoPreferencesStore(settings.preferences_table),
        CachedSubscriptions(DynamoSubscriptionStore(settings.webhook_subscriptions_table)),
    )
