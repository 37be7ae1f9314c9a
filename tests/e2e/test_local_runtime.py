"""The local runtime runs a SAM application whole on moto: a toy app proves each behaviour."""

from __future__ import annotations

import hashlib
import json
import os
from collections import Counter
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from moto import mock_aws
from moto.server import ThreadedMotoServer

from notifyctl.local.clock import ControlledClock
from notifyctl.local.stack import DrainLimitExceeded, LocalStack, deploy

TOY_TEMPLATE = Path(__file__).parent / "toy" / "template.yaml"
PARAMETERS = {"Greeting": "bonjour", "MaxAttempts": "5"}


@pytest.fixture
def clock() -> Iterator[ControlledClock]:
    with ControlledClock() as controlled:
        yield controlled


@pytest.fixture
def aws_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("HOST_ONLY", "must-not-leak")


@pytest.fixture
def stack(aws_env: None, clock: ControlledClock) -> Iterator[LocalStack]:
    with mock_aws():
        yield deploy(TOY_TEMPLATE, PARAMETERS, "toy", clock=clock)


def recorded(stack: LocalStack, kind: str) -> list[dict[str, Any]]:
    """What the toy functions stored in their DynamoDB table."""
    table = boto3.resource("dynamodb").Table(stack.outputs["RecordTableName"])
    items = table.query(
        KeyConditionExpression="pk = :kind", ExpressionAttributeValues={":kind": kind}
    )["Items"]
    return [json.loads(str(item["payload"])) for item in items]


def send(stack: LocalStack, body: dict[str, Any], **kwargs: Any) -> str:
    url = stack.outputs["WorkQueueUrl"]
    return stack.clients.sqs.send_message(QueueUrl=url, MessageBody=json.dumps(body), **kwargs)[
        "MessageId"
    ]


def depth(stack: LocalStack, logical_id: str) -> tuple[int, int]:
    attributes = stack.clients.sqs.get_queue_attributes(
        QueueUrl=stack.queue_url(logical_id), AttributeNames=["All"]
    )["Attributes"]
    return (
        int(attributes["ApproximateNumberOfMessages"]),
        int(attributes["ApproximateNumberOfMessagesNotVisible"]),
    )


def mapping_uuid(stack: LocalStack) -> str:
    return stack.physical_id("WorkerFunctionWork")


def test_successes_are_deleted_and_failures_keep_the_visibility_the_handler_set(
    stack: LocalStack, clock: ControlledClock
) -> None:
    # Given a batch where the middle message fails and asks for 40 s (the queue default is 30 s)
    send(stack, {"n": 1})
    failing = send(stack, {"n": 2, "fail": 40})
    send(stack, {"n": 3})

    # When the poller runs one round
    handled = stack.pump()

    # Then all three were delivered in one batch, and only the failed one is left, in flight
    assert handled == 3
    assert sorted(json.loads(r["record"]["body"])["n"] for r in recorded(stack, "worker")) == [
        1,
        2,
        3,
    ]
    assert depth(stack, "WorkQueue") == (0, 1)

    # And it is not redelivered after the queue's 30 s, only after the handler's 40 s
    clock.advance(31)
    assert stack.pump() == 0
    clock.advance(10)
    assert stack.pump() == 1
    counts = [
        r["record"]["attributes"]["ApproximateReceiveCount"]
        for r in recorded(stack, "worker")
        if r["record"]["messageId"] == failing
    ]
    assert sorted(counts) == ["1", "2"]


def test_moto_itself_does_not_invoke_the_function_on_send(stack: LocalStack) -> None:
    # Given a deployed stack whose queue has an event source mapping
    # When a message is sent and nobody pumps
    send(stack, {"n": 1})

    # Then the message waits in the queue and the function was not run
    assert depth(stack, "WorkQueue") == (1, 0)
    assert recorded(stack, "worker") == []


def test_batch_size_is_honoured(stack: LocalStack) -> None:
    # Given seven messages and a mapping with BatchSize 3
    for n in range(7):
        send(stack, {"n": n})

    # When the pipeline drains
    result = stack.drain()

    # Then the function saw batches of 3, 3 and 1, and the queue is empty
    sizes = Counter(r["batch_size"] for r in recorded(stack, "worker"))
    assert sizes == {3: 6, 1: 1}
    assert result.quiescent
    assert depth(stack, "WorkQueue") == (0, 0)


