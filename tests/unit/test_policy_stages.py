"""The delivery policy stages on their own: quiet hours, rate limit, circuit breaker, deferral."""

from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from msgspec.structs import replace

from notifications.circuit_breaker import BreakerRecord, BreakerState, CircuitBreaker
from notifications.deferral import Deferrer, Destination, schedule_expression, schedule_name
from notifications.models import Channel, NotificationRequested, QuietHours, notification_id
from notifications.preferences import Preferences, updated
from notifications.quiet_hours import QuietHoursPolicy, quiet_period_end
from notifications.rate_limit import RateLimiter

NOW = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
LEASE = timedelta(seconds=35)


def request(**changes) -> NotificationRequested:
    base = NotificationRequested(
        notification_id=notification_id("evt-1", Channel.SMS, "+14155550100", "order_confirm"),
        channel=Channel.SMS,
        recipient="+14155550100",
        template_id="order_confirm",
        category="order",
        user_id="user-1",
        event_id="evt-1",
        event_type="OrderPlaced",
        correlation_id="evt-1",
        occurred_at=NOW,
        requested_at=NOW,
    )
    return base.model_copy(update=changes)


# ---------------------------------------------------------------- quiet hours


@pytest.mark.parametrize(
    ("local_now", "expected_end"),
    [
        ("2026-11-28T23:15", "2026-11-29T07:00"),  # after start, wraps past midnight
        ("2026-11-28T03:00", "2026-11-28T07:00"),  # after midnight
        ("2026-11-28T22:00", "2026-11-29T07:00"),  # the start is inside
        ("2026-11-28T07:00", None),  # the end is not
        ("2026-11-28T12:00", None),
    ],
)
def test_quiet_hours_wrap_past_midnight_in_the_users_zone(local_now, expected_end):
    # Given quiet hours 22:00-07:00 in Berlin
    quiet = QuietHours(start=time(22), end=time(7), timezone="Europe/Berlin")
    zone = ZoneInfo("Europe/Berlin")
    now = datetime.fromisoformat(local_now).replace(tzinfo=zone)
    # When asked when the period containing "now" ends
    end = quiet_period_end(quiet, now.astimezone(UTC))
    # Then it is the next 07:00 Berlin, or None outside the period
    expected = None if expected_end is None else datetime.fromisoformat(expected_end)
    assert (end.replace(tzinfo=None) if end else None) == expected


def test_quiet_hours_across_a_dst_change_end_at_local_wall_clock_time():
    # Given 22:00-07:00 in New York on the night clocks go back (2026-11-01)
    quiet = QuietHours(start=time(22), end=time(7), timezone="America/New_York")
    now = datetime(2026, 11, 1, 3, 0, tzinfo=UTC)  # 23:00 EDT on Oct 31
    # Then the end is 07:00 EST, which is 12:00 UTC (not 11:00)
    assert quiet_period_end(quiet, now) == datetime(2026, 11, 1, 12, 0, tzinfo=UTC)


def test_critical_notifications_and_users_without_quiet_hours_are_not_deferred():
    quiet = QuietHours(start=time(0), end=time(23, 59), timezone="UTC")
    policy = QuietHoursPolicy()
    assert policy.deferral(request(quiet_hours=quiet), NOW) is not None
    assert policy.deferral(request(quiet_hours=quiet, critical=True), NOW) is None
    assert policy.deferral(request(), NOW) is None


def test_an_unknown_time_zone_is_refused():
    with pytest.raises(ValueError, match="IANA"):
        QuietHours(start=time(22), end=time(7), timezone="Mars/Olympus")


# ---------------------------------------------------------------- rate limit


class MemoryCounters:
    def __init__(self):
        self.counts = {}

    def increment_below(self, slot, limit):
        current = self.counts.get((slot.key, slot.window), 0)
        if current >= limit:
            return False
        self.counts[(slot.key, slot.window)] = current + 1
        return True


