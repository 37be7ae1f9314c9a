"""Per-endpoint health of webhooks on its own (an in-memory store): one failing endpoint waits
alone, is probed on the schedule, recovers or is disabled, and the channel breaker leaves
webhooks alone."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from msgspec.structs import replace

from notifications.circuit_breaker import CircuitBreaker
from notifications.deferral import Destination
from notifications.endpoint_health import EndpointHealth, EndpointHealthStage
from notifications.errors import RetryableError
from notifications.models import Channel, NotificationRequested, notification_id
from notifications.retry import RetrySchedule
from notifications.stages import BatchContext, BreakerStage, Delivery
from notifications.verdicts import GO, Defer, DeferReason, Park

NOW = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
LEASE = timedelta(seconds=35)
DOWN = RetryableError("provider_unavailable", "503")


class MemoryHealth:
    """The HealthStore protocol in memory, with the table's conditions."""

    def __init__(self) -> None:
        self.items: dict[str, EndpointHealth] = {}
        self.reads = 0

    def read(self, subscription_id: str) -> EndpointHealth:
        self.reads += 1
        return self.items.get(subscription_id, EndpointHealth(subscription_id))

    def read_all(self) -> list[EndpointHealth]:
        return list(self.items.values())

    def record_failure(self, subscription_id, reason, now, next_attempt_at, probe):
        old = self.items.get(subscription_id, EndpointHealth(subscription_id))
        new = replace(
            old,
            consecutive_failures=old.consecutive_failures + 1,
            probe_failures=old.probe_failures + (1 if probe else 0),
            failing_since=old.failing_since or now,
            last_failure_at=now,
            last_reason=reason,
            next_attempt_at=next_attempt_at,
        )
        self.items[subscription_id] = new
        return new

    def record_success(self, subscription_id, now):
        old = self.items.get(subscription_id, EndpointHealth(subscription_id))
        self.items[subscription_id] = replace(
            old,
            consecutive_failures=0,
            probe_failures=0,
            failing_since=None,
            next_attempt_at=None,
            last_success_at=now,
        )
        return old

    def claim_probe(self, subscription_id, now, until):
        old = self.items[subscription_id]
        if old.disabled or old.next_attempt_at is None or old.next_attempt_at > now:
            return False
        self.items[subscription_id] = replace(old, next_attempt_at=until)
        return True

    def disable(self, subscription_id, now):
        old = self.items[subscription_id]
        if old.disabled:
            return False
        self.items[subscription_id] = replace(old, disabled_at=now)
        return True

    def enable(self, subscription_id, now):
        return True


class Events:
    def __init__(self) -> None:
        self.seen: list[tuple[str, str, int]] = []

    def endpoint_disabled(self, health: EndpointHealth, now: datetime) -> bool:
        self.seen.append(("disabled", health.subscription_id, health.consecutive_failures))
        return True

    def endpoint_recovered(self, before: EndpointHealth, now: datetime) -> bool:
        self.seen.append(("recovered", before.subscription_id, before.consecutive_failures))
        return True


def delivery(recipient: str, n: int = 0, channel: Channel = Channel.WEBHOOK) -> Delivery:
    request = NotificationRequested(
        notification_id=notification_id(f"evt-{n}", channel, recipient, "order-webhook"),
        channel=channel,
        recipient=recipient,
        template_id="order-webhook",
        category="orders",
        event_id=f"evt-{n}",
        event_type="OrderPlaced",
        correlation_id=f"evt-{n}",
        occurred_at=NOW,
        requested_at=NOW,
    )
    return Delivery(request, "{}", "rh", Destination("url", "arn"), f"m-{recipient}-{n}")


class Clock:
    def __init__(self) -> None:
        self.now = NOW

    def __call__(self) -> datetime:
        return self.now


def stage_and_batch(hours: float = 120) -> tuple[EndpointHealthStage, MemoryHealth, Events, Clock]:
    store, events = MemoryHealth(), Events()
    schedule = RetrySchedule.parse("5,300,1800")
    stage = EndpointHealthStage(store, schedule, timedelta(hours=hours), events)  # type: ignore[arg-type]
    return stage, store, events, Clock()


def batch(clock: Clock) -> BatchContext:
    return BatchContext(clock=clock, lease=LEASE)


def test_one_failing_endpoint_holds_only_its_own_notifications():
    stage, store, _, clock = stage_and_batch()
    context = batch(clock)
    stage.begin_batch()
    # Given a send to endpoint A that fails
    a0, a1, b0 = delivery("sub-a", 0), delivery("sub-a", 1), delivery("sub-b", 0)
    assert stage.check(a0, NOW, context) == GO
    assert stage.failed(a0, DOWN, NOW, context) is None  # no channel-wide hold
    # Then A's next notification waits the schedule's first wait, without an attempt
    assert stage.check(a1, NOW, context) == Defer(
        NOW + timedelta(seconds=5), DeferReason.ENDPOINT_UNHEALTHY
    )
    # And B's goes
    assert stage.check(b0, NOW, context) == GO
    assert store.items["sub-a"].consecutive_failures == 1
    assert "sub-b" not in store.items


def test_the_health_is_read_once_per_batch_and_email_never_reads_it():
    stage, store, _, clock = stage_and_batch()
    context = batch(clock)
    stage.begin_batch()
    for n in range(10):
        assert stage.check(delivery("sub-a", n), NOW, context) == GO
    assert stage.check(delivery("a@example.com", 0, Channel.EMAIL), NOW, context) == GO
    assert store.reads == 1


