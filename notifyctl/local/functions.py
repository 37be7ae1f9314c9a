"""Run a Lambda function's real handler code in-process, the way the Lambda runtime would."""

from __future__ import annotations

import importlib.util
import io
import os
import sys
import time
import traceback
import uuid
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any, Protocol, TextIO

from notifyctl.local.emf import ParsedOutput, parse_output

# Host variables a function keeps: how to reach (moto's) AWS, and what Python needs to run.
# Everything else in the function's environment comes from the stack or the Lambda runtime.
_KEPT_HOST_PREFIXES = ("AWS_", "MOTO_", "LC_")
_KEPT_HOST_NAMES = frozenset(
    {"PATH", "HOME", "LANG", "TMPDIR", "PYTHONPATH", "PYTHONHASHSEED", "SYSTEMROOT"}
)
_RUNTIME_OWNED_PREFIXES = ("AWS_LAMBDA_",)
_RUNTIME_OWNED_NAMES = frozenset({"AWS_EXECUTION_ENV", "AWS_SAM_LOCAL"})


@dataclass(frozen=True)
class FunctionSpec:
    """A deployed function as the stack resolved it, plus where its code lives locally."""

    logical_id: str
    name: str
    arn: str
    code_dir: Path
    handler: str
    layer_dirs: tuple[Path, ...]
    environment: Mapping[str, str]
    timeout_seconds: int
    memory_mb: int
    runtime: str = "python3.12"


@dataclass(frozen=True)
class FunctionError:
    """An invocation error, in the shape the Lambda Python runtime reports it."""

    error_type: str
    error_message: str
    stack_trace: tuple[str, ...] = ()

    def as_payload(self, request_id: str) -> dict[str, Any]:
        return {
            "errorMessage": self.error_message,
            "errorType": self.error_type,
            "requestId": request_id,
            "stackTrace": list(self.stack_trace),
        }


@dataclass(frozen=True)
class Invocation:
    """The outcome of one invocation."""

    function: str
    request_id: str
    result: Any = None
    error: FunctionError | None = None
    output: ParsedOutput = field(default_factory=ParsedOutput)

    @property
    def ok(self) -> bool:
        return self.error is None


class LambdaContext:
    """The context object handed to a handler.

    Remaining time counts down on the monotonic clock (real elapsed time), which a
    `ControlledClock` does not freeze, so it decreases while the handler runs either way.
    """

    def __init__(self, spec: FunctionSpec, request_id: str) -> None:
        self.function_name = spec.name
        self.function_version = "$LATEST"
        self.invoked_function_arn = spec.arn
        self.memory_limit_in_mb = spec.memory_mb
        self.aws_request_id = request_id
        self.log_group_name = f"/aws/lambda/{spec.name}"
        self.log_stream_name = f"local/[$LATEST]{spec.logical_id}"
        self.identity = None
        self.client_context = None
        self._deadline = time.monotonic() + spec.timeout_seconds

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self._deadline - time.monotonic()) * 1000))


class _StdoutRouter(io.TextIOBase):
    """A stdout that sends writes to the current invocation's buffer.

    Loggers made at import time keep a reference to the stdout they saw; since that is this
    router, their later writes still land in the invocation that made them.
    """

    def __init__(self) -> None:
        super().__init__()
        self._buffer: io.StringIO | None = None
        self._fallback: TextIO = sys.stdout

    def write(self, text: str) -> int:
        target = self._buffer if self._buffer is not None else self._fallback
        return target.write(text)

    def writable(self) -> bool:
        return True

    def flush(self) -> None:
        # At interpreter exit logging flushes its handlers after a test runner may have closed
        # the stdout it lent us; there is nothing left to flush then.
        if self._buffer is None and not self._fallback.closed:
            self._fallback.flush()

    @contextmanager
    def capture(self) -> Iterator[io.StringIO]:
        buffer = io.StringIO()
        previous_stdout, previous_buffer = sys.stdout, self._buffer
        if previous_stdout is not self:
            self._fallback = previous_stdout
        self._buffer = buffer
        sys.stdout = self
        try:
            yield buffer
        finally:
            sys.stdout = previous_stdout
            self._buffer = previous_buffer


_ROUTER = _StdoutRouter()


@contextmanager
def swapped_environment(environment: Mapping[str, str]) -> Iterator[None]:
    saved = dict(os.environ)
    os.environ.clear()
    os.environ.update(environment)
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


@contextmanager
def _import_path(directories: tuple[Path, ...]) -> Iterator[None]:
    saved = list(sys.path)
    sys.path[:0] = [str(d) for d in directories]
    try:
        yield
    finally:
        sys.path[:] = saved


def host_environment() -> dict[str, str]:
    """The host variables a function keeps (credentials, endpoint, PATH...)."""
    return {
        key: value
        for key, value in os.environ.items()
        if (key.startswith(_KEPT_HOST_PREFIXES) or key in _KEPT_HOST_NAMES)
        and not key.startswith(_RUNTIME_OWNED_PREFIXES)
        and key not in _RUNTIME_OWNED_NAMES
    }


