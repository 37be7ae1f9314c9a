"""Which stack the CLI talks to: a deployed one (by stack name) or the local one (by endpoint).

Both are resolved the same way, from the stack's CloudFormation outputs, so every command
works against AWS and against `notifyctl local serve` alike.
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import boto3

LOCAL_STACK_NAME = "notifications-local"


class TargetError(RuntimeError):
    """The stack cannot be found or lacks an output the command needs."""


def samconfig_stack_name(path: Path = Path("samconfig.toml"), env: str = "default") -> str | None:
    """The stack name samconfig.toml gives an environment, if any."""
    if not path.is_file():
        return None
    config = tomllib.loads(path.read_text())
    section = config.get(env, {})
    for command in ("global", "deploy"):
        name = section.get(command, {}).get("parameters", {}).get("stack_name")
        if name:
            return str(name)
    return None


@dataclass
class StackTarget:
    stack_name: str
    endpoint_url: str | None = None
    region: str | None = None

    _clients: dict[str, Any] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        self.region = self.region or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1"
        if self.endpoint_url:
            # The layer's adapters create their clients from the environment: aim them too.
            os.environ["AWS_ENDPOINT_URL"] = self.endpoint_url
            os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
            os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
        os.environ.setdefault("AWS_DEFAULT_REGION", self.region)

    def client(self, service: str) -> Any:
        if service not in self._clients:
            self._clients[service] = boto3.client(  # type: ignore[call-overload]
                service, region_name=self.region, endpoint_url=self.endpoint_url
            )
        return self._clients[service]

    @cached_property
    def outputs(self) -> dict[str, str]:
        try:
            stacks = self.client("cloudformation").describe_stacks(StackName=self.stack_name)
        except Exception as exc:
            where = f" at {self.endpoint_url}" if self.endpoint_url else ""
            raise TargetError(f"stack {self.stack_name!r} not found{where}: {exc}") from exc
        return {o["OutputKey"]: o["OutputValue"] for o in stacks["Stacks"][0].get("Outputs", [])}

    def output(self, key: str) -> str:
        try:
            return self.outputs[key]
        except KeyError:
            raise TargetError(f"stack {self.stack_name!r} has no output {key!r}") from None
