"""SQS adapter: enqueue notification requests, push back visibility, dead-letter with a reason."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Protocol

from notifications.aws import client
from notifications.contracts import DeadLetterMessage
from notifications.errors import RetryableError
from notifications.models import NotificationRequested

SEND_BATCH_SIZE = 10  # SendMessageBatch's limit
SEND_BATCH_TRIES = 3


class NotificationQueues(Protocol):
    def enqueue(self, queue_url: str, requests: Sequence[NotificationRequested]) -> None: ...
    def delay_visibility(self, queue_url: str, receipt_handle: str, seconds: int) -> None: ...
    def dead_letter(self, queue_url: str, body: str, letter: DeadLetterMessage) -> None: ...


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


def queue_name(arn_or_url: str) -> str:
    """The queue's name from its ARN (``arn:aws:sqs:region:acct:name``) or URL (``.../name``)."""
    return arn_or_url.rsplit(":", 1)[-1].rsplit("/", 1)[-1]


def urls_by_name(urls: Iterable[str]) -> Mapping[str, str]:
    return {queue_name(url): url for url in urls}


def dumps(value: object) -> str:
    return json.dumps(value, separators=(",", ":"), default=str)
