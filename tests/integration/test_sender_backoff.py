"""The sender's backoff by visibility timeout, the DLQ and the alarm function, on moto's queues
with a controlled clock."""

import json

import pytest

from notifications.adapters.ledger import DynamoLedger
from notifications.retry import RetryConfig
from tests.observe import sent_emails
from tests.samples import load_event

EPSILON = 0.05


def depth(stack, logical_id):
    attributes = stack.clients.sqs.get_queue_attributes(
        QueueUrl=stack.queue_url(logical_id), AttributeNames=["All"]
    )["Attributes"]
    return int(attributes["ApproximateNumberOfMessages"]), int(
        attributes["ApproximateNumberOfMessagesNotVisible"]
    )


def set_mapping(stack, function, queue_logical_id, enabled):
    queue_arn = stack.clients.sqs.get_queue_attributes(
        QueueUrl=stack.queue_url(queue_logical_id), AttributeNames=["QueueArn"]
    )["Attributes"]["QueueArn"]
    mappings = stack.clients.lambda_.list_event_source_mappings(
        FunctionName=stack.physical_id(function), EventSourceArn=queue_arn
    )["EventSourceMappings"]
    for mapping in mappings:
        stack.clients.lambda_.update_event_source_mapping(UUID=mapping["UUID"], Enabled=enabled)


def subscribe_alerts(stack):
    """An SQS queue on AlertsTopic: what an admin's inbox would receive."""
    url = stack.clients.sqs.create_queue(QueueName="admin-inbox")["QueueUrl"]
    arn = stack.clients.sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])[
        "Attributes"
    ]["QueueArn"]
    stack.clients.sns.subscribe(
        TopicArn=stack.outputs["AlertsTopicArn"], Protocol="sqs", Endpoint=arn
    )
    return url


def all_messages(stack, url):
    messages = []
    while batch := stack.clients.sqs.receive_message(
        QueueUrl=url, MaxNumberOfMessages=10, MessageAttributeNames=["All"]
    ).get("Messages", []):
        messages.extend(batch)
    return messages


@pytest.mark.parametrize("max_attempts", [3, 4])
def test_backoff_then_dead_letter_then_one_alarm(deploy_stack, clock, max_attempts):
    # Given a provider that always fails, and the alarm function's mapping paused so the DLQ
    # can be looked at
    stack = deploy_stack(FailureRate=1, MaxAttempts=max_attempts)
    retry = RetryConfig(max_attempts=max_attempts)
    set_mapping(stack, "DlqAlarmFunction", "NotificationsDLQ", enabled=False)
    inbox = subscribe_alerts(stack)
    fan_out = stack.function("FanOutFunction")
    assert fan_out.invoke(load_event("fan_out/user-registered.json")).ok
    assert depth(stack, "EmailQueue") == (1, 0)

    for attempt in range(1, max_attempts):
        # When attempt n fails
        assert stack.pump() == 1
        # Then the message is invisible until just before delay(n), visible just after
        delay = retry.delay(attempt)
        assert depth(stack, "EmailQueue") == (0, 1)
        clock.advance(delay - EPSILON)
        assert depth(stack, "EmailQueue") == (0, 1), f"back before delay({attempt})={delay}s"
        clock.advance(2 * EPSILON)
        assert depth(stack, "EmailQueue") == (1, 0), f"not back after delay({attempt})={delay}s"

    # When the last attempt fails
    assert stack.pump() == 1
    # Then it is in NotificationsDLQ at once, with its reason, and the source queue is empty
    assert depth(stack, "EmailQueue") == (0, 0)
    assert depth(stack, "NotificationsDLQ") == (1, 0)
    assert sent_emails() == []

    # When the alarm function runs
    set_mapping(stack, "DlqAlarmFunction", "NotificationsDLQ", enabled=True)
    stack.drain()

    # Then one DEAD_LETTERED record with the attempts and errors, and one admin alert
    assert depth(stack, "NotificationsDLQ") == (0, 0)
    items = list(DynamoLedger(stack.physical_id("LedgerTable")).scan())
    assert [i["status"] for i in items] == ["DEAD_LETTERED"]
    item = items[0]
    assert item["attempts"] == max_attempts
    assert item["dead_letter_reason"] == "injected_fault"
    assert item["failure_class"] == "exhausted"
    assert len(item["errors"]) == max_attempts
    assert json.loads(item["payload"])["recipient"] == "alice@example.com"
    alerts = all_messages(stack, inbox)
    assert len(alerts) == 1
    assert "1 notification(s) dead-lettered" in json.loads(alerts[0]["Body"])["Subject"]
