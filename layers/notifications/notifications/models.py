"""The notification request that flows through the channel queues, and its parts.

``NotificationRequested`` (and ``AttachmentRef``) are checked msgspec structs
(``notifications.records``), ``QuietHours`` a frozen dataclass (also a field of
``Preferences``). The sender parses one request per message and every function but the breaker
check handles them, so this module loads no pydantic: pydantic's import and model building
were the largest share of a cold start after boto3's (docs/performance.md, "Cold start"), and
msgspec decodes a request about five times faster. The rules are the ones the pydantic model
had, checked in ``__post_init__`` (so building a request in code checks them too):
identifiers 1-128 characters after stripping, a UUID ``notification_id``, a recipient of
1-2048 characters, time-zone-aware timestamps, ``redrive_count`` >= 0, no unknown fields.
``parse_request`` (``notifications.contracts``) names every bad field of a bad body.

The pydantic-style methods (``model_validate_json``, ``model_dump_json``, ``model_copy``, ...)
stay, so callers and tests read as before. The domain events live in ``notifications.events``
(the catalog's schemas come from them); their names are re-exported here on first use.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, time
from typing import Any, ClassVar

# Re-exported: the enums live in notifications.kinds, which loads no validation library.
from notifications.kinds import Channel as Channel
from notifications.kinds import NotificationStatus as NotificationStatus
from notifications.records import Integer, Record, Text, as_tuple, aware, valid_uuid

# Namespace of the deterministic notification ids (uuid5). Never change it: ids already in the
# ledger and in flight would stop matching their redeliveries.
NOTIFICATION_ID_NAMESPACE = uuid.UUID("6f1c3b9e-4d0a-5c2e-9b7a-1e8f2d3c4b5a")

# Names of notifications.events, importable from here as before (loaded on first use).
_EVENT_NAMES = frozenset(
    {
        "ENVELOPE_FIELDS",
        "CurrencyCode",
        "DomainEvent",
        "EVENT_TYPES",
        "EventEnvelope",
        "IdempotencyKey",
        "Identifier",
        "Money",
        "Name",
        "OrderPlaced",
        "PaymentReceived",
        "UserRegistered",
    }
)


def __getattr__(name: str) -> Any:
    if name in _EVENT_NAMES:
        from notifications import events

        return getattr(events, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


# ---------------------------------------------------------------------------- field rules
# Each rule takes a field's value and returns it (normalised) or raises ValueError with the
# message a bad body's report shows for that field (notifications.records).

_identifier = Text(1, 128, strip=True)


def _channel(value: Any) -> Any:
    try:
        return Channel(value)
    except ValueError:
        allowed = ", ".join(repr(c.value) for c in Channel)
        raise ValueError(f"Input should be one of {allowed}") from None


class AttachmentRef(Record, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """An email attachment, referenced by S3 location, never inlined into the queue message."""

    bucket: str
    key: str
    filename: str
    content_type: str = "application/octet-stream"

    _rules: ClassVar[Mapping[str, Callable[[Any], Any]]] = {
        "bucket": _identifier,
        "key": Text(1, 1024),
        "filename": Text(1, 256),
    }


@dataclass(frozen=True)
class QuietHours:
    """A daily quiet period in the user's own time zone; it may wrap past midnight.

    ``start`` is inside the period, ``end`` is not. ``start == end`` means no quiet period.
    """

    start: time
    end: time
    timezone: str = "UTC"

    def __post_init__(self) -> None:
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError  # on first use (cold start)

        try:
            ZoneInfo(self.timezone)
        except (ZoneInfoNotFoundError, ValueError, TypeError) as exc:
            raise ValueError(f"unknown IANA time zone {self.timezone!r}") from exc


class NotificationRequested(Record, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """One notification for one recipient on one channel: the body of a channel queue message."""

    notification_id: str
    channel: Channel
    recipient: str
    template_id: str
    locale: str = "en"
    category: str
    data: dict[str, Any] = {}
    user_id: str | None = None
    event_id: str
    event_type: str
    correlation_id: str
    occurred_at: datetime
    requested_at: datetime
    attachments: tuple[AttachmentRef, ...] = ()
    # Redrives start a fresh attempt budget but keep the id, so idempotency still holds.
    redrive_count: int = 0
    # Set by routing from the user's preferences and the route, so the sender never reads the
    # preferences table per message. A critical notification ignores quiet hours.
    quiet_hours: QuietHours | None = None
    critical: bool = False
    # The notification this one is the channel fallback of (notifications.fallback).
    fallback_of: str | None = None
    # The ids of the other notifications of the same event to the same user on the same
    # channel (a user with several push endpoints or phone numbers): the channel falls back
    # only when none of them reached the user (notifications.fallback).
    siblings: tuple[str, ...] = ()
    # Set by routing when a permanent bounce of this email or SMS would fall back to another
    # channel: the sender keeps the request on its ledger record until the delivery feedback
    # arrives, so the feedback function can build the successor (notifications.feedback).
    keep_for_fallback: bool = False

    _rules: ClassVar[Mapping[str, Callable[[Any], Any]]] = {
        "notification_id": valid_uuid,
        "channel": _channel,
        "recipient": Text(1, 2048),
        "template_id": _identifier,
        "category": _identifier,
        "event_id": _identifier,
        "event_type": _identifier,
        "correlation_id": _identifier,
        "occurred_at": aware,
        "requested_at": aware,
        "attachments": as_tuple,
        "redrive_count": Integer(ge=0),
    }


def event_identity(event_id: str, source: str, event_type: str, idempotency_key: str | None) -> str:
    """What notification ids derive from: the producer's idempotency key scoped by (source,
    type) when the event carries one, so every publish of it maps to the same ids; else
    EventBridge's event id (each publish a new event)."""
    if idempotency_key is None:
        return event_id
    name = "\x1f".join(("idempotency_key", source, event_type, idempotency_key))
    return f"key:{uuid.uuid5(NOTIFICATION_ID_NAMESPACE, name)}"


def notification_id(event_id: str, channel: Channel, recipient: str, template_id: str) -> str:
    """Deterministic id: the same event, channel, recipient and template always give the same id."""
    name = "\x1f".join((event_id, channel.value, recipient, template_id))
    return str(uuid.uuid5(NOTIFICATION_ID_NAMESPACE, name))


def utc_iso(moment: datetime) -> str:
    """ISO 8601 in UTC with milliseconds, the one timestamp format of the ledger."""
    return moment.astimezone(UTC).isoformat(timespec="milliseconds")
