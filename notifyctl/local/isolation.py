"""A function run the way Lambda runs it: each execution environment is its own process.

`IsolatedFunction` keeps a pool of worker processes (`worker.py`), one per concurrent
invocation, as Lambda keeps one execution environment per concurrent invocation. A worker
imports the handler on its first request (the cold start) and stays warm. An invocation that
outlives the function's `Timeout` (wall-clock seconds) is ended by killing its worker: nothing
it would have done afterwards happens, and the next invocation starts a fresh, cold one.

Workers reach moto over HTTP (`AWS_ENDPOINT_URL`, a `ThreadedMotoServer` in this process):
`mock_aws` state lives in this process only.
"""

from __future__ import annotations

import atexit
import functools
import json
import re
import selectors
import subprocess
import sys
import threading
import uuid
import weakref
from collections.abc import Iterable, Mapping
from importlib import metadata
from pathlib import Path
from typing import Any, TextIO, cast

from notifyctl.local.clock import Clock, ControlledClock
from notifyctl.local.emf import parse_output
from notifyctl.local.functions import (
    FunctionError,
    FunctionSpec,
    Invocation,
    OutputSink,
    host_environment,
    runtime_environment,
)

WORKER_SCRIPT = Path(__file__).with_name("worker.py")
# Lambda's init phase has its own limit, apart from the function's Timeout.
INIT_TIMEOUT_SECONDS = 10.0
# The Python runtime's own packages: boto3 and what it needs.
RUNTIME_DISTRIBUTIONS = ("boto3",)
_REQUIREMENT = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)\s*(\[[^\]]*\])?")


def _normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _requirement(line: str) -> tuple[str, set[str], str] | None:
    """(name, extras, marker) of one requirement line; None for comments and options."""
    line = line.split("#", 1)[0].strip()
    if not line or line.startswith("-"):
        return None
    match = _REQUIREMENT.match(line)
    if match is None:
        return None
    extras = {e.strip() for e in (match.group(2) or "[]")[1:-1].split(",") if e.strip()}
    marker = line.split(";", 1)[1] if ";" in line else ""
    return match.group(1), extras, marker


def distribution_closure(requirements: Iterable[str]) -> set[str]:
    """Installed distributions `requirements` need, transitively (normalised names).

    Markers other than `extra == ...` are taken as true: allowing one package too many only
    makes the check laxer, never wrong.
    """
    seen: set[str] = set()
    pending = [parsed for line in requirements if (parsed := _requirement(line)) is not None]
    while pending:
        name, extras, _ = pending.pop()
        key = _normalise(name)
        try:
            distribution = metadata.distribution(name)
        except metadata.PackageNotFoundError:
            continue
        if key in seen and not extras:
            continue
        seen.add(key)
        for line in distribution.requires or []:
            parsed = _requirement(line)
            if parsed is None:
                continue
            wanted = re.findall(r"extra\s*==\s*['\"]([^'\"]+)['\"]", parsed[2])
            if wanted and not set(wanted) & extras:
                continue
            if _normalise(parsed[0]) not in seen:
                pending.append(parsed)
    return seen


@functools.cache
def _installed_top_level_modules() -> Mapping[str, list[str]]:
    """Top-level module -> distributions, read once (it scans every installed package)."""
    return metadata.packages_distributions()


def blocked_top_level_modules(allowed_distributions: set[str]) -> list[str]:
    """Top-level modules of installed distributions outside `allowed_distributions`."""
    blocked = []
    for module, distributions in _installed_top_level_modules().items():
        if not any(_normalise(d) in allowed_distributions for d in distributions):
            blocked.append(module)
    return sorted(blocked)


def function_requirements(spec: FunctionSpec) -> list[str]:
    """The Lambda runtime's packages plus each requirements.txt of the code and its layers."""
    lines = list(RUNTIME_DISTRIBUTIONS)
    for directory in (spec.code_dir, *spec.layer_dirs):
        for candidate in (directory / "requirements.txt", directory.parent / "requirements.txt"):
            if candidate.is_file():
                lines.extend(candidate.read_text(encoding="utf-8").splitlines())
                break
    return lines


def isolated_environment(spec: FunctionSpec, region: str, endpoint_url: str) -> dict[str, str]:
    """The worker's whole environment: host AWS_*/PATH..., the runtime's, the stack's, and
    the moto server's endpoint."""
    environment = {
        **host_environment(),
        **runtime_environment(spec, region),
        **spec.environment,
        "AWS_ENDPOINT_URL": endpoint_url,
    }
    environment.pop("PYTHONPATH", None)  # the host's import path is not the function's
    return environment


