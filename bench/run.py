"""Run every benchmark and print its figures (``make bench``). Never fails on timing.

    python bench/run.py [--quick]     # --quick skips the 10,000-notification throughput run

Each figure is printed with the naive baseline measured in the same run; see
docs/performance.md for what each one means and the recorded results.
"""

from __future__ import annotations

import argparse
import time

import common


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="skip the 10,000 throughput run")
    args = parser.parse_args()
    info = common.machine()
    print(
        f"machine: {info['nproc']} CPUs, {info['cpu']}, Python {info['python']}, "
        f"{info['platform']}, revision {common.git_revision()}"
    )
    import cold_start
    import package_size
    import requests_cost
    import sender_cpu
    import throughput

    steps = [
        ("requests and cost", lambda: requests_cost.main([])),
        ("sender CPU", lambda: sender_cpu.main(["--profile", "--mime", "300"])),
        ("cold start", lambda: cold_start.main(["--importtime", "sender"])),
        ("package size", lambda: package_size.main([])),
        ("throughput", lambda: throughput.main(["--quick"] if args.quick else [])),
    ]
    for name, step in steps:
        started = time.perf_counter()
        print()
        try:
            step()
        except Exception as exc:  # a benchmark that cannot run says why; the others go on
            print(f"{name}: could not run: {type(exc).__name__}: {exc}")
        print(f"({name}: {time.perf_counter() - started:.0f} s)")


if __name__ == "__main__":
    main()
