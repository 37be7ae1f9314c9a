"""boto3 clients, created lazily and cached: importing a module costs nothing.

Clients are shared by every thread (boto3 clients are thread-safe: the sender's send pool,
``sending.py``, calls providers that read DynamoDB tables from its worker threads). The layer
creates no boto3 *resource*: DynamoDB goes through the low-level client with wire-format
values (``adapters/dynamodb.py``; docs/performance.md, "Cold start").
"""

from __future__ import annotations

import threading
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


# boto3's default session is not thread-safe: clients are made one at a time.
_MAKING = threading.Lock()


@cache
def client(service: str) -> Any:
    """A cached boto3 client. Region and endpoint come from the environment
    (``AWS_REGION``/``AWS_DEFAULT_REGION``, ``AWS_ENDPOINT_URL``)."""
    with _MAKING:
        return boto3.client(service, config=_CONFIG)  # type: ignore[call-overload]


def reset_clients() -> None:
    """Forget cached clients (tests that switch endpoints or credentials)."""
    client.cache_clear()


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
