"""Typed settings, built once per cold start from the environment the template sets.

Each field reads the environment variable of the same name in upper case
(``max_attempts`` <- ``MAX_ATTEMPTS``). A missing or malformed variable fails at once with
its name, so a misconfigured function never handles a single message.

Plain Python, no validation library: every function builds its settings at cold start, and
pydantic's import plus one model class per settings class cost each cold start more than
the rest of this module does (docs/performance.md, "Cold start"). A field is an annotation
(``str``, ``int``, ``float``, ``bool``, a ``Literal`` of strings, or one of those ``| None``)
with an optional ``Field(default=..., ge=, gt=, le=)``; environment strings are converted
(``true``/``false``/``1``/``0`` for flags) and checked against the bounds, and constructing a
settings class directly checks the same.
"""

import os
import types
import typing
from collections.abc import Callable, Mapping
from typing import Any, ClassVar, Literal, Self

import msgspec

from notifications.kinds import Channel


class SettingsError(RuntimeError):
    """The environment does not describe a usable configuration."""


_REQUIRED: Any = object()
_FLAGS = {"true": True, "1": True, "false": False, "0": False}


class _Spec(msgspec.Struct, frozen=True):
    default: Any = _REQUIRED
    ge: float | None = None
    gt: float | None = None
    le: float | None = None


def Field(
    default: Any = _REQUIRED,
    *,
    ge: float | None = None,
    gt: float | None = None,
    le: float | None = None,
) -> Any:
    """A settings field's default and numeric bounds."""
    return _Spec(default, ge, gt, le)


class _Validator(msgspec.Struct, frozen=True):
    """A settings class's own check of some fields: ``mode="before"`` gets the raw value
    (an environment string or what the caller passed), ``"after"`` the converted one; it
    returns the value to keep or raises ``ValueError`` saying what is wrong."""

    method: Any  # the classmethod
    names: tuple[str, ...]
    mode: Literal["before", "after"]


def field_validator(
    *names: str, mode: Literal["before", "after"] = "after"
) -> Callable[[Any], Any]:
    """Declare a classmethod as the check of ``names`` (pydantic's decorator, kept so a
    settings class reads as it did)."""

    def declare(method: Any) -> _Validator:
        return _Validator(method, names, mode)

    return declare


class _Field(msgspec.Struct, frozen=True):
    name: str
    kind: type | tuple[str, ...]  # a scalar type, or the allowed values of a Literal
    optional: bool
    spec: _Spec

    @property
    def required(self) -> bool:
        return self.spec.default is _REQUIRED

    def convert(self, value: object) -> object:
        """``value`` (an environment string or a Python value) as this field's type; a
        ``ValueError`` saying what is wrong otherwise."""
        if value is None:
            if self.optional:
                return None
            raise ValueError("must be set")
        kind = self.kind
        if isinstance(kind, tuple):
            if value not in kind:
                raise ValueError(f"must be one of {', '.join(repr(k) for k in kind)}")
            return value
        if kind is bool:
            if isinstance(value, bool):
                return value
            if isinstance(value, str) and value.strip().lower() in _FLAGS:
                return _FLAGS[value.strip().lower()]
            raise ValueError("must be true or false")
        if kind is str:
            if not isinstance(value, str):
                raise ValueError("must be a string")
            return value
        number = _number(kind, value)
        self._check_bounds(number)
        return number

    def _check_bounds(self, number: float) -> None:
        spec = self.spec
        if spec.ge is not None and not number >= spec.ge:
            raise ValueError(f"must be >= {spec.ge:g}")
        if spec.gt is not None and not number > spec.gt:
            raise ValueError(f"must be > {spec.gt:g}")
        if spec.le is not None and not number <= spec.le:
            raise ValueError(f"must be <= {spec.le:g}")


def _number(kind: type, value: object) -> float:
    noun = "an integer" if kind is int else "a number"
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise ValueError(f"must be {noun}")
    if kind is int and isinstance(value, float) and not value.is_integer():
        raise ValueError(f"must be {noun}")
    try:
        number = int(value) if kind is int else float(value)
    except ValueError:
        raise ValueError(f"must be {noun}") from None
    if number != number or number in (float("inf"), float("-inf")):
        raise ValueError("must be a finite number")
    return number


