"""The event catalog: the one source of truth for each domain event type a producer may publish.

Each entry names the type (the EventBridge ``detail-type``), its version, the pydantic model
its ``detail`` must satisfy, a description and an example detail. ``json_schema`` turns an
entry into the JSON Schema (draft 4, the dialect the EventBridge schema registry takes) of the
whole EventBridge event; ``events/schemas/<Type>.json`` and template.yaml's registry hold that
text, and a test regenerates it and compares (docs/producers.md).
"""

from __future__ import annotations

import json
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from notifications.events import DomainEvent, OrderPlaced, PaymentReceived, UserRegistered

SCHEMA_DIALECT = "http://json-schema.org/draft-04/schema#"
MAX_ERROR_LENGTH = 1000


@dataclass(frozen=True)
class EventType:
    name: str
    version: int
    model: type[DomainEvent]
    description: str
    example: Mapping[str, Any] = field(default_factory=dict)


CATALOG: Mapping[str, EventType] = {
    entry.name: entry
    for entry in (
        EventType(
            name="UserRegistered",
            version=1,
            model=UserRegistered,
            description="A user signed up: sends the welcome email to the address they gave.",
            example={
                "user_id": "user-123",
                "email": "alice@example.com",
                "name": "Alice",
                "registered_at": "2026-11-28T12:00:00Z",
                "locale": "en",
            },
        ),
        EventType(
            name="OrderPlaced",
            version=1,
            model=OrderPlaced,
            description=(
                "A user placed an order: order confirmation by email, SMS and push, and to "
                "webhook subscribers."
            ),
            example={
                "order_id": "order-1001",
                "user_id": "user-123",
                "total": {"amount": "42.50", "currency": "EUR"},
                "item_count": 2,
                "placed_at": "2026-11-28T12:05:00Z",
            },
        ),
        EventType(
            name="PaymentReceived",
            version=1,
            model=PaymentReceived,
            description=(
                "A payment for an order arrived: receipt by email, SMS and push (critical: "
                "ignores quiet hours), and to webhook subscribers."
            ),
            example={
                "payment_id": "pay-1001",
                "order_id": "order-1001",
                "user_id": "user-123",
                "amount": {"amount": "42.50", "currency": "EUR"},
                "received_at": "2026-11-28T12:06:00Z",
            },
        ),
    )
}


class CatalogError(ValueError):
    """An event the catalog does not accept; ``reason`` is the machine code, ``message`` names
    the field (never its value: values may hold personal data)."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


def lookup(event_type: str) -> EventType:
    entry = CATALOG.get(event_type)
    if entry is None:
        raise CatalogError(
            "unknown_event_type",
            f"detail-type {event_type[:100]!r} is not in the event catalog "
            f"(known: {', '.join(sorted(CATALOG))})",
        )
    return entry


def check_source(source: str, accepted: Collection[str]) -> None:
    if source not in accepted:
        raise CatalogError(
            "unknown_source",
            f"source {source[:100]!r} is not an accepted event source "
            f"(accepted: {', '.join(sorted(accepted))})",
        )


def validate_detail(event_type: str, detail: Mapping[str, Any]) -> DomainEvent:
    """The ``detail`` of an event of ``event_type`` as its model; ``CatalogError`` with reason
    ``unknown_event_type`` (type or version not in the catalog) or ``invalid_event`` (every
    bad field, as ``detail.<path>: <message>``)."""
    entry = lookup(event_type)
    version = detail.get("schema_version", entry.version)
    if version != entry.version:
        raise CatalogError(
            "unknown_event_type",
            f"{entry.name} schema_version {str(version)[:20]} is not in the event catalog "
            f"(known: {entry.version})",
        )
    try:
        return entry.model.model_validate(detail)
    except ValidationError as exc:
        raise CatalogError("invalid_event", describe(exc, prefix="detail.")) from exc


def describe(exc: ValidationError, prefix: str) -> str:
    """Field paths and messages only: input values may hold personal data or be huge."""
    text = "; ".join(
        f"{prefix}{'.'.join(str(p) for p in err['loc']) or '(root)'}: {err['msg']}"
        for err in exc.errors(include_url=False, include_input=False)
    )
    return text[:MAX_ERROR_LENGTH]


def json_schema(entry: EventType) -> dict[str, Any]:
    """The JSON Schema (draft 4) of a whole EventBridge event of this type."""
    generated = entry.model.model_json_schema(ref_template="#/definitions/{model}")
    definitions: dict[str, Any] = generated.pop("$defs", {})
    version = generated["properties"]["schema_version"]
    version.pop("minimum", None)
    version["enum"] = [entry.version]
    definitions[entry.name] = generated
    return {
        "$schema": SCHEMA_DIALECT,
        "title": entry.name,
        "description": entry.description,
        "x-version": entry.version,
        "type": "object",
        "required": ["source", "detail-type", "detail"],
        "properties": {
            "source": {"type": "string", "minLength": 1},
            "detail-type": {"type": "string", "enum": [entry.name]},
            "detail": {"$ref": f"#/definitions/{entry.name}"},
        },
        "definitions": dict(sorted(definitions.items())),
    }


def schema_text(entry: EventType) -> str:
    """The schema as the repository and the template store it: stable, key-sorted JSON."""
    return json.dumps(json_schema(entry), indent=2, sort_keys=True) + "\n"
