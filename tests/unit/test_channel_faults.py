"""Fault injection: the original spec's failure_rate, in front of any provider."""

from __future__ import annotations

import random
from datetime import UTC, datetime

import pytest

from notifications.channels.base import ProviderReceipt, RenderedMessage
from notifications.channels.faults import FaultInjectingProvider
from notifications.errors import RetryableError
from notifications.models import Channel, NotificationRequested

NOW = datetime(2025, 1, 2, tzinfo=UTC)
REQUEST = NotificationRequested(
    notification_id="7d0c5b1e-2f1a-5b8e-9c3d-4e5f6a7b8c9d",
    channel=Channel.EMAIL,
    recipient="alice@example.com",
    template_id="welcome",
    category="account",
    event_id="evt-1",
    event_type="UserRegistered",
    correlation_id="evt-1",
    occurred_at=NOW,
    requested_at=NOW,
)


class CountingProvider:
    def __init__(self) -> None:
        self.sent = 0

    def send(self, request: NotificationRequested, message: RenderedMessage) -> ProviderReceipt:
        self.sent += 1
        return ProviderReceipt(provider_message_id=f"id-{self.sent}")


def attempt_all(provider: FaultInjectingProvider, times: int) -> int:
    failures = 0
    for _ in range(times):
        try:
            provider.send(REQUEST, RenderedMessage(text="hi"))
        except RetryableError as error:
            if error.reason != "injected_fault":
                raise
            failures += 1
    return failures


def test_a_fraction_of_sends_fail_before_reaching_the_provider() -> None:
    # Given a 30% failure rate and a seeded random source
    inner = CountingProvider()
    faulty = FaultInjectingProvider(inner, failure_rate=0.3, rng=random.Random(7))

    # When it is asked to send 1000 times
    failures = attempt_all(faulty, 1000)

    # Then the counts add up and the inner provider saw only the successes
    assert faulty.attempts == 1000
    assert faulty.injected == failures
    assert faulty.successes == inner.sent == 1000 - failures
    assert 230 <= failures <= 370


@pytest.mark.parametrize(("rate", "failures"), [(0.0, 0), (1.0, 50)])
def test_the_extremes_never_and_always_fail(rate: float, failures: int) -> None:
    inner = CountingProvider()
    faulty = FaultInjectingProvider(inner, failure_rate=rate, rng=random.Random(1))
    assert attempt_all(faulty, 50) == failures
    assert inner.sent == 50 - failures


def test_the_same_seed_gives_the_same_failures() -> None:
    runs = []
    for _ in range(2):
        faulty = FaultInjectingProvider(CountingProvider(), failure_rate=0.5, rng=random.Random(42))
        runs.append([attempt_all(faulty, 1) for _ in range(20)])
    assert runs[0] == runs[1]


def test_a_rate_outside_zero_to_one_is_refused() -> None:
    with pytest.raises(ValueError, match="failure_rate"):
        FaultInjectingProvider(CountingProvider(), failure_rate=1.5, rng=random.Random(1))
