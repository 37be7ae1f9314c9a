"""Provider send-rate budgets: a channel's sends per second across every sender instance.

SES and SNS have account send-rate quotas; going faster turns into throttling answers, retries
and, with backoff, dead letters. A budget (``SesMaxSendRate``, ``SmsMaxSendRate``,
``PushMaxSendRate``; 0 = none) caps a channel's sends per second, counted in the policy state
table so that every concurrent sender shares it (docs/delivery-policy.md, "Send budgets"):

- time is cut into one-second windows (the sender's clock); a window holds at most
  ``limit`` = the effective rate, rounded down, at least 1, send starts of the channel;
- the stage takes slots **a batch at a time**: the first record of a batch to reach it in a
  window asks for as many slots as the batch has records left, with one ``UpdateItem`` that
  adds them to the window's counter (``ADD used :n``) and returns the new count; it is granted
  what was left below the limit. Slots granted and not used (a record refused by its claim)
  are lost, never reused: the budget errs on the slow side;
- a record with no slot waits without spending an attempt: ``Defer`` to the next window
  (``send_budget``), so it comes back as a new message. A send must start in its slot's
  window (``Delivery.not_after``), else it is put back unclaimed;
- a throttling answer of the provider (``provider_throttled``) halves the channel's
  effective rate (multiplicative decrease, not below 1/s), which then grows back linearly to
  the configured rate over ``RECOVERY_SECONDS`` for the whole of it (additive increase):
  AIMD. The cut is stored in the table, read at most once a second per sender instance.

Per window and channel: one ``UpdateItem`` per batch (two when a batch spans two windows), plus
one ``GetItem`` of the rate cut per second per instance: about 0.1-0.2 requests per
notification at full batches. The per-user rate limit (``rate_limit.py``) is separate and stays.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Protocol

import msgspec

from notifications.caching import TtlCache
from notifications.errors import NotificationError
from notifications.models import Channel, NotificationRequested
from notifications.stages import BatchContext, Delivery
from notifications.verdicts import GO, Defer, DeferReason, Verdict

THROTTLED = "provider_throttled"
# After a cut the rate grows back by configured / RECOVERY_SECONDS per second.
RECOVERY_SECONDS = 60.0
CUT_READ_SECONDS = 1.0


class RateCut(msgspec.Struct, frozen=True):
    """The channel's rate was cut to ``rate`` (sends/s) at ``at`` (epoch seconds)."""

    rate: float
    at: float


class BudgetStore(Protocol):
    def take(self, channel: Channel, window: int, wanted: int, limit: int) -> int:
        """Add ``wanted`` to the window's counter; how many of them were below ``limit``."""
        ...

    def read_cut(self, channel: Channel) -> RateCut | None: ...

    def write_cut(self, channel: Channel, cut: RateCut) -> None: ...


class SendBudget:
    """The channels' configured rates (sends per second) and their AIMD state."""

    def __init__(
        self,
        store: BudgetStore,
        rates: Mapping[Channel, float],
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.store = store
        self.rates = {channel: rate for channel, rate in rates.items() if rate > 0}
        self._cuts: TtlCache[Channel, RateCut | None] = TtlCache(CUT_READ_SECONDS, monotonic)

    def limited(self, channel: Channel) -> bool:
        return channel in self.rates

    def rate(self, channel: Channel, now: float) -> float:
        """The effective rate at ``now``: the configured one, or a cut growing back to it."""
        configured = self.rates[channel]
        cut = self._cuts.get(channel, lambda: self.store.read_cut(channel))
        if cut is None:
            return configured
        grown = cut.rate + configured / RECOVERY_SECONDS * max(now - cut.at, 0.0)
        return min(configured, grown)

    def limit(self, channel: Channel, now: float) -> int:
        """Send starts allowed in one window."""
        return max(math.floor(self.rate(channel, now)), 1)

    def take(self, channel: Channel, wanted: int, now: float) -> int:
        """Up to ``wanted`` slots in the window of ``now``."""
        return self.store.take(channel, int(now), wanted, self.limit(channel, now))

    def throttled(self, channel: Channel, now: float) -> None:
        """The provider answered with throttling: halve the effective rate."""
        cut = RateCut(max(self.rate(channel, now) / 2, 1.0), now)
        self.store.write_cut(channel, cut)
        self._cuts.evict(channel)


class _Grant(msgspec.Struct):
    window: int
    left: int


class BudgetStage:
    """The send budget as a policy stage (after the breaker: only records about to be sent
    take slots). ``begin_batch`` says how many records the batch holds.

    The batch admission asks ``admissible`` first: a record gets its slot there (the batch's
    one take), so a record over the budget is not claimed ahead only to be given back; its own
    turn defers it before any claim."""

    settled_ahead = False

    def __init__(self, budget: SendBudget) -> None:
        self.budget = budget
        self._grants: dict[Channel, _Grant] = {}
        self._unchecked = 0
        self._held: dict[str, int] = {}  # notification id -> the window of its slot

    def begin_batch(self, size: int) -> None:
        self._grants.clear()
        self._held.clear()
        self._unchecked = size

    def _slot(self, channel: Channel, at: float) -> int | None:
        """A slot in the window of ``at``: its window, or None when the budget is spent."""
        window = int(at)
        grant = self._grants.get(channel)
        if grant is None or grant.window != window:
            grant = _Grant(window, self.budget.take(channel, max(self._unchecked, 1), at))
            self._grants[channel] = grant
        if grant.left <= 0:
            return None
        grant.left -= 1
        self._unchecked = max(self._unchecked - 1, 0)
        return window

    def admissible(self, request: NotificationRequested, now: datetime) -> bool:
        """Takes the record's slot (once per record and batch) if the budget has one."""
        if not self.budget.limited(request.channel):
            return True
        if request.notification_id in self._held:
            return True
        window = self._slot(request.channel, now.timestamp())
        if window is None:
            return False
        self._held[request.notification_id] = window
        return True

    def check(self, delivery: Delivery, now: datetime, batch: BatchContext) -> Verdict:
        channel = delivery.request.channel
        if not self.budget.limited(channel):
            return GO
        at = now.timestamp()
        window = self._held.pop(delivery.request.notification_id, None)
        if window != int(at):  # none held, or held for a second that is over
            window = self._slot(channel, at)
        if window is None:
            return Defer(datetime.fromtimestamp(int(at) + 1, tz=UTC), DeferReason.SEND_BUDGET)
        delivery.not_after = datetime.fromtimestamp(window + 1, tz=UTC)
        return GO

    def sent(self, delivery: Delivery, batch: BatchContext) -> None:
        return None

    def failed(
        self, delivery: Delivery, error: NotificationError, now: datetime, batch: BatchContext
    ) -> datetime | None:
        channel = delivery.request.channel
        if error.reason == THROTTLED and self.budget.limited(channel):
            self.budget.throttled(channel, now.timestamp())
        return None
