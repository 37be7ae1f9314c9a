"""Shared fixtures: a moto account, the deployed local stack, and a controlled clock."""

from __future__ import annotations

import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# The layer package and the repository root importable without installing (CI installs both).
for path in (ROOT / "layers" / "notifications", ROOT):
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))

# Never reach a real account: fake credentials and a fixed region for every test.
os.environ.update(
    {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SESSION_TOKEN": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_REGION": "us-east-1",
        "POWERTOOLS_TRACE_DISABLED": "true",
        "POWERTOOLS_SERVICE_NAME": "notifications",
        "POWERTOOLS_METRICS_NAMESPACE": "Notifications",
    }
)
os.environ.pop("AWS_PROFILE", None)
os.environ.pop("AWS_ENDPOINT_URL", None)

from collections.abc import Callable, Iterator  # noqa: E402
from datetime import UTC, datetime  # noqa: E402
from typing import Any  # noqa: E402

import pytest  # noqa: E402
from moto import mock_aws  # noqa: E402

from notifications.adapters.aws import reset_clients  # noqa: E402
from notifyctl.local.clock import ControlledClock  # noqa: E402
from notifyctl.local.stack import LocalStack, deploy  # noqa: E402
from tests.properties import load_profile  # noqa: E402

TEMPLATE = ROOT / "template.yaml"
# Hypothesis: derandomized examples in make test, fresh seeds in make soak (tests/properties.py)
load_profile()
START = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)


@pytest.fixture
def moto_account() -> Iterator[None]:
    """A fresh, empty moto account (us-east-1) for one test."""
    reset_clients()
    with mock_aws():
        yield
    reset_clients()


@pytest.fixture
def clock() -> Iterator[ControlledClock]:
    """Time stands still for functions and moto alike until the test moves it."""
    with ControlledClock(start=START) as controlled:
        yield controlled


@pytest.fixture
def deploy_stack(moto_account: None, clock: ControlledClock) -> Callable[..., LocalStack]:
    """Deploys template.yaml into moto with the given parameter overrides."""

    def _deploy(**parameters: Any) -> LocalStack:
        from notifyctl.local.application import prepare

        stack = deploy(TEMPLATE, {k: str(v) for k, v in parameters.items()}, clock=clock)
        prepare(stack)
        return stack

    return _deploy


@pytest.fixture
def stack(deploy_stack: Callable[..., LocalStack]) -> LocalStack:
    """The application with default parameters (healthy providers)."""
    return deploy_stack()
