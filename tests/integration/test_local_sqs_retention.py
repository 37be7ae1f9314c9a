"""moto's ReceiveMessage with the runtime's retention check (`patch_sqs_retention_check`): a
message past the queue's MessageRetentionPeriod is not handed out, a younger one is, as in
AWS and as moto's own check decided (it only reads the period directly now)."""

import boto3
from moto import mock_aws
from moto.core import DEFAULT_ACCOUNT_ID
from moto.sqs.models import sqs_backends

from notifyctl.local import moto_internals


def aged_queue(sqs, name: str, age_ms: int) -> str:
    """A queue with a 60 s retention period holding one message sent ``age_ms`` ago."""
    url = sqs.create_queue(QueueName=name, Attributes={"MessageRetentionPeriod": "60"})["QueueUrl"]
    sqs.send_message(QueueUrl=url, MessageBody=name)
    (message,) = sqs_backends[DEFAULT_ACCOUNT_ID]["us-east-1"].queues[name]._messages
    message.sent_timestamp -= age_ms
    return url


def test_a_message_past_the_retention_period_is_not_received_a_younger_one_is():
    moto_internals.patch_sqs_retention_check()
    with mock_aws():
        sqs = boto3.client("sqs", region_name="us-east-1")
        old = aged_queue(sqs, "old", 61_000)  # past the 60 s period
        young = aged_queue(sqs, "young", 59_000)  # within it

        assert sqs.receive_message(QueueUrl=old).get("Messages", []) == []
        assert [m["Body"] for m in sqs.receive_message(QueueUrl=young)["Messages"]] == ["young"]
