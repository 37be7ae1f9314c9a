"""Load run: notifications drain through the local stack while tracemalloc watches memory.

As a script (the 10,000-notification run, about 10 to 15 minutes on moto):

    PYTHONPATH=layers/notifications:. .venv/bin/python -m tests.reliability.load_run 2000 10000

It queues and drains each size in turn on one stack and prints, per size, the traced peak of
the whole process during the drain (moto's emulated AWS keeps every queued message, ledger item
and sent email in this process, so that part grows with the volume by design) and the largest
peak of a single function invocation above its starting point (the application's own working
memory, which must not grow with the queue). tests/reliability/test_load.py runs the same on
smaller sizes.
"""

from __future__ import annotations

import sys
import time
import tracemalloc
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from notifications.models import Channel
from notifyctl.local.functions import LocalFunction
from notifyctl.local.stack import LocalStack
from tests.reliability.helpers import enqueue, statuses, welcome


@dataclass(frozen=True)
class LoadFigures:
    notifications: int
    seconds: float
    process_peak_bytes: int
    invocation_peak_bytes: int
    invocations: int
    sent: int


@contextmanager
def invocation_peaks(peaks: list[int]) -> Iterator[None]:
    """Record, for every function invocation, its traced peak above its starting point."""
    real_invoke = LocalFunction.invoke

    def invoke(self: LocalFunction, event: Any, request_id: str | None = None) -> Any:
        start, _ = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()
        try:
            return real_invoke(self, event, request_id)
        finally:
            _, peak = tracemalloc.get_traced_memory()
            peaks.append(peak - start)

    LocalFunction.invoke = invoke  # type: ignore[method-assign]
    try:
        yield
    finally:
        LocalFunction.invoke = real_invoke  # type: ignore[method-assign]


def run_sizes(stack: LocalStack, sizes: Sequence[int]) -> list[LoadFigures]:
    """Queue and drain each size in turn (email and SMS, one user each) under tracemalloc."""
    figures: list[LoadFigures] = []
    offset = 0
    started_tracing = not tracemalloc.is_tracing()
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
            peaks: list[int] = []
            baseline, _ = tracemalloc.get_traced_memory()
            tracemalloc.reset_peak()
            began = time.perf_counter()
            with invocation_peaks(peaks):
                stack.drain(max_rounds=1_000_000)
            _, process_peak = tracemalloc.get_traced_memory()
            figures.append(
                LoadFigures(
                    notifications=size,
                    seconds=round(time.perf_counter() - began, 1),
                    process_peak_bytes=max(process_peak - baseline, 0),
                    invocation_peak_bytes=max(peaks, default=0),
                    invocations=len(peaks),
                    sent=statuses(stack)["SENT"],
                )
            )
    finally:
        if started_tracing:
            tracemalloc.stop()
    return figures


def main(argv: Sequence[str]) -> None:
    import logging
    import warnings

    from moto import mock_aws

    from notifyctl.local.application import prepare, use_local_environment
    from notifyctl.local.clock import ControlledClock
    from notifyctl.local.stack import deploy
    from tests.conftest import START, TEMPLATE

    use_local_environment()
    logging.disable(logging.WARNING)
    warnings.simplefilter("ignore")
    sizes = [int(a) for a in argv] or [2_000, 10_000]
    sizes = [10, *sizes]  # warm-up: cold starts import a lot once
    with ControlledClock(start=START) as clock, mock_aws():
        stack = deploy(TEMPLATE, {}, clock=clock)
        prepare(stack)
        results = run_sizes(stack, sizes)
    for f in results:
        print(
            f"{f.notifications:>6} notifications: {f.seconds:>7.1f} s, "
            f"process peak {f.process_peak_bytes / 2**20:7.1f} MiB, "
            f"largest invocation peak {f.invocation_peak_bytes / 2**20:5.2f} MiB "
            f"({f.invocations} invocations), sent so far {f.sent}"
        )
    results = results[1:]
    first, last = results[0], results[-1]
    print(
        f"invocation peak ratio {last.notifications}/{first.notifications}: "
        f"{last.invocation_peak_bytes / max(first.invocation_peak_bytes, 1):.2f}; "
        f"process peak ratio: {last.process_peak_bytes / max(first.process_peak_bytes, 1):.2f}"
    )


if __name__ == "__main__":
    main(sys.argv[1:])
