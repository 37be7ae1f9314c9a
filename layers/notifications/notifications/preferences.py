"""User preferences: contact points, opt-outs, quiet hours and locale, in a DynamoDB table."""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Any, Protocol

from pydantic import BaseModel, ConfigDict, Field

from notifications.models import Channel, QuietHours

__all__ = ["ChangeStamp", "Preferences", "PreferencesStore", "QuietHours"]


class ChangeStamp(BaseModel):
    """Who changed the preferences last, when and how (the preference center writes it)."""

    model_config = ConfigDict(defer_build=True, frozen=True, extra="forbid")

    at: str  # ISO 8601, UTC
    by: str  # "user" (through a signed link) or an operator
    via: str  # one_click, page_save, page_unsubscribe_all


def pair(category: str, channel: Channel) -> str:
    """The key of one (category, channel) opt-out: ``order:email``."""
    return f"{category}:{channel.value}"


class Preferences(BaseModel):
    model_config = ConfigDict(defer_build=True, frozen=True, extra="forbid")

    user_id: str = Field(min_length=1, max_length=128)
    email: str | None = None
    phone: str | None = None  # E.164
    push_endpoints: tuple[str, ...] = ()  # SNS platform endpoint ARNs
    locale: str = "en"
    opted_out_channels: frozenset[Channel] = frozenset()
    opted_out_categories: frozenset[str] = frozenset()
    quiet_hours: QuietHours | None = None
    # Addresses that hard-bounced or complained: never mailed again.
    suppressed_emails: frozenset[str] = frozenset()
    # One category on one channel ("order:email"): the preference center's grid and one-click.
    opted_out_pairs: frozenset[str] = frozenset()
    last_change: ChangeStamp | None = None
    # Per category, the user's own channel order: the category reaches them on the first
    # channel of it they can be reached on, then falls back along it (notifications.fallback).
    channel_chains: dict[str, tuple[Channel, ...]] = Field(default_factory=dict)

    def contact(self, channel: Channel) -> tuple[str, ...]:
        """The user's contact points on a channel (webhooks are per subscription, not per user)."""
        if channel is Channel.EMAIL:
            return (self.email,) if self.email else ()
        if channel is Channel.SMS:
            return (self.phone,) if self.phone else ()
        if channel is Channel.PUSH:
            return self.push_endpoints
        return ()

    def opt_out_reason(self, channel: Channel, category: str) -> str | None:
        if channel in self.opted_out_channels:
            return f"opted_out_channel:{channel.value}"
        if category in self.opted_out_categories:
            return f"opted_out_category:{category}"
        if pair(category, channel) in self.opted_out_pairs:
            return f"opted_out_category_channel:{pair(category, channel)}"
        return None


BATCH_GET_SIZE = 100  # BatchGetItem's limit of keys per request
BATCH_GET_TRIES = 5  # requests per chunk while DynamoDB returns UnprocessedKeys
BATCH_GET_BACKOFF_SECONDS = 0.05  # doubled after each try that left keys unprocessed


class PreferencesStore(Protocol):
    def get(self, user_id: str) -> Preferences | None: ...
    def get_many(self, user_ids: Collection[str]) -> dict[str, Preferences]: ...
    def put(self, preferences: Preferences) -> None: ...


def updated(current: Preferences | None, user_id: str, changes: Mapping[str, Any]) -> Preferences:
    """``current`` (or empty preferences for ``user_id``) with ``changes`` applied and the
    result validated as a whole, so a bad value (an unknown time zone, a bad channel) fails
    with pydantic's message and nothing is written."""
    base = current.model_dump() if current is not None else {"user_id": user_id}
    return Preferences.model_validate({**base, **changes, "user_id": user_id})
