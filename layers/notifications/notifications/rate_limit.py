"""Per-user, per-channel rate limit: an atomic DynamoDB counter per fixed window.

One item per (subject, channel, window) in the policy state table:
``pk = "rate#<channel>#<subject>"``, ``sk = "<window start, epoch seconds>"``, ``count``, and
``expires_at`` (DynamoDB TTL) a little after the window ends. Taking a slot is one conditional
``UpdateItem`` (``ADD count 1`` if ``count < limit``), so concurrent senders share the limit
exactly. Over the limit, the notification is deferred to the start of the next window.

A fixed window lets a user get up to twice the limit across a window boundary; a sliding or
token-bucket limit would need a read plus a write per message. The limit is there against
spam, not as a precise quota, so the cheaper one wins.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Protocol

import msgspec

if TYPE_CHECKING:
    from notifications.models import NotificationRequested


# Counters outlive their window by this much before DynamoDB may delete them.
COUNTER_RETENTION = timedelta(hours=1)


class RateDecision(msgspec.Struct, frozen=True):
    allowed: bool
    retry_at: datetime | None = None  # when not allowed: the next window's start


class RateSlot(msgspec.Struct, frozen=True):
    """One counter: ``key`` and ``window`` (its start, epoch seconds) address the item."""

    key: str
    window: str
    expires_at: int
    window_end: datetime


class CounterStore(Protocol):
    def increment_below(self, slot: RateSlot, limit: int) -> bool:
        """Add one to the slot's counter if it is below ``limit``; False when it is not."""
        ...

    def add_action(self, slot: RateSlot, count: int, limit: int) -> dict[str, Any]:
        """The same for ``count`` at once, as an ``Update`` for ``TransactWriteItems``."""
        ...


def rate_subject(request: NotificationRequested) -> str:
    """Whom the limit applies to: the user, or (no user, e.g. a webhook subscription) a hash
    of the recipient, so no address is stored in a key."""
    if request.user_id:
        return f"user:{request.user_id}"
    return "recipient:" + hashlib.sha256(request.recipient.encode()).hexdigest()[:32]


class RateLimiter:
    """Stage of the sender: may this notification go out in the current window?"""

    def __init__(self, store: CounterStore, per_window: int, window_seconds: int = 60) -> None:
        if per_window < 1 or window_seconds < 1:
            raise ValueError("the limit and the window must be positive")
        self.store = store
        self.per_window = per_window
        self.window_seconds = window_seconds

    def window_start(self, now: datetime) -> datetime:
        epoch = int(now.timestamp())
        return datetime.fromtimestamp(epoch - epoch % self.window_seconds, tz=UTC)

    def slot(self, request: NotificationRequested, now: datetime) -> RateSlot:
        """The counter a send of ``request`` at ``now`` takes a slot in."""
        start = self.window_start(now)
        end = start + timedelta(seconds=self.window_seconds)
        return RateSlot(
            key=f"rate#{request.channel.value}#{rate_subject(request)}",
            window=str(int(start.timestamp())),
            expires_at=int((end + COUNTER_RETENTION).timestamp()),
            window_end=end,
        )

    def acquire(self, request: NotificationRequested, now: datetime) -> RateDecision:
        slot = self.slot(request, now)
        if self.store.increment_below(slot, self.per_window):
            return RateDecision(True)
        return RateDecision(False, retry_at=slot.window_end)
