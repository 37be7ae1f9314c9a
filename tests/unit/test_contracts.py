"""The dead-letter contract: what the sender writes is what the alarm function and notifyctl
read back, through a real (moto) SQS queue."""

from __future__ import annotations

import boto3
import pytest
from moto import mock_aws

from notifications.batch import SqsRecord
from notifications.contracts import DeadLetterMessage, MalformedMessage, parse_request
from notifications.verdicts import FailureClass

LETTER = DeadLetterMessage(
    reason="provider_unavailable",
    error="503 from the provider",
    failure_class=FailureClass.EXHAUSTED,
    attempts=3,
    source_queue="notifications-dev-sms",
    notification_id="6f1c3b9e-4d0a-5c2e-9b7a-1e8f2d3c4b5a",
    channel="sms",
)


@pytest.fixture
def queue():
    with mock_aws():
        sqs = boto3.client("sqs", region_name="us-east-1")
        url = sqs.create_queue(QueueName="dlq")["QueueUrl"]
        yield sqs, url


def receive(sqs, url):
    messages = sqs.receive_message(
        QueueUrl=url, AttributeNames=["All"], MessageAttributeNames=["All"]
    )["Messages"]
    assert len(messages) == 1
    return messages[0]


def lambda_record(message) -> SqsRecord:
    """The message as Lambda's SQS event source hands it to the alarm function."""
    return SqsRecord.from_event(
        {
            "messageId": message["MessageId"],
            "receiptHandle": message["ReceiptHandle"],
            "body": message["Body"],
            "attributes": {"ApproximateReceiveCount": "1"},
            "messageAttributes": {
                name: {"stringValue": value["StringValue"], "dataType": value["DataType"]}
                for name, value in message.get("MessageAttributes", {}).items()
            },
            "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:dlq",
        }
    )


def test_a_dead_letter_reads_back_as_written_by_both_readers(queue):
    sqs, url = queue
    sqs.send_message(QueueUrl=url, **LETTER.to_message('{"the": "body"}'))
    message = receive(sqs, url)
    assert message["Body"] == '{"the": "body"}'
    assert message["MessageAttributes"]["attempts"] == {"StringValue": "3", "DataType": "Number"}
    assert DeadLetterMessage.from_message(message) == LETTER
    assert DeadLetterMessage.from_record(lambda_record(message)) == LETTER


def test_a_message_sqs_redrove_reads_as_exhausted_by_its_receive_count(queue):
    sqs, url = queue
    sqs.send_message(QueueUrl=url, MessageBody="{}")
    for _ in range(2):  # received twice, as a crashed sender would have
        sqs.change_message_visibility(
            QueueUrl=url, ReceiptHandle=receive(sqs, url)["ReceiptHandle"], VisibilityTimeout=0
        )
    letter = DeadLetterMessage.from_message(receive(sqs, url))
    assert letter.reason == "max_receive_count_exceeded"
    assert letter.failure_class is FailureClass.EXHAUSTED
    assert letter.attempts == 3


def test_a_body_that_is_not_a_request_names_its_bad_fields_not_their_values():
    with pytest.raises(MalformedMessage) as raised:
        parse_request('{"notification_id": "not-a-uuid", "recipient": "ada@example.com"}')
    assert raised.value.reason == "malformed_message"
    assert "notification_id" in raised.value.message
    assert "channel: Field required" in raised.value.message
    assert "ada@example.com" not in raised.value.message
