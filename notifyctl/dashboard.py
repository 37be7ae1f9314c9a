"""The notification dashboard: the original spec's layout, computed from the ledger and the
dead-letter queues."""

from __future__ import annotations

import json
import math
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from rich.console import Console, Group
from rich.panel import Panel
from rich.table import Table

from notifications.registry import CHANNELS as CHANNEL_SPECS
from notifyctl import choices

SETTLED = {"SENT", "DEAD_LETTERED"}
# A notification has a ledger record from its first claim or deferral on; before that it waits
# in its channel queue, counted by ``queued``.
IN_FLIGHT = {"SENDING", "RETRYING", "DEFERRED", "REDRIVEN"}
RECENT = 5
RECENT_EVENTS = 3


@dataclass(frozen=True)
class ChannelFigures:
    channel: str
    settled: int  # delivered + dead_lettered
    delivered: int
    dead_lettered: int
    success_rate: float | None  # delivered / settled
    latency_ms: dict[str, float | None]


@dataclass(frozen=True)
class Failure:
    at: str
    kind: str  # "notification" (dead-lettered) or "event" (rejected by the fan-out)
    reason: str
    subject: str  # masked recipient, or the event type
    channel: str | None
    ident: str


@dataclass(frozen=True)
class Retrying:
    """A notification waiting for its next attempt (RETRYING), soonest first."""

    next_attempt_at: str
    channel: str | None
    subject: str  # masked recipient (a webhook's subscription id)
    attempts: int
    reason: str
    ident: str


@dataclass
class Dashboard:
    """The figures; the terminal labels are these names (docs/operations.md defines each)."""

    delivered: int  # SENT: the provider accepted it
    dead_lettered: int  # DEAD_LETTERED: given up on, in the dead-letter store
    settled: int  # delivered + dead_lettered: notifications with a final outcome
    success_rate: float | None  # delivered / settled
    in_dlq: int
    awaiting_alarm: int
    avg_retries: float | None  # mean of (attempts - 1) over the settled notifications
    in_flight: int
    suppressed: int
    by_channel: list[ChannelFigures] = field(default_factory=list)
    dead_letters_by_reason: dict[str, int] = field(default_factory=dict)
    suppressed_by_reason: dict[str, int] = field(default_factory=dict)
    rejected_events: int = 0
    # Notifications sent as a channel fallback of another (records with ``fallback_of``).
    fallbacks: int = 0
    queued: int = 0  # messages waiting (visible) in the channel queues
    # Sums of the Notifications metrics over the window, per metric and channel, from CloudWatch.
    metrics: dict[str, dict[str, float]] = field(default_factory=dict)
    recent_failures: list[Failure] = field(default_factory=list)
    retrying: list[Retrying] = field(default_factory=list)  # the soonest next attempts
    kept: int = 0  # ENDPOINT_DISABLED: kept while their webhook endpoint is disabled

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2)


