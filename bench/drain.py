"""Drain throughput at modelled provider latency (issue 18): concurrent sends against the
sequential path (``SenderConcurrency=1``), measured in the same run; the capacity model's
prediction next to each measured figure; sends per second against a send budget.

    python bench/drain.py [--burst 10000] [--senders 5] [--rounds 5] [--budget 20] [--quick]

1. **Per sender invocation** (in-process runtime, one batch of 10 at a time): email at 80 ms
   and webhook at 300 ms per send (``ProviderLatency`` fixed), median batch wall time over
   ``--rounds`` batches, for ``SenderConcurrency`` 10 and 1. The model (docs/performance.md,
   section 6) predicts a batch as ``T0 + ceil(B / c) * L``, with ``T0`` the same batch's time
   at zero latency, measured here too.
2. **The capacity model at small scale.** (a) In-process, one invocation at a time: 50 emails
   at zero latency calibrate the per-batch time; the model predicts the drain of 200 at 80 ms
   (``ceil(N / 10) x (batch time at 0 + ceil(10 / c) x L)``). (b) A burst of ``--burst`` emails
   at 80 ms with ``--senders`` concurrent sender invocations (the runtime's process mode: moto
   server, each invocation in its own process): wall time from the first poll to an empty
   queue, for ``SenderConcurrency`` 10 and 1, against ``N / X`` with ``X`` measured on a
   200-email burst (does the drain stay linear in N?), with the CPU per email (all processes,
   and the moto process alone: the providers' side here) and the latency bound part 1
   predicts.
3. **Sends per second against a budget**: the burst again with ``SesMaxSendRate=--budget``;
   the most SENT records in one wall-clock second.

Prints figures; never fails on timing.
"""

from __future__ import annotations

import argparse
import math
import os
import statistics
import sys
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
for path in (ROOT / "layers" / "notifications", ROOT, ROOT / "bench"):
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))

from notifications.models import Channel, NotificationRequested, notification_id  # noqa: E402

BATCH = 10
EMAIL_MS = 80
WEBHOOK_MS = 300
SUBSCRIPTION = "erp-sync"  # the demo's webhook subscriber (notifyctl/demo.py)


def email(n: int, tag: str) -> NotificationRequested:
    event_id = f"evt-{tag}-{n}"
    recipient = f"user{n}@example.com"
    now = datetime.now(UTC)
    return NotificationRequested(
        notification_id=notification_id(event_id, Channel.EMAIL, recipient, "welcome"),
        channel=Channel.EMAIL,
        recipient=recipient,
        template_id="welcome",
        category="account",
        data={"name": f"User {n}", "user_id": f"user-{n}"},
        user_id=f"user-{n}",
        event_id=event_id,
        event_type="UserRegistered",
        correlation_id=event_id,
        occurred_at=now,
        requested_at=now,
    )


def webhook(n: int, tag: str) -> NotificationRequested:
    event_id = f"evt-{tag}-{n}"
    now = datetime.now(UTC)
    return NotificationRequested(
        notification_id=notification_id(event_id, Channel.WEBHOOK, SUBSCRIPTION, "order-webhook"),
        channel=Channel.WEBHOOK,
        recipient=SUBSCRIPTION,
        template_id="order-webhook",
        category="orders",
        data={"order_id": str(n), "total": {"amount": "19.99", "currency": "EUR"}},
        event_id=event_id,
        event_type="OrderPlaced",
        correlation_id=event_id,
        occurred_at=now,
        requested_at=now,
    )


class Context:
    def __init__(self, seconds: float = 30.0) -> None:
        self.deadline = time.monotonic() + seconds

    def get_remaining_time_in_millis(self) -> int:
        return max(int((self.deadline - time.monotonic()) * 1000), 0)


