"""The notification request that flows through the channel queues, and its parts.

``NotificationRequested`` (and ``AttachmentRef``) are msgspec structs, ``QuietHours`` a frozen
dataclass (it is also a field of the pydantic ``Preferences``; both libraries take
dataclasses). The sender parses one request per message and every function but the breaker
check handles them, so this module loads no pydantic: pydantic's import and model building
were the largest share of a cold start after boto3's (docs/performance.md, "Cold start"), and
msgspec decodes a request about five times faster. The rules are the ones the pydantic model
had, checked in ``__post_init__`` (so building a request in code checks them too):
identifiers 1-128 characters after stripping, a UUID ``notification_id``, a recipient of
1-2048 characters, time-zone-aware timestamps, ``redrive_count`` >= 0, no unknown fields.
``parse_request`` (``notifications.contracts``) names every bad field of a bad body.

The pydantic-style methods (``model_validate_json``, ``model_dump_json``, ``model_copy``, ...)
stay, so callers and tests read as before. The domain events live in ``notifications.events``
(pydantic: the catalog's schemas come from them); their names are re-exported here on first
use.
"""

from __future__ import annotations

import copy
import re
import uuid
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, is_dataclass
from datetime import UTC, datetime, time
from typing import Any, ClassVar, Literal, Self
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import msgspec

# Re-exported: the enums live in notifications.kinds, which loads no validation library.
from notifications.kinds import Channel as Channel
from notifications.kinds import NotificationStatus as NotificationStatus

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


_ENUM_VALUE = re.compile(r"Invalid enum value .*?(?= - at `|$)")

# ---------------------------------------------------------------------------- field rules
# Each rule takes a field's value and returns it (normalised) or raises ValueError with the
# message a bad body's report shows for that field.


def _text(low: int, high: int, strip: bool = False) -> Callable[[Any], Any]:
    def rule(value: Any) -> Any:
        if not isinstance(value, str):
            raise ValueError("Input should be a valid string")
        if strip:
            value = value.strip()
        if len(value) < low:
            raise ValueError(f"String should have at least {low} character{'s' * (low != 1)}")
        if len(value) > high:
            raise ValueError(f"String should have at most {high} characters")
        return value

    return rule


_identifier = _text(1, 128, strip=True)


def _uuid(value: Any) -> Any:
    try:
        uuid.UUID(value)
    except (TypeError, ValueError, AttributeError):
        raise ValueError("Input should be a valid UUID") from None
    return value


def _channel(value: Any) -> Any:
    try:
        return Channel(value)
    except ValueError:
        allowed = ", ".join(repr(c.value) for c in Channel)
        raise ValueError(f"Input should be one of {allowed}") from None


def _aware(value: Any) -> Any:
    if not isinstance(value, datetime):
        raise ValueError("Input should be a valid datetime")
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError("Input should have timezone info")
    return value


def _not_negative(value: Any) -> Any:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError("Input should be a valid integer")
    if value < 0:
        raise ValueError("Input should be greater than or equal to 0")
    return value


def _tuple(value: Any) -> Any:
    return tuple(value) if isinstance(value, list) else value


