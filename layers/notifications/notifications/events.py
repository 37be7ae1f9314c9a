"""The domain events producers publish, and the EventBridge envelope the fan-out reads.

Checked msgspec structs (``notifications.records``): the fan-out validates each event against
them (``notifications.catalog``), and the catalog's JSON Schemas (``events/schemas/``) are
generated from them. They keep the rules of the pydantic models they replace (identifiers of
1-128 characters after stripping surrounding whitespace, amounts >= 0 with at most 18 digits
and 4 decimal places, three-letter upper-case currencies, time-zone-aware timestamps, no
unknown fields, every string at most 4096 characters, frozen) and pydantic's lax reading of a
producer's JSON (``"2"`` for an integer, a Unix time for a timestamp), so a producer sees no
difference; the fan-out loads no pydantic, at its cold start or for its first events
(docs/performance.md, "Cold start"). ``notifications.models`` re-exports these names for code
that imports them from there.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime
from decimal import Decimal
from typing import Any, ClassVar

import msgspec

from notifications.records import Amount, Integer, Optional, Record, Rule, Text, aware

Identifier = Text(1, 128, strip=True)
Name = Text(1, 256)
CurrencyCode = Text(pattern=r"^[A-Z]{3}$")
IdempotencyKey = Text(1, 255)

# Detail fields every event type accepts besides its own (the producer contract,
# docs/producers.md); they are not part of the data the templates see.
ENVELOPE_FIELDS = frozenset({"idempotency_key", "schema_version"})


class _Part(Rule):
    """A field holding a record: a mapping (a producer's code, a JSON object) is read as one."""

    def __init__(self, record: type[Record]) -> None:
        self.record = record

    def __call__(self, value: Any) -> Any:
        if isinstance(value, self.record):
            return value
        try:
            return self.record.model_validate(value)
        except msgspec.ValidationError:
            raise ValueError("; ".join(self.record.problems(value))) from None


class Money(Record, frozen=True, kw_only=True, forbid_unknown_fields=True):
    amount: Decimal
    currency: str

    _lax = True
    _pydantic_words = True
    _rules: ClassVar[Mapping[str, Callable[[Any], Any]]] = {
        "amount": Amount(ge=0, max_digits=18, places=4),
        "currency": CurrencyCode,
    }


class DomainEvent(Record, frozen=True, kw_only=True, forbid_unknown_fields=True):
    # Base of the domain events: strict about what it accepts, frozen once built. (A comment,
    # not a docstring: a docstring would be the schema's description, as with pydantic.)

    # A producer's key for "this is the same event": notification ids derive from (source,
    # type, key) instead of EventBridge's id, so a retried publish notifies once.
    idempotency_key: str | None = None
    # The catalog version of the type the producer wrote (notifications.catalog); another
    # version is rejected as unknown_event_type.
    schema_version: int = 1

    _lax = True
    _pydantic_words = True
    _str_max_length = 4096
    _rules: ClassVar[Mapping[str, Callable[[Any], Any]]] = {
        "idempotency_key": Optional(IdempotencyKey),
        "schema_version": Integer(ge=1),
    }

    def data(self) -> dict[str, Any]:
        """The event's own fields as JSON values: what routing hands the templates."""
        return self.model_dump(mode="json", exclude=set(ENVELOPE_FIELDS))


class UserRegistered(DomainEvent, frozen=True, kw_only=True, forbid_unknown_fields=True):
    user_id: str
    email: str
    name: str
    registered_at: datetime
    locale: str | None = None

    _rules: ClassVar[Mapping[str, Callable[[Any], Any]]] = {
        **DomainEvent._rules,
        "user_id": Identifier,
        "email": Text(3, 320),
        "name": Name,
        "registered_at": aware,
    }


class OrderPlaced(DomainEvent, frozen=True, kw_only=True, forbid_unknown_fields=True):
    order_id: str
    user_id: str
    total: Money
    placed_at: datetime
    item_count: int = 1

    _rules: ClassVar[Mapping[str, Callable[[Any], Any]]] = {
        **DomainEvent._rules,
        "order_id": Identifier,
        "user_id": Identifier,
        "total": _Part(Money),
        "placed_at": aware,
        "item_count": Integer(ge=1, le=10_000),
    }


class PaymentReceived(DomainEvent, frozen=True, kw_only=True, forbid_unknown_fields=True):
    payment_id: str
    order_id: str
    user_id: str
    amount: Money
    received_at: datetime

    _rules: ClassVar[Mapping[str, Callable[[Any], Any]]] = {
        **DomainEvent._rules,
        "payment_id": Identifier,
        "order_id": Identifier,
        "user_id": Identifier,
        "amount": _Part(Money),
        "received_at": aware,
    }


EVENT_TYPES: dict[str, type[DomainEvent]] = {
    "UserRegistered": UserRegistered,
    "OrderPlaced": OrderPlaced,
    "PaymentReceived": PaymentReceived,
}


class EventEnvelope(Record, frozen=True, kw_only=True, forbid_unknown_fields=False):
    """The parts of an EventBridge event the fan-out uses (``detail`` is validated later);
    EventBridge's other fields (``version``, ``account``, ``region``, ``resources``) are
    ignored."""

    id: str
    detail_type: str = msgspec.field(name="detail-type")
    source: str
    time: datetime
    detail: dict[str, Any]

    _lax = True
    _pydantic_words = True
    _rules: ClassVar[Mapping[str, Callable[[Any], Any]]] = {
        "id": Identifier,
        "detail_type": Identifier,
        "source": Identifier,
        "time": aware,
    }
