"""Per-endpoint health of webhook subscriptions: one failing customer endpoint waits alone.

Webhooks have no channel-wide breaker (``circuit_breaker.py`` stays for SES and SNS, where one
provider serves everyone): each subscription has its own health, one item of the policy state
table (``pk = "endpoint"``, ``sk = <subscription_id>``):

- ``consecutive_failures`` and ``failing_since`` (the first failure of the current failing
  period), ``last_failure_at``, ``last_reason``; ``last_success_at`` (a healthy endpoint's is
  refreshed at most once a minute, so the common path writes nothing);
- ``next_attempt_at``: while the endpoint is failing, no notification is sent to it before
  then. The first failure holds the endpoint for the webhook schedule's first wait; each failed
  probe (``probe_failures``) moves it one wait along the schedule (the last one beyond it), so
  a failing endpoint is probed on the schedule a single notification would be retried on,
  however many of its notifications failed at once;
- ``disabled_at``: set once the endpoint has been failing for ``WebhookDisableAfterHours``.

The stage (``EndpointHealthStage``): a healthy endpoint's notifications go. While an endpoint is
failing, its notifications are deferred to ``next_attempt_at`` (no attempt spent); when that
passes, the first notification to win a conditional write is the probe, the others wait for its
outcome. A success ends the failing period (``WebhookEndpointRecovered``); a failure moves
``next_attempt_at`` on. A disabled endpoint's notifications are parked: kept in the ledger as
``ENDPOINT_DISABLED`` with their body, until ``notifyctl webhooks enable`` and ``replay``.
Nothing about one endpoint is read or written for another's notifications.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Protocol

import msgspec

from notifications.errors import NotificationError
from notifications.models import Channel, NotificationRequested
from notifications.observability import logger
from notifications.retry import RetryPolicy
from notifications.verdicts import GO, Defer, DeferReason, Park, Verdict

if TYPE_CHECKING:
    from notifications.operational_events import OperationalEvents
    from notifications.stages import BatchContext, Delivery

ENDPOINT_KEY = "endpoint"
REPLAY_KEY = "replay"  # the audit records of `notifyctl webhooks replay`
INJECTED_FAULT = "injected_fault"  # channels/faults.py
WEBHOOK_ENDPOINT_DISABLED = "webhook_endpoint_disabled"  # the parked notifications' reason
# A healthy endpoint's ``last_success_at`` is written at most this often (not once per send).
SUCCESS_REFRESH = timedelta(seconds=60)
# While a probe is out, the others wait this long for its outcome before asking again.
PROBE_WAIT = timedelta(seconds=30)


class EndpointHealth(msgspec.Struct, frozen=True):
    subscription_id: str
    consecutive_failures: int = 0
    probe_failures: int = 0
    failing_since: datetime | None = None
    next_attempt_at: datetime | None = None
    last_success_at: datetime | None = None
    last_failure_at: datetime | None = None
    last_reason: str | None = None
    disabled_at: datetime | None = None

    @property
    def failing(self) -> bool:
        return self.consecutive_failures > 0

    @property
    def disabled(self) -> bool:
        return self.disabled_at is not None

    @property
    def state(self) -> str:
        """healthy | failing | disabled (what ``notifyctl webhooks list`` shows)."""
        if self.disabled:
            return "disabled"
        return "failing" if self.failing else "healthy"


class HealthStore(Protocol):
    def read(self, subscription_id: str) -> EndpointHealth: ...
    def read_all(self) -> list[EndpointHealth]: ...
    def record_failure(
        self,
        subscription_id: str,
        reason: str,
        now: datetime,
        next_attempt_at: datetime,
        probe: bool,
    ) -> EndpointHealth:
        """One more consecutive failure (and failed probe, if ``probe``); starts the failing
        period if none; returns the health after it."""
        ...

    def record_success(self, subscription_id: str, now: datetime) -> EndpointHealth:
        """End any failing period; returns the health as it was before."""
        ...

    def claim_probe(self, subscription_id: str, now: datetime, until: datetime) -> bool: ...
    def disable(self, subscription_id: str, now: datetime) -> bool: ...
    def enable(self, subscription_id: str, now: datetime) -> bool: ...


class EndpointHealthStage:
    """The health stage for webhooks (the breaker stage skips them). Reads an endpoint's
    health once per batch; writes only when something changes."""

    settled_ahead = False

    def __init__(
        self,
        store: HealthStore,
        schedule: RetryPolicy,
        disable_after: timedelta,
        events: OperationalEvents | None = None,
    ) -> None:
        self.store = store
        self.schedule = schedule
        self.disable_after = disable_after
        self.events = events
        self._seen: dict[str, EndpointHealth] = {}
        self._probes: set[str] = set()

    def begin_batch(self) -> None:
        self._seen.clear()
        self._probes.clear()

    def _health(self, subscription_id: str) -> EndpointHealth:
        if subscription_id not in self._seen:
            self._seen[subscription_id] = self.store.read(subscription_id)
        return self._seen[subscription_id]

    def admissible(self, request: NotificationRequested, now: datetime) -> bool:
        if request.channel is not Channel.WEBHOOK:
            return True
        health = self._health(request.recipient)
        return not health.failing and not health.disabled

    def check(self, delivery: Delivery, now: datetime, batch: BatchContext) -> Verdict:
        request = delivery.request
        if request.channel is not Channel.WEBHOOK:
            return GO
        subscription_id = request.recipient
        health = self._health(subscription_id)
        if health.disabled:
            return Park(WEBHOOK_ENDPOINT_DISABLED)
        if not health.failing:
            return GO
        if health.next_attempt_at is not None and now < health.next_attempt_at:
            return Defer(health.next_attempt_at, DeferReason.ENDPOINT_UNHEALTHY)
        # Due for a probe: one notification tries, the others wait for its outcome.
        until = now + batch.lease
        if self.store.claim_probe(subscription_id, now, until):
            self._probes.add(delivery.message_id)
            self._seen[subscription_id] = msgspec.structs.replace(health, next_attempt_at=until)
            return GO
        self._seen.pop(subscription_id, None)
        return Defer(now + PROBE_WAIT, DeferReason.ENDPOINT_UNHEALTHY)

    def sent(self, delivery: Delivery, batch: BatchContext) -> None:
        request = delivery.request
        if request.channel is not Channel.WEBHOOK:
            return
        subscription_id = request.recipient
        health = self._health(subscription_id)
        now = batch.clock()
        last = health.last_success_at
        if not health.failing and last is not None and now - last < SUCCESS_REFRESH:
            return  # healthy, and its last success recent enough: no write on the common path
        before = self.store.record_success(subscription_id, now)
        self._seen[subscription_id] = EndpointHealth(subscription_id, last_success_at=now)
        if before.failing:
            logger.info(
                "webhook endpoint recovered",
                extra={"subscription_id": subscription_id, "failures": before.consecutive_failures},
            )
            batch.metrics.count("EndpointRecovered", Channel.WEBHOOK.value)
            if self.events is not None:
                self.events.endpoint_recovered(before, now)

    def failed(
        self, delivery: Delivery, error: NotificationError, now: datetime, batch: BatchContext
    ) -> datetime | None:
        request = delivery.request
        if request.channel is not Channel.WEBHOOK or error.reason == INJECTED_FAULT:
            return None  # injected faults model single failed sends, not a down endpoint
        subscription_id = request.recipient
        known = self._health(subscription_id)
        probe = delivery.message_id in self._probes
        rounds = known.probe_failures + 1 if probe else 0
        wait = timedelta(seconds=self.schedule.wait(rounds + 1))
        health = self.store.record_failure(subscription_id, error.reason, now, now + wait, probe)
        self._seen[subscription_id] = health
        if (
            not health.disabled
            and health.failing_since is not None
            and now - health.failing_since >= self.disable_after
            and self.store.disable(subscription_id, now)
        ):
            self._seen[subscription_id] = msgspec.structs.replace(health, disabled_at=now)
            logger.warning(
                "webhook endpoint disabled",
                extra={
                    "subscription_id": subscription_id,
                    "failing_since": health.failing_since.isoformat(),
                    "failures": health.consecutive_failures,
                },
            )
            batch.metrics.count("EndpointDisabled", Channel.WEBHOOK.value)
            if self.events is not None:
                self.events.endpoint_disabled(msgspec.structs.replace(health, disabled_at=now), now)
        # The notification retries on its own schedule; the endpoint's next_attempt_at holds
        # its neighbours (a channel-wide hold would be the breaker's answer: none here).
        return None