def test_rate_limit_allows_the_limit_per_window_then_defers_to_the_next_window():
    # Given a limit of 3 per minute
    limiter = RateLimiter(MemoryCounters(), per_window=3)
    now = NOW + timedelta(seconds=17)
    # When four notifications for one user arrive in the same minute
    decisions = [limiter.acquire(request(), now) for _ in range(4)]
    # Then three go, the fourth waits for the next minute
    assert [d.allowed for d in decisions] == [True, True, True, False]
    assert decisions[3].retry_at == NOW + timedelta(minutes=1)
    # And another user, or another channel, has its own budget
    assert limiter.acquire(request(user_id="user-2"), now).allowed
    assert limiter.acquire(request(channel=Channel.EMAIL, recipient="a@example.com"), now).allowed
    # And the next window starts afresh
    assert limiter.acquire(request(), NOW + timedelta(minutes=1)).allowed


# ---------------------------------------------------------------- circuit breaker


class MemoryBreakers:
    def __init__(self):
        self.records = {}

    def read(self, channel):
        return self.records.get(channel, BreakerRecord())

    def claim_trial(self, channel, now, until):
        record = self.read(channel)
        if record.state is not BreakerState.OPEN or now < record.open_until:
            return False
        if record.trial_until and record.trial_until >= now:
            return False
        self.records[channel] = replace(record, trial_until=until)
        return True

    def add_failure(self, channel):
        record = self.read(channel)
        self.records[channel] = replace(record, failures=record.failures + 1)
        return self.records[channel]

    def open(self, channel, until, now, from_trial):
        record = self.read(channel)
        if (record.state is BreakerState.OPEN) != from_trial:
            return False
        self.records[channel] = replace(
            record,
            state=BreakerState.OPEN,
            open_until=until,
            trial_until=None,
            mapping_disabled=True,
        )
        return True

    def close(self, channel):
        self.records[channel] = BreakerRecord(mapping_disabled=self.read(channel).mapping_disabled)

    def set_mapping_disabled(self, channel, disabled):
        self.records[channel] = replace(self.read(channel), mapping_disabled=disabled)


def test_breaker_opens_at_the_threshold_defers_while_open_and_a_trial_closes_it():
    store = MemoryBreakers()
    breaker = CircuitBreaker(store, threshold=3, open_seconds=60)
    # Given two retryable failures: still closed
    for _ in range(2):
        permit = breaker.permit(Channel.SMS, NOW, LEASE)
        assert permit.allowed
        assert breaker.record_failure(Channel.SMS, permit, NOW) is None
    # When the third fails, the breaker opens for 60 s, and this failure is the one that opened it
    trip = breaker.record_failure(Channel.SMS, breaker.permit(Channel.SMS, NOW, LEASE), NOW)
    assert trip is not None
    assert trip.opened_now
    assert trip.open_until == NOW + timedelta(seconds=60)
    # Then SMS is deferred to the reopen time, while email is unaffected
    held = breaker.permit(Channel.SMS, NOW + timedelta(seconds=30), LEASE)
    assert (held.allowed, held.retry_at) == (False, NOW + timedelta(seconds=60))
    assert breaker.permit(Channel.EMAIL, NOW, LEASE).allowed
    # When the open period ends: one trial, the others wait for it
    later = NOW + timedelta(seconds=61)
    trial = breaker.permit(Channel.SMS, later, LEASE)
    assert (trial.allowed, trial.trial) == (True, True)
    assert not breaker.permit(Channel.SMS, later, LEASE).allowed
    # When the trial succeeds, the breaker closes
    breaker.record_success(Channel.SMS, trial)
    assert breaker.permit(Channel.SMS, later, LEASE).allowed
    assert store.read(Channel.SMS).state is BreakerState.CLOSED
    assert store.read(Channel.SMS).failures == 0


