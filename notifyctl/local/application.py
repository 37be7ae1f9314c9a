"""What this application needs from a freshly deployed local stack, beyond the template.

moto's CloudFormation creates no ``AWS::SES::EmailIdentity`` and SES refuses an unverified
sender, so the local run verifies the sender identity the template configures (in AWS the
identity is verified once, by DNS, outside the stack).
"""

from __future__ import annotations

import logging
import os
import warnings
from collections.abc import Iterator
from contextlib import contextmanager

from notifyctl.local.stack import LocalStack


def sender_email(stack: LocalStack) -> str:
    return stack.function("SenderFunction").environment["SENDER_EMAIL"]


def prepare(stack: LocalStack) -> None:
    """Verify the sender identity in moto's SES (idempotent)."""
    identity = sender_email(stack)
    stack.clients.client("ses").verify_email_identity(EmailAddress=identity)


def use_local_environment(region: str = "us-east-1") -> None:
    """Process environment for a local run: fake credentials (nothing can reach a real
    account), a region, and X-Ray tracing off (no daemon to send segments to)."""
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN"):
        os.environ.pop(name, None)
    os.environ["AWS_ACCESS_KEY_ID"] = "testing"
    os.environ["AWS_SECRET_ACCESS_KEY"] = "testing"  # noqa: S105 - moto's fake credentials
    os.environ.setdefault("AWS_DEFAULT_REGION", region)
    os.environ.setdefault("AWS_REGION", os.environ["AWS_DEFAULT_REGION"])
    os.environ["POWERTOOLS_TRACE_DISABLED"] = "true"
    # moto announces each resource type its CloudFormation skips (the runtime applies those
    # itself, docs/local-runtime.md); Powertools warns about invocations with no metric.
    logging.getLogger("moto").setLevel(logging.ERROR)
    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # moto server's request log
    warnings.filterwarnings("ignore", message="Tried to parse AWS::", category=UserWarning)
    warnings.filterwarnings("ignore", message="No application metrics", category=UserWarning)


@contextmanager
def embedded_aws(server: bool = False) -> Iterator[str | None]:
    """moto for one local run: in-process (``mock_aws``), or a ``ThreadedMotoServer`` on
    127.0.0.1 with every client aimed at it through ``AWS_ENDPOINT_URL``. Yields the
    endpoint (None in-process)."""
    from moto import mock_aws
    from moto.server import ThreadedMotoServer

    from notifications.adapters.aws import reset_clients

    if not server:
        with mock_aws():
            yield None
        return
    moto_server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    moto_server.start()
    host, port = moto_server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    previous = os.environ.get("AWS_ENDPOINT_URL")
    os.environ["AWS_ENDPOINT_URL"] = endpoint
    reset_clients()
    try:
        yield endpoint
    finally:
        moto_server.stop()
        if previous is None:
            os.environ.pop("AWS_ENDPOINT_URL", None)
        else:
            os.environ["AWS_ENDPOINT_URL"] = previous
        reset_clients()
