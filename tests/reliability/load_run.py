"""Load run: notifications drain through the local stack while memory is watched.

As a script (the 10,000-notification run):

    PYTHONPATH=layers/notifications:. .venv/bin/python -m tests.reliability.load_run 2000 10000

It queues and drains each size in turn on one stack and prints, per size, the drain's wall
time, the growth of the whole process's memory during the drain (moto's emulated AWS keeps every
queued message, ledger item and sent email in this process, so that part grows with the volume
by design) and the largest peak of a single function invocation above its starting point (the
application's own working memory, which must not grow with the queue).

Two ways to watch: ``run_sizes(..., sample_every=1)`` (the test, tests/reliability/test_load.py,
on small sizes) traces every allocation with tracemalloc all through the drain; the script
samples (``--sample N``, default 25): tracemalloc runs only inside every Nth invocation (which
gives that invocation's exact peak at almost no cost to the rest), and the process figure is the
resident set size (``VmRSS``) read after every invocation. Tracing everything doubles moto's cost
and made the 10,000 run take over 50 minutes here; sampling runs at the untraced speed.
"""

from __future__ import annotations

import gc
import sys
import time
import tracemalloc
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from notifications.models import Channel
from notifyctl.local.functions import LocalFunction
from notifyctl.local.stack import LocalStack
from tests.reliability.helpers import enqueue, statuses, welcome


@dataclass(frozen=True)
class LoadFigures:
    notifications: int
    seconds: float
    process_peak_bytes: int  # growth during the drain: traced peak, or peak RSS when sampling
    invocation_peak_bytes: int
    invocations: int
    sent: int
    measured_invocations: int = 0


def resident_bytes() -> int:
    """The process's resident set size now (Linux ``/proc``; 0 where there is none)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    except OSError:
        return 0
    return 0


@dataclass
class DrainWatch:
    """What one drain's invocations showed: per-invocation peaks and the process's RSS."""

    sample_every: int
    peaks: list[int] = field(default_factory=list)
    invocations: int = 0
    rss_peak: int = 0


@contextmanager
def invocation_peaks(watch: DrainWatch) -> Iterator[None]:
    """Record the traced peak above its start of every ``sample_every``-th invocation (all of
    them when tracemalloc traces the whole drain) and, when sampling, the RSS after each."""
    real_invoke = LocalFunction.invoke
    traced_throughout = tracemalloc.is_tracing()

    def invoke(self: LocalFunction, event: Any, request_id: str | None = None) -> Any:
        watch.invocations += 1
        measured = traced_throughout or watch.invocations % watch.sample_every == 0
        if measured and not traced_throughout:
            tracemalloc.start()
        start, _ = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()
        try:
            return real_invoke(self, event, request_id)
        finally:
            if measured:
                _, peak = tracemalloc.get_traced_memory()
                watch.peaks.append(peak - start)
                if not traced_throughout:
                    tracemalloc.stop()
            if not traced_throughout:
                watch.rss_peak = max(watch.rss_peak, resident_bytes())

    LocalFunction.invoke = invoke  # type: ignore[method-assign]
    try:
        yield
    finally:
        LocalFunction.invoke = real_invoke  # type: ignore[method-assign]


def run_sizes(stack: LocalStack, sizes: Sequence[int], sample_every: int = 1) -> list[LoadFigures]:
    """Queue and drain each size in turn (email and SMS, one user each). ``sample_every=1``
    traces the whole drain; N > 1 traces every Nth invocation and reads the RSS instead."""
    figures: list[LoadFigures] = []
    offset = 0
    trace_all = sample_every == 1
    started_tracing = trace_all and not tracemalloc.is_tracing()
    if started_tracing:
        tracemalloc.start()
    try:
        for size in sizes:
            requests = [
                welcome(n, Channel.EMAIL if n % 2 else Channel.SMS)
                for n in range(offset, offset + size)
            ]
            offset += size
            enqueue(stack, requests)
            del requests
            gc.collect()
            watch = DrainWatch(sample_every)
            baseline = tracemalloc.get_traced_memory()[0] if trace_all else resident_bytes()
            tracemalloc.reset_peak()
            began = time.perf_counter()
            with invocation_peaks(watch):
                stack.drain(max_rounds=1_000_000)
            peak = tracemalloc.get_traced_memory()[1] if trace_all else watch.rss_peak
            figures.append(
                LoadFigures(
                    notifications=size,
                    seconds=round(time.perf_counter() - began, 1),
                    process_peak_bytes=max(peak - baseline, 0),
                    invocation_peak_bytes=max(watch.peaks, default=0),
                    invocations=watch.invocations,
                    sent=statuses(stack)["SENT"],
                    measured_invocations=len(watch.peaks),
                )
            )
    finally:
        if started_tracing:
            tracemalloc.stop()
    return figures


def main(argv: Sequence[str]) -> None:
    import argparse
    import logging
    import warnings

    from moto import mock_aws

    from notifyctl.local.application import prepare, use_local_environment
    from notifyctl.local.clock import ControlledClock
    from notifyctl.local.stack import deploy
    from tests.conftest import START, TEMPLATE

    parser = argparse.ArgumentParser(prog="python -m tests.reliability.load_run")
    parser.add_argument("sizes", nargs="*", type=int, default=[2_000, 10_000])
    parser.add_argument(
        "--sample", type=int, default=25, help="trace every Nth invocation (1: trace everything)"
    )
    args = parser.parse_args(argv)
    use_local_environment()
    logging.disable(logging.WARNING)
    warnings.simplefilter("ignore")
    sizes = [10, *args.sizes]  # warm-up: cold starts import a lot once
    with ControlledClock(start=START) as clock, mock_aws():
        stack = deploy(TEMPLATE, {}, clock=clock)
        prepare(stack)
        results = run_sizes(stack, sizes, sample_every=args.sample)
    process = "traced peak" if args.sample == 1 else "peak RSS growth"
    for f in results:
        print(
            f"{f.notifications:>6} notifications: {f.seconds:>7.1f} s, "
            f"{process} {f.process_peak_bytes / 2**20:7.1f} MiB, "
            f"largest invocation peak {f.invocation_peak_bytes / 2**20:5.2f} MiB "
            f"({f.measured_invocations} of {f.invocations} invocations traced), "
            f"sent so far {f.sent}",
            flush=True,
        )
    results = results[1:]
    first, last = results[0], results[-1]
    print(
        f"invocation peak ratio {last.notifications}/{first.notifications}: "
        f"{last.invocation_peak_bytes / max(first.invocation_peak_bytes, 1):.2f}; "
        f"process ratio: {last.process_peak_bytes / max(first.process_peak_bytes, 1):.2f}"
    )


if __name__ == "__main__":
    main(sys.argv[1:])