def percentile(values: Sequence[float], pct: float) -> float | None:
    """Nearest-rank percentile; None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(math.ceil(pct / 100 * len(ordered)), 1)
    return float(ordered[rank - 1])


def _ratio(part: int, whole: int) -> float | None:
    return None if whole == 0 else part / whole


def compute(
    records: Iterable[Mapping[str, Any]],
    rejected_events: Sequence[Mapping[str, Any]] = (),
    awaiting_alarm: int = 0,
    rejected_total: int | None = None,
    since: datetime | None = None,
    queued: int = 0,
) -> Dashboard:
    """Figures from ledger records (``DynamoLedger.scan``), EventsDLQ entries and the number of
    messages still in NotificationsDLQ (not yet recorded by the alarm function)."""
    cutoff = since.isoformat() if since else None
    kept = [r for r in records if cutoff is None or str(r.get("updated_at", "")) >= cutoff]
    status = Counter(str(r.get("status")) for r in kept)
    settled = [r for r in kept if r.get("status") in SETTLED]
    # Every settled notification counts, also one that failed before any provider call.
    retries = [max(int(r.get("attempts") or 0) - 1, 0) for r in settled]

    per_channel: dict[str, list[Mapping[str, Any]]] = defaultdict(list)
    for record in settled:
        per_channel[str(record.get("channel", "?"))].append(record)
    by_channel = []
    for channel in sorted(per_channel):
        rows = per_channel[channel]
        sent = [r for r in rows if r["status"] == "SENT"]
        latencies = [float(r["latency_ms"]) for r in sent if r.get("latency_ms") is not None]
        by_channel.append(
            ChannelFigures(
                channel=channel,
                settled=len(rows),
                delivered=len(sent),
                dead_lettered=len(rows) - len(sent),
                success_rate=_ratio(len(sent), len(rows)),
                latency_ms={f"p{p}": percentile(latencies, p) for p in (50, 95, 99)},
            )
        )

    dead = [r for r in kept if r.get("status") == "DEAD_LETTERED"]
    notification_failures = [
        Failure(
            at=str(r.get("dead_lettered_at", r.get("updated_at", ""))),
            kind="notification",
            reason=str(r.get("dead_letter_reason", r.get("last_reason", "?"))),
            subject=str(r.get("recipient_masked", "?")),
            channel=r.get("channel"),
            ident=str(r["notification_id"]),
        )
        for r in dead
    ]
    event_failures = [
        Failure(
            at=str(e.get("at", "")),
            kind="event",
            reason=str(e.get("reason", "?")),
            subject=str(e.get("event_type") or "?"),
            channel=None,
            ident=str(e.get("event_id") or e.get("message_id") or "?"),
        )
        for e in rejected_events
    ]
    # The newest dead letters and, so they never scroll out of sight, the newest rejected events.
    notification_failures.sort(key=lambda f: f.at, reverse=True)
    event_failures.sort(key=lambda f: f.at, reverse=True)
    failures = notification_failures[:RECENT] + event_failures[:RECENT_EVENTS]
    retrying = sorted(
        (
            Retrying(
                next_attempt_at=str(r.get("next_attempt_at", "?")),
                channel=r.get("channel"),
                subject=str(r.get("recipient_masked", "?")),
                attempts=int(r.get("attempts") or 0),
                reason=str(r.get("last_reason", "?")),
                ident=str(r["notification_id"]),
            )
            for r in kept
            if r.get("status") == "RETRYING"
        ),
        key=lambda row: row.next_attempt_at,
    )[:RECENT]
    return Dashboard(
        delivered=status["SENT"],
        dead_lettered=status["DEAD_LETTERED"],
        settled=len(settled),
        in_dlq=status["DEAD_LETTERED"] + awaiting_alarm,
        awaiting_alarm=awaiting_alarm,
        in_flight=sum(status[s] for s in IN_FLIGHT),
        suppressed=status["SUPPRESSED"],
        success_rate=_ratio(status["SENT"], len(settled)),
        avg_retries=sum(retries) / len(retries) if retries else None,
        by_channel=by_channel,
        dead_letters_by_reason=dict(
            Counter(str(r.get("dead_letter_reason", "?")) for r in dead).most_common()
        ),
        suppressed_by_reason=dict(
            Counter(
                str(r.get("suppressed_reason", "?"))
                for r in kept
                if r.get("status") == "SUPPRESSED"
            ).most_common()
        ),
        rejected_events=len(rejected_events) if rejected_total is None else rejected_total,
        fallbacks=sum(1 for r in kept if r.get("fallback_of")),
        queued=queued,
        recent_failures=failures,
        retrying=retrying,
        kept=status["ENDPOINT_DISABLED"],
    )


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value:.1%}"


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.0f}"


# What each CloudWatch count metric counts, shown next to its name (docs/operations.md).
METRIC_UNITS = {
    "Sent": "notifications",
    "Failed": "attempts",
    "Retried": "retries",
    "DeadLettered": "notifications",
    "Deferred": "deferrals",
    "Suppressed": "notifications",
    "CircuitOpened": "openings",
    "Parked": "notifications",
    "EndpointDisabled": "endpoints",
    "EndpointRecovered": "endpoints",
}


def _counts_table(title: str, counts: Mapping[str, int]) -> Table:
    table = Table(title=title, title_justify="left")
    table.add_column("Reason")
    table.add_column("Count", justify="right")
    for reason, count in counts.items():
        table.add_row(reason, f"{count:,}")
    return table


def render(dashboard: Dashboard, console: Console) -> None:
    """The dashboard in the terminal; a table with nothing to show is left out."""
    summary = Table.grid(padding=(0, 2))
    summary.add_column(style="bold")
    summary.add_column(justify="right")
    for label, value in (
        ("Delivered:", f"{dashboard.delivered:,}"),
        ("Dead-lettered:", f"{dashboard.dead_lettered:,}"),
        ("Settled:", f"{dashboard.settled:,}"),
        ("Success rate:", _pct(dashboard.success_rate)),
        ("In DLQ:", f"{dashboard.in_dlq:,}"),
        ("Avg retries:", "-" if dashboard.avg_retries is None else f"{dashboard.avg_retries:.2f}"),
        ("In flight:", f"{dashboard.in_flight:,}"),
        ("Queued:", f"{dashboard.queued:,}"),
        ("Suppressed:", f"{dashboard.suppressed:,}"),
        ("Rejected events:", f"{dashboard.rejected_events:,}"),
        ("Fallbacks:", f"{dashboard.fallbacks:,}"),
        ("Kept (endpoint disabled):", f"{dashboard.kept:,}"),
    ):
        summary.add_row(label, value)
    parts: list[Any] = [summary]

    if dashboard.by_channel:
        channels = Table(title="By Channel", title_justify="left", expand=False)
        latency = ("p50 ms", "p95 ms", "p99 ms")
        for column in ("Channel", "Settled", "Delivered", "Success", *latency):
            channels.add_column(column, justify="left" if column == "Channel" else "right")
        for row in dashboard.by_channel:
            channels.add_row(
                row.channel.capitalize(),
                f"{row.settled:,}",
                f"{row.delivered:,}",
                _pct(row.success_rate),
                *(_ms(row.latency_ms[p]) for p in ("p50", "p95", "p99")),
            )
        parts += ["", channels]
    if dashboard.dead_letters_by_reason:
        parts += ["", _counts_table("Dead-lettered by Reason", dashboard.dead_letters_by_reason)]
    if dashboard.suppressed_by_reason:
        parts += ["", _counts_table("Suppressed by Reason", dashboard.suppressed_by_reason)]
    if dashboard.recent_failures:
        recent = Table(title="Recent Failures", title_justify="left")
        for column in ("#", "Reason", "Recipient / event", "Channel"):
            recent.add_column(column, overflow="fold")  # wraps; the id column stays whole
        recent.add_column("Id", no_wrap=True)
        for index, failure in enumerate(dashboard.recent_failures, start=1):
            recent.add_row(
                str(index),
                failure.reason,
                failure.subject,
                failure.channel or ("event" if failure.kind == "event" else "-"),
                failure.ident,
            )
        parts += ["", recent]
    if dashboard.retrying:
        waiting = Table(title="Retrying (soonest next attempt first)", title_justify="left")
        for column in ("Next attempt", "Channel", "Recipient / endpoint", "Attempts", "Reason"):
            waiting.add_column(column, overflow="fold")
        waiting.add_column("Id", no_wrap=True)
        for row in dashboard.retrying:
            waiting.add_row(
                row.next_attempt_at,
                row.channel or "-",
                row.subject,
                str(row.attempts),
                row.reason,
                row.ident,
            )
        parts += ["", waiting]
    if dashboard.metrics:
        metrics = Table(title="From CloudWatch metrics (sums)", title_justify="left")
        metrics.add_column("Metric (counts)")
        for channel in CHANNELS:
            metrics.add_column(channel.capitalize(), justify="right")
        for name, per_channel in dashboard.metrics.items():
            label = f"{name} ({METRIC_UNITS.get(name, 'count')})"
            metrics.add_row(label, *(f"{per_channel.get(c, 0):,.0f}" for c in CHANNELS))
        parts += ["", metrics]
    console.print(
        Panel(Group(*parts), title="Notification Dashboard", title_align="left", expand=False)
    )


def collect(target: Any, since: datetime | None = None) -> Dashboard:
    """The dashboard of a stack (``notifyctl.target.StackTarget``)."""
    from notifications.adapters.ledger import DynamoLedger
    from notifyctl.dead_letter_queues import (
        depth,
        describe_events_dlq_message,
        fan_out_max_receives,
        peek,
    )

    sqs = target.client("sqs")
    events_dlq = target.output("EventsDLQUrl")
    max_receives = fan_out_max_receives(sqs, target.outputs.get("FanOutQueueUrl"))
    rejected = [describe_events_dlq_message(m, max_receives) for m in peek(sqs, events_dlq)]
    figures = compute(
        DynamoLedger(target.output("LedgerTableName")).scan(),
        rejected_events=rejected,
        awaiting_alarm=depth(sqs, target.output("NotificationsDLQUrl")),
        rejected_total=depth(sqs, events_dlq),
        since=since,
        queued=sum(
            depth(sqs, target.output(f"{queue}Url"), in_flight=False) for queue in CHANNEL_QUEUES
        ),
    )
    figures.metrics = metric_totals(target.client("cloudwatch"), since)
    return figures


METRIC_WINDOW = timedelta(days=1)  # without --since, CloudWatch totals cover the last day
CHANNELS = tuple(choices.channels())
CHANNEL_QUEUES = tuple(spec.queue_id for spec in CHANNEL_SPECS.values())


def metric_totals(cloudwatch: Any, since: datetime | None) -> dict[str, dict[str, float]]:
    """Sum of each count metric per channel since ``since`` (default: the last day)."""
    from notifications.observability import COUNT_METRICS

    now = datetime.now(UTC)
    start = since or now - METRIC_WINDOW
    end = now + timedelta(minutes=1)  # the end is exclusive: include this minute
    # At most 1,440 data points per metric, in whole minutes.
    period = max(60, math.ceil((end - start).total_seconds() / 1440 / 60) * 60)
    queries = [
        {
            "Id": f"m{i}",
            "Label": f"{name}|{channel}",
            "MetricStat": {
                "Metric": {
                    "Namespace": "Notifications",
                    "MetricName": name,
                    "Dimensions": [{"Name": "Channel", "Value": channel}],
                },
                "Period": period,
                "Stat": "Sum",
            },
        }
        for i, (name, channel) in enumerate((n, c) for n in COUNT_METRICS for c in CHANNELS)
    ]
    totals: dict[str, dict[str, float]] = {}
    for start_index in range(0, len(queries), 500):  # GetMetricData takes 500 queries
        response = cloudwatch.get_metric_data(
            MetricDataQueries=queries[start_index : start_index + 500],
            StartTime=start,
            EndTime=end,
        )
        for result in response.get("MetricDataResults", []):
            name, channel = result["Label"].split("|")
            value = float(sum(result.get("Values", [])))
            if value:
                totals.setdefault(name, {})[channel] = value
    return totals
