"""What every benchmark shares: paths and a fake AWS environment, a botocore request counter
that knows whose request it is, handler timing, and the local-stack scenario.

Importing this module sets up the process (fake credentials, us-east-1, tracing off), so
import it before anything that creates a boto3 client.
"""

from __future__ import annotations

import contextvars
import io
import json
import logging
import os
import platform
import random
import statistics
import subprocess
import sys
import threading
import time
import warnings
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
TEMPLATE = ROOT / "template.yaml"
for _path in (ROOT / "layers" / "notifications", ROOT):
    if str(_path) not in sys.path:
        sys.path.insert(0, str(_path))

os.environ.update(
    {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_REGION": "us-east-1",
        "POWERTOOLS_TRACE_DISABLED": "true",
        "POWERTOOLS_SERVICE_NAME": "notifications",
        "POWERTOOLS_METRICS_NAMESPACE": "Notifications",
    }
)
for _name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL"):
    os.environ.pop(_name, None)
logging.getLogger("moto").setLevel(logging.ERROR)
warnings.filterwarnings("ignore", message="Tried to parse AWS::", category=UserWarning)
warnings.filterwarnings("ignore", message="No application metrics", category=UserWarning)

SOURCE = "com.example.shop"
# The sender's FAILURE_SEED in every benchmark stack: which sends the injected faults hit is
# then the same from run to run, so the failure-rate rows compare (docs/performance.md).
FAILURE_SEED = 20261201
MEMORY_MB = 256  # Globals.Function.MemorySize in template.yaml

# -- who made a request ---------------------------------------------------------------------------

_CURRENT_FUNCTION: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "bench_function", default=None
)

# Requests the Lambda service's SQS event source mapping makes in AWS (billed as SQS requests
# to the account): the local runtime's SqsEventSourcePoller makes them here.
ESM_OPERATIONS = {"ReceiveMessage", "DeleteMessageBatch", "DeleteMessage"}


def billable_requests(categories: dict[str, int], system: str, events: int) -> int:
    """What AWS bills as requests: function code and the event source mappings (``app``,
    ``esm``), plus for the product the FanOutQueue buffer: its mapping's receives and deletes
    and EventBridge's ``SendMessage`` of each domain event into it (made inside moto, so one
    per published event). The baseline is not billed the buffer: wired naively, EventBridge
    would invoke its fan-out per event."""
    own = categories.get("app", 0) + categories.get("esm", 0)
    return own + buffer_requests(categories, system, events)


def buffer_requests(categories: dict[str, int], system: str, events: int) -> int:
    return 0 if system == "baseline" else categories.get("esm_buffer", 0) + events


def dynamodb_units(operation: str, params: dict[str, Any]) -> dict[str, int]:
    """Capacity units a DynamoDB request bills on demand, for items under 1 KB (writes) and
    4 KB (strongly consistent reads): one per item, two per item in a transaction."""
    if operation in ("PutItem", "UpdateItem", "DeleteItem"):
        return {"wru": 1}
    if operation == "BatchWriteItem":
        return {"wru": sum(len(v) for v in params.get("RequestItems", {}).values())}
    if operation == "TransactWriteItems":
        return {"wru": 2 * len(params.get("TransactItems", []))}
    if operation in ("GetItem", "Query", "Scan"):
        return {"rru": 1}
    if operation == "BatchGetItem":
        return {"rru": sum(len(v.get("Keys", [])) for v in params.get("RequestItems", {}).values())}
    return {}