def test_a_disabled_mapping_is_not_polled_and_a_reenabled_one_is(stack: LocalStack) -> None:
    # Given the mapping is disabled through the Lambda API while the runtime runs
    stack.clients.lambda_.update_event_source_mapping(UUID=mapping_uuid(stack), Enabled=False)
    send(stack, {"n": 1})

    # When the runtime drains
    stack.drain()

    # Then the message was not consumed
    assert recorded(stack, "worker") == []
    assert depth(stack, "WorkQueue") == (1, 0)

    # When the mapping is enabled again
    stack.clients.lambda_.update_event_source_mapping(UUID=mapping_uuid(stack), Enabled=True)
    stack.drain()

    # Then the message is processed and deleted
    assert len(recorded(stack, "worker")) == 1
    assert depth(stack, "WorkQueue") == (0, 0)


def test_the_function_gets_the_environment_the_stack_resolved(stack: LocalStack) -> None:
    # Given a message
    send(stack, {"n": 1})

    # When it is processed
    stack.pump()

    # Then the function saw its parameters and references resolved, and nothing of the host's
    [seen] = recorded(stack, "worker")
    assert seen["env"] == {
        "GREETING": "bonjour",
        "MAX_ATTEMPTS": "5",
        "QUEUE_URL": stack.outputs["WorkQueueUrl"],
        "RECORD_TABLE": stack.outputs["RecordTableName"],
        "HOST_ONLY": None,
    }
    assert seen["function_name"] == stack.physical_id("WorkerFunction")
    # And its remaining time counts down from its 7 s Timeout, even on the frozen clock
    assert 0 < seen["remaining_ms"] < 7000
    # And the host environment is back as it was
    assert os.environ["HOST_ONLY"] == "must-not-leak"
    assert "GREETING" not in os.environ


def test_the_event_has_the_lambda_sqs_record_shape(stack: LocalStack) -> None:
    # Given a message with an attribute
    body = json.dumps({"n": 1})
    message_id = stack.clients.sqs.send_message(
        QueueUrl=stack.outputs["WorkQueueUrl"],
        MessageBody=body,
        MessageAttributes={"kind": {"DataType": "String", "StringValue": "greeting"}},
    )["MessageId"]

    # When it is processed
    stack.pump()

    # Then the record is shaped as Lambda shapes SQS records
    [seen] = recorded(stack, "worker")
    record = seen["record"]
    queue_arn = stack.clients.sqs.get_queue_attributes(
        QueueUrl=stack.outputs["WorkQueueUrl"], AttributeNames=["QueueArn"]
    )["Attributes"]["QueueArn"]
    assert record["messageId"] == message_id
    assert record["body"] == body
    assert record["md5OfBody"] == hashlib.md5(body.encode()).hexdigest()
    assert record["eventSource"] == "aws:sqs"
    assert record["eventSourceARN"] == queue_arn
    assert record["awsRegion"] == "us-east-1"
    assert record["receiptHandle"]
    assert record["attributes"]["ApproximateReceiveCount"] == "1"
    assert {"SentTimestamp", "ApproximateFirstReceiveTimestamp"} <= set(record["attributes"])
    assert record["messageAttributes"]["kind"]["stringValue"] == "greeting"
    assert record["messageAttributes"]["kind"]["dataType"] == "String"


