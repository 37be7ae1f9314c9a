"""Powertools Logger, Tracer and Metrics, and per-channel metric recording.

Metrics go to namespace ``Notifications`` with dimension ``Channel``: Sent, Failed, Retried,
DeadLettered, Deferred, Suppressed (counts) and DeliveryLatency (milliseconds).

The tracer is Powertools' ``Tracer`` only where tracing is on (see ``LambdaTracer``): the
Powertools Tracer imports the AWS X-Ray SDK even when disabled, about half of a cold start.
"""

from __future__ import annotations

import io
import json
import logging
import os
import sys
from collections import defaultdict
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar, cast

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.metrics.provider.cloudwatch_emf.cloudwatch import (
    AmazonCloudWatchEMFProvider,
)
from aws_lambda_powertools.shared import constants
from aws_lambda_powertools.shared.functions import strtobool

if TYPE_CHECKING:
    from aws_lambda_powertools import Tracer

Handler = TypeVar("Handler", bound=Callable[..., Any])


class _CurrentStdout(io.TextIOBase):
    """Writes to whatever ``sys.stdout`` is at the time of writing. A plain StreamHandler keeps
    the stdout of the moment the logger was made; this one follows a host that redirects
    stdout per invocation (the local runtime, test runners). In Lambda both are the same."""

    def write(self, text: str) -> int:
        return sys.stdout.write(text)

    def flush(self) -> None:
        sys.stdout.flush()

    def writable(self) -> bool:
        return True


def tracing_enabled() -> bool:
    """Whether Powertools' Tracer would trace here: not when ``POWERTOOLS_TRACE_DISABLED`` is
    true (the template sets it unless ``TraceAwsCalls`` is on), nor outside Lambda
    (no ``LAMBDA_TASK_ROOT``), nor under ``sam local`` or chalice: Powertools' own rules."""
    if strtobool(os.environ.get(constants.TRACER_DISABLED_ENV, "false")):
        return False
    if not os.environ.get(constants.LAMBDA_TASK_ROOT_ENV):
        return False
    return not (
        os.environ.get(constants.SAM_LOCAL_ENV) or os.environ.get(constants.CHALICE_LOCAL_ENV)
    )


class LambdaTracer:
    """Powertools' ``Tracer``, created only where tracing is on.

    Where it is off, ``capture_lambda_handler`` returns the handler itself and the X-Ray SDK
    is never imported. Where it is on, the Tracer is created at import as before and the
    decorator is Powertools' own (handler subsegment,
    ColdStart and Service annotations, response and error metadata, boto3 and other supported
    libraries patched so each AWS call is a subsegment). Lambda's active tracing records the
    invocation either way; it needs no SDK in the function."""

    def __init__(self) -> None:
        self._tracer: Tracer | None = None
        if self.enabled:
            # As before: patched at import, so every function's AWS calls are traced, the
            # breaker check's too (it has no handler decorator).
            _ = self.powertools

    @property
    def enabled(self) -> bool:
        return tracing_enabled()

    @property
    def powertools(self) -> Tracer:
        """The Powertools Tracer (imports and, where tracing is on, patches with X-Ray)."""
        if self._tracer is None:
            from aws_lambda_powertools import Tracer

            self._tracer = Tracer()
        return self._tracer

    def capture_lambda_handler(self, handler: Handler) -> Handler:
        """Powertools' ``capture_lambda_handler`` where tracing is on, else ``handler``."""
        if not self.enabled:
            return handler
        return cast(Handler, self.powertools.capture_lambda_handler(handler))


# What a JSON text can start with (after optional whitespace), other than the words below.
_JSON_START = frozenset('{["-0123456789 \t\n\r')
_JSON_WORDS = frozenset({"true", "false", "null", "NaN", "Infinity"})


def log_message_json(message: Any) -> Any:
    """Powertools' decoding of a log message that is a JSON text (``json.loads``), without
    trying it on every plain message: Powertools parses each string message and catches the
    error, and that failed parse was about a tenth of a log line's CPU, on the one line every
    sent message writes (docs/performance.md section 2). Same results: a string no JSON text
    can be is returned as it is, as Powertools does after the failed parse."""
    if not isinstance(message, str):
        return json.loads(message)
    if message[:1] in _JSON_START or message.strip() in _JSON_WORDS:
        return json.loads(message)
    return message


logger = Logger(
    logger_handler=logging.StreamHandler(_CurrentStdout()), json_deserializer=log_message_json
)
tracer = LambdaTracer()
metrics = Metrics()

COUNT_METRICS = (
    "Sent",
    "Failed",
    "Retried",
    "DeadLettered",
    "Deferred",
    "Suppressed",
    "CircuitOpened",
    # Webhook endpoints (endpoint_health.py): kept while disabled, disabled, recovered.
    "Parked",
    "EndpointDisabled",
    "EndpointRecovered",
)


class ChannelMetrics:
    """Collects per-channel counts and latencies during one invocation and emits them as one
    EMF document per channel when flushed (a batch can hold several channels)."""

    def __init__(self) -> None:
        self._counts: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
        self._latencies: dict[str, list[float]] = defaultdict(list)

    def count(self, name: str, channel: str, value: float = 1) -> None:
        if name not in COUNT_METRICS:
            raise ValueError(f"unknown metric {name!r}")
        self._counts[channel][name] += value

    def latency(self, channel: str, milliseconds: float) -> None:
        self._latencies[channel].append(max(milliseconds, 0.0))

    def flush(self) -> None:
        for channel in sorted(set(self._counts) | set(self._latencies)):
            # Channel is the only dimension (no "service" default dimension), so the alarms and
            # the dashboard in template.yaml address exactly these metrics.
            emf = AmazonCloudWatchEMFProvider(namespace=metrics.namespace, service="")
            emf.add_dimension(name="Channel", value=channel)
            for name, value in self._counts.get(channel, {}).items():
                emf.add_metric(name=name, unit=MetricUnit.Count, value=value)
            for value in self._latencies.get(channel, []):
                emf.add_metric(name="DeliveryLatency", unit=MetricUnit.Milliseconds, value=value)
            emf.flush_metrics()
        self._counts.clear()
        self._latencies.clear()
