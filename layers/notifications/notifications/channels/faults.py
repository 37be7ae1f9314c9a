"""A provider wrapper that fails a fraction of sends, as the original spec's ``failure_rate``."""

from __future__ import annotations

import random
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
