"""Figure 3: cold start, each handler module's import plus its clients, in a fresh interpreter.

For every function in ``functions/``: a new ``python`` process with the function's
environment (``events/env.json``) and its layer on the path imports ``app.py`` (which builds
the function's collaborators from settings) and creates the boto3 clients its first
happy-path invocation uses. The reference, in the same run: a bare ``import boto3`` plus one
client. Median of ``--runs`` runs each, interleaved so load on the machine hits both alike.
Interpreter start-up itself is not counted (the Lambda runtime pays it for everyone).

    python bench/cold_start.py [--runs 7] [--importtime FUNCTION]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from typing import Any

import common

FUNCTIONS = {
    # function dir -> (env.json key, clients its first invocation uses)
    "fan_out": ("FanOutFunction", ["client:sqs", "resource:dynamodb"]),
    "sender": ("SenderFunction", ["client:sqs", "resource:dynamodb", "client:sesv2"]),
    "dlq_alarm": ("DlqAlarmFunction", ["resource:dynamodb", "client:sns"]),
    "breaker_check": ("BreakerCheckFunction", ["resource:dynamodb", "client:lambda"]),
    "delivery_feedback": ("DeliveryFeedbackFunction", ["resource:dynamodb"]),
}

HANDLER_CODE = """
import time, sys
t0 = time.perf_counter()
import app
from notifications.aws import client, resource
for kind, _, service in (s.partition(":") for s in sys.argv[1:]):
    (client if kind == "client" else resource)(service)
print(time.perf_counter() - t0)
"""

BOTO3_CODE = """
import time
t0 = time.perf_counter()
import boto3
boto3.client("sqs")
print(time.perf_counter() - t0)
"""


def environment(function_key: str) -> dict[str, str]:
    env_file = json.loads((common.ROOT / "events" / "env.json").read_text())
    env = {
        "PATH": os.environ.get("PATH", ""),
        "HOME": os.environ.get("HOME", "/tmp"),
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_REGION": "us-east-1",
        "AWS_LAMBDA_FUNCTION_NAME": function_key,
    }
    env.update({k: str(v) for k, v in env_file.get(function_key, {}).items()})
    return env


def run_once(function: str | None, extra: list[str] | None = None) -> float:
    if function is None:
        code, cwd, env = BOTO3_CODE, str(common.ROOT), environment("")
        args: list[str] = []
    else:
        key, clients = FUNCTIONS[function]
        code, cwd, env = HANDLER_CODE, str(common.ROOT / "functions" / function), environment(key)
        env["PYTHONPATH"] = str(common.ROOT / "layers" / "notifications")
        args = clients
    out = subprocess.run(
        [sys.executable, *(extra or []), "-c", code, *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    if out.returncode != 0:
        raise RuntimeError(f"{function}: {out.stderr[-2000:]}")
    return float(out.stdout.strip().splitlines()[-1])


def importtime(function: str, top: int = 15) -> str:
    """The slowest imports (``-X importtime``, cumulative) of one handler."""
    key, clients = FUNCTIONS[function]
    env = environment(key)
    env["PYTHONPATH"] = str(common.ROOT / "layers" / "notifications")
    out = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", HANDLER_CODE, *clients],
        cwd=str(common.ROOT / "functions" / function),
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    rows = []
    for line in out.stderr.splitlines():
        parts = line.split("|")
        if not line.startswith("import time:") or len(parts) != 3 or "cumulative" in line:
            continue
        depth = len(parts[2]) - len(parts[2].lstrip())
        rows.append((depth, int(parts[1]), parts[2].strip()))
    shallowest = min(depth for depth, _, _ in rows)
    # children of `app` (the handler module), i.e. what the handler and its layer pull in
    top_level = [(c, n) for depth, c, n in rows if depth == shallowest + 2]
    lines = [f"  slowest top-level imports of {function} (cumulative ms):"]
    for cumulative, name in sorted(top_level, reverse=True)[:top]:
        lines.append(f"    {cumulative / 1000:7.1f}  {name}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--importtime", choices=sorted(FUNCTIONS))
    args = parser.parse_args(argv)
    samples: dict[str, list[float]] = {name: [] for name in ["boto3", *FUNCTIONS]}
    for _ in range(args.runs):
        samples["boto3"].append(run_once(None))
        for function in FUNCTIONS:
            samples[function].append(run_once(function))
    base = common.median(samples["boto3"])
    rows = [
        [
            name,
            f"{1000 * common.median(values):.0f}",
            f"{1000 * min(values):.0f}",
            common.ratio(common.median(values), base),
        ]
        for name, values in samples.items()
    ]
    print(f"Figure 3: cold start, import + clients in a fresh interpreter (median of {args.runs})")
    print(common.table(rows, ["module", "median ms", "min ms", "vs import boto3 + 1 client"]))
    print("goal: each handler <= 1.3x the bare boto3 reference")
    if args.importtime:
        print(importtime(args.importtime))
    return {name: common.median(values) for name, values in samples.items()}


if __name__ == "__main__":
    main()
