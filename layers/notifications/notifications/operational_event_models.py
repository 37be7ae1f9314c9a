"""The operational events' details as pydantic models: their documented JSON schemas
(``events/schemas/operational/<Type>.json``) are generated from these (``schema_text``).
Imported only when an event is put (rare) or a schema is generated: pydantic stays out of
the functions' cold start (docs/performance.md, "Cold start")."""

from __future__ import annotations

import json
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

OPERATIONS_SOURCE = "notifications.platform"


class _Detail(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    schema_version: int = Field(default=1, description="Bumped on an incompatible change.")


class WebhookEndpointDisabled(_Detail):
    """A webhook endpoint failed continuously for WebhookDisableAfterHours and was disabled;
    its notifications are kept as ENDPOINT_DISABLED until `notifyctl webhooks enable` and
    `notifyctl webhooks replay`."""

    subscription_id: str
    failing_since: str = Field(description="ISO 8601 UTC: the first failure of the period.")
    disabled_at: str = Field(description="ISO 8601 UTC.")
    consecutive_failures: int = Field(ge=1)
    last_reason: str | None = Field(description="The last failure's reason code.")


class WebhookEndpointRecovered(_Detail):
    """The first successful delivery to a webhook endpoint after a failing period."""

    subscription_id: str
    failing_since: str | None = Field(description="ISO 8601 UTC: the period's first failure.")
    recovered_at: str = Field(description="ISO 8601 UTC.")
    consecutive_failures: int = Field(ge=1, description="Failures in the period.")


class NotificationDeadLettered(_Detail):
    """A notification of any channel reached NotificationsDLQ (recorded DEAD_LETTERED)."""

    notification_id: str
    channel: str | None
    reason: str = Field(description="The failure's reason code (e.g. provider_unavailable).")
    failure_class: str = Field(description="permanent | exhausted")
    attempts: int = Field(ge=0, description="Provider attempts the ledger counted.")
    event_type: str | None = Field(description="The domain event it came from.")
    subscription_id: str | None = Field(description="Webhooks only: the endpoint.")
    dead_lettered_at: str = Field(description="ISO 8601 UTC.")


OPERATIONAL_EVENTS: dict[str, type[_Detail]] = {
    model.__name__: model
    for model in (WebhookEndpointDisabled, WebhookEndpointRecovered, NotificationDeadLettered)
}


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
            "detail": model.model_json_schema(),
        },
    }


def schema_text(detail_type: str) -> str:
    """``events/schemas/operational/<Type>.json``'s content."""
    return json.dumps(json_schema(detail_type), indent=2, sort_keys=True) + "\n"
