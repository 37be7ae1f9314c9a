"""`notifyctl publish` and `notifyctl events`: the producer's contract from the command line.

An event is checked against the event catalog before anything is sent: an unknown type, a
source the stack does not accept and a detail that fails the schema are each one line naming
the bad value, and nothing reaches the bus.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from notifications.catalog import CATALOG, CatalogError, EventType, json_schema, lookup, schema_text
from notifications.catalog import validate_detail as catalog_validate
from notifications.models import DomainEvent
from notifications.publishing import Publisher, PublishResult
from notifyctl.target import StackTarget

SOURCES_OUTPUT = "EventSources"
SCHEMA_DIR = Path(__file__).resolve().parent.parent / "events" / "schemas"


class PublishError(ValueError):
    """The event is not one the catalog accepts; the message names the bad value."""


def accepted_sources(target: StackTarget) -> list[str]:
    """The sources the stack's rules route (template parameter EventSource)."""
    return [s for s in target.output(SOURCES_OUTPUT).split(",") if s]


def checked_event(
    event_type: str,
    detail: Any,
    source: str,
    sources: list[str],
    idempotency_key: str | None,
) -> DomainEvent:
    """The detail as its catalog model, or ``PublishError`` naming what is wrong."""
    try:
        entry = lookup(event_type)
    except CatalogError as exc:
        raise PublishError(f"unknown event type {event_type!r} (known: {_known()})") from exc
    if source not in sources:
        raise PublishError(
            f"source {source!r} is not accepted by the stack (accepted: {', '.join(sources)})"
        )
    if not isinstance(detail, dict):
        raise PublishError(f"the detail of {entry.name} must be a JSON object")
    if idempotency_key is not None:
        existing = detail.get("idempotency_key")
        if existing is not None and existing != idempotency_key:
            raise PublishError(
                f"--idempotency-key {idempotency_key!r} differs from the detail's "
                f"idempotency_key {existing!r}"
            )
        detail = {**detail, "idempotency_key": idempotency_key}
    try:
        return catalog_validate(entry.name, detail)
    except CatalogError as exc:
        raise PublishError(f"{entry.name} does not match its schema: {exc.message}") from exc


def publish_event(target: StackTarget, source: str, event: DomainEvent) -> PublishResult:
    publisher = Publisher(target.output("EventBusName"), source, events=target.client("events"))
    return publisher.publish(event)


def _known() -> str:
    return ", ".join(sorted(CATALOG))


def catalog_rows() -> list[dict[str, Any]]:
    return [
        {"name": e.name, "version": e.version, "description": e.description}
        for e in sorted(CATALOG.values(), key=lambda e: e.name)
    ]


def describe_type(event_type: str) -> Mapping[str, Any]:
    """One catalog entry: name, version, description, example detail and JSON Schema."""
    try:
        entry: EventType = lookup(event_type)
    except CatalogError as exc:
        raise PublishError(f"unknown event type {event_type!r} (known: {_known()})") from exc
    return {
        "name": entry.name,
        "version": entry.version,
        "description": entry.description,
        "example": dict(entry.example),
        "schema": json_schema(entry),
    }


def dumps(value: Any) -> str:
    return json.dumps(value, indent=2, sort_keys=False)


def write_schemas(directory: Path = SCHEMA_DIR) -> list[Path]:
    """Regenerate ``events/schemas/<Type>.json`` from the catalog (after changing a model);
    template.yaml's registry Content must then be updated to match (a test compares both)."""
    written = []
    for entry in CATALOG.values():
        path = directory / f"{entry.name}.json"
        path.write_text(schema_text(entry))
        written.append(path)
    return written
