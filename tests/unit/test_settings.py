import pytest

from notifications.settings import AlarmSettings, SenderSettings, SettingsError

QUEUES = {
    f"QUEUE_URL_{c}": f"https://sqs.example/q-{c.lower()}"
    for c in ("EMAIL", "SMS", "PUSH", "WEBHOOK")
}
SENDER_ENV = {
    **QUEUES,
    "LEDGER_TABLE": "ledger",
    "NOTIFICATIONS_DLQ_URL": "https://sqs.example/dlq",
    "PREFERENCES_TABLE": "prefs",
    "WEBHOOK_SUBSCRIPTIONS_TABLE": "subs",
    "SENDER_EMAIL": "notifications@example.com",
}


def test_sender_settings_from_a_complete_environment():
    settings = SenderSettings.from_env(
        {**SENDER_ENV, "MAX_ATTEMPTS": "5", "BACKOFF_JITTER": "true"}
    )
    assert settings.max_attempts == 5
    assert settings.backoff_jitter is True
    assert settings.initial_delay_seconds == 1.0  # the original spec's default


def test_missing_variables_are_named():
    env = dict(SENDER_ENV)
    del env["LEDGER_TABLE"], env["SENDER_EMAIL"]
    with pytest.raises(SettingsError, match="LEDGER_TABLE, SENDER_EMAIL"):
        SenderSettings.from_env(env)


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("MAX_ATTEMPTS", "three"),
        ("MAX_ATTEMPTS", "0"),
        ("FAILURE_RATE", "1.5"),
        ("BACKOFF_JITTER", "maybe"),
        ("PROVIDER_LATENCY", "email=fixed"),
        ("SENDER_CONCURRENCY", "0"),
        ("SEND_TIMEOUT_SECONDS", "0"),
        ("SES_MAX_SEND_RATE", "-1"),
    ],
)
def test_malformed_variables_are_named(name, value):
    with pytest.raises(SettingsError, match=name):
        SenderSettings.from_env({**SENDER_ENV, name: value})


def test_alarm_settings_need_the_topic():
    with pytest.raises(SettingsError, match="ALERTS_TOPIC_ARN"):
        AlarmSettings.from_env({"LEDGER_TABLE": "ledger"})


def test_a_malformed_webhook_schedule_fails_the_cold_start_naming_variable_and_part():
    with pytest.raises(SettingsError) as caught:
        SenderSettings.from_env({**SENDER_ENV, "WEBHOOK_RETRY_SCHEDULE": "5,1.5,300"})
    assert "WEBHOOK_RETRY_SCHEDULE" in str(caught.value)
    assert "bad part '1.5'" in str(caught.value)
    # And the default is Svix's schedule, the disable horizon 120 h
    settings = SenderSettings.from_env(SENDER_ENV)
    assert settings.webhook_retry_schedule == "5,300,1800,7200,18000,36000,36000"
    assert settings.webhook_disable_after_hours == 120
    with pytest.raises(SettingsError, match="WEBHOOK_DISABLE_AFTER_HOURS"):
        SenderSettings.from_env({**SENDER_ENV, "WEBHOOK_DISABLE_AFTER_HOURS": "0"})
