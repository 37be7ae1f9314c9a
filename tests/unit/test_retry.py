import random

import pytest

from notifications.retry import MAX_VISIBILITY_SECONDS, RetryConfig


def test_defaults_follow_the_original_spec():
    # Given the defaults, When asking for delays, Then 1 s, 2 s, 4 s, 8 s ... capped at 60 s
    config = RetryConfig()
    assert config.max_attempts == 3
    assert [config.delay(n) for n in range(1, 9)] == [1, 2, 4, 8, 16, 32, 60, 60]


def test_huge_attempt_numbers_stay_at_the_cap():
    assert RetryConfig(max_delay=60).delay(100_000) == 60


def test_visibility_rounds_up_and_respects_retry_after_and_sqs_limit():
    config = RetryConfig(initial_delay=0.5, backoff_multiplier=3, max_delay=1e9)
    assert config.visibility_timeout(1) == 1  # 0.5 s rounds up: never back early
    assert config.visibility_timeout(2) == 2  # 1.5 s
    assert config.visibility_timeout(1, retry_after=120) == 120
    assert config.visibility_timeout(40) == MAX_VISIBILITY_SECONDS


def test_full_jitter_stays_within_the_capped_delay():
    config = RetryConfig(jitter=True, rng=random.Random(7))
    samples = [config.delay(3) for _ in range(500)]
    assert all(0 <= s <= 4 for s in samples)
    assert len({round(s, 3) for s in samples}) > 100  # really random, not the cap


def test_last_attempt_is_max_attempts():
    config = RetryConfig(max_attempts=3)
    assert [config.is_last_attempt(n) for n in (1, 2, 3, 4)] == [False, False, True, True]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"max_attempts": 0}, "max_attempts"),
        ({"initial_delay": -1}, "delays"),
        ({"backoff_multiplier": 0.5}, "backoff_multiplier"),
    ],
)
def test_nonsense_configuration_is_refused(kwargs, message):
    with pytest.raises(ValueError, match=message):
        RetryConfig(**kwargs)


# -- the webhook schedule (WebhookRetrySchedule) -------------------------------------------------

from notifications.retry import RetrySchedule  # noqa: E402

DEFAULT_SCHEDULE = "5,300,1800,7200,18000,36000,36000"


def test_the_default_webhook_schedule_is_svix_s_with_eight_attempts():
    # Given the template's default schedule
    schedule = RetrySchedule.parse(DEFAULT_SCHEDULE)
    # Then there are 8 attempts, waiting 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 10 h in between
    assert schedule.max_attempts == 8
    assert [schedule.wait(n) for n in range(1, 8)] == [5, 300, 1800, 7200, 18000, 36000, 36000]
    assert [schedule.is_last_attempt(n) for n in (7, 8, 9)] == [False, True, True]


def test_retry_after_is_held_within_the_schedule_s_bounds():
    schedule = RetrySchedule.parse("10,60,600")
    assert schedule.wait(1, retry_after=120) == 120  # within bounds: honoured
    assert schedule.wait(3, retry_after=2) == 10  # never sooner than the shortest wait
    assert schedule.wait(1, retry_after=43_200) == 600  # never later than the longest


def test_schedule_jitter_draws_within_each_wait():
    schedule = RetrySchedule.parse("100,1000", jitter=True, rng=random.Random(3))
    samples = [schedule.wait(2) for _ in range(300)]
    assert all(0 <= s <= 1000 for s in samples)
    assert len({round(s, 3) for s in samples}) > 100


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "bad part ''"),
        ("5,,300", "bad part ''"),
        ("5,1.5", "bad part '1.5'"),
        ("5,-3", "bad part '-3'"),
        ("five", "bad part 'five'"),
        (",".join(["1"] * 16), "at most 15 waits"),
        ("5,604801", "0 to 604800 seconds"),
    ],
)
def test_a_malformed_schedule_is_refused_naming_the_bad_part(text, message):
    with pytest.raises(ValueError, match=message):
        RetrySchedule.parse(text)
