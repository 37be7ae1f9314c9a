"""Provider wrappers that inject failures: a fraction of independent sends, as the original
spec's ``failure_rate`` (``FAILURE_MODE=independent``), or whole provider outages
(``FAILURE_MODE=outage``)."""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from notifications.channels.base import ChannelProvider, ProviderReceipt, RenderedMessage
from notifications.errors import RetryableError
from notifications.models import NotificationRequested


@dataclass
class FaultInjectingProvider:
    """Fails ``failure_rate`` of the sends with ``RetryableError('injected_fault')`` before the
    inner provider is called, and counts attempts, injected faults and successes."""

    inner: ChannelProvider
    failure_rate: float
    rng: random.Random = field(default_factory=random.Random)
    attempts: int = 0
    injected: int = 0
    successes: int = 0

    def __post_init__(self) -> None:
        if not 0.0 <= self.failure_rate <= 1.0:
            raise ValueError("failure_rate must be between 0 and 1")

    def send(self, request: NotificationRequested, message: RenderedMessage) -> ProviderReceipt:
        self.attempts += 1
        if self.failure_rate > 0 and self.rng.random() < self.failure_rate:
            self.injected += 1
            raise RetryableError("injected_fault", "fault injected by failure_rate")
        receipt = self.inner.send(request, message)
        self.successes += 1
        return receipt


# An outage lasts whole windows of this many seconds.
OUTAGE_WINDOW_SECONDS = 60.0
INJECTED_OUTAGE = "injected_outage"


@dataclass
class OutageInjectingProvider:
    """Models provider outages (``FAILURE_MODE=outage``) rather than independent failures.

    Time is cut into windows of ``window_seconds``; a channel's provider is down for a whole
    window with probability ``failure_rate``. Whether (channel, window) is down is drawn from a
    generator seeded with ``seed``, the channel and the window's index, so every sender
    instance agrees without sharing state. Every send in a down window fails with
    ``RetryableError('injected_outage')``: an ordinary provider failure, which the circuit
    breaker counts (``injected_fault`` is the one reason it ignores).
    """

    inner: ChannelProvider
    failure_rate: float
    seed: int = 0
    window_seconds: float = OUTAGE_WINDOW_SECONDS
    clock: Callable[[], float] = time.time
    attempts: int = 0
    injected: int = 0
    successes: int = 0

    def __post_init__(self) -> None:
        if not 0.0 <= self.failure_rate <= 1.0:
            raise ValueError("failure_rate must be between 0 and 1")
        if self.window_seconds <= 0:
            raise ValueError("window_seconds must be positive")

    def is_down(self, channel: str, at: float) -> bool:
        window = int(at // self.window_seconds)
        return random.Random(f"{self.seed}:{channel}:{window}").random() < self.failure_rate

    def send(self, request: NotificationRequested, message: RenderedMessage) -> ProviderReceipt:
        self.attempts += 1
        if self.failure_rate > 0 and self.is_down(request.channel.value, self.clock()):
            self.injected += 1
            raise RetryableError(INJECTED_OUTAGE, "provider outage injected by failure_mode")
        receipt = self.inner.send(request, message)
        self.successes += 1
        return receipt
