"""Exponential backoff: attempt n waits ``min(initial * multiplier ** (n - 1), max_delay)``."""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field

# SQS refuses a visibility timeout above 12 hours.
MAX_VISIBILITY_SECONDS = 43_200


@dataclass(frozen=True)
class RetryConfig:
    """The original spec's defaults: 3 attempts, 1 s, doubling, at most 60 s."""

    max_attempts: int = 3
    initial_delay: float = 1.0
    backoff_multiplier: float = 2.0
    max_delay: float = 60.0
    jitter: bool = False
    rng: random.Random = field(default_factory=random.Random, compare=False, repr=False)

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        if self.initial_delay < 0 or self.max_delay < 0:
            raise ValueError("delays must not be negative")
        if self.backoff_multiplier < 1:
            raise ValueError("backoff_multiplier must be at least 1")

    def delay(self, attempt: int) -> float:
        """Seconds to wait after failed attempt ``attempt`` (1-based) before the next one."""
        if attempt < 1:
            raise ValueError("attempt is 1-based")
        try:
            raw = self.initial_delay * self.backoff_multiplier ** (attempt - 1)
        except OverflowError:
            raw = math.inf
        capped = min(raw, self.max_delay)
        return self.rng.uniform(0, capped) if self.jitter else capped

    def visibility_timeout(self, attempt: int, retry_after: float | None = None) -> int:
        """The whole-second SQS visibility timeout that makes the next attempt wait ``delay``.

        Rounds up, so a message never comes back before its delay has passed; a provider's
        ``retry_after`` hint wins over the computed delay.
        """
        wait = self.delay(attempt) if retry_after is None else max(retry_after, 0.0)
        return min(math.ceil(wait), MAX_VISIBILITY_SECONDS)

    def is_last_attempt(self, attempt: int) -> bool:
        return attempt >= self.max_attempts
