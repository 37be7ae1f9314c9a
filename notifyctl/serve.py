"""`notifyctl local serve`: moto server on 127.0.0.1 with the application deployed and its
functions running, so the AWS CLI, boto3 and notifyctl can use it like a real account.

A port already in use is refused at once (``PortInUse``), before anything starts. While it
runs, it prints one line per channel for each round of deliveries, from the metrics the
sender emitted in that round (the same counts CloudWatch gets), e.g.
``12:00:01 email: 3 sent, 1 failed attempt``.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from collections import defaultdict
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from rich.console import Console

from notifications.adapters.aws import reset_clients
from notifyctl.local.application import prepare, use_local_environment
from notifyctl.local.clock import RealClock
from notifyctl.local.emf import MetricDatum
from notifyctl.local.function_urls import FunctionUrlServer, serve_function_urls
from notifyctl.local.stack import deploy
from notifyctl.target import LOCAL_STACK_NAME

IDLE_SLEEP = 0.2
HOST = "127.0.0.1"
log = logging.getLogger("notifyctl.serve")

# The per-channel counts a delivery line shows, in this order: metric, one, several.
DELIVERY_WORDS = (
    ("Sent", "sent", "sent"),
    ("Failed", "failed attempt", "failed attempts"),
    ("DeadLettered", "dead-lettered", "dead-lettered"),
    ("Deferred", "deferred", "deferred"),
    ("Suppressed", "suppressed", "suppressed"),
)


class PortInUse(RuntimeError):
    """The port is taken: nothing was started."""


def ensure_port_free(port: int) -> None:
    """Raise ``PortInUse`` when something listens on ``HOST:port`` (0 picks a free port)."""
    if port == 0:
        return
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        # As the server will: a port left in TIME_WAIT by a stopped server is free.
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((HOST, port))
        except OSError as exc:
            raise PortInUse(
                f"port {port} on {HOST} is in use ({exc.strerror}); stop what holds it"
                " (another `notifyctl local serve`?) or give --port"
            ) from None


def start_server(port: int) -> Any:
    """moto server on ``HOST:port``, started; ``PortInUse`` (never a hang) when it cannot bind.

    ``ThreadedMotoServer.start`` waits forever when its thread fails to bind (werkzeug exits
    that thread), so the wait here also watches the thread."""
    from moto.server import ThreadedMotoServer

    ensure_port_free(port)

    class Server(ThreadedMotoServer):  # type: ignore[misc]
        def start(self) -> None:
            self._thread = threading.Thread(target=self._server_entry, daemon=True)
            self._thread.start()
            while not self._server_ready_event.wait(0.1):
                if not self._thread.is_alive():
                    raise PortInUse(f"port {port} on {HOST} is in use; give another --port")

    server = Server(ip_address=HOST, port=port, verbose=False)
    server.start()
    return server


def delivery_lines(metrics: Sequence[MetricDatum], at: datetime) -> list[str]:
    """One line per channel summing the delivery metrics of one round."""
    counts: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    for datum in metrics:
        channel = dict(datum.dimensions).get("Channel")
        if channel is not None:
            counts[channel][datum.name] += sum(datum.values)
    lines = []
    for channel in sorted(counts):
        parts = [
            f"{count:,.0f} {one if count == 1 else several}"
            for name, one, several in DELIVERY_WORDS
            if (count := counts[channel].get(name, 0))
        ]
        if parts:
            lines.append(f"{at:%H:%M:%S} {channel}: {', '.join(parts)}")
    return lines


def serve(
    template: Path,
    port: int,
    failure_rate: float,
    console: Console,
    stop: threading.Event | None = None,
    provider_latency: str = "",
) -> None:
    server = start_server(port)
    use_local_environment()
    url_servers: dict[str, FunctionUrlServer] = {}
    try:
        host, bound = server.get_host_and_port()
        endpoint = f"http://{host}:{bound}"
        os.environ["AWS_ENDPOINT_URL"] = endpoint
        reset_clients()
        stack = deploy(
            template,
            {
                "FailureRate": str(failure_rate),
                "WebhookAllowLoopback": "true",
                "ProviderLatency": provider_latency,
            },
            stack_name=LOCAL_STACK_NAME,
            clock=RealClock(),
            isolation="process",
        )
        prepare(stack)
        # Function URLs (the preference center) on 127.0.0.1; the lock keeps their
        # invocations out of the runtime's rounds (one process environment at a time).
        invoke_lock = threading.Lock()
        url_servers = serve_function_urls(stack, invoke_lock)
        for url_server in url_servers.values():
            console.print(
                f"Function URL {url_server.function.spec.logical_id}: {url_server.url}",
                highlight=False,
                soft_wrap=True,
            )
        console.print(f"Endpoint: {endpoint}", highlight=False, soft_wrap=True)
        console.print(
            f"Stack {LOCAL_STACK_NAME} is running (bus {stack.bus_name}). Try:\n"
            "  AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing "
            "AWS_DEFAULT_REGION=us-east-1 \\\n"
            f"  aws --endpoint-url {endpoint} events put-events "
            f"--entries file://events/put-events/order-placed.json\n"
            f"  notifyctl --endpoint-url {endpoint} dashboard\n"
            "Deliveries are logged below, one line per channel and round. Ctrl-C stops it.",
            highlight=False,
            soft_wrap=True,
        )
        while stop is None or not stop.is_set():
            seen = len(stack.metrics)
            try:
                with invoke_lock:
                    handled = stack.pump()
            except Exception:  # a bad round is reported; the server keeps serving
                log.exception("local runtime round failed")
                handled = 0
            for line in delivery_lines(stack.metrics[seen:], datetime.now().astimezone()):
                console.print(line, highlight=False, soft_wrap=True)
            if not handled:
                time.sleep(IDLE_SLEEP)
    except KeyboardInterrupt:
        console.print("stopped")
    finally:
        for url_server in url_servers.values():
            url_server.stop()
        server.stop()
