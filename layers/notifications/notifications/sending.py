"""The sender: delivers one channel queue batch, with backoff by visibility timeout.

For each SQS record, on attempt n (``ApproximateReceiveCount``):
- parse it; a malformed body is dead-lettered at once with its reason;
- claim it in the ledger (a notification already SENT is acknowledged without sending, one
  another invocation is sending right now is retried after that lease);
- render and send through the channel's provider;
- success: ledger SENT, Sent and DeliveryLatency metrics;
- retryable failure before the last attempt: ledger RETRYING, visibility pushed out to
  ``delay(n)``, the item reported failed so SQS keeps it;
- retryable failure on the last attempt, or a permanent failure: sent to NotificationsDLQ with
  the reason as message attributes, and deleted from the source queue.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from aws_lambda_powertools.utilities.batch import (
    BatchProcessor,
    EventType,
    process_partial_response,
)
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from pydantic import ValidationError

from notifications.channels.base import ChannelProvider
from notifications.errors import NotificationError, PermanentError, RetryableError
from notifications.ledger import Claim, FailureRecord, Ledger
from notifications.masking import mask_recipient
from notifications.models import Channel, NotificationRequested
from notifications.observability import ChannelMetrics, logger
from notifications.queues import DeadLetter, NotificationQueues, queue_name
from notifications.retry import RetryConfig
from notifications.settings import SenderSettings
from notifications.templates import TemplateRenderer

# A claim on a notification outlives the invocation by this much before another may take it.
LEASE_MARGIN = timedelta(seconds=5)
DEFAULT_LEASE = timedelta(seconds=30)


class RetryScheduled(Exception):  # noqa: N818 - a signal to the batch processor, not an error
    """Raised for a record whose visibility was pushed out: the batch reports it failed."""


@dataclass(frozen=True)
class Outcome:
    status: str  # sent | duplicate | retry | dead_lettered | in_progress
    reason: str | None = None


class Sender:
    def __init__(
        self,
        providers: Mapping[Channel, ChannelProvider],
        renderer: TemplateRenderer,
        ledger: Ledger,
        queues: NotificationQueues,
        retry: RetryConfig,
        queue_urls: Mapping[str, str],
        dlq_url: str,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.providers = providers
        self.renderer = renderer
        self.ledger = ledger
        self.queues = queues
        self.retry = retry
        self.queue_urls = queue_urls  # queue name -> URL
        self.dlq_url = dlq_url
        self.clock = clock
        self._metrics = ChannelMetrics()
        self._lease = DEFAULT_LEASE

    def process_batch(self, event: dict[str, Any], context: Any) -> dict[str, Any]:
        remaining_ms = context.get_remaining_time_in_millis() if context is not None else None
        self._lease = (
            timedelta(milliseconds=remaining_ms) + LEASE_MARGIN if remaining_ms else DEFAULT_LEASE
        )
        processor = BatchProcessor(event_type=EventType.SQS, raise_on_entire_batch_failure=False)
        try:
            return process_partial_response(
                event=event, record_handler=self.handle_record, processor=processor, context=context
            )
        finally:
            self._metrics.flush()

    def handle_record(self, record: SQSRecord) -> Outcome:
        attempt = int(record.attributes.approximate_receive_count or 1)
        source_url = self.queue_urls.get(queue_name(record.event_source_arn), "")
        try:
            request = NotificationRequested.model_validate_json(record.body)
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in e['loc']) or '(root)'}: {e['msg']}"
                for e in exc.errors(include_url=False, include_input=False)
            )
            error = PermanentError("malformed_message", problems[:1000])
            self._dead_letter(record, None, error, "permanent", attempt, source_url)
            return Outcome("dead_lettered", error.reason)
        return self.deliver(record, request, attempt, source_url)

    def deliver(
        self, record: SQSRecord, request: NotificationRequested, attempt: int, source_url: str
    ) -> Outcome:
        now = self.clock()
        claim = self.ledger.begin_attempt(request, lease_until=now + self._lease, now=now)
        if claim.outcome is Claim.ALREADY_SENT:
            logger.info("duplicate delivery skipped", extra=_log_ids(request))
            return Outcome("duplicate")
        if claim.outcome is Claim.LEASED:
            wait = (claim.lease_until - now).total_seconds() if claim.lease_until else 30.0
            self.queues.delay_visibility(
                source_url, record.receipt_handle, self.retry.visibility_timeout(1, wait)
            )
            raise RetryScheduled(f"notification {request.notification_id} is being sent elsewhere")

        try:
            message = self.renderer.render(request)
            receipt = self.providers[request.channel].send(request, message)
        except PermanentError as exc:
            return self._give_up(record, request, exc, "permanent", attempt, source_url)
        except RetryableError as exc:
            return self._retry_or_give_up(record, request, exc, attempt, source_url)
        except Exception as exc:  # noqa: BLE001 - an unexpected failure is treated as transient
            logger.exception("unexpected send failure", extra=_log_ids(request))
            error = RetryableError("unexpected_error", f"{type(exc).__name__}: {exc}")
            return self._retry_or_give_up(record, request, error, attempt, source_url)

        sent_at = self.clock()
        latency_ms = max(int((sent_at - request.occurred_at).total_seconds() * 1000), 0)
        self.ledger.record_sent(
            request.notification_id, receipt.provider_message_id, latency_ms, sent_at
        )
        self._metrics.count("Sent", request.channel.value)
        self._metrics.latency(request.channel.value, latency_ms)
        logger.info("notification sent", extra={**_log_ids(request), "attempt": attempt})
        return Outcome("sent")

    def _retry_or_give_up(
        self,
        record: SQSRecord,
        request: NotificationRequested,
        error: RetryableError,
        attempt: int,
        source_url: str,
    ) -> Outcome:
        if self.retry.is_last_attempt(attempt):
            return self._give_up(record, request, error, "exhausted", attempt, source_url)
        visibility = self.retry.visibility_timeout(attempt, error.retry_after)
        now = self.clock()
        self.ledger.record_retrying(
            request.notification_id,
            FailureRecord(error.reason, error.message, now),
            next_attempt_at=now + timedelta(seconds=visibility),
        )
        self.queues.delay_visibility(source_url, record.receipt_handle, visibility)
        self._metrics.count("Failed", request.channel.value)
        self._metrics.count("Retried", request.channel.value)
        logger.warning(
            "notification retry scheduled",
            extra={
                **_log_ids(request),
                "attempt": attempt,
                "reason": error.reason,
                "delay_s": visibility,
            },
        )
        raise RetryScheduled(f"{error.reason}: retry in {visibility}s")

    def _give_up(
        self,
        record: SQSRecord,
        request: NotificationRequested,
        error: NotificationError,
        failure_class: str,
        attempt: int,
        source_url: str,
    ) -> Outcome:
        self.ledger.record_failed_attempt(
            request.notification_id, FailureRecord(error.reason, error.message, self.clock())
        )
        self._dead_letter(record, request, error, failure_class, attempt, source_url)
        self._metrics.count("Failed", request.channel.value)
        return Outcome("dead_lettered", error.reason)

    def _dead_letter(
        self,
        record: SQSRecord,
        request: NotificationRequested | None,
        error: NotificationError,
        failure_class: str,
        attempt: int,
        source_url: str,
    ) -> None:
        letter = DeadLetter(
            reason=error.reason,
            error=error.message,
            failure_class=failure_class,
            attempts=attempt,
            source_queue=queue_name(source_url or record.event_source_arn),
            notification_id=request.notification_id if request else None,
            channel=request.channel.value if request else None,
        )
        self.queues.dead_letter(self.dlq_url, record.body, letter)
        logger.error(
            "notification dead-lettered",
            extra={
                **(_log_ids(request) if request else {"message_id": record.message_id}),
                "reason": error.reason,
                "failure_class": failure_class,
                "attempt": attempt,
            },
        )


def _log_ids(request: NotificationRequested) -> dict[str, str]:
    return {
        "notification_id": request.notification_id,
        "channel": request.channel.value,
        "recipient": mask_recipient(request.channel, request.recipient),
        "event_id": request.event_id,
    }


def build_providers(settings: SenderSettings) -> dict[Channel, ChannelProvider]:
    """One provider per channel, wrapped in fault injection when ``FAILURE_RATE`` > 0."""
    from notifications.channels.email import S3AttachmentStore, SesEmailProvider
    from notifications.channels.faults import FaultInjectingProvider
    from notifications.channels.push import SnsPushProvider
    from notifications.channels.sms import SnsSmsProvider
    from notifications.channels.webhook import (
        DynamoSubscriptionStore,
        SecretsManagerSigningKeys,
        WebhookProvider,
    )

    providers: dict[Channel, ChannelProvider] = {
        Channel.EMAIL: SesEmailProvider(
            sender=settings.sender_email,
            attachments=S3AttachmentStore() if settings.attachments_bucket else None,
        ),
        Channel.SMS: SnsSmsProvider(),
        Channel.PUSH: SnsPushProvider(),
        Channel.WEBHOOK: WebhookProvider(
            DynamoSubscriptionStore(settings.webhook_subscriptions_table),
            SecretsManagerSigningKeys(settings.webhook_secret_prefix),
            timeout=settings.webhook_timeout_seconds,
            allow_loopback=settings.webhook_allow_loopback,
        ),
    }
    if settings.failure_rate > 0:
        rng = random.Random(settings.failure_seed)  # noqa: S311 - fault injection, not crypto
        providers = {
            channel: FaultInjectingProvider(provider, settings.failure_rate, rng)
            for channel, provider in providers.items()
        }
    return providers


def build_sender(settings: SenderSettings | None = None) -> Sender:
    """Wire the sender from the environment, once per cold start."""
    from notifications.ledger import DynamoLedger
    from notifications.queues import SqsQueues, urls_by_name

    settings = settings or SenderSettings.from_env()
    channel_urls = [settings.queue_url(channel) for channel in Channel]
    return Sender(
        providers=build_providers(settings),
        renderer=TemplateRenderer(),
        ledger=DynamoLedger(settings.ledger_table),
        queues=SqsQueues(),
        retry=RetryConfig(
            max_attempts=settings.max_attempts,
            initial_delay=settings.initial_delay_seconds,
            backoff_multiplier=settings.backoff_multiplier,
            max_delay=settings.max_delay_seconds,
            jitter=settings.backoff_jitter,
        ),
        queue_urls=urls_by_name(channel_urls),
        dlq_url=settings.notifications_dlq_url,
    )
