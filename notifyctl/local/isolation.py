"""A function run the way Lambda runs it: each execution environment is its own process.

`IsolatedFunction` starts the function's template process (`worker.py`) on first use, which
runs init once (imports the handler: the cold start's init phase), then forks one process
per execution environment: one per concurrent invocation, as Lambda keeps one environment
per concurrent invocation. An environment stays warm between invocations. An invocation that
outlives the function's `Timeout` (wall-clock seconds) is ended by killing its process:
nothing it would have done afterwards happens, and the next invocation gets a new
environment forked from the state init left (a cold start, without paying for the imports
again: like Lambda SnapStart, not like a plain cold start).

Workers reach moto over HTTP (`AWS_ENDPOINT_URL`, a `ThreadedMotoServer` in this process):
`mock_aws` state lives in this process only.
"""

from __future__ import annotations

import atexit
import contextlib
import functools
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
import weakref
from collections.abc import Iterable, Mapping
from importlib import metadata
from pathlib import Path
from typing import Any, cast

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
# Lambda's init phase has its own 10 s limit, apart from the function's Timeout. Locally a
# cold start shares two CPUs with everything else (seconds for Powertools and pydantic under
# load), so the runtime allows 60 s: a slow init here is the machine's, not the function's.
INIT_TIMEOUT_SECONDS = 60.0
_CONTROL_MESSAGE_LIMIT = 1 << 20
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


class _Environment:
    """One execution environment: a process forked from the function's template process."""

    def __init__(self, channel: socket.socket) -> None:
        self._channel = channel
        self._reader = channel.makefile("r", encoding="utf-8")
        self._writer = channel.makefile("w", encoding="utf-8")
        self.pid = 0

    def request(self, payload: Mapping[str, Any] | None, timeout: float) -> dict[str, Any] | None:
        """Send one request (None: only read) and wait up to `timeout` seconds for the answer;
        None if it did not answer in time."""
        self._channel.settimeout(timeout)
        try:
            if payload is not None:
                self._writer.write(json.dumps(payload) + "\n")
                self._writer.flush()
            line = self._reader.readline()
        except TimeoutError:
            return None
        except OSError as exc:
            line = ""
            detail = str(exc)
        else:
            detail = "its process exited"
        if not line:
            return {
                "error": {"errorType": "Runtime.ExitError", "errorMessage": detail},
                "output": "",
            }
        return cast(dict[str, Any], json.loads(line))

    def kill(self) -> None:
        """End the process now and wait until it is gone."""
        if self.pid:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signal.SIGKILL)
            deadline = time.monotonic() + 5
            while time.monotonic() < deadline:
                try:
                    os.kill(self.pid, 0)
                except ProcessLookupError:
                    break
                time.sleep(0.005)
        for stream in (self._reader, self._writer, self._channel):
            with contextlib.suppress(OSError):
                stream.close()


class _Template:
    """The function's `worker.py` process: runs init once, then forks environments."""

    def __init__(self, environment: Mapping[str, str], cwd: Path) -> None:
        self._control, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        self.process = subprocess.Popen(  # noqa: S603 - our own script, with this interpreter
            [sys.executable, "-s", str(WORKER_SCRIPT), str(theirs.fileno())],
            stdin=subprocess.DEVNULL,
            env=dict(environment),
            cwd=str(cwd),
            pass_fds=[theirs.fileno()],
        )
        theirs.close()

    def init(self, message: Mapping[str, Any], timeout: float) -> dict[str, Any] | None:
        self._control.settimeout(timeout)
        try:
            self._control.sendall(json.dumps(message).encode())
            answer = self._control.recv(_CONTROL_MESSAGE_LIMIT)
        except TimeoutError:
            return None
        if not answer:
            return {
                "error": {"errorType": "Runtime.ExitError", "errorMessage": "init exited"},
                "output": "",
            }
        return cast(dict[str, Any], json.loads(answer))

    def fork(self, timeout: float) -> _Environment | None:
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            socket.send_fds(self._control, [b"fork"], [theirs.fileno()])
        except OSError:
            ours.close()
            return None
        finally:
            theirs.close()
        environment = _Environment(ours)
        hello = environment.request(None, timeout)
        if hello is None or "pid" not in hello:
            environment.kill()
            return None
        environment.pid = int(hello["pid"])
        return environment

    def stop(self) -> None:
        with contextlib.suppress(OSError):
            self._control.close()
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait()


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
        self._idle: list[_Environment] = []
        self._lock = threading.Lock()
        self._template: _Template | None = None
        self._template_lock = threading.Lock()
        self.invocations = 0
        self.cold_starts = 0
        self.timeouts = 0
        self._closed = False
        _LIVE.add(self)

    def _now(self) -> float | None:
        return self._clock.now() if isinstance(self._clock, ControlledClock) else None

    def _template_ready(self) -> tuple[_Template | None, dict[str, Any] | None]:
        """The function's template process after init, started on first need; or the init
        error (the next invocation tries init again, as Lambda does)."""
        with self._template_lock:
            if self._template is not None:
                return self._template, None
            template = _Template(self.environment, self.spec.code_dir)
            reply = template.init(
                {
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
                },
                INIT_TIMEOUT_SECONDS,
            )
            if reply is None:
                template.stop()
                return None, _error_reply(
                    "Runtime.InitError",
                    f"init did not finish in {INIT_TIMEOUT_SECONDS:.0f} seconds",
                )
            if "error" in reply:
                template.stop()
                return None, reply
            self._template = template
            return template, None

    def _environment(self) -> tuple[_Environment | None, dict[str, Any] | None]:
        """An idle warm environment, or a new cold one forked from the template."""
        with self._lock:
            if self._idle:
                return self._idle.pop(), None
        template, failure = self._template_ready()
        if template is None:
            return None, failure
        environment = template.fork(INIT_TIMEOUT_SECONDS)
        if environment is None:
            return None, _error_reply("Runtime.ExitError", "could not start an environment")
        with self._lock:
            self.cold_starts += 1
        return environment, None

    def invoke(self, event: Any, request_id: str | None = None) -> Invocation:
        """Invoke in an idle warm environment, or a new cold one; safe from many threads."""
        request_id = request_id or str(uuid.uuid4())
        with self._lock:
            self.invocations += 1
        environment, reply = self._environment()
        if environment is not None:
            reply = environment.request(
                {"event": event, "request_id": request_id, "now": self._now()},
                float(self.spec.timeout_seconds),
            )
            if reply is None:
                # Lambda ends the invocation and discards the environment: kill it.
                environment.kill()
                with self._lock:
                    self.timeouts += 1
                reply = _error_reply(
                    "Sandbox.Timedout",
                    f"Task timed out after {self.spec.timeout_seconds:.2f} seconds",
                )
            elif reply.get("error", {}).get("errorType") == "Runtime.ExitError":
                environment.kill()
            else:
                self._release(environment)
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

    def _release(self, environment: _Environment) -> None:
        with self._lock:
            if not self._closed:
                self._idle.append(environment)
                return
        environment.kill()

    @property
    def warm_workers(self) -> int:
        with self._lock:
            return len(self._idle)

    def close(self) -> None:
        """Stop the template and every idle environment (a running invocation's environment
        stops when it returns)."""
        with self._lock:
            self._closed = True
            idle, self._idle = self._idle, []
        for environment in idle:
            environment.kill()
        with self._template_lock:
            if self._template is not None:
                self._template.stop()
                self._template = None


def _error_reply(error_type: str, message: str) -> dict[str, Any]:
    return {"error": {"errorType": error_type, "errorMessage": message}, "output": ""}
