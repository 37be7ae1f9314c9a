"""The alarm function's job: move each dead letter into the ledger and alert admins once a batch.

A dead letter reaches NotificationsDLQ two ways: the sender gave up on it (message attributes
carry ``reason``, ``error``, ``failure_class``, ``attempts``), or SQS redrove it after
``maxReceiveCount`` receives without a verdict (a crashed or timed-out sender; no attributes).
Both are read by the one contract, ``contracts.DeadLetterMessage.from_record``.
"""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

from notifications.alerts import Alerts
from notifications.batch import PartialBatchResponse, SqsRecord, run_batch
from notifications.contracts import DeadLetterMessage, MalformedMessage, parse_request
from notifications.fallback import FallbackLedger, FallbackTrigger, build_fallback_trigger
from notifications.ledger import DeadLetterEntry, Ledger
from notifications.masking import mask_recipient
from notifications.models import NotificationRequested
from notifications.observability import ChannelMetrics, logger
from notifications.settings import AlarmSettings

UNPARSEABLE_NAMESPACE = uuid.UUID("0b3f7c52-8a51-4e7f-9f0c-1d2b3a4c5d6e")


def entry_from_record(record: SqsRecord) -> DeadLetterEntry:
    """What the ledger keeps about one dead letter, masked where it names a person."""
    letter = DeadLetterMessage.from_record(record)
    try:
        request: NotificationRequested | None = parse_request(record.body)
    except MalformedMessage:
        request = None
    if request is not None:
        notification_id = request.notification_id
    else:  # unparseable: keyed by the DLQ message so the record is still unique and findable
        notification_id = letter.notification_id or str(
            uuid.uuid5(UNPARSEABLE_NAMESPACE, record.message_id)
        )
    return DeadLetterEntry(
        notification_id=notification_id,
        reason=letter.reason,
        error=letter.error,
        failure_class=letter.failure_class.value,
        payload=record.body,
        receive_count=letter.attempts,
        dlq_message_id=record.message_id,
        channel=request.channel.value if request else letter.channel,
        recipient=mask_recipient(request.channel, request.recipient) if request else None,
        user_id=request.user_id if request else None,
        event_type=request.event_type if request else None,
        fallback_of=request.fallback_of if request else None,
    )


class DeadLetterRecorder:
    def __init__(
        self,
        ledger: Ledger,
        alerts: Alerts,
        stage: str,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        fallback: FallbackTrigger | None = None,
    ) -> None:
        self.ledger = ledger
        self.alerts = alerts
        self.stage = stage
        self.clock = clock
        self.fallback = fallback

    def process_batch(self, event: dict[str, Any], context: Any) -> PartialBatchResponse:
        return run_batch(event, DeadLetterBatch(self))

    def fall_back(self, entry: DeadLetterEntry) -> None:
        """The next channel of the notification's fallback chain, if its failure says the
        channel cannot reach the user (notifications.fallback)."""
        try:
            request = parse_request(entry.payload)
        except MalformedMessage:
            return  # no request to continue (recorded above as it was)
        assert self.fallback is not None
        decision = self.fallback.after_failure(
            request, entry.reason, entry.failure_class, self.clock()
        )
        if decision is not None:
            logger.info(
                "channel fallback",
                extra={
                    "notification_id": request.notification_id,
                    "fallback_notification_id": (
                        decision.request.notification_id if decision.request else None
                    ),
                    "fallback_channel": (
                        decision.request.channel.value if decision.request else None
                    ),
                    "fallback_none": decision.why_none,
                },
            )

    def alert_text(self, entries: list[DeadLetterEntry]) -> tuple[str, str]:
        reasons = Counter(e.reason for e in entries)
        subject = f"[notifications {self.stage}] {len(entries)} notification(s) dead-lettered"
        lines = [
            f"{len(entries)} notification(s) reached the dead-letter store.",
            "By reason: " + ", ".join(f"{r} x{n}" for r, n in reasons.most_common()),
            "",
            *(
                f"- {e.notification_id} {e.channel or '?'} {e.recipient or ''} "
                f"{e.reason}: {e.error[:200]}"
                for e in entries
            ),
            "",
            "Inspect with `notifyctl dlq list`, redrive with `notifyctl dlq redrive`.",
        ]
        return subject, "\n".join(lines)


class DeadLetterBatch:
    """One batch of the alarm function: each dead letter into the ledger, one alert at the end."""

    def __init__(self, recorder: DeadLetterRecorder) -> None:
        self.recorder = recorder
        self.recorded: list[DeadLetterEntry] = []
        self.metrics = ChannelMetrics()

    def prepare(self, records: Sequence[SqsRecord]) -> None:
        return None

    def handle(self, record: SqsRecord) -> bool:
        entry = entry_from_record(record)
        self.recorder.ledger.record_dead_lettered(entry, self.recorder.clock())
        if self.recorder.fallback is not None:
            self.recorder.fall_back(entry)
        self.recorded.append(entry)
        self.metrics.count("DeadLettered", entry.channel or "unknown")
        logger.error(
            "notification dead-lettered",
            extra={
                "notification_id": entry.notification_id,
                "channel": entry.channel,
                "reason": entry.reason,
                "attempts": entry.receive_count,
            },
        )
        return True

    def finish(self) -> None:
        self.metrics.flush()
        if self.recorded:
            # One alert per batch. If it fails the whole batch is retried; the ledger writes
            # above are idempotent, so that only repeats the alert.
            self.recorder.alerts.publish(*self.recorder.alert_text(self.recorded))


def build_recorder() -> DeadLetterRecorder:
    """Wire the recorder from the environment, once per cold start."""
    from notifications.adapters.ledger import DynamoLedger
    from notifications.adapters.sns import SnsAlerts

    settings = AlarmSettings.from_env()
    ledger = DynamoLedger(settings.ledger_table)
    return DeadLetterRecorder(
        ledger,
        SnsAlerts(settings.alerts_topic_arn),
        settings.stage,
        fallback=_fallback_trigger(settings, ledger),
    )


def _fallback_trigger(settings: AlarmSettings, ledger: FallbackLedger) -> FallbackTrigger | None:
    """Channel fallback when the template gives the channel queues and the preferences table."""
    from notifications.adapters.preferences import DynamoPreferencesStore

    if settings.preferences_table is None:
        return None
    preferences = DynamoPreferencesStore(settings.preferences_table)
    return build_fallback_trigger(settings.fallback_queue_urls(), preferences, ledger)