def test_an_event_rule_invokes_the_function_with_retries_then_its_on_failure_destination(
    stack: LocalStack,
) -> None:
    # Given an event the function cannot handle, one it can, and one no rule matches
    stack.publish("Ping", {"name": "bad", "fail": True}, source="toy.tests")
    stack.publish("Ping", {"name": "good"}, source="toy.tests")
    stack.publish("Pong", {"name": "ignored"}, source="toy.tests")

    # When the pipeline drains
    stack.drain()

    # Then the good event was handled once and the bad one 1 + MaximumRetryAttempts(2) times
    names = Counter(r["event"]["detail"]["name"] for r in recorded(stack, "on_event"))
    assert names == {"bad": 3, "good": 1}
    bad = [r for r in recorded(stack, "on_event") if r["event"]["detail"]["name"] == "bad"]
    assert len({r["request_id"] for r in bad}) == 1
    assert bad[0]["event"]["account"] == stack.account_id
    assert bad[0]["event"]["source"] == "toy.tests"

    # And the OnFailure destination holds the invocation record, shaped as in AWS
    messages = stack.clients.sqs.receive_message(
        QueueUrl=stack.queue_url("EventsDLQ"), MaxNumberOfMessages=10
    ).get("Messages", [])
    assert len(messages) == 1
    record = json.loads(messages[0]["Body"])
    assert record["version"] == "1.0"
    assert record["requestContext"]["condition"] == "RetriesExhausted"
    assert record["requestContext"]["approximateInvokeCount"] == 3
    assert record["requestContext"]["requestId"] == bad[0]["request_id"]
    assert record["requestContext"]["functionArn"].endswith(
        f"function:{stack.physical_id('OnEventFunction')}:$LATEST"
    )
    assert record["requestPayload"]["detail"] == {"name": "bad", "fail": True}
    assert record["responseContext"] == {
        "statusCode": 200,
        "executedVersion": "$LATEST",
        "functionError": "Unhandled",
    }
    assert record["responsePayload"]["errorType"] == "RuntimeError"
    assert record["responsePayload"]["errorMessage"] == "cannot handle bad"


def test_emf_metrics_reach_cloudwatch_and_other_lines_reach_the_log(
    stack: LocalStack, clock: ControlledClock
) -> None:
    # Given two messages for the email channel
    send(stack, {"n": 1, "channel": "email"})
    send(stack, {"n": 2, "channel": "email"})

    # When they are processed
    stack.drain()

    # Then CloudWatch has the function's Processed metric, as EMF described it
    now = datetime.fromtimestamp(clock.now(), tz=timezone.utc)
    statistics = stack.clients.cloudwatch.get_metric_statistics(
        Namespace="Toy",
        MetricName="Processed",
        Dimensions=[{"Name": "service", "Value": "worker"}, {"Name": "Channel", "Value": "email"}],
        StartTime=now - timedelta(minutes=5),
        EndTime=now + timedelta(minutes=5),
        Period=600,
        Statistics=["Sum"],
    )
    assert sum(point["Sum"] for point in statistics["Datapoints"]) == 2
    # And the plain print went to the log sink, tagged with its function
    assert ("WorkerFunction", "worker received a batch") in {
        (record.function, record.line) for record in stack.logs
    }


def test_drain_moves_the_controlled_clock_to_the_next_visibility_change(
    stack: LocalStack, clock: ControlledClock
) -> None:
    # Given a message delayed by two minutes
    start = clock.now()
    send(stack, {"n": 1}, DelaySeconds=120)

    # When the pipeline drains
    result = stack.drain()

    # Then the clock jumped past the delay (moto saw it too) and the message was processed
    assert result.quiescent
    assert clock.now() - start >= 120
    assert len(recorded(stack, "worker")) == 1


def test_drain_stops_at_its_bound_with_the_busy_queue_named(stack: LocalStack) -> None:
    # Given a message that fails forever (the toy queue has no redrive policy)
    send(stack, {"n": 1, "fail": 5})

    # When draining with a bound, Then it stops and says which queue is busy
    with pytest.raises(DrainLimitExceeded, match="WorkQueue"):
        stack.drain(max_rounds=20)


