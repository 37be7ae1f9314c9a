"""Embedded Metric Format: turn the JSON lines a function prints into CloudWatch metric data."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any


@dataclass(frozen=True)
class MetricDatum:
    """One value of one metric, ready for PutMetricData."""

    namespace: str
    name: str
    dimensions: tuple[tuple[str, str], ...]
    values: tuple[float, ...]
    unit: str | None
    timestamp: datetime
    storage_resolution: int | None = None

    def as_put_metric_data(self) -> dict[str, Any]:
        datum: dict[str, Any] = {
            "MetricName": self.name,
            "Dimensions": [{"Name": name, "Value": value} for name, value in self.dimensions],
            "Timestamp": self.timestamp,
            "Values": list(self.values),
        }
        if self.unit:
            datum["Unit"] = self.unit
        if self.storage_resolution:
            datum["StorageResolution"] = self.storage_resolution
        return datum


@dataclass
class ParsedOutput:
    """What a function printed: metric data from EMF lines, and every other line."""

    metrics: list[MetricDatum] = field(default_factory=list)
    lines: list[str] = field(default_factory=list)


def parse_output(text: str) -> ParsedOutput:
    """Split printed output into EMF metric data and ordinary log lines."""
    parsed = ParsedOutput()
    for line in text.splitlines():
        if not line.strip():
            continue
        document = _emf_document(line)
        if document is None:
            parsed.lines.append(line)
        else:
            parsed.metrics.extend(metrics_from_emf(document))
    return parsed


def _emf_document(line: str) -> dict[str, Any] | None:
    stripped = line.strip()
    if not stripped.startswith("{") or '"_aws"' not in stripped:
        return None
    try:
        document = json.loads(stripped)
    except ValueError:
        return None
    if not isinstance(document, dict):
        return None
    aws = document.get("_aws")
    if not isinstance(aws, dict) or not isinstance(aws.get("CloudWatchMetrics"), list):
        return None
    return document


def metrics_from_emf(document: dict[str, Any]) -> list[MetricDatum]:
    """Metric data described by one EMF document (every directive, every dimension set)."""
    aws = document["_aws"]
    timestamp_ms = aws.get("Timestamp")
    timestamp = (
        datetime.fromtimestamp(float(timestamp_ms) / 1000, tz=timezone.utc)
        if isinstance(timestamp_ms, (int, float))
        else datetime.now(tz=timezone.utc)
    )
    data: list[MetricDatum] = []
    for directive in aws["CloudWatchMetrics"]:
        namespace = str(directive.get("Namespace", ""))
        dimension_sets: list[list[str]] = directive.get("Dimensions") or [[]]
        for definition in directive.get("Metrics", []):
            name = str(definition["Name"])
            raw = document.get(name)
            if raw is None:
                continue
            values = tuple(float(v) for v in (raw if isinstance(raw, list) else [raw]))
            for dimension_names in dimension_sets:
                dimensions = tuple(
                    (str(dim), str(document[dim])) for dim in dimension_names if dim in document
                )
                data.append(
                    MetricDatum(
                        namespace=namespace,
                        name=name,
                        dimensions=dimensions,
                        values=values,
                        unit=definition.get("Unit"),
                        timestamp=timestamp,
                        storage_resolution=definition.get("StorageResolution"),
                    )
                )
    return data
