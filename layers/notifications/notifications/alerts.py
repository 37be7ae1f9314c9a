"""SNS adapter for admin alerts."""

from __future__ import annotations

from typing import Protocol


class Alerts(Protocol):
    def publish(self, subject: str, message: str) -> str: ...