def received_batch(stack: Any, logical_id: str, requests: list[NotificationRequested]) -> Any:
    from notifications.adapters.sqs import SqsQueues

    url = stack.queue_url(logical_id)
    SqsQueues().enqueue(url, requests)
    arn = stack.clients.sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])[
        "Attributes"
    ]["QueueArn"]
    messages: list[dict[str, Any]] = []
    while len(messages) < len(requests):
        messages += stack.clients.sqs.receive_message(
            QueueUrl=url, MaxNumberOfMessages=10, AttributeNames=["All"]
        ).get("Messages", [])
    return {
        "Records": [
            {
                "messageId": m["MessageId"],
                "receiptHandle": m["ReceiptHandle"],
                "body": m["Body"],
                "attributes": m["Attributes"],
                "messageAttributes": {},
                "eventSource": "aws:sqs",
                "eventSourceARN": arn,
                "awsRegion": "us-east-1",
            }
            for m in messages
        ]
    }


def batch_seconds(
    stack: Any,
    channel: Channel,
    latencies: tuple[int, int],
    concurrency: int,
    rounds: int,
    tag: str,
) -> tuple[float, float]:
    """Median wall seconds of one sender invocation on a batch of 10, at each of two latencies,
    measured alternately batch by batch (so the machine's load drifts into both alike)."""
    import common

    from notifications.sending import build_sender
    from notifications.settings import SenderSettings

    senders = []
    for latency_ms in latencies:
        environment = {
            **stack.function("SenderFunction").environment,
            "PROVIDER_LATENCY": f"{channel.value}=fixed:{latency_ms}" if latency_ms else "",
            "SENDER_CONCURRENCY": str(concurrency),
            # a loaded machine must not turn a slow moto call into a send_timeout here
            "SEND_TIMEOUT_SECONDS": "25",
            # every webhook here goes to one subscription, and the rate limit per user (per
            # hashed recipient without one) would defer all but RateLimitPerMinute (100) of
            # them a minute: it binds a webhook burst to one subscriber (docs/performance.md
            # section 6), not what this figure measures
            "RATE_LIMIT_PER_MINUTE": "1000000",
        }
        senders.append(build_sender(SenderSettings.from_env(environment)))
    build = email if channel is Channel.EMAIL else webhook
    queue = "EmailQueue" if channel is Channel.EMAIL else "WebhookQueue"
    times: list[list[float]] = [[], []]
    n = 0
    sent: list[str] = []
    for r in range(rounds + 1):  # the first warms the providers up, not counted
        for which, sender in enumerate(senders):
            requests = [build(n + k, f"{tag}-{which}-{r}") for k in range(BATCH)]
            sent += [request.notification_id for request in requests]
            event = received_batch(stack, queue, requests)
            n += BATCH
            with common.quiet_stdout():
                started = time.perf_counter()
                response = sender.process_batch(event, Context(60.0))
                elapsed = time.perf_counter() - started
            if response["batchItemFailures"]:
                raise RuntimeError(f"the batch left failures: {response}")
            if r:
                times[which].append(elapsed)
    require_sent(stack, sent)
    return statistics.median(times[0]), statistics.median(times[1])


def require_sent(stack: Any, notification_ids: list[str]) -> None:
    """Every timed notification was sent, not deferred or dead-lettered: a batch that sends
    fewer than it was given would be fast for the wrong reason."""
    from notifications.adapters.ledger import DynamoLedger

    ledger = DynamoLedger(stack.physical_id("LedgerTable"))
    statuses = Counter((ledger.get(i) or {}).get("status", "missing") for i in notification_ids)
    if statuses != Counter({"SENT": len(notification_ids)}):
        raise RuntimeError(f"not every timed notification was sent: {dict(statuses)}")


