"""The partial batch loop of the SQS handlers (notifications.batch)."""

import logging

from notifications.batch import SqsRecord, process_partially, sqs_records


def raw(message_id, body="{}", **extra):
    return {
        "messageId": message_id,
        "receiptHandle": f"rh-{message_id}",
        "body": body,
        "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:notifications-dev-email",
        "attributes": {"ApproximateReceiveCount": "3"},
        "messageAttributes": {
            "reason": {"stringValue": "malformed_message", "dataType": "String"},
            "blob": {"binaryValue": "AAE=", "dataType": "Binary"},
        },
        **extra,
    }


class Expected(Exception):
    pass


def test_a_record_as_lambda_delivers_it():
    record = SqsRecord.from_event(raw("m-1", body='{"a": 1}'))
    assert record == SqsRecord(
        message_id="m-1",
        receipt_handle="rh-m-1",
        body='{"a": 1}',
        event_source_arn="arn:aws:sqs:us-east-1:123456789012:notifications-dev-email",
        receive_count=3,
        attributes={"reason": "malformed_message"},
    )


def test_failed_records_are_reported_and_the_rest_carry_on(caplog):
    # Given a batch where the second record fails as expected and the fourth unexpectedly
    handled = []

    def handle(record):
        handled.append(record.message_id)
        if record.message_id == "m-2":
            raise Expected("retry scheduled")
        if record.message_id == "m-4":
            raise KeyError("boom")

    # When the batch is processed
    with caplog.at_level(logging.INFO):
        response = process_partially(
            sqs_records({"Records": [raw(f"m-{n}") for n in range(1, 6)]}),
            handle,
            expected=(Expected,),
        )

    # Then every record was handled, the two failures reported for SQS to redeliver
    assert handled == ["m-1", "m-2", "m-3", "m-4", "m-5"]
    assert response == {"batchItemFailures": [{"itemIdentifier": "m-2"}, {"itemIdentifier": "m-4"}]}
    # And the unexpected one was logged with its traceback, the expected one without
    unexpected = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(unexpected) == 1
    assert unexpected[0].exc_info[0] is KeyError
    assert all(r.exc_info is None for r in caplog.records if r.levelno < logging.WARNING)


def test_a_batch_where_every_record_fails_is_reported_not_raised():
    def handle(record):
        raise RuntimeError("down")

    response = process_partially(sqs_records({"Records": [raw("a"), raw("b")]}), handle)
    assert [f["itemIdentifier"] for f in response["batchItemFailures"]] == ["a", "b"]
