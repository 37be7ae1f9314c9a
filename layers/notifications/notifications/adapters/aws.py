"""boto3 clients and resources, created lazily and cached: importing a module costs nothing."""

from __future__ import annotations

from collections.abc import Callable
from functools import cache
from typing import Any, Generic, TypeVar

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError

# Standard client-side retries for throttling; timeouts well inside a Lambda's own.
# A fixed User-Agent: botocore otherwise rebuilds its structured one (sanitizing every
# component, character by character) twice per request, about 0.1 ms of each call's CPU here;
# what is lost is only the SDK's own telemetry tags in the header.
_CONFIG = Config(
    retries={"max_attempts": 3, "mode": "standard"},
    connect_timeout=5,
    read_timeout=10,
    user_agent="serverless-notifications/1",  # botocore appends "Botocore/<version>"
)


@cache
def client(service: str) -> Any:
    """A cached boto3 client. Region and endpoint come from the environment
    (``AWS_REGION``/``AWS_DEFAULT_REGION``, ``AWS_ENDPOINT_URL``)."""
    return boto3.client(service, config=_CONFIG)  # type: ignore[call-overload]


def reset_clients() -> None:
    """Forget cached clients (tests that switch endpoints or credentials)."""
    client.cache_clear()
    resource.cache_clear()
    table.cache_clear()


@cache
def resource(service: str) -> Any:
    """A cached boto3 resource (DynamoDB's typed-value API)."""
    return boto3.resource(service, config=_CONFIG)  # type: ignore[call-overload]


@cache
def table(name: str) -> Any:
    """A cached DynamoDB ``Table`` (building one costs about half a millisecond)."""
    return resource("dynamodb").Table(name)


ClientT = TypeVar("ClientT")


class LazyClient(Generic[ClientT]):
    """An adapter's client, made on first use: from ``factory`` when one is given (tests),
    else the cached client of ``service``."""

    def __init__(self, service: str, factory: Callable[[], ClientT] | None = None) -> None:
        self.service = service
        self._factory = factory
        self._client: ClientT | None = None

    def __call__(self) -> ClientT:
        if self._client is None:
            self._client = self._factory() if self._factory is not None else client(self.service)
        return self._client


def aws_error(exc: BaseException) -> tuple[str, str] | None:
    """``(code, message)`` of an AWS service error (a ``ClientError``); None for anything else,
    so a module outside the adapters can answer a refused request without importing botocore."""
    if not isinstance(exc, ClientError):
        return None
    error = exc.response.get("Error", {})
    return str(error.get("Code", "ClientError")), str(error.get("Message", ""))
