"""Shared helpers of the reliability suite: request factories, what the stack holds, statistics."""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Sequence
from typing import Any

from moto.backends import get_backend

from notifications.adapters.ledger import DynamoLedger
from notifications.adapters.sqs import SqsQueues
from notifications.models import Channel, NotificationRequested
from notifyctl.local.stack import LocalStack
from tests.samples import phone, welcome

__all__ = ["phone", "welcome"]  # re-exported for the suites here

REGION = "us-east-1"
FINAL = frozenset({"SENT", "DEAD_LETTERED", "SUPPRESSED"})
QUEUE_OF = {
    Channel.EMAIL: "EmailQueue",
    Channel.SMS: "SmsQueue",
    Channel.PUSH: "PushQueue",
    Channel.WEBHOOK: "WebhookQueue",
}


def enqueue(stack: LocalStack, requests: Sequence[NotificationRequested]) -> None:
    """Queue requests as the fan-out does (the ledger record comes with the first claim)."""
    by_queue: dict[str, list[NotificationRequested]] = {}
    for request in requests:
        by_queue.setdefault(QUEUE_OF[request.channel], []).append(request)
    for logical_id, batch in by_queue.items():
        SqsQueues().enqueue(stack.queue_url(logical_id), batch)


def ledger_items(stack: LocalStack) -> dict[str, dict[str, Any]]:
    return {
        item["notification_id"]: item
        for item in DynamoLedger(stack.physical_id("LedgerTable")).scan()
    }


def statuses(stack: LocalStack) -> Counter[str]:
    return Counter(item["status"] for item in ledger_items(stack).values())


def provider_calls(stack: LocalStack) -> dict[str, int]:
    """How many sends each provider in moto accepted (SES emails, SNS SMS and pushes)."""
    ses = get_backend("ses")[stack.account_id][REGION]
    sns = get_backend("sns")[stack.account_id][REGION]
    return {
        "email": len(ses.sent_messages),
        "sms": len(sns.sms_messages),
        "push": sum(len(e.messages) for e in sns.platform_endpoints.values()),
    }


def sends_per_recipient(stack: LocalStack) -> Counter[str]:
    """Accepted sends per recipient address or number (each test's recipients are unique)."""
    ses = get_backend("ses")[stack.account_id][REGION]
    sns = get_backend("sns")[stack.account_id][REGION]
    counts: Counter[str] = Counter()
    for message in ses.sent_messages:
        # moto lists a raw message's recipient once per place it names it (To, Destinations)
        for destination in dict.fromkeys(
            str(d) for d in getattr(message, "destinations", None) or []
        ):
            counts[destination] += 1
    for number, _text in sns.sms_messages.values():
        counts[number] += 1
    return counts


def queue_depth(stack: LocalStack, logical_id: str) -> int:
    attributes = stack.clients.sqs.get_queue_attributes(
        QueueUrl=stack.queue_url(logical_id), AttributeNames=["All"]
    )["Attributes"]
    return sum(
        int(attributes[name])
        for name in (
            "ApproximateNumberOfMessages",
            "ApproximateNumberOfMessagesNotVisible",
            "ApproximateNumberOfMessagesDelayed",
        )
    )


def drain_messages(stack: LocalStack, logical_id: str) -> list[dict[str, Any]]:
    """Receive (and leave in flight) every visible message of a queue, with attributes."""
    url = stack.queue_url(logical_id)
    messages: list[dict[str, Any]] = []
    while batch := stack.clients.sqs.receive_message(
        QueueUrl=url,
        MaxNumberOfMessages=10,
        AttributeNames=["All"],
        MessageAttributeNames=["All"],
        VisibilityTimeout=43_200,
    ).get("Messages", []):
        messages.extend(batch)
    return messages


def set_mapping(stack: LocalStack, function: str, queue_logical_id: str, enabled: bool) -> None:
    arn = stack.clients.sqs.get_queue_attributes(
        QueueUrl=stack.queue_url(queue_logical_id), AttributeNames=["QueueArn"]
    )["Attributes"]["QueueArn"]
    for mapping in stack.clients.lambda_.list_event_source_mappings(
        FunctionName=stack.physical_id(function), EventSourceArn=arn
    )["EventSourceMappings"]:
        stack.clients.lambda_.update_event_source_mapping(UUID=mapping["UUID"], Enabled=enabled)


def dead_letters_recorded(stack: LocalStack) -> int:
    """Dead letters the alarm function recorded, from its own log lines."""
    return sum(
        1
        for record in stack.logs
        if record.function == "DlqAlarmFunction" and '"notification dead-lettered"' in record.line
    )


# -- statistics ----------------------------------------------------------------------------------


def binomial_pmf(n: int, p: float) -> list[float]:
    """P(X = i) for i in 0..n, X ~ Binomial(n, p), exactly (log space; no scipy needed)."""
    log_p, log_q = math.log(p), math.log1p(-p)
    log_n = math.lgamma(n + 1)
    return [
        math.exp(log_n - math.lgamma(i + 1) - math.lgamma(n - i + 1) + i * log_p + (n - i) * log_q)
        for i in range(n + 1)
    ]


def binomial_bounds(n: int, p: float, confidence: float = 0.999) -> tuple[int, int]:
    """The central ``confidence`` interval [low, high] of Binomial(n, p): P(X < low) and
    P(X > high) are each at most (1 - confidence) / 2."""
    tail = (1.0 - confidence) / 2
    pmf = binomial_pmf(n, p)
    low, below = 0, 0.0
    while below + pmf[low] <= tail:
        below += pmf[low]
        low += 1
    high, above = n, 0.0
    while above + pmf[high] <= tail:
        above += pmf[high]
        high -= 1
    return low, high


def count(values: Iterable[Any]) -> Counter[Any]:
    return Counter(values)
