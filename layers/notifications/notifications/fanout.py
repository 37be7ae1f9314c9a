"""Fan-out: domain events in, one notification request per (channel, recipient) out.

Events arrive in SQS batches from FanOutQueue (EventBridge's target). ``FanOut.process_batch``
runs ``FanOutBatch`` through the batch idiom of ``batch.py``: it reads the preferences of the
batch's users in one BatchGetItem and enqueues each channel's requests of every event together,
ten per SendMessageBatch. ``FanOut.handle`` takes one bare EventBridge event (``sam local
invoke``, tests) through the same path.
"""

from __future__ import annotations

import json
import time
from collections import defaultdict
from collections.abc import Callable, Collection, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, Protocol

import msgspec

from notifications.batch import PartialBatchResponse, SqsRecord, run_batch
from notifications.caching import TtlCache
from notifications.catalog import CatalogError, check_source, describe, validate_detail
from notifications.contracts import DeadLetterMessage
from notifications.errors import NotificationError, PermanentError
from notifications.events import DomainEvent, EventEnvelope
from notifications.ledger import Ledger
from notifications.models import Channel, NotificationRequested
from notifications.observability import ChannelMetrics, logger
from notifications.preferences import Preferences, PreferencesStore
from notifications.queues import SEND_BATCH_SIZE, NotificationQueues
from notifications.routing import ROUTING_TABLE, Subscription, plan_notifications
from notifications.settings import FanOutSettings
from notifications.verdicts import FailureClass


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


class FanOutResult(msgspec.Struct):
    event_id: str | None
    event_type: str | None
    enqueued: dict[str, int] = msgspec.field(default_factory=dict)
    suppressed: int = 0
    rejected_reason: str | None = None


class _Accepted(msgspec.Struct, frozen=True):
    """A valid event of the batch, keyed by its SQS message id."""

    key: str
    envelope: EventEnvelope
    event: DomainEvent


class _Outcome(msgspec.Struct, frozen=True):
    result: FanOutResult | None = None
    error: Exception | None = None


