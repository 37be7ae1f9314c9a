"""The naive baseline every figure is compared with.

Same domain logic (event validation, routing, templates, channel providers) as the product,
wired the obvious way:

- fan-out: per event, read the preferences and scan the webhook subscriptions; per
  notification, one ``PutItem`` into the ledger and one ``SendMessage`` (no batching);
- sender: Powertools ``BatchProcessor`` with a record handler wrapped in Powertools
  idempotency at its defaults (``DynamoDBPersistenceLayer`` on a table of its own,
  ``IdempotencyConfig()``: one-hour expiry, no local cache, the whole notification as the
  key); inside it, per record: ledger SENDING, render, send, ledger SENT. A retryable failure
  records RETRYING and raises, so SQS redelivers after the queue's visibility timeout and
  redrives to the DLQ after ``maxReceiveCount``; a permanent one records FAILED and sends the
  message to the DLQ. No rate limit, no circuit breaker, no quiet hours.

``install(stack)`` swaps these handlers in for the stack's FanOutFunction and SenderFunction,
so the baseline runs on the same queues, pollers, providers and events as the product.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

IDEMPOTENCY_TABLE = "bench-baseline-idempotency"


def create_idempotency_table(dynamodb: Any) -> None:
    """The table Powertools' DynamoDBPersistenceLayer expects by default: key ``id``, TTL
    ``expiration``."""
    dynamodb.create_table(
        TableName=IDEMPOTENCY_TABLE,
        KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )


def ledger_table(name: str) -> Any:
    """The ledger through boto3's DynamoDB resource, as a naive function writes it (the layer
    itself uses the low-level client)."""
    import boto3

    return boto3.resource("dynamodb").Table(name)


class BaselineFanOut:
    def __init__(self) -> None:
        from notifications.adapters.aws import client
        from notifications.adapters.preferences import DynamoPreferencesStore
        from notifications.channels.webhook import DynamoSubscriptionStore
        from notifications.settings import FanOutSettings

        self.settings = FanOutSettings.from_env()
        self.sqs = client("sqs")
        self.ledger = ledger_table(self.settings.ledger_table)
        self.preferences = DynamoPreferencesStore(self.settings.preferences_table)
        self.subscriptions = DynamoSubscriptionStore(self.settings.webhook_subscriptions_table)

    def __call__(self, event: dict[str, Any], context: Any) -> dict[str, Any]:
        """The template delivers events through the FanOutQueue buffer: each record is handled
        as the naive function would handle its own invocation (the bench does not bill the
        buffer to the baseline: naively wired, EventBridge invokes the function per event)."""
        for record in event.get("Records", []):
            self.one(json.loads(record["body"]))
        return {"batchItemFailures": []}

    def one(self, event: dict[str, Any]) -> dict[str, Any]:
        from notifications.fanout import InvalidEvent, parse_event
        from notifications.preferences import Preferences
        from notifications.routing import ROUTING_TABLE, plan_notifications

        try:
            envelope, domain_event = parse_event(event)
        except InvalidEvent as exc:
            self.sqs.send_message(QueueUrl=self.settings.events_dlq_url, MessageBody=str(exc))
            return {"rejected": exc.reason}
        now = datetime.now(UTC)
        user_id = getattr(domain_event, "user_id", None)
        prefs = self.preferences.get(user_id) if user_id else None
        if prefs is None and envelope.detail_type == "UserRegistered":
            data = domain_event.model_dump()
            prefs = Preferences(user_id=data["user_id"], email=data["email"])
            self.preferences.put(prefs)
        route = ROUTING_TABLE[envelope.detail_type]
        subscriptions = (
            self.subscriptions.list_for_event(envelope.detail_type) if route.webhooks else []
        )
        sent = 0
        for item in plan_notifications(envelope, domain_event, prefs, subscriptions, now):
            request = item.request
            status = "SUPPRESSED" if item.suppressed_reason else "REQUESTED"
            self.ledger.put_item(
                Item={
                    "notification_id": request.notification_id,
                    "status": status,
                    "channel": request.channel.value,
                    "event_id": request.event_id,
                    "event_type": request.event_type,
                    "attempts": 0,
                    "created_at": now.isoformat(),
                    "updated_at": now.isoformat(),
                }
            )
            if item.suppressed_reason is None:
                self.sqs.send_message(
                    QueueUrl=self.settings.queue_url(request.channel),
                    MessageBody=request.model_dump_json(),
                )
                sent += 1
        return {"enqueued": sent}


class BaselineSender:
    def __init__(self) -> None:
        from aws_lambda_powertools.utilities.idempotency import (
            DynamoDBPersistenceLayer,
            IdempotencyConfig,
            idempotent_function,
        )

        from notifications.adapters.aws import client
        from notifications.sending import build_providers
        from notifications.settings import SenderSettings
        from notifications.templates import TemplateRenderer

        self.settings = SenderSettings.from_env()
        self.sqs = client("sqs")
        self.ledger = ledger_table(self.settings.ledger_table)
        self.providers = build_providers(self.settings)
        self.renderer = TemplateRenderer()
        self.config = IdempotencyConfig()
        persistence = DynamoDBPersistenceLayer(table_name=IDEMPOTENCY_TABLE)
        self.send_once: Callable[..., Any] = idempotent_function(
            data_keyword_argument="request",
            persistence_store=persistence,
            config=self.config,
        )(self._send)

    def __call__(self, event: dict[str, Any], context: Any) -> dict[str, Any]:
        from aws_lambda_powertools.utilities.batch import (
            BatchProcessor,
            EventType,
            process_partial_response,
        )

        self.config.register_lambda_context(context)
        processor = BatchProcessor(event_type=EventType.SQS, raise_on_entire_batch_failure=False)
        return dict(
            process_partial_response(
                event=event, record_handler=self._record, processor=processor, context=context
            )
        )

    def _record(self, record: Any) -> Any:
        import json

        return self.send_once(request=json.loads(record.body))

    def _send(self, request: dict[str, Any]) -> dict[str, Any]:
        from notifications.errors import PermanentError, RetryableError
        from notifications.models import NotificationRequested

        parsed = NotificationRequested.model_validate(request)
        key = {"notification_id": parsed.notification_id}
        now = datetime.now(UTC).isoformat()
        self.ledger.update_item(
            Key=key,
            UpdateExpression="SET #s = :s, updated_at = :now ADD attempts :one",
            ExpressionAttributeNames={"#s": "status"},
            ExpressionAttributeValues={":s": "SENDING", ":now": now, ":one": 1},
        )
        try:
            message = self.renderer.render(parsed)
            receipt = self.providers[parsed.channel].send(parsed, message)
        except PermanentError as exc:
            self._status(key, "FAILED", exc.reason)
            self.sqs.send_message(
                QueueUrl=self.settings.notifications_dlq_url, MessageBody=parsed.model_dump_json()
            )
            return {"status": "dead_lettered"}
        except RetryableError as exc:
            self._status(key, "RETRYING", exc.reason)
            raise
        sent_at = datetime.now(UTC)
        latency_ms = max(int((sent_at - parsed.occurred_at).total_seconds() * 1000), 0)
        self.ledger.update_item(
            Key=key,
            UpdateExpression=(
                "SET #s = :sent, updated_at = :now, latency_ms = :lat, provider_message_id = :p"
            ),
            ExpressionAttributeNames={"#s": "status"},
            ExpressionAttributeValues={
                ":sent": "SENT",
                ":now": sent_at.isoformat(),
                ":lat": latency_ms,
                ":p": receipt.provider_message_id or "-",
            },
        )
        return {"status": "sent"}

    def _status(self, key: dict[str, str], status: str, reason: str) -> None:
        self.ledger.update_item(
            Key=key,
            UpdateExpression="SET #s = :s, last_reason = :r, updated_at = :now",
            ExpressionAttributeNames={"#s": "status"},
            ExpressionAttributeValues={
                ":s": status,
                ":r": reason,
                ":now": datetime.now(UTC).isoformat(),
            },
        )


class _Lazy:
    """Builds its handler on the first invocation, inside the function's environment."""

    def __init__(self, factory: Callable[[], Callable[[Any, Any], Any]]) -> None:
        self.factory = factory
        self.handler: Callable[[Any, Any], Any] | None = None

    def __call__(self, event: Any, context: Any) -> Any:
        if self.handler is None:
            self.handler = decorated(self.factory())
        return self.handler(event, context)


def decorated(handler: Callable[[Any, Any], Any]) -> Callable[[Any, Any], Any]:
    """The same Powertools decorators as the product's handlers (logger, metrics, tracer)."""
    from notifications.observability import logger, metrics, tracer

    def handler_function(event: Any, context: Any) -> Any:
        return handler(event, context)

    return logger.inject_lambda_context(  # type: ignore[no-any-return]
        metrics.log_metrics(capture_cold_start_metric=True)(
            tracer.capture_lambda_handler(handler_function)
        )
    )


def install(stack: Any) -> None:
    """Run the baseline instead of the product in this local stack."""
    create_idempotency_table(stack.clients.client("dynamodb"))
    stack.function("FanOutFunction")._handler = _Lazy(BaselineFanOut)
    stack.function("SenderFunction")._handler = _Lazy(BaselineSender)


def sender_for_current_environment() -> BaselineSender:
    """The baseline sender built from ``os.environ`` (the in-process CPU benchmark)."""
    assert "LEDGER_TABLE" in os.environ
    return BaselineSender()