def runtime_environment(spec: FunctionSpec, region: str) -> dict[str, str]:
    """Variables the Lambda runtime sets for every function (not `AWS_SAM_LOCAL`: this is
    meant to behave as Lambda, not as `sam local`)."""
    return {
        "AWS_REGION": region,
        "AWS_DEFAULT_REGION": region,
        "AWS_LAMBDA_FUNCTION_NAME": spec.name,
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(spec.memory_mb),
        "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
        "AWS_LAMBDA_LOG_GROUP_NAME": f"/aws/lambda/{spec.name}",
        "AWS_LAMBDA_LOG_STREAM_NAME": f"local/[$LATEST]{spec.logical_id}",
        "AWS_EXECUTION_ENV": f"AWS_Lambda_{spec.runtime}",
        "AWS_XRAY_CONTEXT_MISSING": "LOG_ERROR",
        "AWS_XRAY_DAEMON_ADDRESS": "127.0.0.1:2000",
        "LAMBDA_TASK_ROOT": str(spec.code_dir),
        "TZ": ":UTC",
        "_HANDLER": spec.handler,
    }


OutputSink = Callable[["FunctionSpec", Invocation], None]


class Function(Protocol):
    """What the pollers need of a function, in-process (`LocalFunction`) or isolated
    (`notifyctl.local.isolation.IsolatedFunction`)."""

    spec: FunctionSpec
    environment: dict[str, str]

    def invoke(self, event: Any, request_id: str | None = None) -> Invocation: ...

    def close(self) -> None: ...


class LocalFunction:
    """One function: imported on first use (cold start), then invoked in-process.

    The fast mode: one thread, shared `sys.modules`, no enforced timeout (an overrun is
    reported as `Sandbox.Timedout` once the handler returns, and its warm module is dropped so
    the next invocation is cold, as after a timeout in Lambda).
    """

    def __init__(
        self,
        spec: FunctionSpec,
        region: str,
        on_invocation: OutputSink | None = None,
        base_environment: Mapping[str, str] | None = None,
    ) -> None:
        self.spec = spec
        self._on_invocation = on_invocation
        base = host_environment() if base_environment is None else dict(base_environment)
        self.environment: dict[str, str] = {
            **base,
            **runtime_environment(spec, region),
            **spec.environment,
        }
        self._handler: Callable[[Any, Any], Any] | None = None
        self.invocations = 0

    @property
    def module_name(self) -> str:
        module = self.spec.handler.rsplit(".", 1)[0]
        return f"_notifyctl_local_fn_{self.spec.logical_id}_{module.replace('.', '_')}"

    def _load(self) -> Callable[[Any, Any], Any]:
        module_path, _, attribute = self.spec.handler.rpartition(".")
        source = self.spec.code_dir / (module_path.replace(".", "/") + ".py")
        import_spec = importlib.util.spec_from_file_location(self.module_name, source)
        if import_spec is None or import_spec.loader is None:
            raise ImportError(f"cannot load handler module {source}")
        module: ModuleType = importlib.util.module_from_spec(import_spec)
        sys.modules[self.module_name] = module
        try:
            import_spec.loader.exec_module(module)
        except BaseException:
            sys.modules.pop(self.module_name, None)
            raise
        handler = getattr(module, attribute, None)
        if not callable(handler):
            raise ImportError(f"handler {self.spec.handler!r} not found in {source}")
        return handler  # type: ignore[no-any-return]

    def invoke(self, event: Any, request_id: str | None = None) -> Invocation:
        """Invoke the handler with `event`; a raised exception is an invocation error."""
        request_id = request_id or str(uuid.uuid4())
        context = LambdaContext(self.spec, request_id)
        result: Any = None
        error: FunctionError | None = None
        self.invocations += 1
        with (
            _ROUTER.capture() as buffer,
            swapped_environment(self.environment),
            _import_path((self.spec.code_dir, *self.spec.layer_dirs)),
        ):
            try:
                if self._handler is None:
                    self._handler = self._load()
                result = self._handler(event, context)
            except Exception as exc:  # noqa: BLE001 - any handler exception is a function error
                error = FunctionError(
                    error_type=type(exc).__name__,
                    error_message=str(exc),
                    stack_trace=tuple(traceback.format_tb(exc.__traceback__)),
                )
                print(f"[ERROR] {error.error_type}: {error.error_message}")
        if error is None and context.get_remaining_time_in_millis() <= 0:
            error = FunctionError(
                error_type="Sandbox.Timedout",
                error_message=f"Task timed out after {self.spec.timeout_seconds:.2f} seconds",
            )
            result = None
            self._handler = None
            sys.modules.pop(self.module_name, None)
        invocation = Invocation(
            function=self.spec.logical_id,
            request_id=request_id,
            result=result,
            error=error,
            output=parse_output(buffer.getvalue()),
        )
        if self._on_invocation is not None:
            self._on_invocation(self.spec, invocation)
        return invocation

    def close(self) -> None:
        """Nothing to stop in-process."""
