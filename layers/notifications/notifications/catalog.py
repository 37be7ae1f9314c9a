"""The event catalog: the one source of truth for each domain event type a producer may publish.

Each entry names the type (the EventBridge ``detail-type``), its version, the model (a checked
msgspec struct, ``notifications.events``) its ``detail`` must satisfy, a description and an
example detail. ``json_schema`` turns an entry into the JSON Schema (draft 4, the dialect the
EventBridge schema registry takes) of the whole EventBridge event: the structure from
msgspec's schema, the constraints from the models' field rules, titles and dialect as
pydantic wrote them before, so the files stayed byte for byte the same;
``events/schemas/<Type>.json`` and template.yaml's registry hold that text, and a test
regenerates it and compares (docs/producers.md).
"""

from __future__ import annotations

import json
import typing
from collections.abc import Collection, Mapping
from datetime import datetime
from typing import Any

import msgspec

from notifications.events import DomainEvent, OrderPlaced, PaymentReceived, UserRegistered
from notifications.records import Amount, Record, Rule

SCHEMA_DIALECT = "http://json-schema.org/draft-04/schema#"
MAX_ERROR_LENGTH = 1000


class EventType(msgspec.Struct, frozen=True):
    name: str
    version: int
    model: type[DomainEvent]
    description: str
    example: Mapping[str, Any] = msgspec.field(default_factory=dict)


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
    except msgspec.ValidationError as exc:
        # (never msgspec's own text as a fallback: it may quote a value)
        problems = entry.model.problems(dict(detail), "detail") or ["detail: Invalid input"]
        raise CatalogError("invalid_event", describe(problems)) from exc


def describe(problems: list[str]) -> str:
    """A report of ``path: message`` problems (``Record.problems``: field paths and messages
    only, input values may hold personal data or be huge), cut to ``MAX_ERROR_LENGTH``."""
    return "; ".join(problems)[:MAX_ERROR_LENGTH]


def json_schema(entry: EventType) -> dict[str, Any]:
    """The JSON Schema (draft 4) of a whole EventBridge event of this type."""
    _, components = msgspec.json.schema_components(
        (entry.model,), ref_template="#/definitions/{name}"
    )
    definitions = {
        name: _with_rules(_record(entry.model, name), schema) for name, schema in components.items()
    }
    version = definitions[entry.name]["properties"]["schema_version"]
    version.pop("minimum", None)
    version["enum"] = [entry.version]
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


def _record(model: type[Record], name: str) -> type[Record]:
    """The record class named ``name``: the model or one of its parts."""
    found = _parts(model).get(name)
    if found is None:
        raise LookupError(name)
    return found


def _parts(model: type[Record]) -> dict[str, type[Record]]:
    """The model and the records among its fields (and theirs), by class name."""
    parts = {model.__name__: model}
    for part in msgspec.structs.fields(model):
        if isinstance(part.type, type) and issubclass(part.type, Record):
            parts |= _parts(part.type)
    return parts


def _with_rules(record: type[Record], schema: dict[str, Any]) -> dict[str, Any]:
    """msgspec's schema of ``record`` with each field's title (pydantic's: ``user_id`` ->
    ``User Id``), its rule's keywords and ``date-time`` formats: the schema as pydantic
    generated it."""
    for part in msgspec.structs.fields(record):
        prop = schema["properties"][part.encode_name]
        if "$ref" in prop:
            continue
        rule = record._rules.get(part.name)
        if isinstance(rule, Amount):
            prop.clear()
            prop.update(rule.schema())
        else:
            # a nullable field's constraints go to its non-null branch, as pydantic's did
            target = prop["anyOf"][0] if "anyOf" in prop else prop
            if datetime in (part.type, *typing.get_args(part.type)):
                target["format"] = "date-time"
            if isinstance(rule, Rule):
                target.update(rule.schema())
        prop["title"] = part.name.replace("_", " ").title()
    return schema


def schema_text(entry: EventType) -> str:
    """The schema as the repository and the template store it: stable, key-sorted JSON."""
    return json.dumps(json_schema(entry), indent=2, sort_keys=True) + "\n"