class _Worker:
    """One execution environment: a `worker.py` process and its JSON-lines pipe."""

    def __init__(self, environment: Mapping[str, str], cwd: Path) -> None:
        self.process = subprocess.Popen(  # noqa: S603 - our own script, with this interpreter
            [sys.executable, "-s", str(WORKER_SCRIPT)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            env=dict(environment),
            cwd=str(cwd),
            text=True,
            encoding="utf-8",
        )
        self._selector = selectors.DefaultSelector()
        self._selector.register(cast(TextIO, self.process.stdout), selectors.EVENT_READ)

    def request(self, payload: Mapping[str, Any], timeout: float) -> dict[str, Any] | None:
        """Send one request and wait up to `timeout` seconds; None if it did not answer."""
        stdin = cast(TextIO, self.process.stdin)
        stdout = cast(TextIO, self.process.stdout)
        try:
            stdin.write(json.dumps(payload) + "\n")
            stdin.flush()
        except BrokenPipeError:
            return {"error": {"errorType": "Runtime.ExitError", "errorMessage": "worker exited"}}
        if not self._selector.select(timeout):
            return None
        line = stdout.readline()
        if not line:
            code = self.process.wait()
            return {
                "error": {
                    "errorType": "Runtime.ExitError",
                    "errorMessage": f"RequestId: worker exited with status {code}",
                }
            }
        return cast(dict[str, Any], json.loads(line))

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait()
        self._selector.close()
        for stream in (self.process.stdin, self.process.stdout):
            if stream is not None:
                stream.close()


_LIVE: weakref.WeakSet[IsolatedFunction] = weakref.WeakSet()


@atexit.register
def _close_all() -> None:
    for function in list(_LIVE):
        function.close()


class IsolatedFunction:
    """A function whose invocations run in worker processes, one per concurrent invocation."""

    def __init__(
        self,
        spec: FunctionSpec,
        clock: Clock,
        region: str,
        endpoint_url: str,
        on_invocation: OutputSink | None = None,
    ) -> None:
        self.spec = spec
        self._clock = clock
        self._on_invocation = on_invocation
        self.environment = isolated_environment(spec, region, endpoint_url)
        self._blocked = blocked_top_level_modules(distribution_closure(function_requirements(spec)))
        self._idle: list[_Worker] = []
        self._lock = threading.Lock()
        self.invocations = 0
        self.cold_starts = 0
        self.timeouts = 0
        self._closed = False
        _LIVE.add(self)

    def _now(self) -> float | None:
        return self._clock.now() if isinstance(self._clock, ControlledClock) else None

    def _start(self) -> tuple[_Worker | None, dict[str, Any] | None]:
        """A fresh worker with the handler imported, or the init error it reported."""
        worker = _Worker(self.environment, self.spec.code_dir)
        init = {
            "function_name": self.spec.name,
            "function_arn": self.spec.arn,
            "memory_mb": self.spec.memory_mb,
            "timeout_seconds": self.spec.timeout_seconds,
            "log_group_name": f"/aws/lambda/{self.spec.name}",
            "log_stream_name": f"local/[$LATEST]{self.spec.logical_id}",
            "code_dir": str(self.spec.code_dir),
            "layer_dirs": [str(d) for d in self.spec.layer_dirs],
            "handler": self.spec.handler,
            "blocked": self._blocked,
            "time_machine": isinstance(self._clock, ControlledClock),
            "now": self._now(),
        }
        with self._lock:
            self.cold_starts += 1
        reply = worker.request(init, INIT_TIMEOUT_SECONDS)
        if reply is None:
            worker.kill()
            error = {
                "errorType": "Runtime.InitError",
                "errorMessage": f"init did not finish in {INIT_TIMEOUT_SECONDS:.0f} seconds",
            }
            return None, {"error": error, "output": ""}
        if "error" in reply:
            worker.kill()
            return None, reply
        return worker, None

    def invoke(self, event: Any, request_id: str | None = None) -> Invocation:
        """Invoke in an idle warm worker, or a new cold one; safe to call from many threads."""
        request_id = request_id or str(uuid.uuid4())
        with self._lock:
            self.invocations += 1
            worker = self._idle.pop() if self._idle else None
        reply: dict[str, Any] | None
        if worker is None:
            worker, reply = self._start()
        if worker is not None:
            reply = worker.request(
                {"event": event, "request_id": request_id, "now": self._now()},
                float(self.spec.timeout_seconds),
            )
            if reply is None:
                # Lambda ends the invocation and discards the environment: kill it.
                worker.kill()
                with self._lock:
                    self.timeouts += 1
                reply = {
                    "error": {
                        "errorType": "Sandbox.Timedout",
                        "errorMessage": (
                            f"Task timed out after {self.spec.timeout_seconds:.2f} seconds"
                        ),
                    },
                    "output": "",
                }
            elif reply.get("error", {}).get("errorType") == "Runtime.ExitError":
                worker.kill()
            else:
                with self._lock:
                    closed = self._closed
                    if not closed:
                        self._idle.append(worker)
                if closed:
                    worker.kill()
        assert reply is not None
        raw_error = reply.get("error")
        error = None
        if raw_error is not None:
            error = FunctionError(
                error_type=raw_error["errorType"],
                error_message=raw_error["errorMessage"],
                stack_trace=tuple(raw_error.get("stackTrace") or ()),
            )
        invocation = Invocation(
            function=self.spec.logical_id,
            request_id=request_id,
            result=reply.get("result"),
            error=error,
            output=parse_output(reply.get("output", "")),
        )
        if self._on_invocation is not None:
            self._on_invocation(self.spec, invocation)
        return invocation

    @property
    def warm_workers(self) -> int:
        with self._lock:
            return len(self._idle)

    def close(self) -> None:
        """Stop every idle worker (a running invocation's worker stops when it returns)."""
        with self._lock:
            self._closed = True
            idle, self._idle = self._idle, []
        for worker in idle:
            worker.kill()
