"""The sender's policy stages: one interface, one list, one order.

Every stage answers ``check(delivery, batch) -> Go | Defer | Reject`` (``verdicts.py``). The
sender runs ``STAGE ORDER`` (the list ``build_stages`` returns) for each record; the batch
admission pre-pass asks the same list, in the same order, ``admissible(request, now)`` (no side
effects) to pick the records whose rate slot and claim it can take ahead in one transaction.

A stage may also hear how the send went: ``sent`` after a success, ``failed`` after a
retryable failure; ``failed`` returns the moment the channel is down until (the breaker
opened), or None. Per-endpoint health (issue 15) and a provider send budget (issue 18) fit
here as one more stage each.

Order: recipient, quiet hours, rate limit, health: the circuit breaker (email, SMS, push) and
per-endpoint health (webhooks, ``endpoint_health.py``), then the provider send budget
(``send_budget.py``) when one is configured. ``settled_ahead`` says whether a
record admitted ahead skips the stage (the admission settled it); the breaker does not, since
the circuit may open while the batch is being sent.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from typing import Protocol

import msgspec

from notifications.circuit_breaker import CircuitBreaker, EventSourceMappings, Permit
from notifications.deferral import Destination
from notifications.errors import NotificationError, PermanentError
from notifications.models import Channel, NotificationRequested
from notifications.observability import ChannelMetrics, logger
from notifications.quiet_hours import QuietHoursPolicy
from notifications.rate_limit import RateLimiter
from notifications.registry import validate_recipient
from notifications.verdicts import GO, Defer, DeferReason, Go, Reject, Verdict

ALLOWED = Permit(True)
# FAILURE_RATE's injected faults model independent failures of single sends (to exercise
# backoff and the DLQ), not a provider outage: they do not move the breaker.
INJECTED_FAULT = "injected_fault"


class Delivery(msgspec.Struct):
    """One record on its way through the stages (built per record, per batch)."""

    request: NotificationRequested
    body: str
    receipt_handle: str
    destination: Destination
    message_id: str
    permit: Permit = ALLOWED  # what the breaker stage granted this send
    # The send must start before this (its send-budget slot's window ends; send_budget.py).
    not_after: datetime | None = None


class BatchContext(msgspec.Struct):
    """What the stages share within one batch: its clock, lease and metrics."""

    clock: Callable[[], datetime]
    lease: timedelta
    metrics: ChannelMetrics = msgspec.field(default_factory=ChannelMetrics)


class Stage(Protocol):
    settled_ahead: bool

    def admissible(self, request: NotificationRequested, now: datetime) -> bool:
        """May the batch admission take this record ahead? No side effects."""
        ...

    def check(self, delivery: Delivery, now: datetime, batch: BatchContext) -> Verdict: ...

    def sent(self, delivery: Delivery, batch: BatchContext) -> None: ...

    def failed(
        self, delivery: Delivery, error: NotificationError, now: datetime, batch: BatchContext
    ) -> datetime | None: ...


class _Quiet:
    """Defaults for the hooks a stage does not need."""

    def sent(self, delivery: Delivery, batch: BatchContext) -> None:
        return None

    def failed(
        self, delivery: Delivery, error: NotificationError, now: datetime, batch: BatchContext
    ) -> datetime | None:
        return None


class RecipientStage(_Quiet):
    """An address the channel can never reach is rejected (dead-lettered at once)."""

    settled_ahead = True

    def admissible(self, request: NotificationRequested, now: datetime) -> bool:
        try:
            validate_recipient(request.channel, request.recipient)
        except PermanentError:
            return False
        return True

    def check(self, delivery: Delivery, now: datetime, batch: BatchContext) -> Verdict:
        try:
            validate_recipient(delivery.request.channel, delivery.request.recipient)
        except PermanentError as exc:
            return Reject(exc)
        return GO


class QuietHoursStage(_Quiet):
    settled_ahead = True

    def __init__(self, policy: QuietHoursPolicy) -> None:
        self.policy = policy

    def admissible(self, request: NotificationRequested, now: datetime) -> bool:
        return self.policy.deferral(request, now) is None

    def check(self, delivery: Delivery, now: datetime, batch: BatchContext) -> Verdict:
        until = self.policy.deferral(delivery.request, now)
        return GO if until is None else Defer(until, DeferReason.QUIET_HOURS)


class RateLimitStage(_Quiet):
    """Takes a slot per send; the batch admission takes the slots of the records it admits."""

    settled_ahead = True

    def __init__(self, limiter: RateLimiter) -> None:
        self.limiter = limiter

    def admissible(self, request: NotificationRequested, now: datetime) -> bool:
        return True

    def check(self, delivery: Delivery, now: datetime, batch: BatchContext) -> Verdict:
        decision = self.limiter.acquire(delivery.request, now)
        if not decision.allowed and decision.retry_at is not None:
            return Defer(decision.retry_at, DeferReason.RATE_LIMITED)
        return GO


# The channels one provider serves for everyone: the channel-wide breaker is theirs. Webhooks
# have per-endpoint health instead (endpoint_health.py): one customer's endpoint failing must
# not stop the others.
PROVIDER_CHANNELS = frozenset({Channel.EMAIL, Channel.SMS, Channel.PUSH})


class BreakerStage:
    """The channel's circuit breaker: defers while open; one trial at half-open; counts
    retryable failures and, when one opens it, switches the channel's polling off. Only for
    ``channels`` (the provider channels): any other channel passes untouched."""

    settled_ahead = False

    def __init__(
        self,
        breaker: CircuitBreaker,
        mappings: EventSourceMappings | None,
        channels: frozenset[Channel] = PROVIDER_CHANNELS,
    ) -> None:
        self.breaker = breaker
        self.mappings = mappings
        self.channels = channels

    def begin_batch(self) -> None:
        self.breaker.begin_batch()

    def admissible(self, request: NotificationRequested, now: datetime) -> bool:
        return request.channel not in self.channels or self.breaker.is_closed(request.channel)

    def check(self, delivery: Delivery, now: datetime, batch: BatchContext) -> Verdict:
        if delivery.request.channel not in self.channels:
            return GO
        permit = self.breaker.permit(delivery.request.channel, now, batch.lease)
        delivery.permit = permit
        if not permit.allowed and permit.retry_at is not None:
            return Defer(permit.retry_at, DeferReason.CIRCUIT_OPEN)
        return GO

    def sent(self, delivery: Delivery, batch: BatchContext) -> None:
        if delivery.request.channel in self.channels:
            self.breaker.record_success(delivery.request.channel, delivery.permit)

    def failed(
        self, delivery: Delivery, error: NotificationError, now: datetime, batch: BatchContext
    ) -> datetime | None:
        if error.reason == INJECTED_FAULT or delivery.request.channel not in self.channels:
            return None
        channel = delivery.request.channel
        trip = self.breaker.record_failure(channel, delivery.permit, now)
        if trip is None:
            return None
        if trip.opened_now:
            batch.metrics.count("CircuitOpened", channel.value)
            self._stop_polling(channel, delivery.destination.queue_arn, trip.open_until)
        return trip.open_until

    def _stop_polling(self, channel: Channel, queue_arn: str, until: datetime) -> None:
        logger.warning(
            "circuit breaker opened",
            extra={"channel": channel.value, "open_until": until.isoformat()},
        )
        if self.mappings is None:
            return
        try:
            self.mappings.set_enabled(queue_arn, False)
        except Exception:  # noqa: BLE001 - the breaker check switches it off on its next run
            logger.exception(
                "could not disable the event source mapping", extra={"channel": channel.value}
            )


def admissible(stages: Sequence[Stage], request: NotificationRequested, now: datetime) -> bool:
    """Every stage would let ``request`` through the batch admission."""
    return all(stage.admissible(request, now) for stage in stages)


def run(
    stages: Sequence[Stage], delivery: Delivery, now: datetime, batch: BatchContext, admitted: bool
) -> Verdict:
    """The first verdict that is not ``Go``, in the list's order; ``Go`` when all pass. A record
    admitted ahead skips the stages the admission settled."""
    for stage in stages:
        if admitted and stage.settled_ahead:
            continue
        verdict = stage.check(delivery, now, batch)
        if not isinstance(verdict, Go):
            return verdict
    return GO
