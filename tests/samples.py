"""The one helper that loads sample events from events/."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from notifications.models import Channel, NotificationRequested, notification_id

EVENTS = Path(__file__).resolve().parent.parent / "events"


def load_event(name: str) -> Any:
    """``load_event("fan_out/user-registered.json")``: a fresh copy each call."""
    return json.loads((EVENTS / name).read_text())


SAMPLE_TIME = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)  # the controlled clock's start


def phone(n: int) -> str:
    """A valid E.164 number per user (the 415-555 range)."""
    return f"+1415555{n % 10_000:04d}"


def welcome(
    n: int,
    channel: Channel = Channel.EMAIL,
    event: str | None = None,
    at: datetime = SAMPLE_TIME,
) -> NotificationRequested:
    """A welcome notification for user ``n`` (one user each, so the per-user rate limit never
    defers it) on email or SMS, as the fan-out would enqueue it."""
    recipient = f"user{n}@example.com" if channel is Channel.EMAIL else phone(n)
    event_id = event or f"evt-{n}"
    return NotificationRequested(
        notification_id=notification_id(event_id, channel, recipient, "welcome"),
        channel=channel,
        recipient=recipient,
        template_id="welcome",
        category="account",
        data={"name": f"User {n}", "user_id": f"user-{n}"},
        user_id=f"user-{n}",
        event_id=event_id,
        event_type="UserRegistered",
        correlation_id=event_id,
        occurred_at=at,
        requested_at=at,
    )
