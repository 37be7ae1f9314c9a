"""Which stack the CLI talks to: a deployed one (by stack name) or the local one (by endpoint).

Both are resolved the same way, from the stack's CloudFormation outputs, so every command
works against AWS and against `notifyctl local serve` alike.

Region and credentials resolve as the AWS CLI resolves them:

- profile: ``--profile``, else ``AWS_PROFILE``, else the ``profile`` samconfig.toml's
  environment gives, else the default credential chain;
- region: ``--region``, else ``AWS_REGION``, else ``AWS_DEFAULT_REGION``, else the profile's
  ``region`` in ``~/.aws/config``, else the ``region`` samconfig.toml's environment gives;
  against the local endpoint, ``us-east-1`` when none of them does.

samconfig.toml is looked for in the working directory and then each parent, as ``sam`` does.
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import boto3
from botocore.exceptions import BotoCoreError, ClientError, ProfileNotFound
from botocore.session import Session as BotocoreSession

from notifications.adapters.aws import reset_clients
from notifyctl.errors import OperationError, UsageError

LOCAL_STACK_NAME = "notifications-local"
LOCAL_REGION = "us-east-1"
SAMCONFIG = "samconfig.toml"


class TargetError(OperationError):
    """The stack cannot be found or lacks an output the command needs (exit code 1)."""


class TargetConfigError(UsageError):
    """A profile, region or samconfig environment that does not exist (exit code 2)."""


def find_samconfig(start: Path | None = None) -> Path | None:
    """The nearest samconfig.toml in ``start`` (default: the working directory) or a parent."""
    here = (start or Path.cwd()).resolve()
    for directory in (here, *here.parents):
        candidate = directory / SAMCONFIG
        if candidate.is_file():
            return candidate
    return None


def samconfig_parameters(path: Path | None, env: str) -> dict[str, str]:
    """The ``global`` then ``deploy`` parameters of ``env`` (deploy wins), as sam merges them.
    No file: nothing, unless an environment other than ``default`` was asked for."""
    if path is None:
        if env != "default":
            raise TargetConfigError(
                f"--config-env {env!r}: no {SAMCONFIG} in {Path.cwd()} or its parents"
            )
        return {}
    try:
        config = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as exc:
        raise TargetConfigError(f"{path} is not valid TOML: {exc}") from None
    if env not in config or not isinstance(config[env], dict):
        known = ", ".join(k for k, v in config.items() if isinstance(v, dict)) or "none"
        raise TargetConfigError(
            f"--config-env {env!r}: {path} has no environment {env!r} (it has: {known})"
        )
    merged: dict[str, str] = {}
    for command in ("global", "deploy"):
        parameters = config[env].get(command, {}).get("parameters", {})
        merged.update({k: str(v) for k, v in parameters.items()})
    return merged


def samconfig_stack_name(path: Path | None = None, env: str = "default") -> str | None:
    """The stack name samconfig.toml gives an environment, if any."""
    return samconfig_parameters(path or find_samconfig(), env).get("stack_name")


def aws_session(
    profile: str | None, region: str | None, fallback_region: str | None = None
) -> boto3.Session:
    """A session resolved as the AWS CLI resolves one (module docstring)."""
    profile = profile or os.environ.get("AWS_PROFILE") or None
    botocore_session = BotocoreSession()
    if profile is not None and profile not in botocore_session.available_profiles:
        known = ", ".join(sorted(botocore_session.available_profiles)) or "none"
        raise TargetConfigError(
            f"AWS profile {profile!r} not found in ~/.aws/config or ~/.aws/credentials"
            f" (profiles: {known})"
        )
    try:
        session = boto3.Session(profile_name=profile)
        region = (
            region
            or os.environ.get("AWS_REGION")
            or os.environ.get("AWS_DEFAULT_REGION")
            or session.region_name
            or fallback_region
        )
    except ProfileNotFound as exc:
        raise TargetConfigError(f"AWS {exc}") from None
    if not region:
        raise TargetConfigError(
            "no AWS region: give --region, or set AWS_REGION, the profile's region or"
            f" region in {SAMCONFIG}"
        )
    return boto3.Session(profile_name=profile, region_name=region)


@dataclass
class StackTarget:
    stack_name: str
    endpoint_url: str | None = None
    region: str | None = None
    session: boto3.Session | None = None

    _clients: dict[str, Any] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        if self.endpoint_url:
            # The layer's adapters create their clients from the environment: aim them too.
            os.environ["AWS_ENDPOINT_URL"] = self.endpoint_url
            os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
            os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
        if self.session is None:
            fallback = LOCAL_REGION if self.endpoint_url else None
            self.session = aws_session(None, self.region, fallback)
        self.region = self.session.region_name
        # The layer's adapters use boto3's default session: the same profile and region.
        boto3.DEFAULT_SESSION = self.session
        reset_clients()

    def client(self, service: str) -> Any:
        if service not in self._clients:
            assert self.session is not None
            self._clients[service] = self.session.client(  # type: ignore[call-overload]
                service, endpoint_url=self.endpoint_url
            )
        return self._clients[service]

    @cached_property
    def outputs(self) -> dict[str, str]:
        where = f" at {self.endpoint_url}" if self.endpoint_url else f" in {self.region}"
        try:
            stacks = self.client("cloudformation").describe_stacks(StackName=self.stack_name)
        except ClientError as exc:
            message = exc.response.get("Error", {}).get("Message", str(exc))
            raise TargetError(f"stack {self.stack_name!r} not found{where}: {message}") from exc
        except BotoCoreError as exc:
            raise TargetError(f"stack {self.stack_name!r}{where}: {exc}") from exc
        return {o["OutputKey"]: o["OutputValue"] for o in stacks["Stacks"][0].get("Outputs", [])}

    def output(self, key: str) -> str:
        try:
            return self.outputs[key]
        except KeyError:
            raise TargetError(f"stack {self.stack_name!r} has no output {key!r}") from None
