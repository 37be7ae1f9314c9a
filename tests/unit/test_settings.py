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


# The settings are plain Python (no validation library at cold start): what each kind of
# field accepts and how a bad value reads.


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("MAX_ATTEMPTS", "0", "MAX_ATTEMPTS: must be >= 1 (got '0')"),
        ("MAX_ATTEMPTS", "1001", "MAX_ATTEMPTS: must be <= 1000 (got '1001')"),
        ("MAX_ATTEMPTS", "2.5", "MAX_ATTEMPTS: must be an integer (got '2.5')"),
        ("BREAKER_OPEN_SECONDS", "0", "BREAKER_OPEN_SECONDS: must be > 0 (got '0')"),
        ("FAILURE_RATE", "nan", "FAILURE_RATE: must be a finite number (got 'nan')"),
        ("BATCH_ADMISSION", "yes", "BATCH_ADMISSION: must be true or false (got 'yes')"),
        ("SMS_TYPE", "Bulk", "SMS_TYPE: must be one of 'Transactional', 'Promotional'"),
    ],
)
def test_a_malformed_variable_reads_as_its_name_the_rule_and_the_value(name, value, message):
    with pytest.raises(SettingsError) as raised:
        SenderSettings.from_env({**SENDER_ENV, name: value})
    assert str(raised.value).startswith("malformed environment variable(s): ")
    assert message in str(raised.value)


def test_every_malformed_variable_is_named_at_once():
    with pytest.raises(SettingsError) as raised:
        SenderSettings.from_env({**SENDER_ENV, "MAX_ATTEMPTS": "x", "SMS_MAX_SEGMENTS": "11"})
    assert "MAX_ATTEMPTS: must be an integer (got 'x')" in str(raised.value)
    assert "SMS_MAX_SEGMENTS: must be <= 10 (got '11')" in str(raised.value)


def test_strings_become_typed_values_and_unset_optionals_stay_none():
    settings = SenderSettings.from_env(
        {
            **SENDER_ENV,
            "BACKOFF_MULTIPLIER": "1.5",
            "BATCH_ADMISSION": "FALSE",
            "FAILURE_SEED": "7",
            "POLICY_STATE_TABLE": "",  # empty reads as unset
        }
    )
    assert settings.backoff_multiplier == 1.5
    assert settings.batch_admission is False
    assert settings.failure_seed == 7
    assert settings.policy_state_table is None
    assert settings.webhook_timeout_seconds == 10.0
    assert settings.stage == "dev"  # inherited from BaseSettings


def test_built_directly_the_same_rules_hold_and_the_object_is_frozen():
    env = {name.lower(): value for name, value in SENDER_ENV.items()}
    settings = SenderSettings(**env, max_attempts=4)
    assert settings.max_attempts == 4
    with pytest.raises(AttributeError):
        settings.max_attempts = 5
    with pytest.raises(SettingsError, match=r"MAX_ATTEMPTS: must be >= 1 \(got 0\)"):
        SenderSettings(**env, max_attempts=0)
    with pytest.raises(SettingsError, match="missing environment variable"):
        SenderSettings(ledger_table="ledger")


def test_a_settings_class_can_check_a_field_itself():
    # Given a settings class with its own check of one field (as the sender's flags have)
    from notifications.settings import BaseSettings, field_validator

    class Schedule(BaseSettings):
        waits: str = "5,60"

        @field_validator("waits")
        @classmethod
        def _waits(cls, value: str) -> str:
            if not all(part.strip().isdigit() for part in value.split(",")):
                raise ValueError("must be seconds separated by commas")
            return value.replace(" ", "")

    # When built from the environment, the check's result is kept
    assert Schedule.from_env({"LEDGER_TABLE": "l", "WAITS": "5, 60, 300"}).waits == "5,60,300"
    # And a value it refuses is named like any other malformed variable
    with pytest.raises(SettingsError, match=r"WAITS: must be seconds separated by commas"):
        Schedule.from_env({"LEDGER_TABLE": "l", "WAITS": "5,soon"})
