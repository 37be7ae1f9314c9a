"""The execution environments of one function, each its own process (run as a script).

`notifyctl.local.isolation` starts `python -s worker.py <fd>` with the function's
environment. This process runs the function's init once (imports the handler, as Lambda's
init phase) and then forks one process per execution environment the runtime asks for; each
talks to the runtime in JSON lines, one invocation per line. Only the standard library is
imported here before the handler, so the function's `sys.modules` holds its own code, its
layers and what they import, nothing of the runtime. Imports of installed distributions that
are neither the Lambda runtime's (boto3 and its dependencies) nor in the function's layers'
requirements fail with ModuleNotFoundError, as in Lambda.

With a controlled clock the parent sends the frozen time with every request; the worker
freezes its own clock there (time-machine) for the invocation. Remaining time counts down on
the monotonic clock, which nobody freezes.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import importlib.util
import io
import json
import os
import signal
import socket
import sys
import time
import traceback
from collections.abc import Sequence
from types import ModuleType
from typing import Any

_CONTROL_MESSAGE_LIMIT = 1 << 20


class _BlockHostPackages(importlib.abc.MetaPathFinder):
    """Refuses top-level imports of installed distributions the function cannot see."""

    def __init__(self, blocked: set[str], own_dirs: list[str]) -> None:
        self._blocked = blocked
        self._own_dirs = own_dirs

    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        if "." in fullname or fullname not in self._blocked:
            return None
        own = importlib.machinery.PathFinder.find_spec(fullname, self._own_dirs)
        if own is not None:
            return own
        raise ModuleNotFoundError(
            f"No module named '{fullname}' (not in the function's code, its layers or the "
            "Lambda runtime)",
            name=fullname,
        )


class _Output(io.TextIOBase):
    """stdout and stderr of the function: what it prints goes to the current invocation."""

    def __init__(self) -> None:
        super().__init__()
        self.buffer_ = io.StringIO()

    def write(self, text: str) -> int:
        return self.buffer_.write(text)

    def writable(self) -> bool:
        return True

    def take(self) -> str:
        text = self.buffer_.getvalue()
        self.buffer_ = io.StringIO()
        return text


class _Context:
    def __init__(self, init: dict[str, Any], request_id: str, started: float) -> None:
        self.function_name = init["function_name"]
        self.function_version = "$LATEST"
        self.invoked_function_arn = init["function_arn"]
        self.memory_limit_in_mb = init["memory_mb"]
        self.aws_request_id = request_id
        self.log_group_name = init["log_group_name"]
        self.log_stream_name = init["log_stream_name"]
        self.identity = None
        self.client_context = None
        self._deadline = started + init["timeout_seconds"]

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self._deadline - time.monotonic()) * 1000))


def _error(exc: BaseException, error_type: str | None = None) -> dict[str, Any]:
    return {
        "errorType": error_type or type(exc).__name__,
        "errorMessage": str(exc),
        "stackTrace": traceback.format_tb(exc.__traceback__),
    }


class _FrozenAt:
    """Freeze this process's clock at the parent's controlled time, if it sent one."""

    def __init__(self, time_machine: Any, now: float | None) -> None:
        self._time_machine = time_machine
        self._now = now
        self._travel: Any = None

    def __enter__(self) -> None:
        if self._now is not None and self._time_machine is not None:
            self._travel = self._time_machine.travel(self._now, tick=False)
            self._travel.start()

    def __exit__(self, *exc: object) -> None:
        if self._travel is not None:
            self._travel.stop()


def _load(init: dict[str, Any]) -> Any:
    module_path, _, attribute = init["handler"].rpartition(".")
    source = os.path.join(init["code_dir"], *module_path.split(".")) + ".py"
    spec = importlib.util.spec_from_file_location(module_path, source)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load handler module {source}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_path] = module
    spec.loader.exec_module(module)
    handler = getattr(module, attribute, None)
    if not callable(handler):
        raise ImportError(f"handler {init['handler']!r} not found in {source}")
    return handler


def _reseed_random_generators() -> None:
    """Give a forked environment its own random state.

    In Lambda each environment runs init and draws its own seeds; a fork would repeat the
    template's sequence in every environment (the SnapStart caveat), so that e.g. injected
    faults would strike the same attempts everywhere. Every `random.Random` made at init is
    reseeded from os.urandom (one explicitly seeded at init then differs per environment,
    where Lambda would repeat it: docs/local-runtime.md).
    """
    import gc
    import random

    random.seed()
    for candidate in gc.get_objects():
        if isinstance(candidate, random.Random) and not isinstance(candidate, random.SystemRandom):
            candidate.seed()


def _serve(channel: socket.socket, init: dict[str, Any], handler: Any, clock: Any) -> None:
    """One execution environment: invocations, one JSON line each way, until EOF."""
    reader = channel.makefile("r", encoding="utf-8")
    writer = channel.makefile("w", encoding="utf-8")
    output = sys.stdout
    assert isinstance(output, _Output)

    def reply(message: dict[str, Any]) -> None:
        message["output"] = output.take()
        writer.write(json.dumps(message) + "\n")
        writer.flush()

    reply({"pid": os.getpid()})
    for line in reader:
        request = json.loads(line)
        context = _Context(init, request["request_id"], time.monotonic())
        with _FrozenAt(clock, request.get("now")):
            try:
                result = handler(request["event"], context)
            except Exception as exc:  # noqa: BLE001 - any handler exception is a function error
                error = _error(exc)
                print(f"[ERROR] {error['errorType']}: {error['errorMessage']}")
                reply({"error": error})
                continue
        try:
            json.dumps(result)
        except (TypeError, ValueError) as exc:
            reply({"error": _error(exc, "Runtime.MarshalError")})
            continue
        reply({"result": result})


def main() -> None:
    """The function's template process: init once, then fork one process per environment.

    The control socket (a SOCK_SEQPACKET fd whose number is argv[1]) carries the init
    message, then one "fork" message per new execution environment with the socket that
    environment will use; each forked process starts from the state init left, as a cold
    Lambda environment starts from its init, and exits when its socket closes.
    """
    # The script's own directory is not the function's: nothing of the runtime is importable.
    sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != os.path.dirname(__file__)]
    control = socket.socket(fileno=int(sys.argv[1]))
    # fd 1 goes to the runtime's stderr: a stray C-level write cannot reach a protocol.
    os.dup2(2, 1)
    output = _Output()
    sys.stdout = output
    sys.stderr = output

    def reply(message: dict[str, Any]) -> None:
        message["output"] = output.take()
        control.sendall(json.dumps(message).encode())

    init = json.loads(control.recv(_CONTROL_MESSAGE_LIMIT))
    own_dirs = [init["code_dir"], *init["layer_dirs"]]
    sys.path[:0] = own_dirs
    clock: Any = None
    if init.get("time_machine"):
        import time_machine  # the runtime's, for the controlled clock

        clock = time_machine
    # What the runtime's own imports pulled in (time-machine imports pytest) is not the
    # function's: forget it, so the function imports only what it may. time-machine itself
    # stays (its C patches look it up in sys.modules).
    blocked = set(init["blocked"])
    for name in list(sys.modules):
        top = name.split(".", 1)[0]
        if top in blocked and top not in ("time_machine", "_time_machine"):
            del sys.modules[name]
    sys.meta_path.insert(0, _BlockHostPackages(blocked, own_dirs))
    os.chdir(init["code_dir"])
    with _FrozenAt(clock, init.get("now")):
        try:
            handler = _load(init)
        except Exception as exc:  # noqa: BLE001 - reported to the parent as Lambda would
            reply({"error": _error(exc, "Runtime.ImportModuleError")})
            return
    reply({"ready": True})
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # forked environments reap themselves
    while True:
        _, fds, _, _ = socket.recv_fds(control, 64, 1)
        if not fds:
            return  # the runtime closed the control socket
        if os.fork() == 0:
            signal.signal(signal.SIGCHLD, signal.SIG_DFL)
            control.close()
            _reseed_random_generators()
            _serve(socket.socket(fileno=fds[0]), init, handler, clock)
            os._exit(0)
        os.close(fds[0])


if __name__ == "__main__":
    main()
