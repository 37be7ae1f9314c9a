"""Reading the two dead-letter queues without consuming them.

EventsDLQ holds these shapes of message (docs/operations.md, "Events DLQ"):

- events the fan-out rejected as invalid: the event as the body, ``reason``/``error``
  attributes;
- events the fan-out failed on ``maxReceiveCount`` times, moved there by FanOutQueue's redrive:
  the event as the body and no attributes of ours (AWS adds ``DeadLetterQueueSourceArn``);
- events EventBridge could not put into FanOutQueue: the event as the body,
  ``ERROR_CODE``/``ERROR_MESSAGE`` attributes;
- failed asynchronous invocations (DeliveryFeedbackFunction, and the fan-out before it read
  FanOutQueue): a Lambda destination record with the event under ``requestPayload``.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from notifications.contracts import REDRIVEN_BY_SQS, DeadLetterMessage

REDRIVEN_REASON = REDRIVEN_BY_SQS


def _attribute(message: dict[str, Any], name: str) -> str | None:
    value = message.get("MessageAttributes", {}).get(name, {})
    return value.get("StringValue")


def fan_out_max_receives(sqs: Any, fan_out_queue_url: str | None) -> int | None:
    """FanOutQueue's ``maxReceiveCount``: how often the fan-out got an event its redrive moved
    to EventsDLQ. None without the queue (a stack from before the buffer)."""
    if not fan_out_queue_url:
        return None
    attributes = sqs.get_queue_attributes(
        QueueUrl=fan_out_queue_url, AttributeNames=["RedrivePolicy"]
    ).get("Attributes", {})
    try:
        return int(json.loads(attributes.get("RedrivePolicy", "{}"))["maxReceiveCount"])
    except (KeyError, TypeError, ValueError):
        return None


def describe_events_dlq_message(
    message: dict[str, Any], max_receives: int | None = None
) -> dict[str, Any]:
    """One EventsDLQ message as ``{event_id, event_type, reason, error, at, origin, event}``.
    ``max_receives``: FanOutQueue's ``maxReceiveCount``, named in a redriven event's error."""
    try:
        body: Any = json.loads(message.get("Body", ""))
    except json.JSONDecodeError:
        body = None
    sent = message.get("Attributes", {}).get("SentTimestamp")
    at = datetime.fromtimestamp(int(sent) / 1000, UTC).isoformat() if sent else ""
    if isinstance(body, dict) and "requestPayload" in body:  # Lambda OnFailure destination
        event = body.get("requestPayload")
        response = body.get("responsePayload") or {}
        function_arn = str(body.get("requestContext", {}).get("functionArn", ""))
        function = function_arn.split(":")[6] if function_arn.count(":") >= 6 else "function"
        origin = f"{function} invocation failed"
        reason = str(body.get("requestContext", {}).get("condition", "RetriesExhausted"))
        error = str(response.get("errorMessage", ""))[:500] if isinstance(response, dict) else ""
    elif _attribute(message, "ERROR_CODE"):  # EventBridge target DLQ
        event, origin = body, "EventBridge delivery failed"
        reason = str(_attribute(message, "ERROR_CODE"))
        error = str(_attribute(message, "ERROR_MESSAGE") or "")
    elif _attribute(message, "reason"):  # rejected by the fan-out's validation
        letter = DeadLetterMessage.from_message(message)
        event, origin = body, "rejected by fan-out"
        reason, error = letter.reason, letter.error
    else:  # moved by FanOutQueue's redrive: the fan-out kept failing on it
        event, origin = body, "fan-out failed (FanOutQueue redrive)"
        reason = REDRIVEN_REASON
        times = f"{max_receives} receives" if max_receives else "repeated receives"
        error = f"fan-out failed after {times}; its logs name the error"
    event_dict = event if isinstance(event, dict) else {}
    return {
        "message_id": message.get("MessageId"),
        "event_id": event_dict.get("id"),
        "event_type": event_dict.get("detail-type"),
        "reason": reason,
        "error": error,
        "at": at,
        "origin": origin,
        "event": event,
    }


def peek(sqs: Any, queue_url: str, limit: int = 10) -> list[dict[str, Any]]:
    """Up to ``limit`` (at most 10) messages, left visible for everyone else."""
    response = sqs.receive_message(
        QueueUrl=queue_url,
        MaxNumberOfMessages=min(limit, 10),
        VisibilityTimeout=0,
        AttributeNames=["All"],
        MessageAttributeNames=["All"],
    )
    return list(response.get("Messages", []))


def depth(sqs: Any, queue_url: str, in_flight: bool = True) -> int:
    """Messages in the queue: ready to be received, plus (``in_flight``) those received and
    not yet deleted."""
    names = ["ApproximateNumberOfMessages"]
    if in_flight:
        names.append("ApproximateNumberOfMessagesNotVisible")
    attributes = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=names)["Attributes"]
    return sum(int(attributes[name]) for name in names)
