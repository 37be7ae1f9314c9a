"""EventBridge to Lambda through tap queues (moto cannot deliver to Lambda targets)."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Collection
from dataclasses import dataclass
from typing import Any

from notifyctl.local.aws import AwsClients

_QUEUE_NAME_LIMIT = 80


@dataclass(frozen=True)
class Tap:
    """A rule target that pointed at a function and now points at `queue_url`."""

    bus_name: str
    rule_name: str
    target_id: str
    function_name: str
    queue_url: str
    queue_arn: str
    static_input: str | None = None
    rule_arn: str = ""
    dead_letter_arn: str | None = None


def tap_queue_name(stack_name: str, rule_name: str, target_id: str) -> str:
    digest = hashlib.sha256(f"{rule_name}/{target_id}".encode()).hexdigest()[:8]
    prefix = re.sub(r"[^A-Za-z0-9_-]", "-", f"{stack_name}-tap-{rule_name}")
    return f"{prefix[: _QUEUE_NAME_LIMIT - 9]}-{digest}"


def _function_name_from_arn(arn: str) -> str | None:
    parts = arn.split(":")
    if len(parts) >= 7 and parts[2] == "lambda" and parts[5] == "function":
        return parts[6]
    return None


def _paged(method: Any, key: str, **kwargs: Any) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    while True:
        response = method(**kwargs)
        items.extend(response.get(key, []))
        token = response.get("NextToken")
        if not token:
            return items
        kwargs["NextToken"] = token


def install_taps(
    clients: AwsClients, stack_name: str, function_names: Collection[str]
) -> list[Tap]:
    """Point every rule target that invokes one of `function_names` at a new tap queue.

    The rule, its pattern and the target's Id/Input/InputPath/InputTransformer/RetryPolicy/
    DeadLetterConfig stay as they are; moto matches the pattern and delivers the (transformed)
    event to the queue, and the tap poller applies RetryPolicy and DeadLetterConfig when the
    delivery to the function fails.
    `function_names` are the physical names of the functions the runtime runs.
    """
    taps: list[Tap] = []
    for bus in _paged(clients.events.list_event_buses, "EventBuses"):
        bus_name = bus["Name"]
        for rule in _paged(clients.events.list_rules, "Rules", EventBusName=bus_name):
            rule_name = rule["Name"]
            targets = _paged(
                clients.events.list_targets_by_rule,
                "Targets",
                Rule=rule_name,
                EventBusName=bus_name,
            )
            for target in targets:
                function_name = _function_name_from_arn(target["Arn"])
                if function_name is None or function_name not in function_names:
                    continue
                taps.append(_tap(clients, stack_name, bus_name, rule, target, function_name))
    return taps


def _tap(
    clients: AwsClients,
    stack_name: str,
    bus_name: str,
    rule: dict[str, Any],
    target: dict[str, Any],
    function_name: str,
) -> Tap:
    rule_name = rule["Name"]
    name = tap_queue_name(stack_name, rule_name, target["Id"])
    queue_url = clients.sqs.create_queue(QueueName=name)["QueueUrl"]
    queue_arn = clients.sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])[
        "Attributes"
    ]["QueueArn"]
    replacement = {
        key: value
        for key, value in target.items()
        if key
        in ("Id", "Input", "InputPath", "InputTransformer", "RetryPolicy", "DeadLetterConfig")
    }
    replacement["Arn"] = queue_arn
    clients.events.put_targets(
        Rule=rule_name,
        EventBusName=bus_name,
        Targets=[replacement],  # type: ignore[list-item]
    )
    return Tap(
        bus_name,
        rule_name,
        target["Id"],
        function_name,
        queue_url,
        queue_arn,
        target.get("Input"),
        rule_arn=rule.get("Arn", ""),
        dead_letter_arn=(target.get("DeadLetterConfig") or {}).get("Arn"),
    )
