"""The template's own rule patterns, on moto's EventBridge: each put-events sample reaches
exactly its rule, near misses reach exactly one catch-all rule (never silently nothing)."""

import json

import pytest

from tests.samples import load_event

SAMPLES = {
    "put-events/user-registered.json": "UserRegistered",
    "put-events/order-placed.json": "OrderPlaced",
    "put-events/payment-received.json": "PaymentReceived",
}


@pytest.fixture
def taps(stack):
    """One tap queue per rule of the stack's bus, under a copy of that rule's pattern."""
    sqs, events = stack.clients.sqs, stack.clients.events
    taps = {}
    for rule in events.list_rules(EventBusName=stack.bus_name)["Rules"]:
        pattern = json.loads(rule["EventPattern"])
        if "detail-type" not in pattern:
            event_type = "unknown-source"
        elif isinstance(pattern["detail-type"][0], dict):
            event_type = "unrouted-type"
        else:
            (event_type,) = pattern["detail-type"]
        url = sqs.create_queue(QueueName=f"tap-{event_type}")["QueueUrl"]
        arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"][
            "QueueArn"
        ]
        events.put_rule(
            Name=f"tap-{event_type}", EventBusName=stack.bus_name, EventPattern=rule["EventPattern"]
        )
        events.put_targets(
            Rule=f"tap-{event_type}",
            EventBusName=stack.bus_name,
            Targets=[{"Id": "tap", "Arn": arn}],
        )
        taps[event_type] = url
    assert set(taps) == {
        "UserRegistered",
        "OrderPlaced",
        "PaymentReceived",
        "unrouted-type",
        "unknown-source",
    }
    return taps


def arrivals(stack, taps):
    counts = {}
    for event_type, url in taps.items():
        messages = stack.clients.sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get(
            "Messages", []
        )
        counts[event_type] = len(messages)
    return counts


@pytest.mark.parametrize(("sample", "event_type"), SAMPLES.items())
def test_each_sample_reaches_exactly_its_rule(stack, taps, sample, event_type):
    response = stack.clients.events.put_events(Entries=load_event(sample))
    assert response["FailedEntryCount"] == 0
    expected = dict.fromkeys(taps, 0) | {event_type: 1}
    assert arrivals(stack, taps) == expected


@pytest.mark.parametrize(
    ("change", "caught_by"),
    [
        ({"Source": "com.example.other"}, "unknown-source"),
        ({"Source": "com.example.other", "DetailType": "OrderShipped"}, "unknown-source"),
        ({"DetailType": "orderplaced"}, "unrouted-type"),
        ({"DetailType": "OrderShipped"}, "unrouted-type"),
        ({"DetailType": "OrderPlaced "}, "unrouted-type"),
        ({"EventBusName": "default"}, None),
    ],
    ids=[
        "other-source",
        "other-source-unknown-type",
        "wrong-case",
        "unknown-type",
        "trailing-space",
        "default-bus",
    ],
)
def test_near_misses_reach_exactly_one_catch_all_rule(stack, taps, change, caught_by):
    entries = [entry | change for entry in load_event("put-events/order-placed.json")]
    stack.clients.events.put_events(Entries=entries)
    expected = dict.fromkeys(taps, 0) | ({caught_by: 1} if caught_by else {})
    assert arrivals(stack, taps) == expected