@dataclass
class RequestLog:
    """Every botocore request, by category and ``service:Operation``.

    Categories:
    - ``app:<Function>``: made by function code while the local runtime invoked it;
    - ``esm``: ReceiveMessage/DeleteMessageBatch on a queue with an SQS event source mapping,
      made by the runtime's poller on the Lambda service's behalf (billed in AWS);
    - ``producer``: PutEvents by whoever publishes the domain events;
    - ``runtime``: the local runtime's own polling and bookkeeping (EventBridge tap queues,
      mapping state reads, queue depths, EMF -> PutMetricData, schedules): no AWS counterpart.
    """

    esm_queue_urls: set[str] = field(default_factory=set)
    buffer_queue_urls: set[str] = field(default_factory=set)  # FanOutQueue: esm_buffer
    counts: Counter[tuple[str, str]] = field(default_factory=Counter)
    # DynamoDB capacity units by category: ("wru" | "rru", category) -> units
    capacity: Counter[tuple[str, str]] = field(default_factory=Counter)
    enabled: bool = False
    on_request: Callable[[str, str, dict[str, Any]], None] | None = None

    def classify(self, operation: str, params: dict[str, Any]) -> str:
        function = _CURRENT_FUNCTION.get()
        if operation == "PutMetricData":
            return "runtime"  # the runtime turning the functions' EMF log lines into metrics
        if function is not None:
            return f"app:{function}"
        if operation in ESM_OPERATIONS and params.get("QueueUrl") in self.buffer_queue_urls:
            return "esm_buffer"
        if operation in ESM_OPERATIONS and params.get("QueueUrl") in self.esm_queue_urls:
            return "esm"
        if operation == "PutEvents":
            return "producer"
        return "runtime"

    def record(self, service: str, operation: str, params: dict[str, Any]) -> None:
        if self.on_request is not None:
            self.on_request(service, operation, params)
        if not self.enabled:
            return
        category = self.classify(operation, params)
        self.counts[(category, f"{service}:{operation}")] += 1
        if service == "dynamodb":
            for kind, units in dynamodb_units(operation, params).items():
                self.capacity[(kind, "app" if category.startswith("app:") else category)] += units

    def empty_receive(self, params: dict[str, Any]) -> None:
        """An empty ReceiveMessage of the event source mapping is idle polling (in AWS a fixed
        cost per poller and minute, whatever the load): moved from ``esm`` to ``esm_idle``."""
        category = self.classify("ReceiveMessage", params)
        if not self.enabled or category not in ("esm", "esm_buffer"):
            return
        self.counts[(category, "sqs:ReceiveMessage")] -= 1
        self.counts[("esm_idle", "sqs:ReceiveMessage")] += 1

    def by_category(self) -> dict[str, int]:
        totals: Counter[str] = Counter()
        for (category, _), n in self.counts.items():
            totals["app" if category.startswith("app:") else category] += n
        return dict(totals)

    def by_operation(self, prefix: str) -> dict[str, int]:
        totals: Counter[str] = Counter()
        for (category, op), n in self.counts.items():
            if category.startswith(prefix):
                totals[op] += n
        return dict(totals)

    def reset(self) -> None:
        self.counts.clear()


@dataclass
class InvocationLog:
    """Wall time of every handler invocation, per function (the local runtime's invoke)."""

    seconds: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    # time the runtime spent inside an invocation on its own work (EMF -> PutMetricData)
    excluded: dict[str, float] = field(default_factory=lambda: defaultdict(float))

    def reset(self) -> None:
        self.seconds.clear()
        self.excluded.clear()

    def total(self, function: str | None = None) -> float:
        if function is not None:
            return sum(self.seconds.get(function, [])) - self.excluded.get(function, 0.0)
        return sum(sum(v) for v in self.seconds.values()) - sum(self.excluded.values())

    def count(self) -> int:
        return sum(len(v) for v in self.seconds.values())


@contextmanager
def instrumented() -> Iterator[tuple[RequestLog, InvocationLog]]:
    """Count every botocore request and time every local invocation while active."""
    from botocore.client import BaseClient

    from notifyctl.local.functions import LocalFunction

    requests = RequestLog()
    invocations = InvocationLog()
    original_call = BaseClient._make_api_call
    original_invoke = LocalFunction.invoke

    def make_api_call(self: Any, operation_name: str, api_params: dict[str, Any]) -> Any:
        service = self.meta.service_model.service_name
        requests.record(service, operation_name, api_params)
        function = _CURRENT_FUNCTION.get()
        if function is None or operation_name != "PutMetricData":
            response = original_call(self, operation_name, api_params)
            if operation_name == "ReceiveMessage" and not response.get("Messages"):
                requests.empty_receive(api_params)
            return response
        started = time.perf_counter()
        try:
            return original_call(self, operation_name, api_params)
        finally:
            invocations.excluded[function] += time.perf_counter() - started

    def invoke(self: Any, event: Any, request_id: str | None = None) -> Any:
        token = _CURRENT_FUNCTION.set(self.spec.logical_id)
        started = time.perf_counter()
        try:
            return original_invoke(self, event, request_id)
        finally:
            invocations.seconds[self.spec.logical_id].append(time.perf_counter() - started)
            _CURRENT_FUNCTION.reset(token)

    BaseClient._make_api_call = make_api_call  # type: ignore[method-assign]
    LocalFunction.invoke = invoke  # type: ignore[method-assign]
    try:
        yield requests, invocations
    finally:
        BaseClient._make_api_call = original_call  # type: ignore[method-assign]
        LocalFunction.invoke = original_invoke  # type: ignore[method-assign]


