"""The messages that cross a queue, each with one way in and one way out.

- ``NotificationRequested`` (defined in ``models.py`` next to the types it is built from, and
  exported here): the body of a channel-queue message. ``parse_request`` is its one parser:
  a body that is not one raises ``MalformedMessage`` naming every bad field (never the values,
  which may be personal data).
- ``DeadLetterMessage``: why a message was given up on. The sender and the fan-out write it
  with ``to_message()`` (the body as it arrived, the reasons as message attributes); the alarm
  function reads it with ``from_record()`` (a Lambda SQS record) and ``notifyctl`` with
  ``from_message()`` (a ``ReceiveMessage`` message). A message SQS itself redrove after
  ``maxReceiveCount`` receives carries none of our attributes: it reads back as
  ``max_receive_count_exceeded``, class ``exhausted``, attempts = its receive count.

The operational events of issues 15 and 18 (an endpoint marked unhealthy, a provider budget
spent) get their contract here when they exist.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import msgspec

from notifications.batch import SqsRecord
from notifications.errors import PermanentError
from notifications.models import NotificationRequested
from notifications.verdicts import FailureClass

__all__ = [
    "REDRIVEN_BY_SQS",
    "DeadLetterMessage",
    "MalformedMessage",
    "NotificationRequested",
    "parse_request",
]

REDRIVEN_BY_SQS = "max_receive_count_exceeded"
REDRIVEN_ERROR = "the sender did not settle it within maxReceiveCount receives (crash or timeout)"
MAX_PROBLEMS_LENGTH = 1000
MAX_ERROR_ATTRIBUTE = 1024


class MalformedMessage(PermanentError):
    """A queue message whose body is not the contract it should be."""

    def __init__(self, problems: str) -> None:
        super().__init__("malformed_message", problems[:MAX_PROBLEMS_LENGTH])


def parse_request(body: str) -> NotificationRequested:
    """The channel-queue message body as a ``NotificationRequested``; ``MalformedMessage``
    otherwise, naming every bad field (msgspec itself stops at the first)."""
    try:
        return NotificationRequested.model_validate_json(body)
    except (msgspec.ValidationError, msgspec.DecodeError) as exc:
        try:
            problems = NotificationRequested.problems(msgspec.json.decode(body))
        except msgspec.DecodeError as bad_json:
            problems = [f"(root): Invalid JSON: {bad_json}"]
        raise MalformedMessage("; ".join(problems) or str(exc)) from exc


class DeadLetterMessage(msgspec.Struct, frozen=True):
    reason: str
    error: str
    failure_class: FailureClass
    attempts: int
    source_queue: str = ""
    notification_id: str | None = None
    channel: str | None = None

    def attributes(self) -> dict[str, dict[str, str]]:
        values = {
            "reason": self.reason,
            "error": self.error[:MAX_ERROR_ATTRIBUTE],
            "failure_class": self.failure_class.value,
            "attempts": str(self.attempts),
            "source_queue": self.source_queue,
            "notification_id": self.notification_id,
            "channel": self.channel,
        }
        return {
            name: {"DataType": "Number" if name == "attempts" else "String", "StringValue": value}
            for name, value in values.items()
            if value
        }

    def to_message(self, body: str) -> dict[str, Any]:
        """``SendMessage`` parameters (without the queue URL): the body as it arrived."""
        return {"MessageBody": body, "MessageAttributes": self.attributes()}

    @classmethod
    def from_attributes(
        cls, attributes: Mapping[str, str], receive_count: int
    ) -> DeadLetterMessage:
        """From string message attributes; none of ours: redriven by SQS."""
        reason = attributes.get("reason")
        if not reason:
            return cls(
                reason=REDRIVEN_BY_SQS,
                error=REDRIVEN_ERROR,
                failure_class=FailureClass.EXHAUSTED,
                attempts=receive_count,
                source_queue=attributes.get("source_queue", ""),
                notification_id=attributes.get("notification_id") or None,
                channel=attributes.get("channel") or None,
            )
        try:
            failure_class = FailureClass(attributes.get("failure_class", ""))
        except ValueError:
            failure_class = FailureClass.EXHAUSTED
        try:
            attempts = int(attributes.get("attempts") or receive_count)
        except ValueError:
            attempts = receive_count
        return cls(
            reason=reason,
            error=attributes.get("error") or "",
            failure_class=failure_class,
            attempts=attempts,
            source_queue=attributes.get("source_queue", ""),
            notification_id=attributes.get("notification_id") or None,
            channel=attributes.get("channel") or None,
        )

    @classmethod
    def from_record(cls, record: SqsRecord) -> DeadLetterMessage:
        """From a Lambda SQS event record (the alarm function)."""
        return cls.from_attributes(record.attributes, record.receive_count)

    @classmethod
    def from_message(cls, message: Mapping[str, Any]) -> DeadLetterMessage:
        """From a ``ReceiveMessage`` message (``notifyctl``)."""
        attributes = {
            name: str(value["StringValue"])
            for name, value in (message.get("MessageAttributes") or {}).items()
            if isinstance(value, Mapping) and value.get("StringValue") is not None
        }
        count = (message.get("Attributes") or {}).get("ApproximateReceiveCount")
        return cls.from_attributes(attributes, int(count) if count else 1)
