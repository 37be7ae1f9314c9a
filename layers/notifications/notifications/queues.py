"""SQS adapter: enqueue notification requests, push back visibility, dead-letter with a reason."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:  # types only: the breaker check imports this module without the models
    from notifications.contracts import DeadLetterMessage
    from notifications.models import NotificationRequested

SEND_BATCH_SIZE = 10  # SendMessageBatch's limit
SEND_BATCH_TRIES = 3


class NotificationQueues(Protocol):
    def enqueue(self, queue_url: str, requests: Sequence[NotificationRequested]) -> None: ...
    def delay_visibility(self, queue_url: str, receipt_handle: str, seconds: int) -> None: ...
    def dead_letter(self, queue_url: str, body: str, letter: DeadLetterMessage) -> None: ...


def queue_name(arn_or_url: str) -> str:
    """The queue's name from its ARN (``arn:aws:sqs:region:acct:name``) or URL (``.../name``)."""
    return arn_or_url.rsplit(":", 1)[-1].rsplit("/", 1)[-1]


def urls_by_name(urls: Iterable[str]) -> Mapping[str, str]:
    return {queue_name(url): url for url in urls}


def dumps(value: object) -> str:
    return json.dumps(value, separators=(",", ":"), default=str)