@contextmanager
def moto_time(profiler: Any = None) -> Iterator[list[float]]:
    """Seconds spent inside moto (its botocore ``before-send`` stubber: request dispatch, the
    backend's work, response rendering). Everything else is ours or botocore's. With a
    ``profiler``, profiling pauses inside moto, so the profile shows only the rest."""
    from moto.core.botocore_stubber import BotocoreStubber

    spent = [0.0]
    original = BotocoreStubber.__call__
    # The sender sends from a thread pool, so several threads can be inside moto at once; the
    # profiler (one for the process since Python 3.12) is paused while any of them is, and
    # enabling it twice would raise.
    lock = threading.Lock()
    inside = [0]

    def timed(self: Any, *args: Any, **kwargs: Any) -> Any:
        if profiler is not None:
            with lock:
                inside[0] += 1
                if inside[0] == 1:
                    profiler.disable()
        started = time.perf_counter()
        try:
            return original(self, *args, **kwargs)
        finally:
            spent[0] += time.perf_counter() - started
            if profiler is not None:
                with lock:
                    inside[0] -= 1
                    if inside[0] == 0:
                        profiler.enable()

    BotocoreStubber.__call__ = timed  # type: ignore[method-assign]
    try:
        yield spent
    finally:
        BotocoreStubber.__call__ = original  # type: ignore[method-assign]


# -- the local stack scenario ---------------------------------------------------------------------


@dataclass
class Scenario:
    """A deployed local stack with seeded users and a webhook subscriber."""

    stack: Any
    users: list[str]
    rng: random.Random
    receiver: Any


@contextmanager
def local_stack(
    clock: Any,
    failure_rate: float = 0.0,
    seed: int = 7,
    users: int = 40,
    parameters: dict[str, str] | None = None,
) -> Iterator[Scenario]:
    """template.yaml deployed into a fresh moto with the demo's users (inside ``mock_aws``);
    ``parameters`` override template parameters (e.g. ``BatchAdmission=false``). The sender's
    injected faults are seeded with ``FAILURE_SEED``."""
    from moto import mock_aws

    from notifications.adapters.aws import reset_clients
    from notifyctl.demo import seed_users
    from notifyctl.local.application import prepare
    from notifyctl.local.stack import deploy
    from notifyctl.webhook_receiver import WebhookReceiver

    reset_clients()
    rng = random.Random(seed)
    parameters = {
        "FailureRate": str(failure_rate),
        "WebhookAllowLoopback": "true",
        **(parameters or {}),
    }
    with mock_aws(), WebhookReceiver().running() as receiver:
        stack = deploy(TEMPLATE, parameters, stack_name="notifications-bench", clock=clock)
        stack.function("SenderFunction").environment["FAILURE_SEED"] = str(FAILURE_SEED)
        prepare(stack)
        population = seed_users(stack, receiver, rng, users)
        yield Scenario(stack, population, rng, receiver)
    reset_clients()


def esm_queue_urls(stack: Any) -> set[str]:
    return {p.queue_url for p in _esm_pollers(stack)}


def _esm_pollers(stack: Any) -> list[Any]:
    from notifyctl.local.pollers import SqsEventSourcePoller

    return [p for p in stack.pollers if isinstance(p, SqsEventSourcePoller)]


def event_batch(scenario: Scenario, start: int, count: int) -> list[tuple[str, dict[str, Any]]]:
    """``count`` synthetic domain events (the demo's mix: 20% registrations, 50% orders, 30%
    payments), numbered from ``start``."""
    from notifyctl.demo import synthetic_event

    now = datetime.now(UTC)
    return [
        synthetic_event(n, scenario.users, scenario.rng, now) for n in range(start, start + count)
    ]


@dataclass
class RunResult:
    events: int
    requested: int  # NotificationRequested messages the fan-out enqueued
    sent: int  # ledger records that reached SENT
    seconds: float  # wall time from the first publish to a drained pipeline
    latencies_ms: list[float]  # publish -> SENT record, per sent notification


class LatencyProbe:
    """Publish time per event id (PutEvents response), event id per notification (the
    fan-out's enqueue: each SQS message body is a NotificationRequested), SENT time per
    notification (the sender's SENT UpdateItem)."""

    def __init__(self) -> None:
        self.published: dict[str, float] = {}
        self.event_of: dict[str, str] = {}
        self.sent_at: dict[str, float] = {}

    @property
    def requested(self) -> int:
        return len(self.event_of)

    def on_request(self, service: str, operation: str, params: dict[str, Any]) -> None:
        if service == "sqs" and operation in ("SendMessage", "SendMessageBatch"):
            # A deferral puts the same body back: the first sighting counts.
            for entry in params.get("Entries", [params]):
                body = json.loads(entry["MessageBody"])
                if "notification_id" in body and "event_id" in body:
                    self.event_of.setdefault(body["notification_id"], body["event_id"])
        elif service == "dynamodb" and operation == "UpdateItem":
            values = params.get("ExpressionAttributeValues", {})
            if values.get(":sent") in ("SENT", {"S": "SENT"}) and ":lat" in values:
                self.sent_at.setdefault(_plain_s(params["Key"]["notification_id"]), time.time())

    def latencies_ms(self) -> list[float]:
        out = []
        for nid, at in self.sent_at.items():
            published = self.published.get(self.event_of.get(nid, ""))
            if published is not None:
                out.append((at - published) * 1000)
        return out