def test_the_runtime_works_against_moto_server_over_http(
    aws_env: None, clock: ControlledClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given moto server on 127.0.0.1 and every client pointed at it
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://{host}:{port}")
        local = deploy(TOY_TEMPLATE, PARAMETERS, "toy-server", clock=clock)

        # When a message is sent over HTTP and the runtime drains
        send(local, {"n": 1})
        local.drain()

        # Then the function ran (its own clients also went over HTTP) and the queue is empty
        assert len(recorded(local, "worker")) == 1
        assert depth(local, "WorkQueue") == (0, 0)
    finally:
        server.stop()


# -- EventBridge as AWS delivers ---------------------------------------------------------------


def test_a_schedule_rule_gets_no_put_event_and_runs_on_its_schedule(
    stack: LocalStack, clock: ControlledClock
) -> None:
    # Given an event on the default bus, where the toy's rate(1 minute) rule lives, that no
    # pattern rule matches
    stack.publish("Pong", {"name": "unmatched"}, source="toy.tests", bus_name="default")

    # When the pipeline drains, Then the schedule rule did not take it
    stack.drain()
    assert recorded(stack, "on_event") == []

    # When a minute passes, Then the schedule rule runs the function once, with its own event
    clock.advance(61)
    stack.drain()
    [seen] = recorded(stack, "on_event")
    assert seen["event"]["detail-type"] == "Scheduled Event"
    assert seen["event"]["source"] == "aws.events"


def test_a_disabled_rule_delivers_nothing(stack: LocalStack) -> None:
    # Given two rules matching Ping to the same function, one of them DISABLED
    # When a Ping is put on the bus and the pipeline drains
    stack.publish("Ping", {"name": "once"}, source="toy.tests")
    stack.drain()

    # Then the function ran once, for the enabled rule only
    assert [r["event"]["detail"]["name"] for r in recorded(stack, "on_event")] == ["once"]


def test_put_events_over_256_kb_is_refused_whole_with_awss_validation_error(
    stack: LocalStack,
) -> None:
    # Given entries sized as EventBridge sizes them: Source + DetailType + Detail bytes
    def entry(detail_bytes: int) -> dict[str, Any]:
        padding = "x" * (detail_bytes - len('{"name": ""}'))
        return {
            "Source": "toy.tests",  # 9 bytes
            "DetailType": "Ping",  # 4 bytes
            "Detail": json.dumps({"name": padding}),
            "EventBusName": stack.bus_name,
        }

    # When an entry of exactly 262,144 bytes is put, Then it is accepted
    accepted = stack.clients.events.put_events(Entries=[entry(262_131)])
    assert accepted["FailedEntryCount"] == 0

    # When one byte more is put, Then the request is refused with AWS's error
    with pytest.raises(ClientError) as refused:
        stack.clients.events.put_events(Entries=[entry(262_132)])
    assert refused.value.response["Error"]["Code"] == "ValidationException"
    assert refused.value.response["Error"]["Message"] == (
        "Total size of the entries in the request is over the limit."
    )
    # And two entries that are small alone but over the limit together are refused too
    with pytest.raises(ClientError):
        stack.clients.events.put_events(Entries=[entry(131_072), entry(131_072)])

    # And only the accepted event reached the function
    stack.drain()
    assert len(recorded(stack, "on_event")) == 1


def test_an_event_for_a_deleted_function_goes_to_the_targets_dead_letter_queue(
    stack: LocalStack,
) -> None:
    # Given the rule's target keeps its RetryPolicy and DeadLetterConfig on the tap
    [ping_tap] = [
        t
        for t in stack.taps
        if "PingWhileDisabled" not in t.rule_name and "Tick" not in t.rule_name
    ]
    [target] = stack.clients.events.list_targets_by_rule(
        Rule=ping_tap.rule_name, EventBusName=ping_tap.bus_name
    )["Targets"]
    assert target["RetryPolicy"] == {"MaximumRetryAttempts": 2, "MaximumEventAgeInSeconds": 600}
    assert target["DeadLetterConfig"]["Arn"].endswith(
        stack.physical_id("EventsDLQ").rsplit("/", 1)[-1]
    )

    # And the function it invokes no longer exists
    stack.clients.lambda_.delete_function(FunctionName=stack.physical_id("OnEventFunction"))

    # When a Ping is put on the bus and the pipeline drains
    event_id = stack.publish("Ping", {"name": "orphan"}, source="toy.tests")
    stack.drain()

    # Then the event is in the target's DLQ with the reason, undelivered and not retried
    [message] = stack.clients.sqs.receive_message(
        QueueUrl=stack.queue_url("EventsDLQ"), MaxNumberOfMessages=10, MessageAttributeNames=["All"]
    )["Messages"]
    assert json.loads(message["Body"])["id"] == event_id
    attributes = {k: v["StringValue"] for k, v in message["MessageAttributes"].items()}
    assert attributes["ERROR_CODE"] == "ResourceNotFoundException"
    assert attributes["RETRY_ATTEMPTS"] == "0"
    assert attributes["RULE_ARN"].endswith(ping_tap.rule_name)
    assert attributes["TARGET_ARN"].endswith(f"function:{stack.physical_id('OnEventFunction')}")
    assert recorded(stack, "on_event") == []
