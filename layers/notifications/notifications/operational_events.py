"""Operational events the platform puts on its own bus, for a team to route to its own tools.

Source ``notifications.platform`` (``OPERATIONS_SOURCE``); the detail types and their JSON
schemas (``events/schemas/operational/<Type>.json``, generated from the models below by
``operational_event_models.schema_text``, checked by tests/unit/test_operational_events.py):

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
from typing import TYPE_CHECKING, Protocol

from notifications.models import utc_iso
from notifications.observability import logger

if TYPE_CHECKING:
    from notifications.endpoint_health import EndpointHealth
    from notifications.ledger import DeadLetterEntry
    from notifications.operational_event_models import _Detail

OPERATIONS_SOURCE = "notifications.platform"  # (operational_event_models.py says the same)


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
        from notifications.operational_event_models import WebhookEndpointDisabled

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
        from notifications.operational_event_models import WebhookEndpointRecovered

        return self.put(
            WebhookEndpointRecovered(
                subscription_id=before.subscription_id,
                failing_since=utc_iso(before.failing_since) if before.failing_since else None,
                recovered_at=utc_iso(now),
                consecutive_failures=max(before.consecutive_failures, 1),
            )
        )

    def dead_lettered(self, entry: DeadLetterEntry, now: datetime) -> bool:
        from notifications.operational_event_models import NotificationDeadLettered

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
