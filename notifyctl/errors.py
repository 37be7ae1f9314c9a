"""How notifyctl reports failures: one line on stderr, an exit code, never a traceback.

``NotifyctlGroup`` is the top command's class, so every subcommand, present or future, gets
the same treatment without doing anything:

- a usage error (a bad option value, a missing argument, a value outside its allowed set, an
  unknown profile or config environment) is ``error: <message>`` and exit code 2;
- a failed operation (no such stack, id or subscription; AWS refused; a provider error) is
  ``error: <message>`` and exit code 1;
- anything unexpected is one line naming the exception, exit code 1, and ``--debug`` (or
  ``NOTIFYCTL_DEBUG=1``) prints the traceback as well.
"""

from __future__ import annotations

import os
import sys
import traceback
from collections.abc import Sequence
from typing import Any

import typer
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    EndpointConnectionError,
    NoCredentialsError,
    NoRegionError,
    ProfileNotFound,
)
from typer.core import TyperGroup

try:  # typer >= 0.2x vendors click
    from typer._click import exceptions as click_errors
except ImportError:  # pragma: no cover - older typer: click itself
    from click import exceptions as click_errors  # type: ignore[no-redef]

from notifications.errors import PermanentError, RetryableError

USAGE = 2
FAILED = 1


class CliError(Exception):
    """A failure the user can act on; ``message`` is the whole line shown."""

    exit_code = FAILED

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class UsageError(CliError):
    """A bad value given by the user (exit code 2)."""

    exit_code = USAGE


class OperationError(CliError):
    """The operation failed (exit code 1): nothing found, AWS refused, a provider failed."""


def debug_requested(args: Sequence[str]) -> bool:
    return "--debug" in args or os.environ.get("NOTIFYCTL_DEBUG", "") not in ("", "0")


def describe(exc: BaseException) -> tuple[str, int]:
    """The one line and the exit code for an exception raised by a command."""
    if isinstance(exc, CliError):
        return exc.message, exc.exit_code
    if isinstance(exc, click_errors.UsageError):
        hint = f" (see '{exc.ctx.command_path} --help')" if exc.ctx else ""
        return exc.format_message() + hint, USAGE
    if isinstance(exc, click_errors.ClickException):
        return exc.format_message(), exc.exit_code
    if isinstance(exc, ProfileNotFound):
        return f"{exc}: check --profile / AWS_PROFILE against ~/.aws/config", USAGE
    if isinstance(exc, NoRegionError):
        return "no AWS region: give --region, or set AWS_REGION or the profile's region", USAGE
    if isinstance(exc, NoCredentialsError):
        return "no AWS credentials: give --profile, or set AWS_PROFILE or AWS_ACCESS_KEY_ID", FAILED
    if isinstance(exc, EndpointConnectionError):
        return f"cannot reach AWS: {exc}", FAILED
    if isinstance(exc, ClientError):
        error = exc.response.get("Error", {})
        operation = exc.operation_name
        return f"AWS refused {operation}: {error.get('Code')}: {error.get('Message')}", FAILED
    if isinstance(exc, BotoCoreError):
        return f"AWS call failed: {exc}", FAILED
    if isinstance(exc, PermanentError | RetryableError):
        return f"{exc.reason}: {exc.message}", FAILED
    if isinstance(exc, OSError) and exc.filename is not None:
        return f"{exc.filename}: {exc.strerror}", FAILED
    return f"unexpected {type(exc).__name__}: {exc} (rerun with --debug for the traceback)", FAILED


def one_line(message: str) -> str:
    return " ".join(message.split())


def report(exc: BaseException, debug: bool) -> int:
    """Print the error line (and with ``debug`` the traceback); return the exit code."""
    message, code = describe(exc)
    if debug:
        traceback.print_exc()
    print(f"error: {one_line(message)}", file=sys.stderr)
    return code


class NotifyctlGroup(TyperGroup):
    """The top command: runs the command line and turns every failure into one line."""

    def main(  # type: ignore[override]
        self,
        args: Sequence[str] | None = None,
        prog_name: str | None = None,
        complete_var: str | None = None,
        standalone_mode: bool = True,
        **extra: Any,
    ) -> Any:
        argv = list(sys.argv[1:] if args is None else args)
        debug = debug_requested(argv)
        try:
            code = super().main(argv, prog_name, complete_var, standalone_mode=False, **extra)
        except typer.Abort:
            print("aborted", file=sys.stderr)
            code = 130
        except click_errors.UsageError as exc:
            if type(exc).__name__ == "NoArgsIsHelpError":  # a group alone prints its help
                exc.show()
                code = USAGE
            else:
                code = report(exc, debug)
        except Exception as exc:  # noqa: BLE001 - every failure becomes one line (or --debug)
            code = report(exc, debug)
        if not standalone_mode:
            return code
        sys.exit(code if isinstance(code, int) else 0)
