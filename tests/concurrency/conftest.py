"""The contention suite runs the application on the runtime's process mode: moto server on
127.0.0.1, every function in its own processes, each channel's event source mapping at its
MaximumConcurrency (5), and the controlled clock (workers freeze their clock at it)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
import requests
from moto.server import ThreadedMotoServer

from notifications.adapters.aws import reset_clients
from notifyctl.local.application import prepare
from notifyctl.local.clock import ControlledClock
from notifyctl.local.pollers import SqsEventSourcePoller
from notifyctl.local.stack import LocalStack, deploy
from tests.conftest import TEMPLATE


@pytest.fixture
def moto_server(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    monkeypatch.setenv("AWS_ENDPOINT_URL", endpoint)
    reset_clients()
    try:
        yield endpoint
    finally:
        requests.post(f"{endpoint}/moto-api/reset", timeout=30)
        server.stop()
        reset_clients()


@pytest.fixture
def concurrent_stack(
    moto_server: str, clock: ControlledClock
) -> Iterator[Callable[..., LocalStack]]:
    """Deploys template.yaml in process mode with the given parameter overrides."""
    stacks: list[LocalStack] = []

    def _deploy(**parameters: Any) -> LocalStack:
        stack = deploy(
            TEMPLATE,
            {k: str(v) for k, v in parameters.items()},
            clock=clock,
            isolation="process",
        )
        stacks.append(stack)
        prepare(stack)
        return stack

    yield _deploy
    for stack in stacks:
        stack.close()


def channel_poller(stack: LocalStack, queue_logical_id: str) -> SqsEventSourcePoller:
    name = stack.physical_id(queue_logical_id).rstrip("/").rsplit("/", 1)[-1]
    [poller] = [
        p for p in stack.pollers if isinstance(p, SqsEventSourcePoller) and p.queue_name == name
    ]
    return poller


def set_batch_size(stack: LocalStack, queue_logical_id: str, batch_size: int) -> None:
    """Through the Lambda API, as an operator would; the poller reads it every round."""
    poller = channel_poller(stack, queue_logical_id)
    stack.clients.lambda_.update_event_source_mapping(
        UUID=poller.mapping_uuid, BatchSize=batch_size
    )