def _plain_s(value: Any) -> str:
    return str(value["S"]) if isinstance(value, dict) else str(value)


def run_notifications(
    scenario: Scenario,
    target: int,
    requests: RequestLog | None = None,
    batch: int = 10,
    steady: bool = True,
) -> RunResult:
    """Publish events ten at a time (one PutEvents) until the fan-out has enqueued ``target``
    notifications, then drain the pipeline.

    ``steady``: one runtime round (every poller, one batch each) after each PutEvents, so
    senders work while events keep arriving (throughput and latency). Otherwise a burst: only
    the fan-out runs between PutEvents, and the senders find full queues (full batches of
    ten, as under sustained load)."""
    stack = scenario.stack
    fan_out_pollers = [
        p for p in _esm_pollers(stack) if p.function.spec.logical_id == "FanOutFunction"
    ]
    probe = LatencyProbe()
    if requests is not None:
        requests.on_request = probe.on_request
    events = 0
    started = time.perf_counter()
    while probe.requested < target:
        entries = event_batch(scenario, events + 1, batch)
        response = stack.clients.events.put_events(
            Entries=[
                {
                    "Source": SOURCE,
                    "DetailType": kind,
                    "Detail": json.dumps(detail),
                    "EventBusName": stack.bus_name,
                }
                for kind, detail in entries
            ]
        )
        now = time.time()
        for entry in response["Entries"]:
            probe.published[entry["EventId"]] = now
        events += len(entries)
        if steady:
            stack.pump()
        else:
            for poller in fan_out_pollers:
                while poller.poll_once():
                    pass
    stack.drain(max_rounds=10_000_000)
    seconds = time.perf_counter() - started
    if requests is not None:
        requests.on_request = None
    return RunResult(events, probe.requested, len(probe.sent_at), seconds, probe.latencies_ms())


@contextmanager
def quiet_stdout() -> Iterator[None]:
    saved = sys.stdout
    sys.stdout = io.StringIO()
    try:
        yield
    finally:
        sys.stdout = saved


# -- reporting ------------------------------------------------------------------------------------


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[index]


def median(values: list[float]) -> float:
    return statistics.median(values)


def machine() -> dict[str, str]:
    model = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "nproc": str(os.cpu_count()),
        "cpu": model,
        "python": platform.python_version(),
        "platform": platform.platform(),
    }


def git_revision() -> str:
    try:
        return subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=False,
        ).stdout.strip()
    except OSError:
        return "?"


# The code before issue 18's cold-start and CPU work (main at 7279b57): the "before" column of
# figures 2 and 3, measured in the same run as today's code.
BEFORE_REVISION = "7279b57"
_TREES: dict[str, Path] = {}


def tree_at(revision: str) -> Path:
    """The repository's code at ``revision`` (``git archive``) in a temporary directory kept
    for the rest of the process: the layer, the functions, the benchmarks, the local runtime,
    the template and the samples, so its own scripts run on its own code."""
    if revision not in _TREES:
        import atexit
        import shutil
        import tarfile
        import tempfile

        target = Path(tempfile.mkdtemp(prefix=f"bench-{revision}-"))
        atexit.register(shutil.rmtree, target, ignore_errors=True)
        archive = subprocess.run(
            [
                "git",
                "archive",
                revision,
                "layers",
                "functions",
                "bench",
                "notifyctl",
                "tests",
                "events",
                "template.yaml",
            ],
            cwd=ROOT,
            capture_output=True,
            check=True,
        ).stdout
        with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
            tar.extractall(target, filter="data")
        _TREES[revision] = target
    return _TREES[revision]


def table(rows: list[list[str]], header: list[str]) -> str:
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    lines = ["  ".join(str(c).ljust(w) for c, w in zip(header, widths, strict=True))]
    lines.append("  ".join("-" * w for w in widths))
    lines.extend("  ".join(str(c).ljust(w) for c, w in zip(r, widths, strict=True)) for r in rows)
    return "\n".join(lines)


def ratio(value: float, base: float) -> str:
    return f"{value / base:.2f}x" if base else "n/a"


def measured_run(
    system: str,
    scenario: Scenario,
    requests: RequestLog,
    invocations: InvocationLog,
    notifications: int,
    steady: bool,
) -> RunResult:
    """Install ``system`` ("product" as deployed, or "baseline") in the scenario's stack, start
    counting requests and invocations, and run ``notifications`` through it quietly."""
    if system == "baseline":
        import baseline

        baseline.install(scenario.stack)
    requests.esm_queue_urls = esm_queue_urls(scenario.stack)
    requests.buffer_queue_urls = {scenario.stack.queue_url("FanOutQueue")}
    requests.enabled = True
    invocations.reset()
    with quiet_stdout():
        return run_notifications(scenario, notifications, requests, steady=steady)