def parse_event(
    event: Mapping[str, Any], sources: Collection[str] | None = None
) -> tuple[EventEnvelope, DomainEvent]:
    """Validate an EventBridge event and its ``detail`` against the event catalog (and its
    ``source`` against ``sources`` when given); ``InvalidEvent`` names every bad field."""
    try:
        envelope = EventEnvelope.model_validate(event)
    except msgspec.ValidationError as exc:
        problems = EventEnvelope.problems(dict(event)) or ["(root): Invalid input"]
        raise InvalidEvent("malformed_envelope", describe(problems)) from exc
    try:
        if sources is not None:
            check_source(envelope.source, sources)
        if envelope.detail_type not in ROUTING_TABLE:
            raise CatalogError(
                "unknown_event_type",
                f"detail-type {envelope.detail_type[:100]!r} has no route "
                f"(known: {', '.join(sorted(ROUTING_TABLE))})",
            )
        return envelope, validate_detail(envelope.detail_type, envelope.detail)
    except CatalogError as exc:
        raise InvalidEvent(exc.reason, exc.message) from exc


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
        """One bare EventBridge event; an invalid one goes to EventsDLQ with its reason, any
        other failure raises."""
        try:
            envelope, domain_event = parse_event(event, self.settings.sources())
        except InvalidEvent as exc:
            return self._reject(json.dumps(event, default=str), event, exc, attempts=1)
        outcome = self._fan_out([_Accepted("event", envelope, domain_event)])["event"]
        if outcome.error is not None:
            raise outcome.error
        assert outcome.result is not None
        return outcome.result

    def process_batch(self, event: Mapping[str, Any], context: Any) -> PartialBatchResponse:
        """SQS records whose bodies are EventBridge events (``FanOutBatch``)."""
        return run_batch(event, FanOutBatch(self))

    def _accept(self, record: SqsRecord) -> _Accepted | FanOutResult:
        """The record's event, validated; or, for an invalid one, its rejection."""
        text, attempts, message_id = record.body, record.receive_count, record.message_id
        try:
            event = json.loads(text)
        except ValueError:
            error = InvalidEvent("malformed_envelope", "the message body is not JSON")
            return self._reject(text, {}, error, attempts)
        if not isinstance(event, dict):
            error = InvalidEvent("malformed_envelope", "the message body is not a JSON object")
            return self._reject(text, {}, error, attempts)
        try:
            envelope, domain_event = parse_event(event, self.settings.sources())
        except InvalidEvent as exc:
            return self._reject(text, event, exc, attempts)
        return _Accepted(message_id, envelope, domain_event)

    def _fan_out(self, items: Sequence[_Accepted]) -> dict[str, _Outcome]:
        """Plan every event, then enqueue per channel across events. An event fails as a whole
        when its preferences, a write of its own, or any SendMessageBatch carrying one of its
        requests failed."""
        now = self.clock()
        user_ids = {uid for item in items if (uid := _user_id(item.event))}
        try:
            preferences = self.preferences.get_many(user_ids) if user_ids else {}
        except Exception as exc:  # noqa: BLE001 - every event of the batch is retried
            _log_failure(None, exc)
            return {item.key: _Outcome(error=exc) for item in items}

        metrics = ChannelMetrics()
        failed: dict[str, Exception] = {}
        planned: dict[str, FanOutResult] = {}
        queued: dict[Channel, list[tuple[str, NotificationRequested]]] = defaultdict(list)
        for item in items:
            try:
                result, requests = self._plan(item, preferences, now, metrics)
            except Exception as exc:  # noqa: BLE001 - this event is retried, the rest go on
                failed[item.key] = exc
                continue
            planned[item.key] = result
            for request in requests:
                queued[request.channel].append((item.key, request))

        # Always enqueue: a duplicate event enqueues again, and the sender's ledger guard drops
        # the duplicate message. One SendMessageBatch per ten requests of a channel, whichever
        # events they come from; a batch that still fails fails each event it carried.
        for channel, entries in queued.items():
            url = self.settings.queue_url(channel)
            for start in range(0, len(entries), SEND_BATCH_SIZE):
                chunk = entries[start : start + SEND_BATCH_SIZE]
                try:
                    self.queues.enqueue(url, [request for _, request in chunk])
                except Exception as exc:  # noqa: BLE001 - the events it carried are retried
                    for key, _ in chunk:
                        failed.setdefault(key, exc)
        metrics.flush()

        outcomes: dict[str, _Outcome] = {}
        for item in items:
            logger.set_correlation_id(item.envelope.id)
            error = failed.get(item.key)
            if error is not None:
                _log_failure(item.envelope, error)
                outcomes[item.key] = _Outcome(error=error)
                continue
            result = planned[item.key]
            logger.info(
                "event fanned out",
                extra={
                    "event_id": result.event_id,
                    "event_type": result.event_type,
                    "enqueued": result.enqueued,
                    "suppressed": result.suppressed,
                },
            )
            outcomes[item.key] = _Outcome(result=result)
        return outcomes

    def _plan(
        self,
        item: _Accepted,
        preferences: dict[str, Preferences],
        now: datetime,
        metrics: ChannelMetrics,
    ) -> tuple[FanOutResult, list[NotificationRequested]]:
        """Route one event and record its suppressions; the requests to enqueue."""
        envelope, domain_event = item.envelope, item.event
        user_id = _user_id(domain_event)
        prefs = preferences.get(user_id) if user_id else None
        if prefs is None and envelope.detail_type == "UserRegistered":
            prefs = self._first_preferences(domain_event)
            preferences[prefs.user_id] = prefs  # the batch's later events of this user see them
        route = ROUTING_TABLE[envelope.detail_type]
        subscriptions = (
            self.subscriptions.list_for_event(envelope.detail_type) if route.webhooks else []
        )
        planned = plan_notifications(envelope, domain_event, prefs, subscriptions, now)

        # Suppressions are recorded here (the reason is known only here); a notification to
        # send gets its ledger record from the sender's first claim.
        requests: list[NotificationRequested] = []
        enqueued: dict[str, int] = defaultdict(int)
        suppressed = 0
        for p in planned:
            if p.suppressed_reason is None:
                requests.append(p.request)
                enqueued[p.request.channel.value] += 1
            else:
                self.ledger.record_suppressed(p.request, p.suppressed_reason, now)
                metrics.count("Suppressed", p.request.channel.value)
                suppressed += 1
        result = FanOutResult(
            event_id=envelope.id,
            event_type=envelope.detail_type,
            enqueued=dict(enqueued),
            suppressed=suppressed,
        )
        return result, requests

    def _first_preferences(self, event: DomainEvent) -> Preferences:
        """A newly registered user's first preferences: the address and locale they signed up
        with, so later orders and payments reach them."""
        data = event.model_dump()
        prefs = Preferences(
            user_id=data["user_id"], email=data["email"], locale=data.get("locale") or "en"
        )
        self.preferences.put(prefs)
        return prefs

    def _reject(
        self, body: str, event: Mapping[str, Any], error: InvalidEvent, attempts: int
    ) -> FanOutResult:
        """Send an event no retry could fix to EventsDLQ as it arrived, with the reason."""
        event_id = event.get("id") if isinstance(event.get("id"), str) else None
        event_type = event.get("detail-type") if isinstance(event.get("detail-type"), str) else None
        self.queues.dead_letter(
            self.settings.events_dlq_url,
            body,
            DeadLetterMessage(
                reason=error.reason,
                error=error.message,
                failure_class=FailureClass.PERMANENT,
                attempts=attempts,
                source_queue="fan-out",
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


def _user_id(event: DomainEvent) -> str | None:
    user_id = getattr(event, "user_id", None)
    return user_id if isinstance(user_id, str) and user_id else None


def _log_failure(envelope: EventEnvelope | None, error: Exception) -> None:
    """An event (or the whole batch, without ``envelope``) left for SQS to offer again. Reason
    codes and exception types only: an exception's text may carry personal data."""
    reason = error.reason if isinstance(error, NotificationError) else "unexpected_error"
    logger.warning(
        "event not fanned out; SQS offers it again",
        extra={
            "event_id": envelope.id if envelope else None,
            "event_type": envelope.detail_type if envelope else None,
            "reason": reason,
            "error_type": type(error).__name__,
        },
    )


class FanOutBatch:
    """One batch of FanOutQueue records. ``prepare`` does the batch's work: invalid events go
    to EventsDLQ at once; the valid ones are planned together (one preferences read) and
    enqueued per channel across events. ``handle`` then answers per record: an event whose
    writes or enqueue failed is reported failed as a whole (its resend is harmless: the
    notification ids are deterministic and the sender's ledger claim drops duplicates), and
    reaches EventsDLQ by the queue's redrive."""

    def __init__(self, fan_out: FanOut) -> None:
        self.fan_out = fan_out
        self.settled: dict[str, bool] = {}

    def prepare(self, records: Sequence[SqsRecord]) -> None:
        accepted: list[_Accepted] = []
        for record in records:
            try:
                item = self.fan_out._accept(record)
            except Exception as exc:  # noqa: BLE001 - could not even dead-letter it: retry
                _log_failure(None, exc)
                self.settled[record.message_id] = False
                continue
            if isinstance(item, FanOutResult):
                self.settled[record.message_id] = True
            else:
                accepted.append(item)
        outcomes = self.fan_out._fan_out(accepted) if accepted else {}
        for key, outcome in outcomes.items():
            self.settled[key] = outcome.result is not None

    def handle(self, record: SqsRecord) -> bool:
        return self.settled.get(record.message_id, False)

    def finish(self) -> None:
        return None


def build_fan_out() -> FanOut:
    """Wire the fan-out from the environment, once per cold start."""
    from notifications.adapters.ledger import DynamoLedger
    from notifications.adapters.preferences import DynamoPreferencesStore
    from notifications.adapters.sqs import SqsQueues
    from notifications.channels.webhook import DynamoSubscriptionStore

    settings = FanOutSettings.from_env()
    return FanOut(
        settings,
        SqsQueues(),
        DynamoLedger(settings.ledger_table),
        DynamoPreferencesStore(settings.preferences_table),
        CachedSubscriptions(DynamoSubscriptionStore(settings.webhook_subscriptions_table)),
    )
