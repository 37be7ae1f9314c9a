"""The alarm function's job: move each dead letter into the ledger and alert admins once a batch.

A dead letter reaches NotificationsDLQ two ways: the sender gave up on it (message attributes
carry ``reason``, ``error``, ``failure_class``, ``attempts``), or SQS redrove it after
``maxReceiveCount`` receives without a verdict (a crashed or timed-out sender; no attributes).
"""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from pydantic import ValidationError

from notifications.alerts import Alerts
from notifications.batch import PartialBatchResponse, SqsRecord, process_partially, sqs_records
from notifications.fallback import FallbackLedger, FallbackTrigger
from notifications.ledger import DeadLetterEntry, Ledger
from notifications.masking import mask_recipient
from notifications.models import NotificationRequested
from notifications.observability import ChannelMetrics, logger
from notifications.settings import AlarmSettings

REDRIVEN_BY_SQS = "max_receive_count_exceeded"
UNPARSEABLE_NAMESPACE = uuid.UUID("0b3f7c52-8a51-4e7f-9f0c-1d2b3a4c5d6e")


def entry_from_record(record: SqsRecord) -> DeadLetterEntry:
    """What the ledger keeps about one dead letter, masked where it names a person."""
    attributes = record.attributes
    receive_count = record.receive_count
    try:
        request: NotificationRequested | None = NotificationRequested.model_validate_json(
            record.body
        )
    except ValidationError:
        request = None
    if request is not None:
        notification_id = request.notification_id
    else:  # unparseable: keyed by the DLQ message so the record is still unique and findable
        notification_id = attributes.get("notification_id") or str(
            uuid.uuid5(UNPARSEABLE_NAMESPACE, record.message_id)
        )
    reason = attributes.get("reason") or REDRIVEN_BY_SQS
    return DeadLetterEntry(
        notification_id=notification_id,
        reason=reason,
        error=attributes.get("error")
        or "the sender did not settle it within maxReceiveCount receives (crash or timeout)",
        failure_class=attributes.get("failure_class") or "exhausted",
        payload=record.body,
        receive_count=int(attributes.get("attempts") or receive_count),
        dlq_message_id=record.message_id,
        channel=request.channel.value if request else attributes.get("channel"),
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
        recorded: list[DeadLetterEntry] = []
        metrics = ChannelMetrics()

        def record_one(record: SqsRecord) -> None:
            entry = entry_from_record(record)
            self.ledger.record_dead_lettered(entry, self.clock())
            if self.fallback is not None:
                self._fall_back(entry)
            recorded.append(entry)
            metrics.count("DeadLettered", entry.channel or "unknown")
            logger.error(
                "notification dead-lettered",
                extra={
                    "notification_id": entry.notification_id,
                    "channel": entry.channel,
                    "reason": entry.reason,
                    "attempts": entry.receive_count,
                },
            )

        response = process_partially(sqs_records(event), record_one)
        metrics.flush()
        if recorded:
            # One alert per batch. If it fails the whole batch is retried; the ledger writes
            # above are idempotent, so that only repeats the alert.
            self.alerts.publish(*self.alert_text(recorded))
        return response

    def _fall_back(self, entry: DeadLetterEntry) -> None:
        """The next channel of the notification's fallback chain, if its failure says the
        channel cannot reach the user (notifications.fallback)."""
        try:
            request = NotificationRequested.model_validate_json(entry.payload)
        except ValidationError:
            return  # no request to continue (recorded above as it was)
        assert self.fallback is not None
        decision = self.fallback.after_dead_letter(
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


def build_recorder() -> DeadLetterRecorder:
    """Wire the recorder from the environment, once per cold start."""
    from notifications.alerts import SnsAlerts
    from notifications.ledger import DynamoLedger

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
    from notifications.preferences import DynamoPreferencesStore
    from notifications.queues import SqsQueues

    urls = settings.fallback_queue_urls()
    if settings.preferences_table is None or urls is None:
        return None
    preferences = DynamoPreferencesStore(settings.preferences_table)
    return FallbackTrigger(preferences, SqsQueues(), urls, ledger)