def test_a_failed_trial_reopens_the_breaker():
    store = MemoryBreakers()
    breaker = CircuitBreaker(store, threshold=1, open_seconds=60)
    breaker.record_failure(Channel.SMS, breaker.permit(Channel.SMS, NOW, LEASE), NOW)
    later = NOW + timedelta(seconds=60)
    trial = breaker.permit(Channel.SMS, later, LEASE)
    assert trial.trial
    trip = breaker.record_failure(Channel.SMS, trial, later)
    assert trip.open_until == later + timedelta(seconds=60)
    assert not breaker.permit(Channel.SMS, later + timedelta(seconds=59), LEASE).allowed


def test_a_success_on_a_healthy_channel_writes_nothing():
    class NoWrites(MemoryBreakers):
        def close(self, channel):
            raise AssertionError("a healthy channel's success must not write")

    breaker = CircuitBreaker(NoWrites(), threshold=5, open_seconds=60)
    breaker.record_success(Channel.EMAIL, breaker.permit(Channel.EMAIL, NOW, LEASE))


# ---------------------------------------------------------------- deferral


class Recorded:
    def __init__(self, sent_already=False):
        self.calls = []
        self.sent_already = sent_already

    def send_delayed(self, queue_url, body, delay_seconds):
        self.calls.append(("delay", delay_seconds))

    def schedule(self, name, queue_arn, body, at):
        self.calls.append(("schedule", name, at))

    def record_deferred(self, request, reason, until, now):
        self.calls.append(("ledger", reason))
        return not self.sent_already


@pytest.mark.parametrize(
    ("seconds", "how"), [(0, "delay"), (899.2, "delay"), (900, "delay"), (901, "schedule")]
)
def test_deferral_uses_a_delay_up_to_15_minutes_and_a_schedule_beyond(seconds, how):
    recorded = Recorded()
    deferrer = Deferrer(recorded, recorded)
    until = NOW + timedelta(seconds=seconds)
    destination = Destination("https://sqs/q", "arn:aws:sqs:us-east-1:1:q")
    assert deferrer.defer(request(), "{}", destination, until, "quiet_hours", NOW)
    assert recorded.calls[0] == ("ledger", "quiet_hours")
    assert recorded.calls[1][0] == how


def test_a_deferral_of_a_notification_already_sent_puts_nothing_back():
    recorded = Recorded(sent_already=True)
    deferrer = Deferrer(recorded, recorded)
    destination = Destination("https://sqs/q", "arn:aws:sqs:us-east-1:1:q")
    assert not deferrer.defer(request(), "{}", destination, NOW, "rate_limited", NOW)
    assert recorded.calls == [("ledger", "rate_limited")]


def test_schedule_names_are_stable_and_expressions_never_fire_early():
    until = NOW + timedelta(hours=2, milliseconds=300)
    assert schedule_name("abc", until) == schedule_name("abc", until)
    assert len(schedule_name(request().notification_id, until)) <= 64
    assert schedule_expression(until) == "at(2026-11-28T14:00:01)"


# ---------------------------------------------------------------- preferences


def test_preference_updates_are_validated_as_a_whole():
    current = Preferences(user_id="user-1", email="a@example.com")
    new = updated(current, "user-1", {"quiet_hours": {"start": "22:00", "end": "07:00"}})
    assert new.quiet_hours == QuietHours(start=time(22), end=time(7))
    assert new.email == "a@example.com"
    with pytest.raises(ValueError, match="IANA"):
        updated(
            current,
            "user-1",
            {"quiet_hours": {"start": "22:00", "end": "07:00", "timezone": "X/Y"}},
        )


def test_routing_carries_quiet_hours_and_criticality_into_each_request():
    from notifications.models import EventEnvelope, PaymentReceived
    from notifications.routing import plan_notifications
    from tests.samples import load_event

    raw = load_event("fan_out/payment-received.json")
    envelope = EventEnvelope.model_validate(raw)
    quiet = QuietHours(start=time(22), end=time(7))
    prefs = Preferences(user_id="user-123", email="a@example.com", quiet_hours=quiet)
    planned = plan_notifications(
        envelope, PaymentReceived.model_validate(raw["detail"]), prefs, [], NOW
    )
    assert [(p.request.quiet_hours, p.request.critical) for p in planned] == [(quiet, True)]