class _Record(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """A queue-borne record: checked on construction and decoding, with the pydantic-style
    methods the rest of the code base calls."""

    _rules: ClassVar[Mapping[str, Callable[[Any], Any]]] = {}

    def __post_init__(self) -> None:
        problems = []
        for name, rule in self._rules.items():
            value = getattr(self, name)
            try:
                checked = rule(value)
            except ValueError as exc:
                problems.append(f"{name}: {exc}")
                continue
            if checked is not value:
                msgspec.structs.force_setattr(self, name, checked)
        if problems:
            raise ValueError("; ".join(problems))

    @classmethod
    def problems(cls, raw: object) -> list[str]:
        """Every bad field of ``raw`` (decoded JSON) as ``field: message``; empty when
        ``raw`` is one of these."""
        if not isinstance(raw, dict):
            return ["(root): Input should be an object"]
        found = []
        fields = msgspec.structs.fields(cls)
        for field in fields:
            if field.encode_name not in raw:
                if field.required:
                    found.append(f"{field.name}: Field required")
                continue
            try:
                value = msgspec.convert(raw[field.encode_name], field.type)
                rule = cls._rules.get(field.name)
                if rule is not None:
                    rule(value)
            except (msgspec.ValidationError, ValueError) as exc:
                # msgspec names a bad enum value; a report never carries values
                found.append(f"{field.name}: {_ENUM_VALUE.sub('Invalid enum value', str(exc))}")
        known = {field.encode_name for field in fields}
        found += [f"{name}: Extra inputs are not permitted" for name in raw if name not in known]
        return found

    @classmethod
    def model_validate_json(cls, data: str | bytes) -> Self:
        """Decode and check a JSON body (``msgspec.ValidationError`` or
        ``msgspec.DecodeError`` otherwise)."""
        return msgspec.json.decode(data, type=cls)

    @classmethod
    def model_validate(cls, obj: object) -> Self:
        """From a mapping of Python or JSON values, checked."""
        return msgspec.convert(obj, type=cls)

    def model_dump(
        self, *, mode: Literal["python", "json"] = "python", exclude: set[str] | None = None
    ) -> dict[str, Any]:
        """The fields as a dict: Python values (parts as dicts) or JSON values."""
        dumped: dict[str, Any] = msgspec.to_builtins(self) if mode == "json" else _python(self)
        return {k: v for k, v in dumped.items() if not exclude or k not in exclude}

    def model_dump_json(self) -> str:
        return msgspec.json.encode(self).decode()

    def model_copy(self, *, update: Mapping[str, Any] | None = None) -> Self:
        """A copy with ``update`` applied, not checked again (as pydantic's ``model_copy``)."""
        duplicate = copy.copy(self)
        for name, value in (update or {}).items():
            if name not in self.__struct_fields__:
                raise AttributeError(f"{type(self).__name__} has no field {name!r}")
            msgspec.structs.force_setattr(duplicate, name, value)
        return duplicate


def _python(value: Any) -> Any:
    """A record as a dict of Python values, its parts (records, dataclasses) as dicts too."""
    if isinstance(value, _Record):
        return {name: _python(getattr(value, name)) for name in value.__struct_fields__}
    if is_dataclass(value) and not isinstance(value, type):
        return asdict(value)
    if isinstance(value, tuple):
        return tuple(_python(item) for item in value)
    return value


class AttachmentRef(_Record, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """An email attachment, referenced by S3 location, never inlined into the queue message."""

    bucket: str
    key: str
    filename: str
    content_type: str = "application/octet-stream"

    _rules: ClassVar[Mapping[str, Callable[[Any], Any]]] = {
        "bucket": _identifier,
        "key": _text(1, 1024),
        "filename": _text(1, 256),
    }


@dataclass(frozen=True)
class QuietHours:
    """A daily quiet period in the user's own time zone; it may wrap past midnight.

    ``start`` is inside the period, ``end`` is not. ``start == end`` means no quiet period.
    """

    # pydantic (Preferences) refuses unknown keys, as it did when this was a pydantic model
    __pydantic_config__: ClassVar[dict[str, str]] = {"extra": "forbid"}

    start: time
    end: time
    timezone: str = "UTC"

    def __post_init__(self) -> None:
        try:
            ZoneInfo(self.timezone)
        except (ZoneInfoNotFoundError, ValueError, TypeError) as exc:
            raise ValueError(f"unknown IANA time zone {self.timezone!r}") from exc


class NotificationRequested(_Record, frozen=True, kw_only=True, forbid_unknown_fields=True):
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
        "notification_id": _uuid,
        "channel": _channel,
        "recipient": _text(1, 2048),
        "template_id": _identifier,
        "category": _identifier,
        "event_id": _identifier,
        "event_type": _identifier,
        "correlation_id": _identifier,
        "occurred_at": _aware,
        "requested_at": _aware,
        "attachments": _tuple,
        "redrive_count": _not_negative,
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