def _field(name: str, annotation: object, spec: _Spec) -> _Field:
    optional = False
    args = typing.get_args(annotation)
    if isinstance(annotation, types.UnionType) or typing.get_origin(annotation) is typing.Union:
        rest = [a for a in args if a is not type(None)]
        if len(rest) != 1 or len(args) != 2:
            raise TypeError(f"settings field {name}: only X | None unions are supported")
        optional, annotation = True, rest[0]
        args = typing.get_args(annotation)
    if typing.get_origin(annotation) is Literal:
        return _Field(name, tuple(str(a) for a in args), optional, spec)
    if annotation not in (str, int, float, bool):
        raise TypeError(f"settings field {name}: unsupported type {annotation!r}")
    return _Field(name, annotation, optional, spec)


class _EnvSettings:
    """Base of the settings classes: fields from the annotations, values checked once."""

    _fields: ClassVar[dict[str, _Field]] = {}
    _own_validators: ClassVar[tuple[_Validator, ...]] = ()
    _validators: ClassVar[tuple[_Validator, ...]] = ()

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        inherited: dict[str, _Field] = {}
        for base in reversed(cls.__mro__[1:]):
            inherited.update(vars(base).get("_fields", {}))
        own = vars(cls)
        fields = dict(inherited)
        # This module does without `from __future__ import annotations`: the annotations are
        # objects already, no string to evaluate per class at each cold start.
        for name, annotation in own.get("__annotations__", {}).items():
            if name.startswith("_"):
                continue
            declared = own.get(name, _REQUIRED)
            spec = declared if isinstance(declared, _Spec) else _Spec(declared)
            fields[name] = _field(name, annotation, spec)
        cls._fields = fields
        own_validators = tuple(v for v in own.values() if isinstance(v, _Validator))
        unknown = sorted({n for v in own_validators for n in v.names} - set(fields))
        if unknown:
            raise TypeError(f"{cls.__name__}: validator of unknown field(s) {', '.join(unknown)}")
        cls._own_validators = own_validators
        cls._validators = tuple(
            v for klass in reversed(cls.__mro__) for v in vars(klass).get("_own_validators", ())
        )
        for name, field in fields.items():  # class attributes: the defaults only
            if field.required:
                if name in own:
                    delattr(cls, name)
            else:
                setattr(cls, name, field.spec.default)

    def __init__(self, **values: Any) -> None:
        unknown = sorted(set(values) - set(self._fields))
        if unknown:
            raise TypeError(f"{type(self).__name__}: unknown field(s) {', '.join(unknown)}")
        missing = sorted(
            n.upper() for n, f in self._fields.items() if f.required and n not in values
        )
        if missing:
            raise SettingsError(f"missing environment variable(s): {', '.join(missing)}")
        problems = []
        for name, field in self._fields.items():
            value = values.get(name, field.spec.default)
            try:
                object.__setattr__(self, name, self._checked(name, field, value))
            except ValueError as exc:
                problems.append(f"{name.upper()}: {exc} (got {value!r})")
        if problems:
            raise SettingsError(f"malformed environment variable(s): {'; '.join(problems)}")

    @classmethod
    def _checked(cls, name: str, field: _Field, value: object) -> object:
        mine = [v for v in cls._validators if name in v.names]
        for validator in mine:
            if validator.mode == "before":
                value = validator.method.__get__(None, cls)(value)
        converted = field.convert(value)
        for validator in mine:
            if validator.mode == "after" and converted is not None:
                converted = validator.method.__get__(None, cls)(converted)
        return converted

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError(f"{type(self).__name__} is frozen")

    def __repr__(self) -> str:
        shown = ", ".join(f"{name}={getattr(self, name)!r}" for name in self._fields)
        return f"{type(self).__name__}({shown})"

    def __eq__(self, other: object) -> bool:
        if type(other) is not type(self):
            return NotImplemented
        return all(getattr(self, n) == getattr(other, n) for n in self._fields)

    def __hash__(self) -> int:
        return hash(tuple(getattr(self, n) for n in self._fields))

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Self:
        env = os.environ if environ is None else environ
        values = {
            name: env[name.upper()]
            for name in cls._fields
            if env.get(name.upper()) not in (None, "")
        }
        return cls(**values)


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
        if not value.strip():
            return value  # no model (parse_latency gives {}): the module stays unloaded
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
