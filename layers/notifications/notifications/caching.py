"""A small per-instance cache whose entries expire a fixed time after they were loaded.

Lambda keeps a function instance warm between invocations, so a value read from DynamoDB or
Secrets Manager can serve the invocations of the next minute instead of costing a request
each. Every user of it accepts that a change takes effect within ``ttl_seconds``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class TtlCache(Generic[K, V]):
    def __init__(
        self, ttl_seconds: float = 60.0, monotonic: Callable[[], float] = time.monotonic
    ) -> None:
        self.ttl_seconds = ttl_seconds
        self.monotonic = monotonic
        self._entries: dict[K, tuple[float, V]] = {}

    def get(self, key: K, load: Callable[[], V]) -> V:
        """The cached value, or ``load()``'s (cached from now) when missing or expired."""
        now = self.monotonic()
        entry = self._entries.get(key)
        if entry is None or now - entry[0] >= self.ttl_seconds:
            entry = (now, load())
            self._entries[key] = entry
        return entry[1]

    def evict(self, key: K) -> None:
        self._entries.pop(key, None)
