"""Typed settings, built once per cold start from the environment the template sets.

Each field reads the environment variable of the same name in upper case
(``max_attempts`` <- ``MAX_ATTEMPTS``). A missing or malformed variable fails at once with
its name, so a misconfigured function never handles a single message.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Literal, Self

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from notifications.models import Channel


class SettingsError(RuntimeError):
    """The environment does not describe a usable configuration."""


class _EnvSettings(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Self:
        env = os.environ if environ is None else environ
        values = {
            name: env[name.upper()]
            for name in cls.model_fields
            if env.get(name.upper()) not in (None, "")
        }
        missing = [
            name.upper()
            for name, field in cls.model_fields.items()
            if field.is_required() and name not in values
        ]
        if missing:
            raise SettingsError(f"missing environment variable(s): {', '.join(sorted(missing))}")
        try:
            return cls.model_validate(values)
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in err['loc']).upper()}: {err['msg']} "
                f"(got {err.get('input')!r})"
                for err in exc.errors()
            )
            raise SettingsError(f"malformed environment variable(s): {problems}") from exc


class BaseSettings(_EnvSettings):
    stage: str = "dev"
    ledger_table: str


class QueueSettings(_EnvSettings):
    queue_url_email: str
    queue_url_sms: str
    queue_url_push: str
    queue_url_webhook: str
    notifications_dlq_url: str

    def queue_url(self, channel: Channel) -> str:
        return {
            Channel.EMAIL: self.queue_url_email,
            Channel.SMS: self.queue_url_sms,
            Channel.PUSH: self.queue_url_push,
            Channel.WEBHOOK: self.queue_url_webhook,
        }[channel]


class FanOutSettings(BaseSettings, QueueSettings):
    events_dlq_url: str
    preferences_table: str
    webhook_subscriptions_table: str
    # The template's EventSource (comma separated): an event from another source is rejected
    # as unknown_source. Unset accepts any source (a bare `sam local invoke`).
    event_sources: str | None = None

    def sources(self) -> frozenset[str] | None:
        if self.event_sources is None:
            return None
        return frozenset(s.strip() for s in self.event_sources.split(",") if s.strip())


class SenderSettings(BaseSettings, QueueSettings):
    preferences_table: str
    webhook_subscriptions_table: str
    # Rate-limit counters and breaker state; without it those two stages are off.
    policy_state_table: str | None = None
    # Deferrals beyond 15 minutes: EventBridge Scheduler group and the role it sends with.
    schedule_group: str | None = None
    scheduler_role_arn: str | None = None
    attachments_bucket: str | None = None
    sender_email: str
    max_attempts: int = Field(default=3, ge=1, le=1000)
    initial_delay_seconds: float = Field(default=1.0, ge=0)
    backoff_multiplier: float = Field(default=2.0, ge=1)
    max_delay_seconds: float = Field(default=60.0, ge=0, le=43_200)
    backoff_jitter: bool = False
    # Seeds the jitter's generator (tests and benchmarks, as FAILURE_SEED); unset: os.urandom.
    backoff_jitter_seed: int | None = None
    failure_rate: float = Field(default=0.0, ge=0, le=1)
    failure_seed: int | None = None
    # independent: each send fails with failure_rate (the breaker ignores those faults);
    # outage: whole provider outages the breaker counts (channels/faults.py).
    failure_mode: Literal["independent", "outage"] = "independent"
    rate_limit_per_minute: int = Field(default=100, ge=1)
    breaker_failure_threshold: int = Field(default=5, ge=1)
    breaker_open_seconds: float = Field(default=60.0, gt=0)
    webhook_allow_loopback: bool = False
    # Rate slots and claims of a batch's first attempts in one transaction (admission.py):
    # fewer requests, more DynamoDB write units. false: one by one.
    batch_admission: bool = True
    ses_configuration_set: str | None = None
    unsubscribe_url: str | None = None
    # The preference center (function URL) and its link signing keys; both set: signed links.
    preference_center_url: str | None = None
    preference_link_secret_arn: str | None = None
    sms_type: Literal["Transactional", "Promotional"] = "Transactional"
    sms_sender_id: str | None = None
    sms_max_segments: int = Field(default=3, ge=1, le=10)
    webhook_secret_prefix: str = "notifications/dev/webhooks/"  # noqa: S105 - a name prefix
    webhook_timeout_seconds: float = Field(default=10.0, gt=0, le=30)
    # Webhooks' own retry schedule (retry.RetrySchedule): seconds to wait after each failed
    # attempt; attempts = waits + 1. Email, SMS and push keep MAX_ATTEMPTS and the formula.
    webhook_retry_schedule: str = "5,300,1800,7200,18000,36000,36000"
    # An endpoint failing continuously this long is disabled (endpoint_health.py).
    webhook_disable_after_hours: float = Field(default=120.0, gt=0)
    # The stack's bus, for the operational events (operational_events.py); unset: not put.
    event_bus_name: str | None = None

    @field_validator("webhook_retry_schedule")
    @classmethod
    def _schedule(cls, value: str) -> str:
        from notifications.retry import RetrySchedule

        RetrySchedule.parse(value)  # ValueError names the bad part
        return value

    # Sends of one batch in flight at once (1: one after another, the sequential path), and
    # how long the batch waits for one send before giving it up (sending.py).
    sender_concurrency: int = Field(default=10, ge=1, le=10)
    send_timeout_seconds: float = Field(default=10.0, gt=0, le=900)
    # A modelled latency per channel for local runs and benchmarks (channels/latency.py), e.g.
    # "email=lognormal:80:250,webhook=fixed:300"; empty: none.
    provider_latency: str = ""
    # Provider send budgets, sends per second across every sender (send_budget.py); 0: none.
    ses_max_send_rate: float = Field(default=0.0, ge=0)
    sms_max_send_rate: float = Field(default=0.0, ge=0)
    push_max_send_rate: float = Field(default=0.0, ge=0)

    def send_rates(self) -> dict[Channel, float]:
        return {
            Channel.EMAIL: self.ses_max_send_rate,
            Channel.SMS: self.sms_max_send_rate,
            Channel.PUSH: self.push_max_send_rate,
        }

    @field_validator("provider_latency")
    @classmethod
    def _latency(cls, value: str) -> str:
        from notifications.channels.latency import parse_latency

        parse_latency(value)  # a LatencySpecError (a ValueError) names the bad part
        return value

    @field_validator("backoff_jitter", "webhook_allow_loopback", "batch_admission", mode="before")
    @classmethod
    def _flag(cls, value: object) -> object:
        if isinstance(value, str) and value.strip().lower() not in {"true", "false", "1", "0"}:
            raise ValueError("must be true or false")
        return value


class BreakerCheckSettings(BaseSettings, QueueSettings):
    policy_state_table: str
    sender_function_name: str


class FallbackQueueSettings(_EnvSettings):
    """Channel fallback (notifications.fallback): the queues a successor goes to. Without
    them the function records failures without falling back."""

    queue_url_email: str | None = None
    queue_url_sms: str | None = None
    queue_url_push: str | None = None

    def fallback_queue_urls(self) -> dict[Channel, str] | None:
        urls = {
            Channel.EMAIL: self.queue_url_email,
            Channel.SMS: self.queue_url_sms,
            Channel.PUSH: self.queue_url_push,
        }
        if any(url is None for url in urls.values()):
            return None
        return {channel: url for channel, url in urls.items() if url is not None}


class AlarmSettings(BaseSettings, FallbackQueueSettings):
    alerts_topic_arn: str
    # The preferences a fallback reads (with the queues above). Without it no fallback.
    preferences_table: str | None = None
    # NotificationDeadLettered on the stack's bus (operational_events.py); unset: not put.
    event_bus_name: str | None = None


class FeedbackSettings(BaseSettings, FallbackQueueSettings):
    preferences_table: str


class PreferenceCenterSettings(BaseSettings):
    preferences_table: str
    # The Secrets Manager secret holding the link signing keys (notifications.preference_links).
    preference_link_secret_arn: str
