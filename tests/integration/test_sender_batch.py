"""A batch carries on past a bad message; a duplicate delivery never sends twice."""

from notifications.adapters.ledger import DynamoLedger
from notifications.adapters.sqs import SqsQueues
from tests.integration.test_sender_backoff import all_messages, depth, set_mapping
from tests.observe import sent_emails
from tests.samples import welcome


def test_one_poison_message_and_nine_good_ones(stack):
    # Given one batch of ten on the email queue: nine good requests and one that is not JSON
    set_mapping(stack, "DlqAlarmFunction", "NotificationsDLQ", enabled=False)
    url = stack.queue_url("EmailQueue")
    stack.clients.sqs.send_message(QueueUrl=url, MessageBody="{not json")
    SqsQueues().enqueue(url, [welcome(n) for n in range(9)])

    # When the sender handles the batch
    assert stack.pump() == 10

    # Then nine emails were sent and recorded SENT
    assert sorted(e.destinations[0] for e in sent_emails()) == sorted(
        f"user{n}@example.com" for n in range(9)
    )
    ledger = DynamoLedger(stack.physical_id("LedgerTable"))
    assert all(ledger.get(welcome(n).notification_id)["status"] == "SENT" for n in range(9))
    # And the poison message is in the DLQ with its reason after one attempt
    assert depth(stack, "EmailQueue") == (0, 0)
    dead = all_messages(stack, stack.queue_url("NotificationsDLQ"))
    assert [m["Body"] for m in dead] == ["{not json"]
    attributes = dead[0]["MessageAttributes"]
    assert attributes["reason"]["StringValue"] == "malformed_message"
    assert attributes["attempts"]["StringValue"] == "1"
    assert attributes["failure_class"]["StringValue"] == "permanent"


def test_a_permanent_failure_goes_straight_to_the_dlq(stack):
    # Given a request whose template needs a variable it lacks
    broken = welcome(1).model_copy(update={"data": {"user_id": "user-1"}})
    SqsQueues().enqueue(stack.queue_url("EmailQueue"), [broken, welcome(2)])

    # When the pipeline drains
    stack.drain()

    # Then the good one is sent, the broken one dead-lettered after one attempt with a reason
    # naming the variable, and the alarm function recorded it
    assert [e.destinations[0] for e in sent_emails()] == ["user2@example.com"]
    record = DynamoLedger(stack.physical_id("LedgerTable")).get(broken.notification_id)
    assert record["status"] == "DEAD_LETTERED"
    assert record["dead_letter_reason"] == "template_missing_variable"
    assert "'name'" in record["last_error"]
    assert record["attempts"] == 1


def test_a_message_delivered_twice_is_sent_once(stack):
    # Given the same request enqueued twice (SQS delivers at least once)
    request = welcome(7)
    SqsQueues().enqueue(stack.queue_url("EmailQueue"), [request, request])

    # When the pipeline drains
    stack.drain()

    # Then one email, one SENT record
    assert [e.destinations[0] for e in sent_emails()] == ["user7@example.com"]
    assert (
        DynamoLedger(stack.physical_id("LedgerTable")).get(request.notification_id)["status"]
        == "SENT"
    )


def test_a_batch_where_every_item_fails_reports_failures_instead_of_crashing(deploy_stack):
    stack = deploy_stack(FailureRate=1)
    SqsQueues().enqueue(stack.queue_url("EmailQueue"), [welcome(n) for n in range(3)])
    url = stack.queue_url("EmailQueue")
    messages = stack.clients.sqs.receive_message(
        QueueUrl=url, MaxNumberOfMessages=10, AttributeNames=["All"]
    )["Messages"]
    arn = stack.clients.sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])[
        "Attributes"
    ]["QueueArn"]
    event = {
        "Records": [
            {
                "messageId": m["MessageId"],
                "receiptHandle": m["ReceiptHandle"],
                "body": m["Body"],
                "attributes": m["Attributes"],
                "messageAttributes": {},
                "md5OfBody": m["MD5OfBody"],
                "eventSource": "aws:sqs",
                "eventSourceARN": arn,
                "awsRegion": "us-east-1",
            }
            for m in messages
        ]
    }

    invocation = stack.function("SenderFunction").invoke(event)

    assert invocation.ok, invocation.error
    assert sorted(f["itemIdentifier"] for f in invocation.result["batchItemFailures"]) == sorted(
        m["MessageId"] for m in messages
    )
