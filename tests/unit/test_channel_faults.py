"""Fault injection: the original spec's failure_rate, in front of any provider."""

from __future__ import annotations

import random
from datetime import UTC, datetime

import pytest

from notifications.channels.base import ProviderReceipt, RenderedMessage
from notifications.channels.faults import FaultInjectingProvider, OutageInjectingProvider
from notifications.errors import RetryableError
from notifications.models import Channel, NotificationRequested
from notifications.sending import build_providers
from notifications.settings import SenderSettings, SettingsError

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


# -- FAILURE_MODE=outage ---------------------------------------------------------------------------


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def outcomes(provider: OutageInjectingProvider, clock: Clock, request: NotificationRequested):
    """Per 10 s over 10 minutes: True when the send at that moment failed (an outage)."""
    failed: list[str | bool] = []
    for step in range(60):
        clock.now = step * 10.0
        try:
            provider.send(request, RenderedMessage(text="hi"))
            failed.append(False)
        except RetryableError as error:
            failed.append(error.reason)
    assert set(failed) - {False} <= {"injected_outage"}
    return [reason is not False for reason in failed]


def test_an_outage_takes_the_provider_down_for_whole_windows() -> None:
    # Given outages in half of the 60 s windows, seeded with 3
    clock = Clock()
    inner = CountingProvider()
    provider = OutageInjectingProvider(inner, failure_rate=0.5, seed=3, clock=clock)

    # When it is asked to send every 10 s for 10 minutes
    failed = outcomes(provider, clock, REQUEST)

    # Then every send inside a down window failed and every other one went through: for email
    # with seed 3 the windows down are minutes 0 and 4 to 9
    down_minutes = sorted({step // 6 for step, f in enumerate(failed) if f})
    assert down_minutes == [0, 4, 5, 6, 7, 8, 9]
    assert failed == [step // 6 in down_minutes for step in range(60)]
    assert provider.injected == 42
    assert inner.sent == provider.successes == 18


def test_each_channel_has_its_own_outages_and_every_instance_agrees() -> None:
    # Given two sender instances' providers with the same seed, and an SMS request
    sms = REQUEST.model_copy(update={"channel": Channel.SMS, "recipient": "+14155550100"})
    runs = []
    for _ in range(2):
        clock = Clock()
        runs.append(
            outcomes(
                OutageInjectingProvider(CountingProvider(), 0.5, seed=3, clock=clock), clock, sms
            )
        )

    # Then both saw the same outages, which for SMS are minutes 1 to 9, not email's
    assert runs[0] == runs[1]
    assert sorted({step // 6 for step, f in enumerate(runs[0]) if f}) == [1, 2, 3, 4, 5, 6, 7, 8, 9]


def test_failure_mode_outage_wraps_each_provider_in_outages() -> None:
    # Given sender settings with FAILURE_MODE=outage
    settings = SenderSettings(
        ledger_table="ledger",
        queue_url_email="https://sqs/e",
        queue_url_sms="https://sqs/s",
        queue_url_push="https://sqs/p",
        queue_url_webhook="https://sqs/w",
        notifications_dlq_url="https://sqs/d",
        preferences_table="prefs",
        webhook_subscriptions_table="subs",
        sender_email="noreply@example.com",
        failure_rate=0.25,
        failure_seed=9,
        failure_mode="outage",
    )

    # When the providers are built
    email = build_providers(settings)[Channel.EMAIL]

    # Then the email provider is behind outage injection with that rate and seed
    assert isinstance(email, OutageInjectingProvider)
    assert (email.failure_rate, email.seed) == (0.25, 9)


def test_an_unknown_failure_mode_is_refused_by_name() -> None:
    with pytest.raises(SettingsError, match="FAILURE_MODE"):
        SenderSettings.from_env(
            {
                "LEDGER_TABLE": "ledger",
                "QUEUE_URL_EMAIL": "e",
                "QUEUE_URL_SMS": "s",
                "QUEUE_URL_PUSH": "p",
                "QUEUE_URL_WEBHOOK": "w",
                "NOTIFICATIONS_DLQ_URL": "d",
                "PREFERENCES_TABLE": "prefs",
                "WEBHOOK_SUBSCRIPTIONS_TABLE": "subs",
                "SENDER_EMAIL": "noreply@example.com",
                "FAILURE_MODE": "sometimes",
            }
        )
