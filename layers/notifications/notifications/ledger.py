"""The ledger: one DynamoDB item per notification, recording its life.

Status moves SENDING -> SENT, or through RETRYING back to SENDING, or to DEAD_LETTERED (by
the alarm function), SUPPRESSED, DEFERRED, REDRIVEN, or ENDPOINT_DISABLED (a webhook whose
endpoint is disabled, kept with its body until a replay). The item is also the send guard:
``begin_attempt`` is a conditional write that refuses a notification already SENT, or one
another invocation holds a live lease on.

A record is created by the first write about its notification: the fan-out's SUPPRESSED, the
sender's first claim or deferral, or the alarm function's DEAD_LETTERED. A notification waiting
in its channel queue has no record yet (the message is durable in SQS; the dashboard counts the
queues): a separate REQUESTED write at fan-out time cost one more DynamoDB write per
notification, a quarter of the ledger's writes. Every first write carries the description
(channel, masked recipient, event, template, ``created_at`` = the request's time).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any, Protocol

import msgspec

from notifications.models import NotificationRequested, NotificationStatus, utc_iso

PURGED = NotificationStatus.PURGED.value
SETTLED_STATUSES = {
    NotificationStatus.DEAD_LETTERED.value,
    NotificationStatus.PURGED.value,
    NotificationStatus.SUPPRESSED.value,
}

# Ledger items expire (DynamoDB TTL) this long after their last change.
RETENTION = timedelta(days=400)
MAX_ERRORS_KEPT = 20


class Claim(StrEnum):
    GRANTED = "granted"  # go ahead and send
    ALREADY_SENT = "already_sent"  # a duplicate delivery: acknowledge, do not send
    SETTLED = "settled"  # dead-lettered, purged or suppressed: a late duplicate, never sent
    LEASED = "leased"  # another invocation is sending it right now


class AttemptClaim(msgspec.Struct, frozen=True):
    outcome: Claim
    attempts: int = 0
    lease_until: datetime | None = None


class FailureRecord(msgspec.Struct, frozen=True):
    reason: str
    message: str
    at: datetime

    def item(self) -> dict[str, str]:
        return {"reason": self.reason, "message": self.message[:500], "at": utc_iso(self.at)}


class Ledger(Protocol):
    def record_suppressed(
        self, request: NotificationRequested, reason: str, now: datetime
    ) -> None: ...
    def begin_attempt(
        self, request: NotificationRequested, lease_until: datetime, now: datetime
    ) -> AttemptClaim: ...
    def release_claim(self, notification_id: str, lease_until: datetime) -> None: ...
    def record_sent(
        self, notification_id: str, provider_message_id: str | None, latency_ms: int, now: datetime
    ) -> None: ...
    def record_retrying(
        self, notification_id: str, failure: FailureRecord, next_attempt_at: datetime
    ) -> None: ...
    def record_failed_attempt(self, notification_id: str, failure: FailureRecord) -> None: ...
    def record_parked(
        self, request: NotificationRequested, body: str, reason: str, now: datetime
    ) -> bool: ...
    def record_dead_lettered(self, entry: DeadLetterEntry, now: datetime) -> None: ...
    def get(self, notification_id: str) -> dict[str, Any] | None: ...


class DeadLetterEntry(msgspec.Struct, frozen=True):
    """What the alarm function knows about one dead letter."""

    notification_id: str
    reason: str
    error: str
    failure_class: str
    payload: str
    receive_count: int
    dlq_message_id: str
    channel: str | None = None
    recipient: str | None = None
    user_id: str | None = None
    event_type: str | None = None
    fallback_of: str | None = None  # a channel fallback's predecessor (notifications.fallback)
