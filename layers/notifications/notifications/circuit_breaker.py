"""Per-channel circuit breaker, shared by every sender instance through DynamoDB.

State lives in one item per channel of the policy state table (``pk = "breaker"``,
``sk = <channel>``): ``state`` (closed | open), ``failures`` (consecutive retryable provider
failures), ``open_until``, ``trial_until`` and ``mapping_disabled``.

- closed: send. Each retryable failure adds one to ``failures``; a success resets it (one
  write, only when it was not already zero). At ``threshold`` the breaker opens.
- open, before ``open_until``: do not send; the message is deferred to ``open_until``, not
  charged an attempt. The instance that opened it disables the channel's event source mapping,
  so queued messages wait in the queue.
- half-open (open, ``open_until`` passed): the breaker check (every minute) re-enables the
  mapping; the first message to win a conditional write on ``trial_until`` is the trial, the
  others wait for it. A trial success closes the breaker; a trial failure reopens it.

Permanent failures (an invalid number, a 4xx) mean the provider answered: they do not count.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from enum import StrEnum
from typing import Protocol

import msgspec

from notifications.kinds import Channel

BREAKER_KEY = "breaker"


class BreakerState(StrEnum):
    CLOSED = "closed"
    OPEN = "open"


class BreakerRecord(msgspec.Struct, frozen=True):
    state: BreakerState = BreakerState.CLOSED
    failures: int = 0
    open_until: datetime | None = None
    trial_until: datetime | None = None
    mapping_disabled: bool = False

    def is_open(self, now: datetime) -> bool:
        """Open and not yet due for a trial."""
        return (
            self.state is BreakerState.OPEN
            and self.open_until is not None
            and now < self.open_until
        )


class Permit(msgspec.Struct, frozen=True):
    allowed: bool
    retry_at: datetime | None = None  # when not allowed
    trial: bool = False  # this send decides whether the breaker closes
    failures_seen: int = 0


class Trip(msgspec.Struct, frozen=True):
    """After a failure the breaker is open until ``open_until``; ``opened_now`` when this
    failure is the one that opened it (its sender then stops the channel's polling)."""

    open_until: datetime
    opened_now: bool


class BreakerStore(Protocol):
    def read(self, channel: Channel) -> BreakerRecord: ...
    def claim_trial(self, channel: Channel, now: datetime, until: datetime) -> bool: ...
    def add_failure(self, channel: Channel) -> BreakerRecord: ...
    def open(self, channel: Channel, until: datetime, now: datetime, from_trial: bool) -> bool: ...
    def close(self, channel: Channel) -> None: ...
    def set_mapping_disabled(self, channel: Channel, disabled: bool) -> None: ...


class CircuitBreaker:
    """Stage of the sender."""

    def __init__(self, store: BreakerStore, threshold: int, open_seconds: float) -> None:
        if threshold < 1 or open_seconds <= 0:
            raise ValueError("threshold and open_seconds must be positive")
        self.store = store
        self.threshold = threshold
        self.open_for = timedelta(seconds=open_seconds)
        self._closed: dict[Channel, int] = {}

    def begin_batch(self) -> None:
        """Forget what the last batch saw. Within one batch a closed breaker is read once:
        another instance opening it meanwhile lets at most the rest of this batch through."""
        self._closed.clear()

    def _not_closed(self, channel: Channel) -> BreakerRecord | None:
        """None while the breaker is closed (read once per batch, then cached); else its
        record."""
        if channel in self._closed:
            return None
        record = self.store.read(channel)
        if record.state is BreakerState.CLOSED:
            self._closed[channel] = record.failures
            return None
        return record

    def is_closed(self, channel: Channel) -> bool:
        """Closed, as ``permit`` would find it in this batch; no trial is taken, so a sender
        may ask before deciding to admit a batch ahead."""
        return self._not_closed(channel) is None

    def permit(self, channel: Channel, now: datetime, trial_lease: timedelta) -> Permit:
        record = self._not_closed(channel)
        if record is None:
            return Permit(True, failures_seen=self._closed[channel])
        if record.is_open(now):
            return Permit(False, retry_at=record.open_until)
        if self.store.claim_trial(channel, now, now + trial_lease):
            return Permit(True, trial=True, failures_seen=record.failures)
        # Another instance is running the trial: wait for its outcome.
        wait_until = record.trial_until if record.trial_until and record.trial_until > now else None
        return Permit(False, retry_at=wait_until or now + timedelta(seconds=5))

    def record_success(self, channel: Channel, permit: Permit) -> None:
        if permit.trial or permit.failures_seen:
            self.store.close(channel)
            if channel in self._closed:
                self._closed[channel] = 0

    def record_failure(self, channel: Channel, permit: Permit, now: datetime) -> Trip | None:
        self._closed.pop(channel, None)  # read the state afresh after a failure
        return self._record_failure(channel, permit, now)

    def _record_failure(self, channel: Channel, permit: Permit, now: datetime) -> Trip | None:
        until = now + self.open_for
        if permit.trial:
            self.store.open(channel, until, now, from_trial=True)
            return Trip(until, opened_now=True)
        record = self.store.add_failure(channel)
        if record.state is BreakerState.OPEN and record.open_until is not None:
            return Trip(record.open_until, opened_now=False)
        if record.failures >= self.threshold:
            if self.store.open(channel, until, now, from_trial=False):
                return Trip(until, opened_now=True)
            return Trip(self.store.read(channel).open_until or until, opened_now=False)
        return None


# -- polling on and off ----------------------------------------------------------------------


class EventSourceMappings(Protocol):
    """The sender function's event source mappings, by queue ARN."""

    def queue_arns(self) -> list[str]: ...
    def is_enabled(self, queue_arn: str) -> bool: ...
    def set_enabled(self, queue_arn: str, enabled: bool) -> None: ...


# -- the scheduled check ---------------------------------------------------------------------


class CheckResult(msgspec.Struct, frozen=True):
    enabled: tuple[str, ...] = ()
    disabled: tuple[str, ...] = ()


class BreakerCheck:
    """Runs every minute: makes each channel's mapping agree with its breaker.

    Re-enables a mapping the breaker disabled once the breaker is due for a trial (half-open),
    and disables one that should be off but is not (a sender that opened the breaker and then
    failed to switch polling off). Mappings an operator disabled by hand are left alone: only
    those flagged ``mapping_disabled`` by the breaker are ever re-enabled.
    """

    def __init__(
        self,
        store: BreakerStore,
        mappings: EventSourceMappings,
        queue_names: dict[Channel, str],
    ) -> None:
        self.store = store
        self.mappings = mappings
        self.queue_names = queue_names

    def run(self, now: datetime) -> CheckResult:
        enabled: list[str] = []
        disabled: list[str] = []
        by_name = {arn.rsplit(":", 1)[-1]: arn for arn in self.mappings.queue_arns()}
        for channel, name in self.queue_names.items():
            arn = by_name.get(name)
            record = self.store.read(channel)
            if arn is None or not record.mapping_disabled:
                continue
            if record.is_open(now):
                if self.mappings.is_enabled(arn):
                    self.mappings.set_enabled(arn, False)
                    disabled.append(channel.value)
                continue
            self.mappings.set_enabled(arn, True)
            self.store.set_mapping_disabled(channel, False)
            enabled.append(channel.value)
        return CheckResult(tuple(enabled), tuple(disabled))


def build_breaker_check() -> BreakerCheck:
    """Wire the breaker check from the environment, once per cold start."""
    from notifications.adapters.event_source_mappings import LambdaEventSourceMappings
    from notifications.adapters.policy_state import DynamoBreakerStore
    from notifications.queues import queue_name
    from notifications.settings import BreakerCheckSettings

    settings = BreakerCheckSettings.from_env()
    return BreakerCheck(
        DynamoBreakerStore(settings.policy_state_table),
        LambdaEventSourceMappings(settings.sender_function_name),
        {channel: queue_name(settings.queue_url(channel)) for channel in Channel},
    )
