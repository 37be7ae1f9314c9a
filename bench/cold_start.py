"""Figure 3: cold start, each handler module's import plus its clients, in a fresh interpreter.

For every function in ``functions/``: a new ``python`` process with the function's
environment (``events/env.json``, plus ``LAMBDA_TASK_ROOT`` as in Lambda) and its layer on the
path imports ``app.py`` (which builds the function's collaborators from settings) and creates
the boto3 clients its first happy-path invocation uses. The reference, in the same run: a bare
``import boto3`` plus one client. Median of ``--runs`` runs each, interleaved so load on the
machine hits both alike. Interpreter start-up itself is not counted (the Lambda runtime pays it
for everyone). Wall and CPU time are both reported; the child processes refuse the packages
this venv has and the Lambda runtime lacks (``NOT_IN_LAMBDA``) unless ``--venv-as-is``.

Two more sender rows keep the figure honest: ``sender +1st email`` also does what the first
email batch adds to a cold start (what the sender imports on first use: recipient check,
provider, template render, MIME build), and ``sender traced`` runs with
``POWERTOOLS_TRACE_DISABLED=false`` (template parameter ``TraceAwsCalls=true``: Powertools'
Tracer with the X-Ray SDK, patching boto3).

``--instructions`` also counts each function's instructions once under valgrind's callgrind
(before, now, floor): unlike time, the count does not move with the load of a shared machine.

    python bench/cold_start.py [--runs 7] [--importtime FUNCTION] [--venv-as-is] [--instructions]

``--runs 0 --instructions`` counts instructions only (every row, the first-use variants too).
"""

from __future__ import annotations

import argparse
import ast
import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import common

FUNCTIONS = {
    # function dir -> (env.json key, clients its first invocation uses). No DynamoDB resource
    # since issue 18's session 6: every table goes through the low-level client.
    "fan_out": ("FanOutFunction", ["client:sqs", "client:dynamodb"]),
    "sender": ("SenderFunction", ["client:sqs", "client:dynamodb", "client:sesv2"]),
    "dlq_alarm": ("DlqAlarmFunction", ["client:dynamodb", "client:sns"]),
    "breaker_check": ("BreakerCheckFunction", ["client:dynamodb", "client:lambda"]),
    "delivery_feedback": ("DeliveryFeedbackFunction", ["client:dynamodb"]),
}

# The Lambda Python runtime ships boto3 and botocore without the optional packages this venv
# has for moto and the SAM CLI: awscrt (botocore signs with it when present) and pyOpenSSL /
# cryptography (botocore's HTTP session imports them when present). Together about 75 ms of
# an `import boto3` plus one client here, which no function pays in Lambda; the child process
# refuses them unless --venv-as-is, so the reference and the handlers load what Lambda loads.
NOT_IN_LAMBDA = ("awscrt", "_awscrt", "OpenSSL", "cryptography")
LAMBDA_PRELUDE = f"""
import sys
class _NotInLambda:
    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in {NOT_IN_LAMBDA!r}:
            raise ImportError(name)
sys.meta_path.insert(0, _NotInLambda())
"""

HANDLER_CODE = """
import time, sys
t0, c0 = time.perf_counter(), time.process_time()
import app
from notifications.adapters import aws
for kind, _, service in (s.partition(":") for s in sys.argv[1:]):
    getattr(aws, kind)(service)  # aws.client; an older revision's aws.resource too
#FIRST_USE
print(time.perf_counter() - t0, time.process_time() - c0)
"""

# What the sender's first email batch adds on top of the import: the work that loads what the
# sender imports on first use (channel module, address validation, provider, template engine).
FIRST_EMAIL = """
from datetime import UTC, datetime
from notifications.models import Channel, NotificationRequested
from notifications.registry import validate_recipient
at = datetime(2025, 1, 1, tzinfo=UTC)
request = NotificationRequested(
    notification_id="00000000-0000-4000-8000-000000000001", channel=Channel.EMAIL,
    recipient="alice@example.com", template_id="welcome", category="account",
    data={"name": "Alice", "user_id": "user-1"}, event_id="evt-1", event_type="UserRegistered",
    correlation_id="evt-1", occurred_at=at, requested_at=at,
)
validate_recipient(request.channel, request.recipient)
app.sender.providers[Channel.EMAIL].build_message(request, app.sender.renderer.render(request))
"""

