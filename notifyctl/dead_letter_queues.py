"""Reading the two dead-letter queues without consuming them.

EventsDLQ holds three shapes of message: events the fan-out rejected (the event as the body,
``reason``/``error`` attributes), events EventBridge could not deliver (the event as the body,
``ERROR_CODE``/``ERROR_MESSAGE`` attributes) and failed asynchronous invocations of the fan-out
(a Lambda destination record with the event under ``requestPayload``).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any


def _attribute(message: dict[str, Any], name: str) -> str | None:
    value = message.get("MessageAttributes", {}).get(name, {})
    return value.get("StringValue")


def describe_events_dlq_message(message: dict[str, Any]) -> dict[str, Any]:
    """One EventsDLQ message as ``{event_id, event_type, reason, error, at, origin, event}``."""
    try:
        body: Any = json.loads(message.get("Body", ""))
    except json.JSONDecodeError:
        body = None
    sent = message.get("Attributes", {}).get("SentTimestamp")
    at = datetime.fromtimestamp(int(sent) / 1000, UTC).isoformat() if sent else ""
    if isinstance(body, dict) and "requestPayload" in body:  # Lambda OnFailure destination
        event = body.get("requestPayload")
        response = body.get("responsePayload") or {}
        origin = "fan-out invocation failed"
        reason = str(body.get("requestContext", {}).get("condition", "RetriesExhausted"))
        error = str(response.get("errorMessage", ""))[:500] if isinstance(response, dict) else ""
    elif _attribute(message, "ERROR_CODE"):  # EventBridge target DLQ
        event, origin = body, "EventBridge delivery failed"
        reason = str(_attribute(message, "ERROR_CODE"))
        error = str(_attribute(message, "ERROR_MESSAGE") or "")
    else:  # rejected by the fan-out's validation
        event, origin = body, "rejected by fan-out"
        reason = _attribute(message, "reason") or "unknown"
        error = _attribute(message, "error") or ""
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