def test_when_due_one_notification_probes_and_a_failed_probe_moves_along_the_schedule():
    stage, store, _, clock = stage_and_batch()
    context = batch(clock)
    stage.begin_batch()
    first = delivery("sub-a", 0)
    stage.check(first, NOW, context)
    stage.failed(first, DOWN, NOW, context)
    # When the endpoint is due (5 s later), in a new batch
    later = NOW + timedelta(seconds=5)
    stage.begin_batch()
    probe, other = delivery("sub-a", 1), delivery("sub-a", 2)
    # Then one notification is the probe, the other waits for its outcome
    assert stage.check(probe, later, context) == GO
    assert stage.check(other, later, context) == Defer(
        later + LEASE, DeferReason.ENDPOINT_UNHEALTHY
    )
    # When the probe fails, Then the endpoint waits the schedule's second wait (300 s)
    stage.failed(probe, DOWN, later, context)
    assert store.items["sub-a"].next_attempt_at == later + timedelta(seconds=300)
    assert store.items["sub-a"].probe_failures == 1
    # And ten notifications failing in one batch do not push it further than one failure
    stage2, store2, _, _ = stage_and_batch()
    stage2.begin_batch()
    for n in range(10):
        stage2.failed(delivery("sub-z", n), DOWN, NOW, context)
    assert store2.items["sub-z"].next_attempt_at == NOW + timedelta(seconds=5)


def test_a_success_after_failures_is_a_recovery_with_one_event():
    stage, store, events, clock = stage_and_batch()
    context = batch(clock)
    stage.begin_batch()
    for n in range(3):
        stage.failed(delivery("sub-a", n), DOWN, NOW, context)
    clock.now = NOW + timedelta(seconds=10)
    stage.begin_batch()
    stage.sent(delivery("sub-a", 4), context)
    stage.sent(delivery("sub-a", 5), context)
    assert events.seen == [("recovered", "sub-a", 3)]
    assert store.items["sub-a"].consecutive_failures == 0
    assert store.items["sub-a"].failing_since is None
    assert store.items["sub-a"].last_success_at == NOW + timedelta(seconds=10)


def test_past_the_horizon_the_endpoint_is_disabled_once_and_its_notifications_parked():
    stage, store, events, clock = stage_and_batch(hours=1)
    context = batch(clock)
    stage.begin_batch()
    stage.failed(delivery("sub-a", 0), DOWN, NOW, context)
    # A failure 59 minutes into the failing period does not disable it
    stage.failed(delivery("sub-a", 1), DOWN, NOW + timedelta(minutes=59), context)
    assert not store.items["sub-a"].disabled
    # The first failure at 60 minutes does, once
    at_horizon = NOW + timedelta(hours=1)
    stage.failed(delivery("sub-a", 2), DOWN, at_horizon, context)
    stage.failed(delivery("sub-a", 3), DOWN, at_horizon, context)
    assert store.items["sub-a"].disabled_at == at_horizon
    assert events.seen == [("disabled", "sub-a", 3)]
    # And its notifications are parked from then on, in this batch and the next
    assert stage.check(delivery("sub-a", 9), at_horizon, context) == Park(
        "webhook_endpoint_disabled"
    )
    stage.begin_batch()
    assert stage.check(delivery("sub-a", 9), at_horizon, context) == Park(
        "webhook_endpoint_disabled"
    )
    assert stage.check(delivery("sub-b", 9), at_horizon, context) == GO


def test_injected_faults_do_not_make_an_endpoint_unhealthy():
    stage, store, _, clock = stage_and_batch()
    stage.begin_batch()
    fault = RetryableError("injected_fault", "FAILURE_RATE")
    stage.failed(delivery("sub-a", 0), fault, NOW, batch(clock))
    assert store.items == {}


class Breakers:
    """A breaker store that records that it was asked."""

    def __init__(self) -> None:
        self.calls: list[str] = []

    def __getattr__(self, name):
        def call(*args, **kwargs):
            self.calls.append(name)
            raise AssertionError(f"the breaker was asked {name} for a webhook")

        return call


def test_the_channel_breaker_never_sees_webhooks():
    breakers = Breakers()
    stage = BreakerStage(CircuitBreaker(breakers, 1, 60), None)  # type: ignore[arg-type]
    hook = delivery("sub-a", 0)
    context = batch(Clock())
    assert stage.admissible(hook.request, NOW)
    assert stage.check(hook, NOW, context) == GO
    assert stage.failed(hook, DOWN, NOW, context) is None
    stage.sent(hook, context)
    assert breakers.calls == []


def test_a_probe_out_on_another_instance_makes_this_one_wait_for_its_outcome():
    # Given two sender instances sharing one failing endpoint's health, both due for a probe
    stage, store, _, clock = stage_and_batch()
    other = EndpointHealthStage(store, RetrySchedule.parse("5,300,1800"), timedelta(hours=1))  # type: ignore[arg-type]
    context = batch(clock)
    stage.begin_batch()
    stage.failed(delivery("sub-a", 0), DOWN, NOW, context)
    due = NOW + timedelta(seconds=5)
    stage.begin_batch()
    other.begin_batch()
    assert not other.admissible(delivery("sub-a", 2).request, due)  # read before the claim
    # When the first takes the probe
    assert stage.check(delivery("sub-a", 1), due, context) == GO
    # Then the second's notification waits 30 s for the probe's outcome, no attempt spent
    assert other.check(delivery("sub-a", 2), due, context) == Defer(
        due + timedelta(seconds=30), DeferReason.ENDPOINT_UNHEALTHY
    )
