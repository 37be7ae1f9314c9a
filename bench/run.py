"""Run every benchmark and print its figures (``make bench``). Never fails on timing.

    python bench/run.py [--quick]     # --quick: no 10,000-notification runs (throughput, drain)

Each figure is printed with the naive baseline measured in the same run; see
docs/performance.md for what each one means and the recorded results.

Exit status: 0 when every benchmark ran (a figure that misses its goal is still a figure), 1
when any of them crashed; the others still run, and the crashed ones are named at the end.
"""

from __future__ import annotations

import argparse
import sys
import time
import traceback
from collections.abc import Callable, Sequence

Step = tuple[str, Callable[[], object]]


def default_steps(quick: bool) -> list[Step]:
    import cold_start
    import common
    import drain
    import event_decode
    import layer_bytecode
    import package_size
    import requests_cost
    import sender_cpu
    import throughput
    import webhook_isolation

    info = common.machine()
    print(
        f"machine: {info['nproc']} CPUs, {info['cpu']}, Python {info['python']}, "
        f"{info['platform']}, revision {common.git_revision()}"
    )
    return [
        ("requests and cost", lambda: requests_cost.main([])),
        ("sender CPU", lambda: sender_cpu.main(["--profile", "--mime", "300"])),
        ("cold start", lambda: cold_start.main(["--importtime", "sender"])),
        ("layer bytecode", lambda: layer_bytecode.main([])),
        ("fan-out event validation", lambda: event_decode.main([])),
        ("package size", lambda: package_size.main([])),
        ("throughput", lambda: throughput.main(["--quick"] if quick else [])),
        ("webhook isolation", lambda: webhook_isolation.main(["--seconds", "120"])),
        ("drain at provider latency", lambda: drain.main(["--quick"] if quick else [])),
    ]


def run_steps(steps: Sequence[Step]) -> list[str]:
    """Run each benchmark in turn; one that crashes says why and the others go on. Returns
    the names of those that crashed."""
    crashed: list[str] = []
    for name, step in steps:
        started = time.perf_counter()
        print()
        try:
            step()
        except Exception as exc:
            print(f"{name}: could not run: {type(exc).__name__}: {exc}")
            traceback.print_exc()
            crashed.append(name)
        print(f"({name}: {time.perf_counter() - started:.0f} s)")
    return crashed


def main(argv: list[str] | None = None, steps: Sequence[Step] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="skip the 10,000 throughput run")
    args = parser.parse_args(argv)
    crashed = run_steps(default_steps(args.quick) if steps is None else steps)
    if crashed:
        print(f"\nbenchmarks that crashed: {', '.join(crashed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