def per_invocation(rounds: int) -> dict[str, float]:
    figures: dict[str, float] = {}
    rows = []
    with in_process_stack() as stack:
        for channel, latency in ((Channel.EMAIL, EMAIL_MS), (Channel.WEBHOOK, WEBHOOK_MS)):
            zero: dict[int, float] = {}
            for concurrency in (10, 1):
                zero[concurrency], measured = batch_seconds(
                    stack,
                    channel,
                    (0, latency),
                    concurrency,
                    rounds,
                    f"{channel.value}{concurrency}",
                )
                predicted = zero[concurrency] + math.ceil(BATCH / concurrency) * latency / 1000
                key = f"{channel.value}_c{concurrency}"
                figures[f"{key}_s"] = measured
                figures[f"{key}_zero_s"] = zero[concurrency]
                rows.append(
                    [
                        f"{channel.value} at {latency} ms",
                        str(concurrency),
                        f"{measured * 1000:,.0f}",
                        f"{BATCH / measured:,.1f}",
                        f"{zero[concurrency] * 1000:,.0f}",
                        f"{predicted * 1000:,.0f}",
                        f"{(measured - predicted) / predicted:+.0%}",
                    ]
                )
    print("1. one sender invocation, a batch of 10 (median of", rounds, "batches)")
    print(
        table(
            rows,
            [
                "provider",
                "SenderConcurrency",
                "batch ms",
                "notif/s",
                "batch ms at 0 latency",
                "model ms",
                "measured vs model",
            ],
        )
    )
    for channel in ("email", "webhook"):
        speedup = figures[f"{channel}_c1_s"] / figures[f"{channel}_c10_s"]
        print(f"   {channel}: concurrent sends {speedup:.1f}x the sequential path's throughput")
    return figures


def in_process_burst(count: int, concurrency: int, latency_ms: int) -> float:
    """Wall seconds for the in-process runtime (one invocation at a time) to drain ``count``
    emails at ``latency_ms``."""
    import common

    from notifications.adapters.sqs import SqsQueues

    with in_process_stack() as stack:
        environment = stack.function("SenderFunction").environment
        environment["PROVIDER_LATENCY"] = f"email=fixed:{latency_ms}" if latency_ms else ""
        environment["SENDER_CONCURRENCY"] = str(concurrency)
        tag = f"small{concurrency}-{latency_ms}-{count}"
        requests = [email(n, tag) for n in range(count)]
        SqsQueues().enqueue(stack.queue_url("EmailQueue"), requests)
        with common.quiet_stdout():
            started = time.perf_counter()
            stack.drain(max_rounds=10_000_000)
            seconds = time.perf_counter() - started
        require_sent(stack, [request.notification_id for request in requests])
        return seconds


def tree_cpu_seconds() -> float:
    """CPU seconds of this process and every live descendant (the runtime's process mode
    forks one process per execution environment; they stay until the stack closes)."""
    ticks = os.sysconf("SC_CLK_TCK")
    parents: dict[int, int] = {}
    used: dict[int, float] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rpartition(")")[2].split()
        except OSError:
            continue  # ended meanwhile
        parents[int(entry.name)] = int(fields[1])
        used[int(entry.name)] = (int(fields[11]) + int(fields[12])) / ticks
    me = os.getpid()
    total = 0.0
    for pid in used:
        ancestor = pid
        while ancestor not in (me, 0, 1) and ancestor in parents:
            ancestor = parents[ancestor]
        if ancestor == me:
            total += used[pid]
    return total


def burst(
    count: int, senders: int, concurrency: int, budget: int = 0
) -> tuple[float, Counter[str], float, float]:
    """Wall seconds to drain ``count`` emails at 80 ms with ``senders`` invocations at once;
    send starts per wall second; CPU seconds of this process and the sender processes
    together, and of this process alone (moto server and the runtime's pollers: one GIL)."""
    from notifications.adapters.ledger import DynamoLedger
    from notifications.adapters.sqs import SqsQueues

    parameters = {
        "ProviderLatency": f"email=fixed:{EMAIL_MS}",
        "SenderConcurrency": str(concurrency),
        "MaxConcurrencyPerChannel": str(max(senders, 2)),
        "SesMaxSendRate": str(budget),
    }
    with process_stack(parameters) as stack:
        requests = [email(n, f"burst{concurrency}-{budget}") for n in range(count)]
        url = stack.queue_url("EmailQueue")
        for start in range(0, count, 1000):
            SqsQueues().enqueue(url, requests[start : start + 1000])
        accepted = SesAcceptances()
        cpu, own = tree_cpu_seconds(), time.process_time()
        started = time.perf_counter()
        with accepted.sampling():
            stack.drain(max_rounds=10_000_000)
        seconds = time.perf_counter() - started
        cpu, own = tree_cpu_seconds() - cpu, time.process_time() - own
        items = DynamoLedger(stack.physical_id("LedgerTable")).scan()
        sent = [i for i in items if i.get("status") == "SENT"]
        if len(sent) != count:
            raise RuntimeError(f"burst: {len(sent)} of {count} SENT")
    return seconds, accepted.per_start_second(EMAIL_MS / 1000), cpu, own


