"""Retry policies per channel.

- ``RetryConfig``: exponential backoff, attempt n waits
  ``min(initial * multiplier ** (n - 1), max_delay)`` (email, SMS, push);
- ``RetrySchedule``: a fixed list of waits (webhooks, ``WebhookRetrySchedule``).

Both answer ``RetryPolicy``: how long to wait after a failed attempt and whether it was the
last; ``verdicts.decide`` turns the wait into a visibility delay or a put-back.
"""

from __future__ import annotations

import math
import random
from typing import Protocol

import msgspec

# SQS refuses a visibility timeout above 12 hours.
MAX_VISIBILITY_SECONDS = 43_200


class RetryConfig(msgspec.Struct, frozen=True):
    """The original spec's defaults: 3 attempts, 1 s, doubling, at most 60 s."""

    max_attempts: int = 3
    initial_delay: float = 1.0
    backoff_multiplier: float = 2.0
    max_delay: float = 60.0
    jitter: bool = False
    rng: random.Random = msgspec.field(default_factory=random.Random)

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

    def wait(self, attempt: int, retry_after: float | None = None) -> float:
        """The delay after attempt ``attempt``; a provider's ``retry_after`` hint wins."""
        return self.delay(attempt) if retry_after is None else max(retry_after, 0.0)

    def visibility_timeout(self, attempt: int, retry_after: float | None = None) -> int:
        """The whole-second SQS visibility timeout that makes the next attempt wait ``delay``.

        Rounds up, so a message never comes back before its delay has passed; a provider's
        ``retry_after`` hint wins over the computed delay.
        """
        return min(math.ceil(self.wait(attempt, retry_after)), MAX_VISIBILITY_SECONDS)

    def is_last_attempt(self, attempt: int) -> bool:
        return attempt >= self.max_attempts


class RetryPolicy(Protocol):
    """What ``verdicts.decide`` and the sender ask of a channel's retry policy."""

    @property
    def max_attempts(self) -> int: ...

    def wait(self, attempt: int, retry_after: float | None = None) -> float:
        """Seconds to wait after failed attempt ``attempt`` (1-based) before the next one."""
        ...

    def is_last_attempt(self, attempt: int) -> bool: ...


# Bounds of a webhook schedule (the template's WebhookRetrySchedule AllowedPattern says the same):
# at most 15 waits (16 attempts, so the webhook queue's fixed maxReceiveCount of 21 keeps a
# slack of 5), each at most 7 days.
MAX_SCHEDULE_WAITS = 15
MAX_SCHEDULE_WAIT_SECONDS = 7 * 24 * 3600


class RetrySchedule(msgspec.Struct, frozen=True):
    """A fixed schedule: after failed attempt n wait ``waits[n - 1]`` seconds; ``len(waits) + 1``
    attempts in all (webhooks: the template's ``WebhookRetrySchedule``).

    With ``jitter``, each wait is drawn uniformly from ``[0, wait]`` (full jitter, as the
    exponential formula's). A receiver's ``Retry-After`` replaces the scheduled wait, held within
    the schedule's bounds: never sooner than its shortest wait, never later than its longest.
    """

    waits: tuple[float, ...]
    jitter: bool = False
    rng: random.Random = msgspec.field(default_factory=random.Random)

    def __post_init__(self) -> None:
        if not self.waits:
            raise ValueError("a retry schedule needs at least one wait")
        if len(self.waits) > MAX_SCHEDULE_WAITS:
            raise ValueError(
                f"a retry schedule has at most {MAX_SCHEDULE_WAITS} waits, got {len(self.waits)}"
            )
        for wait in self.waits:
            if not 0 <= wait <= MAX_SCHEDULE_WAIT_SECONDS:
                raise ValueError(
                    f"each wait must be 0 to {MAX_SCHEDULE_WAIT_SECONDS} seconds, got {wait:g}"
                )

    @classmethod
    def parse(
        cls, text: str, jitter: bool = False, rng: random.Random | None = None
    ) -> RetrySchedule:
        """``"5,300,1800"`` -> the schedule; ValueError naming the bad part."""
        parts = [part.strip() for part in text.split(",")]
        waits: list[float] = []
        for part in parts:
            if not part.isdigit():
                raise ValueError(
                    f"{text!r} is not comma-separated whole seconds (bad part {part!r})"
                )
            waits.append(float(part))
        return cls(tuple(waits), jitter, rng or random.Random())

    @property
    def max_attempts(self) -> int:
        return len(self.waits) + 1

    def delay(self, attempt: int) -> float:
        if attempt < 1:
            raise ValueError("attempt is 1-based")
        scheduled = self.waits[min(attempt, len(self.waits)) - 1]
        return self.rng.uniform(0, scheduled) if self.jitter else scheduled

    def wait(self, attempt: int, retry_after: float | None = None) -> float:
        if retry_after is None:
            return self.delay(attempt)
        return min(max(retry_after, min(self.waits)), max(self.waits))

    def is_last_attempt(self, attempt: int) -> bool:
        return attempt >= self.max_attempts