# What the fan-out's first batch adds on top of the import: each event of the sample batch
# (one of each catalog type and an invalid one) parsed against the catalog, a user's stored
# preferences decoded, the notifications planned. No AWS call: the clients are already made.
FIRST_EVENT = """
import json
from datetime import UTC, datetime
from notifications.fanout import InvalidEvent, parse_event
from notifications.preferences import Preferences
from notifications.routing import plan_notifications
prefs = Preferences.model_validate_json(json.dumps({"user_id": "user-123",
    "email": "alice@example.com", "phone": "+14155550100", "opted_out_channels": ["sms"]}))
with open("../../events/fan_out/sqs-batch.json") as batch:
    records = json.load(batch)["Records"]
for record in records:
    try:
        envelope, event = parse_event(json.loads(record["body"]))
    except InvalidEvent:
        continue
    plan_notifications(envelope, event, prefs, [], datetime.now(UTC))
"""

# Extra rows: name -> (function, environment overrides, code after the import and clients).
VARIANTS: dict[str, tuple[str, dict[str, str], str]] = {
    "sender +1st email": ("sender", {}, FIRST_EMAIL),
    "sender traced": ("sender", {"POWERTOOLS_TRACE_DISABLED": "false"}, ""),
    "fan_out +1st event": ("fan_out", {}, FIRST_EVENT),
}

# The floor of a function: boto3 and the clients its first invocation uses, nothing of ours.
FLOOR_CODE = """
import time, sys
t0, c0 = time.perf_counter(), time.process_time()
import boto3
for kind, _, service in (s.partition(":") for s in sys.argv[1:]):
    (boto3.client if kind == "client" else boto3.resource)(service)
print(time.perf_counter() - t0, time.process_time() - c0)
"""