class SesAcceptances:
    """SES acceptances in moto server (this process), sampled every 20 ms. With a fixed
    modelled latency L, a send accepted at t started at t - L, so counting acceptances in
    [k + L, k + 1 + L) counts the sends started in second k: the budget's own window."""

    def __init__(self) -> None:
        self.samples: list[tuple[float, int]] = []

    def count(self) -> int:
        from moto.core import DEFAULT_ACCOUNT_ID
        from moto.ses.models import ses_backends

        return len(ses_backends[DEFAULT_ACCOUNT_ID]["us-east-1"].sent_messages)

    @contextmanager
    def sampling(self) -> Iterator[None]:
        import threading

        stop = threading.Event()

        def sample() -> None:
            while not stop.wait(0.02):
                self.samples.append((time.time(), self.count()))

        thread = threading.Thread(target=sample, daemon=True)
        thread.start()
        try:
            yield
        finally:
            stop.set()
            thread.join()

    def per_start_second(self, latency: float) -> Counter[str]:
        per_second: Counter[str] = Counter()
        previous = self.samples[0][1] if self.samples else 0
        for at, total in self.samples:
            if total > previous:
                per_second[str(int(at - latency))] += total - previous
            previous = total
        return per_second


def table(rows: list[list[str]], header: list[str]) -> str:
    import common

    return common.table(rows, header)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    import logging

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # moto server's request lines
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--burst", type=int, default=10_000, help="emails in the burst")
    parser.add_argument("--senders", type=int, default=5, help="sender invocations at once")
    parser.add_argument("--rounds", type=int, default=5, help="batches per figure of part 1")
    parser.add_argument("--budget", type=int, default=20, help="SesMaxSendRate for part 3")
    parser.add_argument("--quick", action="store_true", help="a burst of 500 at most")
    parser.add_argument("--invocation-only", action="store_true", help="part 1 only")
    args = parser.parse_args(argv)
    figures: dict[str, Any] = per_invocation(args.rounds)
    if args.invocation_only:
        return figures

    rows = []
    for concurrency in (10, 1):
        # calibrate the per-batch time at zero latency on 50 emails, predict 200 at 80 ms
        calibration = in_process_burst(50, concurrency, 0)
        per_batch = calibration / math.ceil(50 / BATCH)
        model = math.ceil(200 / BATCH) * (
            per_batch + math.ceil(BATCH / concurrency) * EMAIL_MS / 1000
        )
        seconds = in_process_burst(200, concurrency, EMAIL_MS)
        figures[f"small_burst_c{concurrency}_s"] = seconds
        figures[f"small_burst_c{concurrency}_model_s"] = model
        rows.append(
            [
                str(concurrency),
                f"{calibration:,.1f}",
                f"{seconds:,.1f}",
                f"{model:,.1f}",
                f"{(seconds - model) / model:+.0%}",
            ]
        )
    print(
        "\n2a. the capacity model at small scale (in-process runtime, one invocation at a "
        f"time): 50 emails at 0 ms calibrate the batch time; predicted for 200 at {EMAIL_MS} ms: "
        "ceil(200 / 10) x (batch time at 0 ms + ceil(10 / c) x 80 ms)"
    )
    print(
        table(
            rows,
            ["SenderConcurrency", "50 at 0 ms, s", "200 at 80 ms, s", "model s", "vs model"],
        )
    )

    count = min(args.burst, 500) if args.quick else args.burst
    calibration_count = min(count, 200)
    rows = []
    measured: dict[int, float] = {}
    for concurrency in (10, 1):
        small, _, _, small_own = burst(calibration_count, args.senders, concurrency)
        seconds, _, cpu, own = burst(count, args.senders, concurrency)
        measured[concurrency] = seconds
        model = small * count / calibration_count
        # moto's process (one GIL: the providers' side here) as the bound: its CPU per email
        bound = count * small_own / calibration_count
        latency_rate = args.senders * BATCH / figures[f"email_c{concurrency}_s"]
        rows.append(
            [
                str(concurrency),
                f"{small:,.1f}",
                f"{seconds:,.1f}",
                f"{model:,.1f}",
                f"{(seconds - model) / model:+.0%}",
                f"{bound:,.1f}",
                f"{(seconds - bound) / bound:+.0%}",
                f"{count / seconds:,.1f}",
                f"{latency_rate:,.1f}",
                f"{cpu / count * 1000:,.0f} / {own / count * 1000:,.0f}",
                f"{own / seconds:.0%}",
            ]
        )
        figures[f"burst_c{concurrency}_s"] = seconds
        figures[f"burst_c{concurrency}_model_s"] = model
        figures[f"burst_c{concurrency}_cpu_model_s"] = bound
        figures[f"burst_c{concurrency}_cpu_ms_each"] = cpu / count * 1000
        figures[f"burst_c{concurrency}_moto_busy"] = own / seconds
    print(
        f"\n2b. a burst of {count:,} emails at {EMAIL_MS} ms, {args.senders} sender invocations "
        f"at once (process mode: moto server in this process, each invocation in its own; "
        f"{os.cpu_count()} CPUs). Linear model: D(N) = N / X with X measured on a "
        f"{calibration_count}-email burst; moto CPU model: N x the moto process's CPU per email "
        "in that burst (one GIL serves every provider call here). Latency bound: S x 10 / "
        "part 1's batch time, what the drain would reach if moto answered as fast as in part 1"
    )
    print(
        table(
            rows,
            [
                "c",
                f"{calibration_count} s",
                f"{count:,} s",
                "linear model s",
                "vs",
                "moto CPU model s",
                "vs",
                "notif/s",
                "latency bound /s",
                "CPU ms each: all / moto process",
                "moto process busy",
            ],
        )
    )
    print(f"   concurrent sends: {measured[1] / measured[10]:.1f}x the sequential path")

    seconds, per_second, _, _ = burst(min(count, 300), args.senders, 10, budget=args.budget)
    peak = max(per_second.values())
    figures["budget"] = args.budget
    figures["budget_peak_per_s"] = peak
    print(
        f"\n3. SesMaxSendRate={args.budget}: {min(count, 300)} emails in {seconds:.1f} s "
        f"({min(count, 300) / seconds:.1f}/s); send starts per second (SES acceptances less the "
        f"{EMAIL_MS} ms latency, sampled every 20 ms): at most {peak} "
        f"({'within' if peak <= args.budget else 'OVER'} the budget), median "
        f"{statistics.median(per_second.values()):.0f}"
    )
    return figures


