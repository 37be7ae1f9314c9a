"""``decide``: what a failure becomes, for every kind of failure, and the stage list's order."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta

import pytest

from notifications.deferral import Destination
from notifications.errors import NotificationError, PermanentError, RetryableError
from notifications.models import Channel, NotificationRequested, notification_id
from notifications.retry import RetryConfig
from notifications.stages import BatchContext, Delivery, admissible, run
from notifications.verdicts import (
    GO,
    DeadLetter,
    Defer,
    DeferReason,
    Failure,
    FailureClass,
    Go,
    Outcome,
    PutBack,
    Reject,
    Retry,
    Verdict,
    decide,
)

NOW = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
HOLD = NOW + timedelta(seconds=60)
POLICY = RetryConfig(max_attempts=3, initial_delay=1, backoff_multiplier=2, max_delay=60)
PERMANENT = PermanentError("invalid_recipient", "no such address")
RETRYABLE = RetryableError("provider_unavailable", "503")
SLOW_DOWN = RetryableError("throttled", "429", retry_after=7.2)


def at(seconds: float) -> datetime:
    return NOW + timedelta(seconds=seconds)


@pytest.mark.parametrize(
    ("failure", "expected"),
    [
        # permanent: dead-lettered at once, whatever the attempt or the channel's state
        (Failure(PERMANENT, 0, NOW), DeadLetter(FailureClass.PERMANENT)),
        (Failure(PERMANENT, 1, NOW), DeadLetter(FailureClass.PERMANENT)),
        (Failure(PERMANENT, 3, NOW), DeadLetter(FailureClass.PERMANENT)),
        (Failure(PERMANENT, 1, NOW, hold_until=HOLD), DeadLetter(FailureClass.PERMANENT)),
        # attempts used up before this one (crashed sends): exhausted, even for a permanent one
        (Failure(RETRYABLE, 3, NOW, exhausted=True), DeadLetter(FailureClass.EXHAUSTED)),
        (Failure(PERMANENT, 3, NOW, exhausted=True), DeadLetter(FailureClass.EXHAUSTED)),
        # retryable: exponential backoff by visibility, 1 s then 2 s
        (Failure(RETRYABLE, 1, NOW), Retry(at(1), 1)),
        (Failure(RETRYABLE, 2, NOW), Retry(at(2), 2)),
        # refused before any attempt and retryable: the first attempt's delay
        (Failure(RETRYABLE, 0, NOW), Retry(at(1), 1)),
        # the provider's Retry-After wins, rounded up
        (Failure(SLOW_DOWN, 1, NOW), Retry(at(8), 8)),
        # the channel is down (the breaker opened): back on the queue for its reopen time
        (Failure(RETRYABLE, 1, NOW, hold_until=HOLD), PutBack(HOLD)),
        (Failure(SLOW_DOWN, 2, NOW, hold_until=HOLD), PutBack(HOLD)),
        # ... unless nothing can put it back: visibility backoff then
        (Failure(RETRYABLE, 1, NOW, hold_until=HOLD, can_put_back=False), Retry(at(1), 1)),
        # the last attempt failed: exhausted, down or not
        (Failure(RETRYABLE, 3, NOW), DeadLetter(FailureClass.EXHAUSTED)),
        (Failure(RETRYABLE, 3, NOW, hold_until=HOLD), DeadLetter(FailureClass.EXHAUSTED)),
        (Failure(SLOW_DOWN, 4, NOW), DeadLetter(FailureClass.EXHAUSTED)),
    ],
)
def test_decide(failure, expected):
    assert decide(failure, POLICY) == expected


def test_the_retry_policy_is_data_per_call():
    # Given two channels' policies (issue 15: per-channel retry schedules)
    patient = RetryConfig(max_attempts=5, initial_delay=10, backoff_multiplier=3, max_delay=60)
    single = RetryConfig(max_attempts=1)
    # Then the same failure becomes what each policy says
    assert decide(Failure(RETRYABLE, 2, NOW), patient) == Retry(at(30), 30)
    assert decide(Failure(RETRYABLE, 4, NOW), patient) == Retry(at(60), 60)
    assert decide(Failure(RETRYABLE, 1, NOW), single) == DeadLetter(FailureClass.EXHAUSTED)


ERRORS: list[NotificationError] = [PERMANENT, RETRYABLE, SLOW_DOWN]


@pytest.mark.parametrize(
    ("error", "attempt", "exhausted", "hold", "can_put_back"),
    list(itertools.product(ERRORS, [0, 1, 2, 3, 4], [False, True], [None, HOLD], [True, False])),
)
def test_every_failure_gets_exactly_one_verdict_by_the_documented_rules(
    error, attempt, exhausted, hold, can_put_back
):
    action = decide(Failure(error, attempt, NOW, exhausted, hold, can_put_back), POLICY)
    # The rules of docs/architecture.md, restated: never retried beyond the third attempt,
    # never retried when permanent, put back only for a channel that is down.
    if exhausted or (error.retryable and attempt >= 3):
        assert action == DeadLetter(FailureClass.EXHAUSTED)
    elif not error.retryable:
        assert action == DeadLetter(FailureClass.PERMANENT)
    elif hold is not None and can_put_back:
        assert action == PutBack(HOLD)
    else:
        assert isinstance(action, Retry)
        assert 1 <= action.visibility_seconds <= 8
        assert action.at == at(action.visibility_seconds)


def test_only_a_retry_leaves_the_message_on_its_queue():
    assert [o.value for o in Outcome if not o.acknowledged] == ["retry"]


# -- the stage list --------------------------------------------------------------------------


def request() -> NotificationRequested:
    return NotificationRequested(
        notification_id=notification_id("evt-1", Channel.SMS, "+15555550100", "order_placed"),
        channel=Channel.SMS,
        recipient="+15555550100",
        template_id="order_placed",
        category="orders",
        event_id="evt-1",
        event_type="OrderPlaced",
        correlation_id="evt-1",
        occurred_at=NOW,
        requested_at=NOW,
    )


class Recorded:
    """A stage that answers ``verdict`` and records that it was asked."""

    def __init__(self, name: str, verdict: Verdict, asked: list[str], settled_ahead: bool):
        self.name, self.verdict, self.asked = name, verdict, asked
        self.settled_ahead = settled_ahead

    def admissible(self, request, now):
        self.asked.append(self.name)
        return isinstance(self.verdict, Go)

    def check(self, delivery, now, batch):
        self.asked.append(self.name)
        return self.verdict

    def sent(self, delivery, batch):
        return None

    def failed(self, delivery, error, now, batch):
        return None


def delivery() -> Delivery:
    return Delivery(request(), "{}", "rh", Destination("url", "arn"), "m-1")


def batch() -> BatchContext:
    return BatchContext(clock=lambda: NOW, lease=timedelta(seconds=30))


def test_the_first_stage_that_does_not_go_decides_and_later_ones_are_not_asked():
    asked: list[str] = []
    later = Defer(HOLD, DeferReason.QUIET_HOURS)
    stages = [
        Recorded("recipient", GO, asked, True),
        Recorded("quiet", later, asked, True),
        Recorded("breaker", Reject(PERMANENT), asked, False),
    ]
    assert run(stages, delivery(), NOW, batch(), admitted=False) == later
    assert asked == ["recipient", "quiet"]
    # The admission pre-pass asks the same list in the same order, and stops at the same stage
    asked.clear()
    assert admissible(stages, request(), NOW) is False
    assert asked == ["recipient", "quiet"]


def test_an_admitted_record_skips_the_stages_the_admission_settled():
    asked: list[str] = []
    stages = [
        Recorded("recipient", Reject(PERMANENT), asked, True),
        Recorded("rate", Defer(HOLD, DeferReason.RATE_LIMITED), asked, True),
        Recorded("breaker", Defer(HOLD, DeferReason.CIRCUIT_OPEN), asked, False),
    ]
    assert run(stages, delivery(), NOW, batch(), admitted=True) == Defer(
        HOLD, DeferReason.CIRCUIT_OPEN
    )
    assert asked == ["breaker"]


def test_all_stages_going_is_go():
    asked: list[str] = []
    stages = [Recorded(n, GO, asked, False) for n in ("a", "b", "c")]
    assert run(stages, delivery(), NOW, batch(), admitted=False) == GO
    assert asked == ["a", "b", "c"]


def test_a_webhook_schedule_waits_beyond_sqs_visibility_are_put_back():
    # Given the webhook schedule and a receive with 11 h of visibility room left
    from notifications.retry import RetrySchedule

    schedule = RetrySchedule.parse("5,300,36000,43200")
    room = 11 * 3600
    # Then waits within the room are visibility delays, on the schedule
    assert decide(Failure(RETRYABLE, 1, NOW, visibility_room=room), schedule) == Retry(at(5), 5)
    assert decide(Failure(RETRYABLE, 3, NOW, visibility_room=room), schedule) == Retry(
        at(36000), 36000
    )
    # And the 12 h wait, longer than the room, is put back for then (Scheduler), not capped
    assert decide(Failure(RETRYABLE, 4, NOW, visibility_room=room), schedule) == PutBack(at(43200))
    # And the fifth attempt is the last one: 4 waits, 5 attempts
    assert decide(Failure(RETRYABLE, 5, NOW), schedule) == DeadLetter(FailureClass.EXHAUSTED)
    # And a receiver's Retry-After is held to the schedule's shortest wait
    hurry = RetryableError("throttled", "429", retry_after=1)
    assert decide(Failure(hurry, 1, NOW), schedule) == Retry(at(5), 5)
