"""Domain events and the notification request that flows through the channel queues."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, time
from decimal import Decimal
from typing import Annotated, Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    field_validator,
)

# Re-exported: the enums live in notifications.kinds, which loads no validation library.
from notifications.kinds import Channel as Channel
from notifications.kinds import NotificationStatus as NotificationStatus

# Namespace of the deterministic notification ids (uuid5). Never change it: ids already in the
# ledger and in flight would stop matching their redeliveries.
NOTIFICATION_ID_NAMESPACE = uuid.UUID("6f1c3b9e-4d0a-5c2e-9b7a-1e8f2d3c4b5a")

Identifier = Annotated[str, StringConstraints(min_length=1, max_length=128, strip_whitespace=True)]
Name = Annotated[str, StringConstraints(min_length=1, max_length=256)]
CurrencyCode = Annotated[str, StringConstraints(pattern=r"^[A-Z]{3}$")]


class Money(BaseModel):
    model_config = ConfigDict(defer_build=True, frozen=True, extra="forbid")

    amount: Decimal = Field(ge=0, max_digits=18, decimal_places=4)
    currency: CurrencyCode


IdempotencyKey = Annotated[str, StringConstraints(min_length=1, max_length=255)]

# Detail fields every event type accepts besides its own (the producer contract,
# docs/producers.md); they are not part of the data the templates see.
ENVELOPE_FIELDS = frozenset({"idempotency_key", "schema_version"})


class DomainEvent(BaseModel):
    """Base of the domain events: strict about what it accepts, frozen once built."""

    model_config = ConfigDict(defer_build=True, frozen=True, extra="forbid", str_max_length=4096)

    # A producer's key for "this is the same event": notification ids derive from (source,
    # type, key) instead of EventBridge's id, so a retried publish notifies once.
    idempotency_key: IdempotencyKey | None = None
    # The catalog version of the type the producer wrote (notifications.catalog); another
    # version is rejected as unknown_event_type.
    schema_version: int = Field(default=1, ge=1)

    def data(self) -> dict[str, Any]:
        """The event's own fields as JSON values: what routing hands the templates."""
        return self.model_dump(mode="json", exclude=set(ENVELOPE_FIELDS))


class UserRegistered(DomainEvent):
    user_id: Identifier
    email: Annotated[str, StringConstraints(min_length=3, max_length=320)]
    name: Name
    registered_at: AwareDatetime
    locale: str | None = None


class OrderPlaced(DomainEvent):
    order_id: Identifier
    user_id: Identifier
    total: Money
    placed_at: AwareDatetime
    item_count: int = Field(default=1, ge=1, le=10_000)


class PaymentReceived(DomainEvent):
    payment_id: Identifier
    order_id: Identifier
    user_id: Identifier
    amount: Money
    received_at: AwareDatetime


EVENT_TYPES: dict[str, type[DomainEvent]] = {
    "UserRegistered": UserRegistered,
    "OrderPlaced": OrderPlaced,
    "PaymentReceived": PaymentReceived,
}


class EventEnvelope(BaseModel):
    """The parts of an EventBridge event the fan-out uses (``detail`` is validated later)."""

    model_config = ConfigDict(defer_build=True, frozen=True, populate_by_name=True)

    id: Identifier
    detail_type: Identifier = Field(alias="detail-type")
    source: Identifier
    time: AwareDatetime
    detail: dict[str, Any]


class AttachmentRef(BaseModel):
    """An email attachment, referenced by S3 location, never inlined into the queue message."""

    model_config = ConfigDict(defer_build=True, frozen=True, extra="forbid")

    bucket: Identifier
    key: Annotated[str, StringConstraints(min_length=1, max_length=1024)]
    filename: Name
    content_type: str = "application/octet-stream"


class QuietHours(BaseModel):
    """A daily quiet period in the user's own time zone; it may wrap past midnight.

    ``start`` is inside the period, ``end`` is not. ``start == end`` means no quiet period.
    """

    model_config = ConfigDict(defer_build=True, frozen=True, extra="forbid")

    start: time
    end: time
    timezone: str = "UTC"

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown IANA time zone {value!r}") from exc
        return value


class NotificationRequested(BaseModel):
    """One notification for one recipient on one channel: the body of a channel queue message."""

    model_config = ConfigDict(defer_build=True, frozen=True, extra="forbid")

    notification_id: str
    channel: Channel
    recipient: Annotated[str, StringConstraints(min_length=1, max_length=2048)]
    template_id: Identifier
    locale: str = "en"
    category: Identifier
    data: dict[str, Any] = Field(default_factory=dict)
    user_id: str | None = None
    event_id: Identifier
    event_type: Identifier
    correlation_id: Identifier
    occurred_at: AwareDatetime
    requested_at: AwareDatetime
    attachments: tuple[AttachmentRef, ...] = ()
    # Redrives start a fresh attempt budget but keep the id, so idempotency still holds.
    redrive_count: int = Field(default=0, ge=0)
    # Set by routing from the user's preferences and the route, so the sender never reads the
    # preferences table per message. A critical notification ignores quiet hours.
    quiet_hours: QuietHours | None = None
    critical: bool = False
    # The notification this one is the channel fallback of (notifications.fallback).
    fallback_of: str | None = None

    @field_validator("notification_id")
    @classmethod
    def _uuid(cls, value: str) -> str:
        uuid.UUID(value)
        return value


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
