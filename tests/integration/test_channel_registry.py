"""The channel registry and template.yaml agree: every per-channel block of the template is
derived here from ``notifications.registry.CHANNELS``, so a channel added to one and not the
other (or a block that drifted from its siblings) fails."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest

from notifications.errors import PermanentError
from notifications.models import Channel
from notifications.registry import CHANNELS, validate_recipient
from notifyctl.local.translate import load_template

ROOT = Path(__file__).resolve().parents[2]
SPECS = list(CHANNELS.values())
FUNCTIONS_WITH_QUEUE_URLS = ("FanOutFunction", "SenderFunction", "BreakerCheckFunction")


@pytest.fixture(scope="module")
def template() -> dict[str, Any]:
    return load_template(ROOT / "template.yaml")


def without(value: dict[str, Any], *path: str) -> dict[str, Any]:
    """A copy of ``value`` without the key at ``path``."""
    copied = copy.deepcopy(value)
    target = copied
    for key in path[:-1]:
        target = target[key]
    del target[path[-1]]
    return copied


def test_the_registry_covers_every_channel_once():
    assert [spec.channel for spec in SPECS] == list(Channel)
    assert len({spec.queue_id for spec in SPECS}) == len(Channel)


def test_the_channel_queues_are_exactly_the_registrys_and_alike(template):
    resources = template["Resources"]
    channel_queues = {
        name
        for name, resource in resources.items()
        if resource["Type"] == "AWS::SQS::Queue"
        and resource["Properties"].get("RedrivePolicy", {}).get("deadLetterTargetArn")
        == {"Fn::GetAtt": ["NotificationsDLQ", "Arn"]}
    }
    assert channel_queues == {spec.queue_id for spec in SPECS}
    first = resources[SPECS[0].queue_id]
    assert first["Properties"]["SqsManagedSseEnabled"] is True
    # maxReceiveCount follows MaxAttempts (through the ReceiveLimits map: issue 13's slack)
    assert "MaxAttempts" in str(first["Properties"]["RedrivePolicy"]["maxReceiveCount"])
    for spec in SPECS[1:]:
        queue = resources[spec.queue_id]
        if spec.queue_id == "WebhookQueue":
            # (webhooks retry on WebhookRetrySchedule: a fixed redrive limit above its longest
            # allowed schedule, tests/integration/test_template.py; alike otherwise)
            assert queue["Properties"]["RedrivePolicy"]["maxReceiveCount"] == 21
            queue = copy.deepcopy(queue)
            queue["Properties"]["RedrivePolicy"]["maxReceiveCount"] = first["Properties"][
                "RedrivePolicy"
            ]["maxReceiveCount"]
        assert queue == first, spec.queue_id


def test_the_sender_has_one_alike_mapping_per_registered_queue(template):
    events = template["Resources"]["SenderFunction"]["Properties"]["Events"]
    sqs_events = {name: e for name, e in events.items() if e["Type"] == "SQS"}
    assert set(sqs_events) == {f"{spec.queue_id}Event" for spec in SPECS}
    first = sqs_events[f"{SPECS[0].queue_id}Event"]
    for spec in SPECS:
        event = sqs_events[f"{spec.queue_id}Event"]
        assert event["Properties"]["Queue"] == {"Fn::GetAtt": [spec.queue_id, "Arn"]}
        assert without(event, "Properties", "Queue") == without(first, "Properties", "Queue")


@pytest.mark.parametrize("function", FUNCTIONS_WITH_QUEUE_URLS)
def test_functions_get_each_registered_queue_url_under_its_name(template, function):
    variables = template["Resources"][function]["Properties"]["Environment"]["Variables"]
    queue_urls = {name: value for name, value in variables.items() if name.startswith("QUEUE_URL_")}
    assert queue_urls == {spec.queue_url_env: {"Ref": spec.queue_id} for spec in SPECS}


def test_the_sender_role_has_one_statement_per_registered_queue(template):
    policies = template["Resources"]["SenderFunctionRole"]["Properties"]["Policies"]
    statements = next(p for p in policies if p["PolicyName"] == "ChannelQueues")
    by_sid = {s["Sid"]: s for s in statements["PolicyDocument"]["Statement"]}
    polled = {sid for sid in by_sid if sid.startswith("PollAndRequeue")}
    assert polled == {f"PollAndRequeue{spec.queue_id}" for spec in SPECS}
    first = by_sid[f"PollAndRequeue{SPECS[0].queue_id}"]
    for spec in SPECS:
        statement = by_sid[f"PollAndRequeue{spec.queue_id}"]
        assert statement["Resource"]["Fn::Sub"][1] == {
            "queueName": {"Fn::GetAtt": [spec.queue_id, "QueueName"]}
        }
        assert statement["Action"] == first["Action"]


def test_outputs_name_each_registered_queue(template):
    outputs = template["Outputs"]
    for spec in SPECS:
        assert outputs[spec.queue_url_output]["Value"] == {"Ref": spec.queue_id}
        assert outputs[spec.queue_arn_output]["Value"] == {"Fn::GetAtt": [spec.queue_id, "Arn"]}


@pytest.mark.parametrize("alarm", ["DeadLettersAlarm", "CircuitOpenAlarm"])
def test_per_channel_alarms_sum_every_registered_channel(template, alarm):
    metrics = template["Resources"][alarm]["Properties"]["Metrics"]
    channels = {
        dimension["Value"]
        for metric in metrics
        if "MetricStat" in metric
        for dimension in metric["MetricStat"]["Metric"]["Dimensions"]
        if dimension["Name"] == "Channel"
    }
    assert channels - {"unknown"} == {spec.label for spec in SPECS}


@pytest.mark.parametrize(
    ("channel", "recipient"),
    [
        (Channel.EMAIL, "not-an-address"),
        (Channel.SMS, "12345"),
        (Channel.PUSH, "arn:aws:sns:us-east-1:123456789012:endpoint/NOPE/app/x"),
    ],
)
def test_each_channels_validator_refuses_what_it_cannot_reach(channel, recipient):
    with pytest.raises(PermanentError):
        validate_recipient(channel, recipient)


@pytest.mark.parametrize(
    ("channel", "recipient"),
    [
        (Channel.EMAIL, "ada@example.com"),
        (Channel.SMS, "+14155552671"),
        (Channel.PUSH, "arn:aws:sns:us-east-1:123456789012:endpoint/APNS/app/1234"),
        (Channel.WEBHOOK, "sub-1"),
    ],
)
def test_each_channels_validator_accepts_a_reachable_recipient(channel, recipient):
    validate_recipient(channel, recipient)
