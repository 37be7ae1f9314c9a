"""Operational events the platform puts on its own bus, for a team to route to its own tools.

Source ``notifications.platform`` (``OPERATIONS_SOURCE``); the detail types and their JSON
schemas (``events/schemas/operational/<Type>.json``, generated from the models below by
``schema_text``, checked by tests/unit/test_operational_events.py):

- ``WebhookEndpointDisabled``: an endpoint failed continuously for ``WebhookDisableAfterHours``
  and was disabled (the sender, ``endpoint_health.py``);
- ``WebhookEndpointRecovered``: the first success after a failing period (the sender);
- ``NotificationDeadLettered``: a notification of any channel reached NotificationsDLQ (the
  alarm function, once per dead letter).

The fan-out's catch-all rules leave this source alone (template.yaml, UnknownSourceRule), so
these events are never dead-lettered as ``unknown_source``. A failed put is logged and
counted, never raised: the event reports what already happened, and losing it must not undo
or repeat the work (the state is in the ledger and the policy state table).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol

from pydantic import BaseModel, ConfigDict, Field

from notifications.models import utc_iso
from notifications.observability import logger

if TYPE_CHECKING:
    from notifications.endpoint_health import EndpointHealth
    from notifications.ledger import DeadLetterEntry

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


class EventPutter(Protocol):
    def put(self, source: str, detail_type: str, detail: str) -> None: ...


class OperationalEvents:
    """Puts the operational events on the bus through ``putter`` (``adapters/events.py``)."""

    def __init__(self, putter: EventPutter, on_failure: Callable[[str], None] | None = None):
        self.putter = putter
        self.on_failure = on_failure

    def put(self, detail: _Detail) -> bool:
        detail_type = type(detail).__name__
        try:
            self.putter.put(OPERATIONS_SOURCE, detail_type, json.dumps(detail.model_dump()))
        except Exception as exc:  # noqa: BLE001 - reported, never undoes what happened
            logger.error(
                "operational event not put",
                extra={"detail_type": detail_type, "error": f"{type(exc).__name__}: {exc}"[:300]},
            )
            if self.on_failure is not None:
                self.on_failure(detail_type)
            return False
        return True

    def endpoint_disabled(self, health: EndpointHealth, now: datetime) -> bool:
        return self.put(
            WebhookEndpointDisabled(
                subscription_id=health.subscription_id,
                failing_since=utc_iso(health.failing_since or now),
                disabled_at=utc_iso(health.disabled_at or now),
                consecutive_failures=max(health.consecutive_failures, 1),
                last_reason=health.last_reason,
            )
        )

    def endpoint_recovered(self, before: EndpointHealth, now: datetime) -> bool:
        return self.put(
            WebhookEndpointRecovered(
                subscription_id=before.subscription_id,
                failing_since=utc_iso(before.failing_since) if before.failing_since else None,
                recovered_at=utc_iso(now),
                consecutive_failures=max(before.consecutive_failures, 1),
            )
        )

    def dead_lettered(self, entry: DeadLetterEntry, now: datetime) -> bool:
        webhook = entry.channel == "webhook"
        return self.put(
            NotificationDeadLettered(
                notification_id=entry.notification_id,
                channel=entry.channel,
                reason=entry.reason,
                failure_class=entry.failure_class,
                attempts=max(entry.receive_count, 0),
                event_type=entry.event_type,
                subscription_id=entry.recipient if webhook else None,
                dead_lettered_at=utc_iso(now),
            )
        )
