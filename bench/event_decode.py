"""Figure 3b: the fan-out's event validation, msgspec structs against the pydantic models.

For the code of today and of ``--before`` (the pydantic event models), in a fresh interpreter
each: the CPU time of the first ``parse_event`` (envelope and detail validated against the
catalog; pydantic builds its validators here, on first use), then the CPU time per event of
``parse_event`` on the OrderPlaced sample (a valid event) and on the sample without
``user_id`` (an invalid one: the report names every bad field), ``--events`` times each,
interleaved over ``--runs`` runs; medians.

    python bench/event_decode.py [--before REVISION] [--runs 5] [--events 5000]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import common

CHILD = """
import json, sys, time
count = int(sys.argv[1])
valid = json.load(open("events/fan_out/order-placed.json"))
invalid = json.load(open("events/fan_out/order-placed-invalid.json"))
c0 = time.process_time()
from notifications.fanout import InvalidEvent, parse_event
c1 = time.process_time()
parse_event(valid)
c2 = time.process_time()
for _ in range(count):
    parse_event(valid)
c3 = time.process_time()
for _ in range(count):
    try:
        parse_event(invalid)
    except InvalidEvent:
        pass
c4 = time.process_time()
print(json.dumps({"import": c1 - c0, "first": c2 - c1, "valid": (c3 - c2) / count,
                  "invalid": (c4 - c3) / count}))
"""


def run_once(root: Path, events: int) -> dict[str, float]:
    env = {"PATH": os.environ.get("PATH", ""), "HOME": os.environ.get("HOME", "/tmp")}
    env["PYTHONPATH"] = str(root / "layers" / "notifications")
    env["POWERTOOLS_TRACE_DISABLED"] = "true"
    env["AWS_DEFAULT_REGION"] = "us-east-1"
    out = subprocess.run(
        [sys.executable, "-c", CHILD, str(events)],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    if out.returncode != 0:
        raise RuntimeError(out.stderr[-2000:])
    figures: dict[str, float] = json.loads(out.stdout.strip().splitlines()[-1])
    return figures


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--before", default=common.BEFORE_REVISION, metavar="REVISION")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--events", type=int, default=5000)
    args = parser.parse_args(argv)
    trees = {f"before ({args.before})": common.tree_at(args.before), "now": common.ROOT}
    samples: dict[str, list[dict[str, float]]] = {name: [] for name in trees}
    for _ in range(args.runs):
        for name, root in trees.items():
            samples[name].append(run_once(root, args.events))
    medians = {
        name: {key: common.median([s[key] for s in runs]) for key in runs[0]}
        for name, runs in samples.items()
    }
    rows = [
        [
            name,
            f"{1000 * m['import']:.0f}",
            f"{1000 * m['first']:.1f}",
            f"{1e6 * m['valid']:.1f}",
            f"{1e6 * m['invalid']:.1f}",
        ]
        for name, m in medians.items()
    ]
    print(
        f"Figure 3b: fan-out event validation, CPU, median of {args.runs} fresh interpreters"
        f" ({args.events} events each)"
    )
    headers = [
        "code",
        "import fanout ms",
        "first event ms",
        "µs per valid event",
        "µs per invalid event",
    ]
    print(common.table(rows, headers))
    before, now = medians[f"before ({args.before})"], medians["now"]
    print(
        f"now against before: valid {common.ratio(now['valid'], before['valid'])}, "
        f"invalid {common.ratio(now['invalid'], before['invalid'])}, "
        f"first event {common.ratio(now['first'], before['first'])}"
    )
    return medians


if __name__ == "__main__":
    main()
