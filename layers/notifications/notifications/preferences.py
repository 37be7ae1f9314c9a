"""User preferences: contact points, opt-outs, quiet hours and locale, in a DynamoDB table.

``Preferences`` and ``ChangeStamp`` are checked msgspec structs (``notifications.records``):
the fan-out reads a batch's preferences on its first events, the sender and the alarm function
on a fallback or a stale endpoint, and none of them loads pydantic for it. Built in code, a
record reads its collections as pydantic did (a list or set of channel names becomes a
frozenset of ``Channel``, a list a tuple, a mapping of quiet hours ``QuietHours``); the stored
JSON document is the one the pydantic model wrote (field order, ``"22:00:00"`` times, sets as
arrays), so items written before read back unchanged.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from datetime import time
from typing import Any, ClassVar, Protocol, Self

import msgspec

from notifications.models import Channel, QuietHours
from notifications.records import Record, Text

__all__ = ["ChangeStamp", "Preferences", "PreferencesError", "PreferencesStore", "QuietHours"]


class PreferencesError(ValueError):
    """Preferences that fail their rules: the message names every bad field (``field:
    message``), never a value."""


class ChangeStamp(Record, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Who changed the preferences last, when and how (the preference center writes it)."""

    at: str  # ISO 8601, UTC
    by: str  # "user" (through a signed link) or an operator
    via: str  # one_click, page_save, page_unsubscribe_all

    _pydantic_words = True


def pair(category: str, channel: Channel) -> str:
    """The key of one (category, channel) opt-out: ``order:email``."""
    return f"{category}:{channel.value}"


def _strings(value: Any) -> Any:
    if isinstance(value, frozenset) or not isinstance(value, Iterable) or isinstance(value, str):
        return value
    return frozenset(value)


def _channels(value: Any) -> Any:
    if isinstance(value, frozenset) and all(isinstance(c, Channel) for c in value):
        return value  # decoded: nothing to read
    if isinstance(value, Iterable) and not isinstance(value, str):
        return frozenset(Channel(c) for c in value)
    return value


def _tuple(value: Any) -> Any:
    return tuple(value) if isinstance(value, list) else value


def _quiet_hours(value: Any) -> Any:
    """``QuietHours``, or a mapping of its fields (``"22:00"`` or ``"22:00:00"`` times);
    ``PreferencesError`` naming the bad part."""
    if not isinstance(value, Mapping):
        return value
    extra = [name for name in value if name not in ("start", "end", "timezone")]
    if extra:
        raise PreferencesError(
            "; ".join(f"quiet_hours.{name}: Extra inputs are not permitted" for name in extra)
        )
    try:
        parts: dict[str, Any] = {
            name: time.fromisoformat(part) if name != "timezone" and isinstance(part, str) else part
            for name, part in value.items()
        }
        return QuietHours(**parts)
    except (TypeError, ValueError) as exc:
        raise PreferencesError(f"quiet_hours: {exc}") from None


def _change_stamp(value: Any) -> Any:
    return ChangeStamp.model_validate(value) if isinstance(value, Mapping) else value


def _chains(value: Any) -> Any:
    if isinstance(value, Mapping) and value:
        return {category: tuple(Channel(c) for c in chain) for category, chain in value.items()}
    return value


class Preferences(Record, frozen=True, kw_only=True, forbid_unknown_fields=True):
    user_id: str
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
    channel_chains: dict[str, tuple[Channel, ...]] = {}

    _pydantic_words = True
    # Built in code, values are read as the JSON decoder reads them (see the module's doc).
    _rules: ClassVar[Mapping[str, Any]] = {
        "user_id": Text(1, 128),
        "push_endpoints": _tuple,
        "opted_out_channels": _channels,
        "opted_out_categories": _strings,
        "quiet_hours": _quiet_hours,
        "suppressed_emails": _strings,
        "opted_out_pairs": _strings,
        "last_change": _change_stamp,
        "channel_chains": _chains,
    }

    @classmethod
    def model_validate_json(cls, data: str | bytes) -> Self:
        """A stored document; one whose quiet hours have ``"22:00"`` times (not msgspec's
        RFC 3339 ``"22:00:00"``, but what pydantic read) takes the slower path through
        ``model_validate``. ``PreferencesError`` naming every bad field."""
        try:
            return msgspec.json.decode(data, type=cls)
        except msgspec.ValidationError:
            return cls.model_validate(msgspec.json.decode(data))

    @classmethod
    def model_validate(cls, obj: object) -> Self:
        """From a mapping of Python or JSON values (quiet hours as ``QuietHours`` or a mapping
        with ``"22:00"`` times); ``PreferencesError`` naming every bad field."""
        if isinstance(obj, Mapping) and isinstance(obj.get("quiet_hours"), Mapping):
            obj = {**obj, "quiet_hours": _quiet_hours(obj["quiet_hours"])}
        try:
            return msgspec.convert(obj, type=cls)
        except msgspec.ValidationError as exc:
            raw = msgspec.to_builtins(obj) if isinstance(obj, Mapping) else obj
            problems = cls.problems(raw) or [f"(root): {exc}"]
            raise PreferencesError("; ".join(problems)) from None

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
    with ``PreferencesError`` naming the field, and nothing is written."""
    base = current.model_dump() if current is not None else {"user_id": user_id}
    return Preferences.model_validate({**base, **changes, "user_id": user_id})
