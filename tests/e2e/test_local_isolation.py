"""The runtime's process mode runs each function as Lambda does: its own process per concurrent
invocation, Lambda's environment, a timeout that ends the invocation and a cold start after it.
The toy app's SlowFunction (Timeout 2 s, BatchSize 1, MaximumConcurrency 3) records what it
sees into the stack's table."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from typing import Any

import pytest
import requests
from moto.server import ThreadedMotoServer

from notifyctl.local.clock import ControlledClock
from notifyctl.local.isolation import IsolatedFunction
from notifyctl.local.pollers import SqsEventSourcePoller
from notifyctl.local.stack import DeployError, LocalStack, deploy
from tests.e2e.test_local_runtime import PARAMETERS, TOY_TEMPLATE, recorded


@pytest.fixture
def isolated(
    aws_env: None, clock: ControlledClock, monkeypatch: pytest.MonkeyPatch
) -> Iterator[LocalStack]:
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    monkeypatch.setenv("AWS_ENDPOINT_URL", endpoint)
    try:
        with deploy(
            TOY_TEMPLATE, PARAMETERS, "toy-isolated", clock=clock, isolation="process"
        ) as stack:
            yield stack
    finally:
        requests.post(f"{endpoint}/moto-api/reset", timeout=10)
        server.stop()


def send_slow(stack: LocalStack, **body: Any) -> str:
    return stack.clients.sqs.send_message(
        QueueUrl=stack.outputs["SlowQueueUrl"], MessageBody=json.dumps(body)
    )["MessageId"]


def slow_function(stack: LocalStack) -> IsolatedFunction:
    function = stack.function("SlowFunction")
    assert isinstance(function, IsolatedFunction)
    return function


def by_n(records: list[dict[str, Any]]) -> dict[int, dict[str, Any]]:
    return {r["n"]: r for r in records}


@pytest.fixture
def aws_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")


@pytest.fixture
def clock() -> Iterator[ControlledClock]:
    with ControlledClock() as controlled:
        yield controlled


def test_process_mode_needs_the_moto_server(aws_env: None, clock: ControlledClock) -> None:
    from moto import mock_aws

    with mock_aws(), pytest.raises(DeployError, match="needs moto server"):
        deploy(TOY_TEMPLATE, PARAMETERS, "toy-no-server", clock=clock, isolation="process")


def test_invocations_run_at_once_in_separate_processes_with_lambdas_environment(
    isolated: LocalStack,
) -> None:
    # Given three messages, one importing a package outside the layer's requirements,
    # one importing one inside them, one the Lambda runtime's boto3
    send_slow(isolated, n=1, **{"import": "moto"})
    send_slow(isolated, n=2, **{"import": "aws_lambda_powertools"})
    send_slow(isolated, n=3, **{"import": "boto3"})

    # When one round runs (BatchSize 1, MaximumConcurrency 3)
    handled = isolated.pump()

    # Then three invocations ran in that round, each in its own process, none of them ours
    assert handled == 3
    seen = by_n(recorded(isolated, "slow_started"))
    assert len({seen[n]["pid"] for n in (1, 2, 3)}) == 3
    assert os.getpid() not in {seen[n]["pid"] for n in (1, 2, 3)}
    # And only what the function's code, its layer and the runtime provide can be imported
    assert seen[1]["import"].startswith("No module named 'moto'")
    assert seen[2]["import"] == "ok"
    assert seen[3]["import"] == "ok"
    for n in (1, 2, 3):
        # on the runtime's controlled clock (2025-01-06 09:00 UTC, frozen)
        assert seen[n]["now"] == 1736154000.0
        # with Lambda's environment: TZ=:UTC, no AWS_SAM_LOCAL, none of the host's modules
        assert seen[n]["tz"] == ":UTC"
        assert seen[n]["utc_offset"] == "+0000"
        assert seen[n]["sam_local"] is None
        assert seen[n]["host_modules"] == []
    assert slow_function(isolated).cold_starts == 3


def test_a_mapping_runs_no_more_than_the_runtimes_concurrency_cap(isolated: LocalStack) -> None:
    # Given four messages and the slow mapping's poller capped at one invocation at a time
    for n in range(4):
        send_slow(isolated, n=n)
    [poller] = [
        p
        for p in isolated.pollers
        if isinstance(p, SqsEventSourcePoller) and "Slow" in p.queue_name
    ]
    capped = SqsEventSourcePoller(
        poller.mapping_uuid, poller.queue_arn, poller.function, isolated.clients, concurrency=1
    )

    # When the capped poller runs one round, Then it handled one batch
    assert capped.poll_once() == 1
    # And the mapping's own poller takes its MaximumConcurrency (3) of the other three at once
    assert poller.poll_once() == 3
    capped.close()


def test_remaining_time_counts_down_while_the_handler_runs(isolated: LocalStack) -> None:
    # Given a message whose handler sleeps 0.3 s between two readings of the remaining time
    send_slow(isolated, n=1, sleep=0.3)

    # When it is processed (the controlled clock stays frozen meanwhile)
    isolated.pump()

    # Then the remaining time went down by the time slept, from at most the 2 s Timeout
    [started] = recorded(isolated, "slow_started")
    [finished] = recorded(isolated, "slow_finished")
    assert started["remaining_ms"] <= 2000
    assert finished["remaining_ms"] <= started["remaining_ms"] - 300


def test_a_timeout_ends_the_invocation_and_the_next_one_is_cold(
    isolated: LocalStack, clock: ControlledClock
) -> None:
    # Given a message whose handler would sleep 5 s, past its 2 s Timeout
    send_slow(isolated, n=1, sleep=5)

    # When it is processed
    isolated.pump()

    # Then the invocation timed out and its process is gone: nothing after the deadline
    [poller] = [p for p in isolated.pollers if "Slow" in p.queue_name]
    assert isinstance(poller, SqsEventSourcePoller)
    [invocation] = poller.invocations
    assert invocation.error is not None
    assert invocation.error.error_type == "Sandbox.Timedout"
    [started] = recorded(isolated, "slow_started")
    with pytest.raises(ProcessLookupError):
        os.kill(started["pid"], 0)
    assert recorded(isolated, "slow_finished") == []

    # When the message comes back after its visibility timeout (12 s) and a quick one follows
    clock.advance(13)
    send_slow(isolated, n=2)
    isolated.pump()

    # Then each ran in a fresh (cold) environment, not in the one that timed out
    seen = by_n(recorded(isolated, "slow_started"))
    assert seen[2]["pid"] != started["pid"]
    assert seen[2]["warm_invocations"] == 1
    assert slow_function(isolated).timeouts >= 1
