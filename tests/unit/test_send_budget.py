"""Provider send budgets (send_budget.py): slots a batch at a time, waits without an attempt,
and AIMD on throttling, against an in-memory counter store."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from notifications.deferral import Destination
from notifications.errors import RetryableError
from notifications.models import Channel
from notifications.observability import ChannelMetrics
from notifications.send_budget import BudgetStage, RateCut, SendBudget
from notifications.stages import BatchContext, Delivery
from notifications.verdicts import GO, Defer, DeferReason
from tests.samples import welcome

T0 = datetime(2026, 11, 28, 12, 0, 0, 250_000, tzinfo=UTC)


class Counters:
    """The policy table's budget items, in memory; ``takes`` counts the UpdateItems."""

    def __init__(self) -> None:
        self.used: dict[tuple[Channel, int], int] = {}
        self.cut: dict[Channel, RateCut] = {}
        self.takes = 0

    def take(self, channel: Channel, window: int, wanted: int, limit: int) -> int:
        self.takes += 1
        before = self.used.get((channel, window), 0)
        self.used[(channel, window)] = before + wanted
        return max(min(wanted, limit - before), 0)

    def read_cut(self, channel: Channel) -> RateCut | None:
        return self.cut.get(channel)

    def write_cut(self, channel: Channel, cut: RateCut) -> None:
        self.cut[channel] = cut


def delivery(n: int, channel: Channel = Channel.EMAIL) -> Delivery:
    return Delivery(welcome(n, channel), "{}", "rh", Destination("url", "arn"), f"m{n}")


def context() -> BatchContext:
    return BatchContext(clock=lambda: T0, lease=timedelta(seconds=30), metrics=ChannelMetrics())


def test_a_batch_takes_its_slots_in_one_write_and_the_rest_wait_for_the_next_second():
    # Given an SES budget of 3 per second and a batch of 5 emails
    store = Counters()
    stage = BudgetStage(SendBudget(store, {Channel.EMAIL: 3}))
    stage.begin_batch(5)

    verdicts = [stage.check(delivery(n), T0, context()) for n in range(5)]

    # Then three go (each to start within this second), two wait until the next second
    assert verdicts[:3] == [GO] * 3
    next_second = datetime(2026, 11, 28, 12, 0, 1, tzinfo=UTC)
    assert verdicts[3:] == [Defer(next_second, DeferReason.SEND_BUDGET)] * 2
    assert store.takes == 1
    assert store.used == {(Channel.EMAIL, int(T0.timestamp())): 5}


def test_two_senders_share_one_second():
    store = Counters()
    budget = SendBudget(store, {Channel.EMAIL: 4})
    first, second = BudgetStage(budget), BudgetStage(budget)
    first.begin_batch(3)
    second.begin_batch(3)
    gone = [first.check(delivery(n), T0, context()) for n in range(3)]
    gone += [second.check(delivery(n), T0, context()) for n in range(3, 6)]
    assert sum(verdict is GO for verdict in gone) == 4


def test_a_send_must_start_within_its_second():
    stage = BudgetStage(SendBudget(Counters(), {Channel.EMAIL: 3}))
    stage.begin_batch(1)
    sent = delivery(1)
    assert stage.check(sent, T0, context()) is GO
    assert sent.not_after == datetime(2026, 11, 28, 12, 0, 1, tzinfo=UTC)


def test_a_channel_without_a_budget_is_not_counted():
    store = Counters()
    stage = BudgetStage(SendBudget(store, {Channel.EMAIL: 3, Channel.SMS: 0}))
    stage.begin_batch(20)
    assert [stage.check(delivery(n, Channel.SMS), T0, context()) for n in range(20)] == [GO] * 20
    assert store.takes == 0


def test_throttling_halves_the_rate_which_grows_back_over_a_minute():
    # Given a budget of 10 per second
    store = Counters()
    budget = SendBudget(store, {Channel.EMAIL: 10}, monotonic=lambda: 0.0)
    stage = BudgetStage(budget)
    now = T0.timestamp()

    # When SES answers with throttling
    throttled = RetryableError("provider_throttled", "Maximum sending rate exceeded.")
    assert stage.failed(delivery(1), throttled, T0, context()) is None

    # Then the rate is 5 at once, 7.5 after 15 s, back to 10 after 30 s and never above
    assert store.cut[Channel.EMAIL] == RateCut(5.0, now)
    assert budget.limit(Channel.EMAIL, now) == 5
    assert budget.limit(Channel.EMAIL, now + 15) == 7
    assert budget.limit(Channel.EMAIL, now + 30) == 10
    assert budget.limit(Channel.EMAIL, now + 300) == 10


def test_other_failures_do_not_cut_the_rate_and_the_rate_never_falls_below_one():
    store = Counters()
    budget = SendBudget(store, {Channel.EMAIL: 1.5}, monotonic=lambda: 0.0)
    stage = BudgetStage(budget)
    stage.failed(delivery(1), RetryableError("provider_unavailable", "503"), T0, context())
    assert store.cut == {}
    for _ in range(5):
        stage.failed(delivery(1), RetryableError("provider_throttled", "slow down"), T0, context())
    assert store.cut[Channel.EMAIL].rate == 1.0
    assert budget.limit(Channel.EMAIL, T0.timestamp()) == 1


def test_the_batch_admission_takes_the_slots_so_a_record_over_the_budget_is_never_claimed():
    # Given a budget of 2 and a batch of 3 first attempts the admission pre-pass asks about
    store = Counters()
    stage = BudgetStage(SendBudget(store, {Channel.EMAIL: 2}))
    stage.begin_batch(3)
    asked = [stage.admissible(delivery(n).request, T0) for n in range(3)]

    # Then two are admitted (their slots taken, in one write), the third is not (no claim
    # ahead), and in their turns the two go and the third waits for the next second
    assert asked == [True, True, False]
    verdicts = [stage.check(delivery(n), T0, context()) for n in range(3)]
    assert verdicts[:2] == [GO, GO]
    assert isinstance(verdicts[2], Defer)
    assert store.takes == 1
