"""`notifyctl local serve`: moto server on 127.0.0.1 with the application deployed and its
functions running, so the AWS CLI, boto3 and notifyctl can use it like a real account."""

from __future__ import annotations

import logging
import os
import threading
import time
from pathlib import Path

from rich.console import Console

from notifications.aws import reset_clients
from notifyctl.local.application import prepare, use_local_environment
from notifyctl.local.clock import RealClock
from notifyctl.local.stack import deploy
from notifyctl.target import LOCAL_STACK_NAME

IDLE_SLEEP = 0.2
log = logging.getLogger("notifyctl.serve")


def serve(
    template: Path,
    port: int,
    failure_rate: float,
    console: Console,
    stop: threading.Event | None = None,
) -> None:
    from moto.server import ThreadedMotoServer

    use_local_environment()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        host, bound = server.get_host_and_port()
        endpoint = f"http://{host}:{bound}"
        os.environ["AWS_ENDPOINT_URL"] = endpoint
        reset_clients()
        stack = deploy(
            template,
            {"FailureRate": str(failure_rate), "WebhookAllowLoopback": "true"},
            stack_name=LOCAL_STACK_NAME,
            clock=RealClock(),
            isolation="process",
        )
        prepare(stack)
        console.print(f"Endpoint: {endpoint}", highlight=False, soft_wrap=True)
        console.print(
            f"Stack {LOCAL_STACK_NAME} is running (bus {stack.bus_name}). Try:\n"
            "  AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing "
            "AWS_DEFAULT_REGION=us-east-1 \\\n"
            f"  aws --endpoint-url {endpoint} events put-events "
            f"--entries file://events/put-events/order-placed.json\n"
            f"  notifyctl --endpoint-url {endpoint} dashboard\n"
            "Ctrl-C stops it.",
            highlight=False,
            soft_wrap=True,
        )
        while stop is None or not stop.is_set():
            try:
                handled = stack.pump()
            except Exception:  # a bad round is reported; the server keeps serving
                log.exception("local runtime round failed")
                handled = 0
            if not handled:
                time.sleep(IDLE_SLEEP)
    except KeyboardInterrupt:
        console.print("stopped")
    finally:
        server.stop()