BOTO3_CODE = """
import time
t0, c0 = time.perf_counter(), time.process_time()
import boto3
boto3.client("sqs")
print(time.perf_counter() - t0, time.process_time() - c0)
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


def functions_at(root: Path) -> dict[str, tuple[str, list[str]]]:
    """``FUNCTIONS`` as the benchmark of the tree at ``root`` declares it: the clients (or,
    before issue 18's session 6, the DynamoDB resource) that revision's functions create."""
    if root == common.ROOT:
        return FUNCTIONS
    module = ast.parse((root / "bench" / "cold_start.py").read_text())
    for node in module.body:
        if isinstance(node, ast.Assign) and any(
            isinstance(target, ast.Name) and target.id == "FUNCTIONS" for target in node.targets
        ):
            declared: dict[str, tuple[str, list[str]]] = ast.literal_eval(node.value)
            return declared
    raise RuntimeError(f"no FUNCTIONS in {root / 'bench' / 'cold_start.py'}")


def handler_run(
    function: str,
    overrides: dict[str, str] | None = None,
    first_use: str = "",
    root: Path = common.ROOT,
) -> tuple[str, str, dict[str, str], list[str]]:
    """Code, working directory, environment and arguments for one handler's cold start, on
    the code under ``root`` (another revision's tree for the "before" rows)."""
    key, clients = functions_at(root)[function]
    cwd = str(root / "functions" / function)
    env = environment(key)
    env["PYTHONPATH"] = str(root / "layers" / "notifications")
    env["LAMBDA_TASK_ROOT"] = cwd  # as in Lambda: Powertools traces only there
    env.update(overrides or {})
    return HANDLER_CODE.replace("#FIRST_USE", first_use), cwd, env, clients


def command(
    row: str | None, before: Path | None = None
) -> tuple[str, str, dict[str, str], list[str]]:
    """Code, working directory, environment and arguments of one cold start (``None``: the
    boto3 reference). A row is a function or variant name, ``floor <function>``, or
    ``before <name>`` (run on ``before``)."""
    root = common.ROOT
    if row is not None and row.startswith("before "):
        row, root = row.removeprefix("before "), before or common.ROOT
    if row is None:
        return BOTO3_CODE, str(common.ROOT), environment(""), []
    if row.startswith("floor "):
        key, args = FUNCTIONS[row.removeprefix("floor ")]
        return FLOOR_CODE, str(common.ROOT), environment(key), args
    if row in VARIANTS:
        function, overrides, first_use = VARIANTS[row]
        return handler_run(function, overrides, first_use, root)
    return handler_run(row, root=root)


def run_once(
    row: str | None, prelude: str = LAMBDA_PRELUDE, before: Path | None = None
) -> tuple[float, float]:
    """Wall and CPU seconds of one cold start (rows as ``command``)."""
    code, cwd, env, args = command(row, before)
    out = subprocess.run(
        [sys.executable, "-c", prelude + code, *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    if out.returncode != 0:
        raise RuntimeError(f"{row}: {out.stderr[-2000:]}")
    wall, cpu = out.stdout.strip().splitlines()[-1].split()
    return float(wall), float(cpu)


BARE = "bare interpreter"


def instructions(row: str | None, prelude: str = LAMBDA_PRELUDE, before: Path | None = None) -> int:
    """Instructions one cold start executes, counted by valgrind's callgrind: the whole
    process (interpreter start-up and exit included; subtract the ``BARE`` row's). Unlike time
    on a shared machine, the count does not depend on what else runs (hash seed fixed)."""
    if row == BARE:
        code, cwd, env, args = "import time, sys\n", str(common.ROOT), environment(""), []
    else:
        code, cwd, env, args = command(row, before)
    return count_instructions(code, cwd, env, args, prelude)


def count_instructions(
    code: str, cwd: str, env: dict[str, str], args: list[str], prelude: str = LAMBDA_PRELUDE
) -> int:
    """Instructions of one ``python -c prelude + code args`` under callgrind (hash seed fixed)."""
    out = subprocess.run(
        [
            "valgrind",
            "--tool=callgrind",
            "--callgrind-out-file=/dev/null",
            sys.executable,
            "-c",
            prelude + code,
            *args,
        ],
        cwd=cwd,
        env={**env, "PYTHONHASHSEED": "0"},
        capture_output=True,
        text=True,
        check=False,
    )
    counted = re.search(r"Collected : (\d+)", out.stderr)
    if out.returncode != 0 or counted is None:
        raise RuntimeError(f"{code.splitlines()[-1][:60]}: {out.stderr[-2000:]}")
    return int(counted.group(1))


def instruction_table(prelude: str, before: Path | None, revision: str) -> str:
    """Figure 3 in instructions: per function, before / now / floor, millions of
    instructions less the bare interpreter's, and the ratio to boto3 + 1 client. Each row
    once (the count is deterministic), two at a time."""
    from concurrent.futures import ThreadPoolExecutor

    handlers = [*FUNCTIONS, *VARIANTS]
    rows: list[str | None] = [BARE, None, *handlers]
    if before is not None:
        rows += [f"before {name}" for name in handlers]
    rows += [f"floor {function}" for function in FUNCTIONS]
    for row in rows[1:]:  # bytecode cached first: compiling is not what a row counts
        run_once(row, prelude, before)
    with ThreadPoolExecutor(max_workers=2) as pool:
        counts = pool.map(lambda row: instructions(row, prelude, before), rows)
        counted = dict(zip(rows, counts, strict=True))
    bare = counted[BARE]
    base = counted[None] - bare

    def cell(row: str) -> str:
        if row not in counted:
            return "-"
        own = counted[row] - bare
        return f"{own / 1e6:.0f} ({common.ratio(own, base)})"

    table = [["boto3 + 1 client", "-", f"{base / 1e6:.0f} (1.00x)", "-"]]
    table += [
        [name, cell(f"before {name}"), cell(name), cell(f"floor {name}")] for name in handlers
    ]
    headers = ["function", f"M instr. before ({revision or '-'})", "M instr. now", "floor"]
    return (
        "Figure 3 in instructions (valgrind callgrind, bare interpreter subtracted: "
        f"{bare / 1e6:.0f} M)\n" + common.table(table, headers)
    )


def importtime(function: str, top: int = 15, prelude: str = LAMBDA_PRELUDE) -> str:
    """The slowest imports (``-X importtime``, cumulative) of one handler."""
    code, cwd, env, clients = handler_run(function)
    out = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", prelude + code, *clients],
        cwd=cwd,
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
    parser.add_argument(
        "--venv-as-is",
        action="store_true",
        help=f"let the child processes import {', '.join(NOT_IN_LAMBDA)} (not in Lambda)",
    )
    parser.add_argument(
        "--instructions",
        action="store_true",
        help="also count each function's instructions under valgrind (deterministic; slow)",
    )
    parser.add_argument(
        "--before",
        metavar="REVISION",
        default=common.BEFORE_REVISION,
        help="also time the handlers at this git revision, interleaved ('' to skip)",
    )
    args = parser.parse_args(argv)
    prelude = "" if args.venv_as_is else LAMBDA_PRELUDE
    before = common.tree_at(args.before) if args.before else None
    handlers = [*FUNCTIONS, *VARIANTS]
    names = ["boto3", *handlers]
    if before is not None:
        names += [f"before {name}" for name in handlers]
    names += [f"floor {function}" for function in FUNCTIONS]
    walls: dict[str, list[float]] = {name: [] for name in names}
    cpus: dict[str, list[float]] = {name: [] for name in walls}
    if args.runs < 1:  # --runs 0: the instruction counts alone (CPU time is unusable here)
        if args.instructions:
            print(instruction_table(prelude, before, args.before))
        return {}
    for _ in range(args.runs):
        for name in walls:
            wall, cpu = run_once(None if name == "boto3" else name, prelude, before)
            walls[name].append(wall)
            cpus[name].append(cpu)
    base, cpu_base = common.median(walls["boto3"]), common.median(cpus["boto3"])

    def cpu_cell(name: str) -> str:
        if name not in cpus:
            return "-"
        median = common.median(cpus[name])
        return f"{1000 * median:.0f} ({common.ratio(median, cpu_base)})"

    rows = [
        [
            name,
            f"{1000 * common.median(walls[name]):.0f}",
            common.ratio(common.median(walls[name]), base),
            cpu_cell(f"before {name}"),
            cpu_cell(name),
            cpu_cell(f"floor {name}"),
        ]
        for name in ["boto3", *handlers]
    ]
    print(f"Figure 3: cold start, import + clients in a fresh interpreter (median of {args.runs})")
    headers = [
        "module",
        "median ms",
        "vs boto3",
        f"CPU ms before ({args.before or '-'})",
        "CPU ms now",
        "CPU ms floor",
    ]
    print(common.table(rows, headers))
    print("(vs boto3 / (x): against import boto3 + 1 client. CPU time is what imports cost; wall")
    print(" time also holds waiting for the CPU when other processes load the machine. floor:")
    print(" import boto3 and create the function's own clients, nothing of ours)")
    print("goal: each handler <= 1.3x the bare boto3 reference (the two extra sender rows")
    print("      show the first email's deferred imports and the cost of TraceAwsCalls=true)")
    if args.instructions:
        print(instruction_table(prelude, before, args.before))
    if args.importtime:
        print(importtime(args.importtime, prelude=prelude))
    return {name: common.median(values) for name, values in cpus.items()}


if __name__ == "__main__":
    main()
