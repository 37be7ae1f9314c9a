"""Toy SQS worker: records each message; a body with "fail": N fails it with visibility N."""

from __future__ import annotations

import json
import os
from typing import Any

import boto3
from aws_lambda_powertools import Metrics
from aws_lambda_powertools.metrics import MetricUnit
from toylib import record

metrics = Metrics(namespace="Toy", service="worker")
ENV_KEYS = ("GREETING", "MAX_ATTEMPTS", "QUEUE_URL", "RECORD_TABLE", "HOST_ONLY")


@metrics.log_metrics
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    print("worker received a batch")
    failures = []
    for item in event["Records"]:
        body = json.loads(item["body"])
        record(
            "worker",
            {
                "record": item,
                "batch_size": len(event["Records"]),
                "env": {key: os.environ.get(key) for key in ENV_KEYS},
                "function_name": context.function_name,
                "remaining_ms": context.get_remaining_time_in_millis(),
            },
        )
        if "fail" in body:
            boto3.client("sqs").change_message_visibility(
                QueueUrl=os.environ["QUEUE_URL"],
                ReceiptHandle=item["receiptHandle"],
                VisibilityTimeout=int(body["fail"]),
            )
            failures.append({"itemIdentifier": item["messageId"]})
        else:
            metrics.add_dimension(name="Channel", value=str(body.get("channel", "none")))
            metrics.add_metric(name="Processed", unit=MetricUnit.Count, value=1)
    return {"batchItemFailures": failures}
