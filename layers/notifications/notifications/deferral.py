"""Deferral: a notification that must wait (quiet hours, rate limit, open circuit) is put back.

The same body goes back onto its channel queue and the original message is acknowledged, so
no receive count accrues and no delivery attempt is consumed:

- up to 15 minutes away: ``SendMessage`` with ``DelaySeconds``;
- further: an EventBridge Scheduler one-time schedule (``at(...)``, UTC) whose SQS target
  sends the body to the queue at that moment, then deletes itself. Its name is derived from
  the notification id and the time, so deferring the same notification twice to the same
  moment (a duplicate delivery) creates one schedule.

The ledger records DEFERRED with the reason and ``deferred_until``, and appends the deferral
to the item's ``deferrals`` list, which stays after the notification is SENT.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import Protocol

import msgspec

from notifications.models import NotificationRequested

MAX_DELAY_SECONDS = 900  # SQS DelaySeconds limit


class Requeue(Protocol):
    def send_delayed(self, queue_url: str, body: str, delay_seconds: int) -> None: ...
    def schedule(self, name: str, queue_arn: str, body: str, at: datetime) -> None: ...


class DeferralLog(Protocol):
    def record_deferred(
        self, request: NotificationRequested, reason: str, until: datetime, now: datetime
    ) -> bool:
        """Record DEFERRED; False when the notification is SENT already (a duplicate)."""
        ...


class Destination(msgspec.Struct, frozen=True):
    queue_url: str
    queue_arn: str


def schedule_name(notification_id: str, until: datetime) -> str:
    return f"defer-{notification_id}-{int(until.timestamp())}"


def schedule_expression(until: datetime) -> str:
    """Scheduler's one-time expression; whole seconds, rounded up so it never fires early."""
    at = datetime.fromtimestamp(math.ceil(until.timestamp()), tz=UTC)
    return f"at({at.strftime('%Y-%m-%dT%H:%M:%S')})"


class Deferrer:
    def __init__(self, requeue: Requeue, log: DeferralLog) -> None:
        self.requeue = requeue
        self.log = log

    def defer(
        self,
        request: NotificationRequested,
        body: str,
        destination: Destination,
        until: datetime,
        reason: str,
        now: datetime,
    ) -> bool:
        """Record and put back; False (nothing put back) when it was sent already."""
        if not self.log.record_deferred(request, reason, until, now):
            return False
        self.put_back(request, body, destination, until, now)
        return True

    def put_back(
        self,
        request: NotificationRequested,
        body: str,
        destination: Destination,
        until: datetime,
        now: datetime,
    ) -> None:
        delay = max(math.ceil((until - now).total_seconds()), 0)
        if delay <= MAX_DELAY_SECONDS:
            self.requeue.send_delayed(destination.queue_url, body, delay)
        else:
            self.requeue.schedule(
                schedule_name(request.notification_id, until), destination.queue_arn, body, until
            )
