"""What a stage says about a notification, and what a failure becomes: plain values, no I/O.

A policy stage (``stages.py``) answers one of three verdicts:

- ``Go``: this stage lets the notification through;
- ``Defer(until, reason)``: it must wait until ``until`` (put back on its queue, no attempt
  spent; ``deferral.py``);
- ``Reject(error)``: it can never be delivered (dead-lettered at once, ``PERMANENT``);
- ``Park(reason)``: it must not be sent now nor retried on its own (its webhook endpoint is
  disabled): kept in the ledger with its body (``ENDPOINT_DISABLED``) for a replay.

A failure (of a send, or found before it) becomes one of three actions, decided by ``decide``
alone, from the failure and the channel's retry policy, taken as data:

- ``Retry(at, visibility_seconds)``: leave the message on its queue, visible again at ``at``;
- ``PutBack(at)``: the channel is down until ``at`` (a stage said so, e.g. the breaker opened):
  put the body back for then and acknowledge the original;
- ``DeadLetter(failure_class)``: give up; the message goes to NotificationsDLQ.
"""

from __future__ import annotations

import math
from datetime import datetime, timedelta
from enum import StrEnum

import msgspec

from notifications.errors import NotificationError
from notifications.retry import MAX_VISIBILITY_SECONDS, RetryPolicy


class Outcome(StrEnum):
    """What became of one channel-queue record in the sender."""

    SENT = "sent"
    DUPLICATE = "duplicate"  # settled or sent already: acknowledged, nothing sent
    DEFERRED = "deferred"  # put back by a stage, no attempt spent
    PUT_BACK = "put_back"  # failed while the channel is down: put back for its reopen time
    RETRY = "retry"  # left on the queue with a visibility delay (a batch item failure)
    DEAD_LETTERED = "dead_lettered"
    PARKED = "parked"  # kept in the ledger (its endpoint is disabled) until a replay

    @property
    def acknowledged(self) -> bool:
        """False when SQS must offer the message again (reported in ``batchItemFailures``)."""
        return self is not Outcome.RETRY


class FailureClass(StrEnum):
    """Why a dead letter was given up on (the ``failure_class`` of the dead-letter contract)."""

    PERMANENT = "permanent"  # retrying cannot fix it
    EXHAUSTED = "exhausted"  # retryable, but the attempts are used up


class DeferReason(StrEnum):
    QUIET_HOURS = "quiet_hours"
    RATE_LIMITED = "rate_limited"
    CIRCUIT_OPEN = "circuit_open"
    ENDPOINT_UNHEALTHY = "endpoint_unhealthy"  # its webhook endpoint is failing
    SEND_BUDGET = "send_budget"  # the channel's provider send budget is spent this second


# -- stage verdicts ----------------------------------------------------------------------------


class Go(msgspec.Struct, frozen=True):
    """The stage lets the notification through."""


GO = Go()


class Defer(msgspec.Struct, frozen=True):
    until: datetime
    reason: DeferReason


class Reject(msgspec.Struct, frozen=True):
    error: NotificationError


class Park(msgspec.Struct, frozen=True):
    reason: str


Verdict = Go | Defer | Reject | Park


# -- failure verdicts --------------------------------------------------------------------------


class Failure(msgspec.Struct, frozen=True):
    """A failure of one notification, as ``decide`` needs it.

    ``attempt``: the real provider attempts made, this one included (0 before any).
    ``exhausted``: the attempts were used up before this one could be made (sends that crashed
    before recording their outcome). ``hold_until``: a stage reports the channel down until
    then (the breaker opened, or is open). ``can_put_back``: a deferrer is wired.
    ``visibility_room``: the longest visibility delay SQS still allows this receive (its 12 h
    limit counts from the receive); a longer wait is put back (``DelaySeconds`` or Scheduler).
    """

    error: NotificationError
    attempt: int
    now: datetime
    exhausted: bool = False
    hold_until: datetime | None = None
    can_put_back: bool = True
    visibility_room: float = MAX_VISIBILITY_SECONDS


class Retry(msgspec.Struct, frozen=True):
    at: datetime
    visibility_seconds: int


class PutBack(msgspec.Struct, frozen=True):
    at: datetime


class DeadLetter(msgspec.Struct, frozen=True):
    failure_class: FailureClass


Action = Retry | PutBack | DeadLetter


def decide(failure: Failure, policy: RetryPolicy) -> Action:
    """What ``failure`` becomes under the channel's retry ``policy``. Pure: no I/O (a policy
    with jitter draws its delay from its own random generator)."""
    if failure.exhausted:
        return DeadLetter(FailureClass.EXHAUSTED)
    if not failure.error.retryable:
        return DeadLetter(FailureClass.PERMANENT)
    if policy.is_last_attempt(failure.attempt):
        return DeadLetter(FailureClass.EXHAUSTED)
    if failure.hold_until is not None and failure.can_put_back:
        # The channel is down: wait for its reopen time at the back of the queue (this attempt
        # is charged, but not the ones the outage would otherwise burn).
        return PutBack(failure.hold_until)
    retry_after = getattr(failure.error, "retry_after", None)
    wait = policy.wait(max(failure.attempt, 1), retry_after)
    seconds = min(math.ceil(wait), MAX_VISIBILITY_SECONDS)
    if seconds > failure.visibility_room and failure.can_put_back:
        # Longer than this receive's visibility can still wait: a new message for then.
        return PutBack(failure.now + timedelta(seconds=wait))
    return Retry(failure.now + timedelta(seconds=seconds), seconds)
