"""Figure 5: local end-to-end throughput and delivery latency at 1,000 and 10,000 notifications.

The local stack on the real clock: the demo's event mix published ten events per PutEvents,
with one runtime round (every poller, one batch each) after each PutEvents, so delivery runs
while events keep arriving; then drained. Throughput is delivered notifications per second of
wall time; latency is PutEvents -> SENT ledger write per notification. The per-notification
figures (wall ms, handler ms, billable AWS requests) should stay flat from 1,000 to 10,000.
The baseline runs the same load at 1,000.

The local runtime is single-threaded and moto answers in-process, so absolute numbers are this
machine's CPU per notification, not what AWS would do; the ratios and the flatness are the
point.

    python bench/throughput.py [--quick] [--sizes 1000 10000]
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from typing import Any

import common


@dataclass
class Load:
    system: str
    size: int
    delivered: int
    seconds: float
    handler_seconds: float
    billable_requests: int
    p50_ms: float
    p99_ms: float

    @property
    def per_second(self) -> float:
        return self.delivered / self.seconds

    def per_notification(self, value: float) -> float:
        return value / max(self.delivered, 1)


def run(system: str, size: int) -> Load:
    from notifyctl.local.clock import RealClock

    with (
        common.instrumented() as (requests, invocations),
        common.local_stack(RealClock()) as scenario,
    ):
        result = common.measured_run(system, scenario, requests, invocations, size, steady=True)
        categories = requests.by_category()
        return Load(
            system=system,
            size=size,
            delivered=result.sent,
            seconds=result.seconds,
            handler_seconds=invocations.total(),
            billable_requests=common.billable_requests(categories, system, result.events),
            p50_ms=common.percentile(result.latencies_ms, 50),
            p99_ms=common.percentile(result.latencies_ms, 99),
        )


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="skip the 10,000 run")
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 10_000])
    args = parser.parse_args(argv)
    sizes = [s for s in args.sizes if not (args.quick and s > 1000)]
    loads = [run("baseline", min(sizes))] + [run("product", size) for size in sizes]
    base = loads[0]
    rows = [
        [
            load.system,
            str(load.size),
            str(load.delivered),
            f"{load.seconds:.1f}",
            f"{load.per_second:.1f}",
            common.ratio(load.per_second, base.per_second),
            f"{1000 * load.per_notification(load.seconds):.1f}",
            f"{1000 * load.per_notification(load.handler_seconds):.1f}",
            f"{load.per_notification(load.billable_requests):.2f}",
            f"{load.p50_ms:.0f}",
            f"{load.p99_ms:.0f}",
        ]
        for load in loads
    ]
    print("Figure 5: local end-to-end throughput and latency (real clock, steady publishing)")
    print(
        common.table(
            rows,
            [
                "system",
                "notifications",
                "delivered",
                "wall s",
                "notif/s",
                "vs baseline",
                "wall ms/notif",
                "handler ms/notif",
                "requests/notif",
                "p50 ms",
                "p99 ms",
            ],
        )
    )
    print("flat = the per-notification columns stay level as the load grows tenfold")
    return {
        f"{load.system}@{load.size}": {
            "per_second": load.per_second,
            "wall_ms_per_notification": 1000 * load.per_notification(load.seconds),
            "handler_ms_per_notification": 1000 * load.per_notification(load.handler_seconds),
            "requests_per_notification": load.per_notification(load.billable_requests),
            "p50_ms": load.p50_ms,
            "p99_ms": load.p99_ms,
        }
        for load in loads
    }


if __name__ == "__main__":
    main()