@contextmanager
def in_process_stack() -> Iterator[Any]:
    """The benchmarks' local stack (mock_aws, the demo's users and webhook subscriber)."""
    import common

    from notifyctl.local.clock import RealClock

    with common.local_stack(RealClock()) as scenario:
        yield scenario.stack


@contextmanager
def process_stack(parameters: dict[str, str]) -> Iterator[Any]:
    """The stack on the runtime's process mode (as tests/concurrency): moto server on
    127.0.0.1, each function invocation in its own process, the real clock."""
    import common
    import requests
    from moto.server import ThreadedMotoServer

    from notifications.adapters.aws import reset_clients
    from notifyctl.local.application import prepare
    from notifyctl.local.clock import RealClock
    from notifyctl.local.stack import deploy

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    saved = os.environ.get("AWS_ENDPOINT_URL")
    os.environ["AWS_ENDPOINT_URL"] = endpoint
    reset_clients()
    stack = None
    try:
        stack = deploy(common.TEMPLATE, parameters, clock=RealClock(), isolation="process")
        prepare(stack)
        yield stack
    finally:
        if stack is not None:
            stack.close()
        requests.post(f"{endpoint}/moto-api/reset", timeout=30)
        server.stop()
        if saved is None:
            os.environ.pop("AWS_ENDPOINT_URL", None)
        else:
            os.environ["AWS_ENDPOINT_URL"] = saved
        reset_clients()


if __name__ == "__main__":
    main()
