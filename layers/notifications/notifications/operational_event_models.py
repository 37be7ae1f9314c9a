"""The operational events' details as checked msgspec structs (``notifications.records``):
their documented JSON schemas (``events/schemas/operational/<Type>.json``) are generated from
these (``schema_text``): the structure, descriptions and defaults from msgspec's schema, the
constraints from the field rules, titles as pydantic wrote them when these were pydantic
models, so the files stayed byte for byte the same. Imported only when an event is put (rare)
or a schema is generated; the layer ships no pydantic (docs/performance.md, "Package size").
"""

from __future__ import annotations

import inspect
import json
from collections.abc import Callable, Mapping
from typing import Annotated, Any, ClassVar

import msgspec

from notifications.records import Integer, Record, Rule

OPERATIONS_SOURCE = "notifications.platform"


def _described(text: str) -> msgspec.Meta:
    return msgspec.Meta(description=text)


class _Detail(Record, frozen=True, kw_only=True, forbid_unknown_fields=True):
    schema_version: Annotated[int, _described("Bumped on an incompatible change.")] = 1


class WebhookEndpointDisabled(_Detail, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """A webhook endpoint failed continuously for WebhookDisableAfterHours and was disabled;
    its notifications are kept as ENDPOINT_DISABLED until `notifyctl webhooks enable` and
    `notifyctl webhooks replay`."""

    _rules: ClassVar[Mapping[str, Callable[[Any], Any]]] = {"consecutive_failures": Integer(ge=1)}

    subscription_id: str
    failing_since: Annotated[str, _described("ISO 8601 UTC: the first failure of the period.")]
    disabled_at: Annotated[str, _described("ISO 8601 UTC.")]
    consecutive_failures: int
    last_reason: Annotated[str | None, _described("The last failure's reason code.")]


class WebhookEndpointRecovered(_Detail, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """The first successful delivery to a webhook endpoint after a failing period."""

    _rules: ClassVar[Mapping[str, Callable[[Any], Any]]] = {"consecutive_failures": Integer(ge=1)}

    subscription_id: str
    failing_since: Annotated[str | None, _described("ISO 8601 UTC: the period's first failure.")]
    recovered_at: Annotated[str, _described("ISO 8601 UTC.")]
    consecutive_failures: Annotated[int, _described("Failures in the period.")]


class NotificationDeadLettered(_Detail, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """A notification of any channel reached NotificationsDLQ (recorded DEAD_LETTERED)."""

    _rules: ClassVar[Mapping[str, Callable[[Any], Any]]] = {"attempts": Integer(ge=0)}

    notification_id: str
    channel: str | None
    reason: Annotated[str, _described("The failure's reason code (e.g. provider_unavailable).")]
    failure_class: Annotated[str, _described("permanent | exhausted")]
    attempts: Annotated[int, _described("Provider attempts the ledger counted.")]
    event_type: Annotated[str | None, _described("The domain event it came from.")]
    subscription_id: Annotated[str | None, _described("Webhooks only: the endpoint.")]
    dead_lettered_at: Annotated[str, _described("ISO 8601 UTC.")]


OPERATIONAL_EVENTS: dict[str, type[_Detail]] = {
    model.__name__: model
    for model in (WebhookEndpointDisabled, WebhookEndpointRecovered, NotificationDeadLettered)
}


def detail_schema(model: type[_Detail]) -> dict[str, Any]:
    """msgspec's schema of ``model`` with each field's title (``subscription_id`` ->
    ``Subscription Id``) and its rule's keywords (``minimum``), as pydantic generated it."""
    _, components = msgspec.json.schema_components((model,))
    schema: dict[str, Any] = components[model.__name__]
    # the docstring as pydantic cleaned it (msgspec before 0.23 left Python 3.11's indentation)
    schema["description"] = inspect.cleandoc(model.__doc__ or "")
    for field in msgspec.structs.fields(model):
        prop = schema["properties"][field.encode_name]
        rule = model._rules.get(field.name)
        if isinstance(rule, Rule):
            prop.update(rule.schema())
        prop["title"] = field.name.replace("_", " ").title()
    return schema


def json_schema(detail_type: str) -> dict[str, Any]:
    """The documented JSON schema of one operational event (the whole EventBridge event)."""
    model = OPERATIONAL_EVENTS[detail_type]
    return {
        "$schema": "http://json-schema.org/draft-04/schema#",
        "title": detail_type,
        "description": " ".join((model.__doc__ or "").split()),
        "type": "object",
        "required": ["source", "detail-type", "detail"],
        "properties": {
            "source": {"enum": [OPERATIONS_SOURCE]},
            "detail-type": {"enum": [detail_type]},
            "detail": detail_schema(model),
        },
    }


def schema_text(detail_type: str) -> str:
    """``events/schemas/operational/<Type>.json``'s content."""
    return json.dumps(json_schema(detail_type), indent=2, sort_keys=True) + "\n"
