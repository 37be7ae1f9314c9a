"""The domain events producers publish, and the EventBridge envelope the fan-out reads.

pydantic models: the fan-out validates each event against them (``notifications.catalog``),
and the catalog's JSON Schemas (``events/schemas/``) are generated from them. Only the
fan-out, the publisher and the tools load this module; ``notifications.models`` re-exports
its names for code that imports them from there.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated, Any

from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
)

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
