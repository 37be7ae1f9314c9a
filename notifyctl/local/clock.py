"""Clocks for the local runtime: the real one, and a controlled one that also moves moto's time."""

from __future__ import annotations

import time
from datetime import datetime, timezone
from types import TracebackType
from typing import Protocol

import time_machine


class Clock(Protocol):
    """What the runtime needs from time: read it, and let it pass."""

    def now(self) -> float:
        """Seconds since the epoch."""
        ...

    def sleep(self, seconds: float) -> None:
        """Let `seconds` pass."""
        ...


class RealClock:
    """Wall-clock time; `sleep` really sleeps."""

    def now(self) -> float:
        return time.time()

    def sleep(self, seconds: float) -> None:
        if seconds > 0:
            time.sleep(seconds)


class ControlledClock:
    """A frozen clock that only moves when told to.

    It freezes `time.time()` and `datetime.now()` process-wide with time-machine, so moto (which
    reads them for visibility timeouts, delays and metric timestamps) and the functions see the
    same time. `sleep` moves time forward at once instead of waiting.

    Use it as a context manager, or call `start()` and `stop()`.
    """

    def __init__(self, start: datetime | float | None = None) -> None:
        if start is None:
            start = datetime(2025, 1, 6, 9, 0, 0, tzinfo=timezone.utc)
        self._start = start
        self._traveller: time_machine.travel | None = None
        self._coordinates: time_machine.Traveller | None = None

    def start(self) -> ControlledClock:
        if self._coordinates is None:
            self._traveller = time_machine.travel(self._start, tick=False)
            self._coordinates = self._traveller.start()
        return self

    def stop(self) -> None:
        if self._traveller is not None:
            self._traveller.stop()
        self._traveller = None
        self._coordinates = None

    def __enter__(self) -> ControlledClock:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def now(self) -> float:
        return time.time()

    def sleep(self, seconds: float) -> None:
        self.advance(seconds)

    def advance(self, seconds: float) -> None:
        if self._coordinates is None:
            raise RuntimeError("ControlledClock is not started")
        if seconds > 0:
            self._coordinates.shift(seconds)
