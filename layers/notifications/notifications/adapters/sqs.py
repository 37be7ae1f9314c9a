"""SQS and EventBridge Scheduler: enqueue notification requests, push back visibility,
dead-letter with the contract's attributes, put a deferred body back (``deferral.Requeue``)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from botocore.exceptions import ClientError

from notifications.adapters.aws import client
from notifications.contracts import DeadLetterMessage
from notifications.deferral import schedule_expression
from notifications.errors import RetryableError
from notifications.models import NotificationRequested
from notifications.queues import SEND_BATCH_SIZE, SEND_BATCH_TRIES


class SqsQueues:
    """SQS calls of the fan-out and the sender."""

    def enqueue(self, queue_url: str, requests: Sequence[NotificationRequested]) -> None:
        """SendMessageBatch, ten at a time, resending the entries SQS reports as failed.
        Raises ``RetryableError`` when entries still fail after a few tries (the caller is
        retried, and the deterministic ids make the resend harmless)."""
        for start in range(0, len(requests), SEND_BATCH_SIZE):
            self._send_batch(queue_url, requests[start : start + SEND_BATCH_SIZE])

    def _send_batch(self, queue_url: str, batch: Sequence[NotificationRequested]) -> None:
        pending = {str(i): request for i, request in enumerate(batch)}
        failures: list[dict[str, Any]] = []
        for _ in range(SEND_BATCH_TRIES):
            response = client("sqs").send_message_batch(
                QueueUrl=queue_url, Entries=[_entry(i, r) for i, r in pending.items()]
            )
            failures = response.get("Failed", [])
            pending = {f["Id"]: pending[f["Id"]] for f in failures if not f.get("SenderFault")}
            permanent = [f for f in failures if f.get("SenderFault")]
            if permanent:
                raise ValueError(f"SQS refused notification requests: {permanent}")
            if not pending:
                return
        raise RetryableError(
            "enqueue_failed", f"SQS kept failing {len(pending)} entries: {failures}"
        )

    def delay_visibility(self, queue_url: str, receipt_handle: str, seconds: int) -> None:
        client("sqs").change_message_visibility(
            QueueUrl=queue_url, ReceiptHandle=receipt_handle, VisibilityTimeout=seconds
        )

    def dead_letter(self, queue_url: str, body: str, letter: DeadLetterMessage) -> None:
        client("sqs").send_message(QueueUrl=queue_url, **letter.to_message(body))


def _entry(entry_id: str, request: NotificationRequested) -> dict[str, Any]:
    return {
        "Id": entry_id,
        "MessageBody": request.model_dump_json(),
        "MessageAttributes": {
            "notification_id": {"DataType": "String", "StringValue": request.notification_id},
            "channel": {"DataType": "String", "StringValue": request.channel.value},
        },
    }


class SqsSchedulerRequeue:
    """SQS ``SendMessage`` with a delay, or a Scheduler one-time schedule in ``group``."""

    def __init__(self, schedule_group: str | None, scheduler_role_arn: str | None) -> None:
        self.schedule_group = schedule_group
        self.scheduler_role_arn = scheduler_role_arn

    def send_delayed(self, queue_url: str, body: str, delay_seconds: int) -> None:
        client("sqs").send_message(QueueUrl=queue_url, MessageBody=body, DelaySeconds=delay_seconds)

    def schedule(self, name: str, queue_arn: str, body: str, at: datetime) -> None:
        if not self.schedule_group or not self.scheduler_role_arn:
            raise RuntimeError("a deferral beyond 15 minutes needs SCHEDULE_GROUP and its role")
        try:
            client("scheduler").create_schedule(
                Name=name,
                GroupName=self.schedule_group,
                ScheduleExpression=schedule_expression(at),
                ScheduleExpressionTimezone="UTC",
                FlexibleTimeWindow={"Mode": "OFF"},
                Target={"Arn": queue_arn, "RoleArn": self.scheduler_role_arn, "Input": body},
                ActionAfterCompletion="DELETE",
            )
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") != "ConflictException":
                raise  # a ConflictException is the same deferral made twice: already scheduled
