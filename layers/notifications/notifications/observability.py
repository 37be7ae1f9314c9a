"""Powertools Logger, Tracer and Metrics, and per-channel metric recording.

Metrics go to namespace ``Notifications`` with dimension ``Channel``: Sent, Failed, Retried,
DeadLettered, Deferred, Suppressed (counts) and DeliveryLatency (milliseconds).
"""

from __future__ import annotations

import io
import logging
import sys
from collections import defaultdict

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.metrics.provider.cloudwatch_emf.cloudwatch import (
    AmazonCloudWatchEMFProvider,
)


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


logger = Logger(logger_handler=logging.StreamHandler(_CurrentStdout()))
tracer = Tracer()
metrics = Metrics()

COUNT_METRICS = (
    "Sent",
    "Failed",
    "Retried",
    "DeadLettered",
    "Deferred",
    "Suppressed",
    "CircuitOpened",
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
