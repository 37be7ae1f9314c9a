"""The sender: delivers one channel queue batch through the delivery pipeline.

Each SQS record goes through small stages, in order; the sender only wires them:

1. parse: a malformed body is dead-lettered at once with its reason;
2. validate recipient: an address the channel can never reach is dead-lettered at once;
3. quiet hours (``quiet_hours.py``): inside the user's quiet period, deferred to its end;
4. rate limit (``rate_limit.py``): over the per-user, per-channel limit, deferred to the next
   window;
5. circuit breaker (``circuit_breaker.py``): while the channel's breaker is open, deferred to
   its reopen time; at half-open one trial goes through;
6. idempotent send: the ledger claim (``begin_attempt``, one conditional write with a lease)
   refuses a notification already SENT or being sent elsewhere, and counts real attempts;
   then render and send through the channel's provider;
7. track: SENT with Sent and DeliveryLatency metrics; a retryable failure is RETRYING with
   visibility backoff (or, when it opened the breaker, put back until the reopen time); a
   permanent failure, or a retryable one on the last attempt, goes to NotificationsDLQ.

Before the records go through one by one, ``admission.py`` takes the rate slots and ledger
claims of the batch's first attempts that pass stages 1-3 while the channel's breaker is closed
in one DynamoDB transaction (steps 4 and 6 ahead, for the batch); those records skip their own
rate-limit and claim writes. Anything the transaction cannot settle goes the per-message way.

A deferral (``deferral.py``) puts the same body back on the queue and acknowledges the
original, so it consumes no attempt. Attempt n is the ledger's count of real provider
attempts, not ``ApproximateReceiveCount`` (a deferred message is a new message); SQS
``maxReceiveCount`` stays as the backstop for crashes. No notification gets more than
``max_attempts`` provider attempts in total.
"""

from __future__ import annotations

import os
import random
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from botocore.exceptions import BotoCoreError, ClientError
from pydantic import ValidationError

from notifications.admission import Admitted, BatchAdmission
from notifications.batch import PartialBatchResponse, SqsRecord, process_partially, sqs_records
from notifications.channels.base import ChannelProvider
from notifications.circuit_breaker import CircuitBreaker, EventSourceMappings, Permit
from notifications.deferral import Deferrer, Destination
from notifications.errors import NotificationError, PermanentError, RetryableError
from notifications.ledger import Claim, FailureRecord, Ledger
from notifications.masking import mask_recipient
from notifications.models import Channel, NotificationRequested
from notifications.observability import ChannelMetrics, logger
from notifications.queues import DeadLetter, NotificationQueues, queue_name
from notifications.quiet_hours import QuietHoursPolicy
from notifications.rate_limit import RateLimiter
from notifications.retry import RetryConfig
from notifications.settings import SenderSettings
from notifications.templates import TemplateRenderer

# A claim on a notification outlives the invocation by this much before another may take it.
LEASE_MARGIN = timedelta(seconds=5)
DEFAULT_LEASE = timedelta(seconds=30)
ALLOWED = Permit(True)
INJECTED_FAULT = "injected_fault"


class RetryScheduled(Exception):
    """Raised for a record whose visibility was pushed out: the batch reports it failed."""


@dataclass(frozen=True)
class Outcome:
    status: str  # sent | duplicate | retry | dead_lettered | in_progress | deferred
    reason: str | None = None


@dataclass(frozen=True)
class PolicyStages:
    """The optional stages between parsing and sending; None switches one off."""

    quiet_hours: QuietHoursPolicy | None = None
    rate_limiter: RateLimiter | None = None
    breaker: CircuitBreaker | None = None
    deferrer: Deferrer | None = None
    mappings: EventSourceMappings | None = None


def validate_recipient(request: NotificationRequested) -> None:
    """Raise ``PermanentError`` for a recipient the channel can never reach."""
    if request.channel is Channel.EMAIL:
        from notifications.channels.email import validate_recipient as valid_email

        valid_email(request.recipient)
    elif request.channel is Channel.SMS:
        from notifications.channels.sms import validate_phone

        validate_phone(request.recipient)
    elif request.channel is Channel.PUSH:
        from notifications.channels.push import platform_of

        platform_of(request.recipient)


ENDPOINT_DISABLED = "endpoint_disabled"


class StaleEndpoints(Protocol):
    def remove_push_endpoint(self, user_id: str, endpoint_arn: str) -> bool: ...


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
        stages: PolicyStages | None = None,
        stale_endpoints: StaleEndpoints | None = None,
        admission: BatchAdmission | None = None,
    ) -> None:
        self.providers = providers
        self.admission = admission
        self._admitted: dict[str, Admitted] = {}
        self._parsed: dict[str, NotificationRequested] = {}
        self.stale_endpoints = stale_endpoints
        self.renderer = renderer
        self.ledger = ledger
        self.queues = queues
        self.retry = retry
        self.queue_urls = queue_urls  # queue name -> URL
        self.dlq_url = dlq_url
        self.clock = clock
        self.stages = stages or PolicyStages()
        self._metrics = ChannelMetrics()
        self._lease = DEFAULT_LEASE

    def process_batch(self, event: dict[str, Any], context: Any) -> PartialBatchResponse:
        remaining_ms = context.get_remaining_time_in_millis() if context is not None else None
        self._lease = (
            timedelta(milliseconds=remaining_ms) + LEASE_MARGIN if remaining_ms else DEFAULT_LEASE
        )
        if self.stages.breaker is not None:
            self.stages.breaker.begin_batch()
        records = sqs_records(event)
        try:
            self._admit_ahead(records)
            return process_partially(records, self.handle_record, expected=(RetryScheduled,))
        finally:
            self._admitted.clear()
            self._parsed.clear()
            self._metrics.flush()

    def _admit_ahead(self, records: list[SqsRecord]) -> None:
        """Rate slots and claims for the batch's admissible records in one transaction
        (``admission.py``): first received, parsed, reachable, outside quiet hours, channel
        breaker closed."""
        if self.admission is None or len(records) < 2:
            return
        now = self.clock()
        candidates = []
        for record in records:
            if record.receive_count > 1:
                continue  # received before: it has a record, and would cancel the transaction
            try:
                request = NotificationRequested.model_validate_json(record.body)
                validate_recipient(request)
            except (ValidationError, PermanentError):
                continue  # the record's own turn dead-letters it with its reason
            self._parsed[record.message_id] = request
            if self.stages.quiet_hours is not None and self.stages.quiet_hours.deferral(
                request, now
            ):
                continue
            if self.stages.breaker is not None and not self.stages.breaker.is_closed(
                request.channel
            ):
                continue
            candidates.append(request)
        if len(candidates) < 2:
            return
        try:
            self._admitted = self.admission.admit(candidates, now + self._lease, now)
        except (BotoCoreError, ClientError) as exc:
            # Not lost: every record then takes its own slot and claim, and fails on its own.
            logger.warning(
                "batch admission failed, records go one by one",
                extra={"error": f"{type(exc).__name__}: {exc}"[:300]},
            )

    def handle_record(self, record: SqsRecord) -> Outcome:
        source_url = self.queue_urls.get(queue_name(record.event_source_arn), "")
        try:
            request = self._parsed.pop(record.message_id, None)
            if request is None:
                request = NotificationRequested.model_validate_json(record.body)
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in e['loc']) or '(root)'}: {e['msg']}"
                for e in exc.errors(include_url=False, include_input=False)
            )
            error = PermanentError("malformed_message", problems[:1000])
            attempt = record.receive_count
            self._dead_letter(record, None, error, "permanent", attempt, source_url)
            return Outcome("dead_lettered", error.reason)
        return self.deliver(record, request, source_url)

    def deliver(
        self, record: SqsRecord, request: NotificationRequested, source_url: str
    ) -> Outcome:
        now = self.clock()
        destination = Destination(source_url, record.event_source_arn)
        stages = self.stages
        # Admitted ahead: recipient, quiet hours, rate slot and claim were settled for the batch.
        admitted = self._admitted.pop(request.notification_id, None)
        if admitted is None:
            try:
                validate_recipient(request)
            except PermanentError as exc:
                self._dead_letter(record, request, exc, "permanent", 0, source_url)
                self._metrics.count("Failed", request.channel.value)
                return Outcome("dead_lettered", exc.reason)

            if stages.quiet_hours is not None:
                until = stages.quiet_hours.deferral(request, now)
                if until is not None:
                    return self._defer(record, request, destination, until, "quiet_hours", now)
            if stages.rate_limiter is not None:
                decision = stages.rate_limiter.acquire(request, now)
                if not decision.allowed and decision.retry_at is not None:
                    return self._defer(
                        record, request, destination, decision.retry_at, "rate_limited", now
                    )
        permit = ALLOWED
        if stages.breaker is not None:
            permit = stages.breaker.permit(request.channel, now, self._lease)
            if not permit.allowed and permit.retry_at is not None:
                if admitted is not None:  # the circuit opened earlier in this batch
                    self.ledger.release_claim(request.notification_id, admitted.lease_until)
                return self._defer(
                    record, request, destination, permit.retry_at, "circuit_open", now
                )

        claim = (
            admitted.claim
            if admitted is not None
            else self.ledger.begin_attempt(request, lease_until=now + self._lease, now=now)
        )
        if claim.outcome in (Claim.ALREADY_SENT, Claim.SETTLED):
            logger.info(
                "duplicate delivery skipped", extra={**_log_ids(request), "claim": claim.outcome}
            )
            return Outcome("duplicate")
        if claim.outcome is Claim.LEASED:
            wait = (claim.lease_until - now).total_seconds() if claim.lease_until else 30.0
            self.queues.delay_visibility(
                source_url, record.receipt_handle, self.retry.visibility_timeout(1, wait)
            )
            raise RetryScheduled(f"notification {request.notification_id} is being sent elsewhere")
        attempt = claim.attempts
        if attempt > self.retry.max_attempts:
            # Attempts were used up by sends that crashed before recording their outcome.
            exhausted = PermanentError(
                "attempts_exhausted",
                f"{attempt - 1} attempts made, limit {self.retry.max_attempts}",
            )
            return self._give_up(record, request, exhausted, "exhausted", attempt - 1, source_url)

        try:
            message = self.renderer.render(request)
            receipt = self.providers[request.channel].send(request, message)
        except PermanentError as exc:
            return self._give_up(record, request, exc, "permanent", attempt, source_url)
        except RetryableError as exc:
            return self._retry_or_give_up(record, request, exc, attempt, destination, permit)
        except Exception as exc:  # noqa: BLE001 - an unexpected failure is treated as transient
            logger.exception("unexpected send failure", extra=_log_ids(request))
            error = RetryableError("unexpected_error", f"{type(exc).__name__}: {exc}")
            return self._retry_or_give_up(record, request, error, attempt, destination, permit)

        sent_at = self.clock()
        latency_ms = max(int((sent_at - request.occurred_at).total_seconds() * 1000), 0)
        self.ledger.record_sent(
            request.notification_id, receipt.provider_message_id, latency_ms, sent_at
        )
        if stages.breaker is not None:
            stages.breaker.record_success(request.channel, permit)
        self._metrics.count("Sent", request.channel.value)
        self._metrics.latency(request.channel.value, latency_ms)
        logger.info("notification sent", extra={**_log_ids(request), "attempt": attempt})
        return Outcome("sent")

    def _defer(
        self,
        record: SqsRecord,
        request: NotificationRequested,
        destination: Destination,
        until: datetime,
        reason: str,
        now: datetime,
    ) -> Outcome:
        if self.stages.deferrer is None:
            raise RuntimeError("a policy stage deferred a notification but no deferrer is wired")
        if not self.stages.deferrer.defer(request, record.body, destination, until, reason, now):
            logger.info("duplicate delivery skipped", extra=_log_ids(request))
            return Outcome("duplicate")
        self._metrics.count("Deferred", request.channel.value)
        logger.info(
            "notification deferred",
            extra={
                **_log_ids(request),
                "reason": reason,
                "delay_s": round((until - now).total_seconds(), 3),
            },
        )
        return Outcome("deferred", reason)

    def _retry_or_give_up(
        self,
        record: SqsRecord,
        request: NotificationRequested,
        error: RetryableError,
        attempt: int,
        destination: Destination,
        permit: Permit,
    ) -> Outcome:
        now = self.clock()
        trip = None
        # FAILURE_RATE's injected faults model independent failures of single sends (to
        # exercise backoff and the DLQ), not a provider outage: they do not move the breaker.
        if self.stages.breaker is not None and error.reason != INJECTED_FAULT:
            trip = self.stages.breaker.record_failure(request.channel, permit, now)
            if trip is not None and trip.opened_now:
                self._metrics.count("CircuitOpened", request.channel.value)
                self._stop_polling(request, record.event_source_arn, trip.open_until)
        if self.retry.is_last_attempt(attempt):
            return self._give_up(
                record, request, error, "exhausted", attempt, destination.queue_url
            )
        if trip is not None and self.stages.deferrer is not None:
            # The channel is down: wait for the reopen time at the back of the queue (charged
            # this attempt, but not the ones the outage would otherwise burn).
            next_at = trip.open_until
            delay = f"until {next_at.isoformat()}"
        else:
            visibility = self.retry.visibility_timeout(attempt, error.retry_after)
            next_at = now + timedelta(seconds=visibility)
            delay = f"in {visibility}s"
        self.ledger.record_retrying(
            request.notification_id,
            FailureRecord(error.reason, error.message, now),
            next_attempt_at=next_at,
        )
        self._metrics.count("Failed", request.channel.value)
        self._metrics.count("Retried", request.channel.value)
        logger.warning(
            "notification retry scheduled",
            extra={
                **_log_ids(request),
                "attempt": attempt,
                "reason": error.reason,
                "delay_s": round((next_at - now).total_seconds(), 3),
            },
        )
        if trip is not None and self.stages.deferrer is not None:
            self.stages.deferrer.put_back(request, record.body, destination, next_at, now)
            return Outcome("retry", error.reason)
        self.queues.delay_visibility(destination.queue_url, record.receipt_handle, visibility)
        raise RetryScheduled(f"{error.reason}: retry {delay}")

    def _stop_polling(
        self, request: NotificationRequested, queue_arn: str, until: datetime
    ) -> None:
        logger.warning(
            "circuit breaker opened",
            extra={"channel": request.channel.value, "open_until": until.isoformat()},
        )
        if self.stages.mappings is None:
            return
        try:
            self.stages.mappings.set_enabled(queue_arn, False)
        except Exception:  # noqa: BLE001 - the breaker check switches it off on its next run
            logger.exception("could not disable the event source mapping", extra=_log_ids(request))

    def _give_up(
        self,
        record: SqsRecord,
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
        if (
            error.reason == ENDPOINT_DISABLED
            and request.user_id
            and self.stale_endpoints is not None
        ):
            # A disabled or deleted push endpoint never comes back: stop routing to it.
            self.stale_endpoints.remove_push_endpoint(request.user_id, request.recipient)
        return Outcome("dead_lettered", error.reason)

    def _dead_letter(
        self,
        record: SqsRecord,
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


def build_providers(settings: SenderSettings) -> Mapping[Channel, ChannelProvider]:
    """One provider per channel, built on first use, so a cold start loads only the libraries
    of the channel its batch holds (a batch comes from one channel queue). Wrapped in fault
    injection when ``FAILURE_RATE`` > 0: one ``random.Random(FAILURE_SEED)`` shared by all
    channels, drawn from in the order of sends, as when they were built eagerly; or, with
    ``FAILURE_MODE=outage``, provider outages in whole windows (``channels/faults.py``)."""
    from notifications.channels.faults import FaultInjectingProvider, OutageInjectingProvider

    def email() -> ChannelProvider:
        from notifications.channels.email import S3AttachmentStore, SesEmailProvider

        return SesEmailProvider(
            sender=settings.sender_email,
            configuration_set=settings.ses_configuration_set,
            attachments=S3AttachmentStore() if settings.attachments_bucket else None,
            unsubscribe_url=settings.unsubscribe_url,
        )

    def sms() -> ChannelProvider:
        from notifications.channels.sms import SnsSmsProvider

        return SnsSmsProvider(
            sms_type=settings.sms_type,
            sender_id=settings.sms_sender_id,
            max_segments=settings.sms_max_segments,
        )

    def push() -> ChannelProvider:
        from notifications.channels.push import SnsPushProvider

        return SnsPushProvider()

    def webhook() -> ChannelProvider:
        from notifications.channels.webhook import (
            CachedSubscriptionStore,
            DynamoSubscriptionStore,
            SecretsManagerSigningKeys,
            WebhookProvider,
        )

        return WebhookProvider(
            CachedSubscriptionStore(
                DynamoSubscriptionStore(settings.webhook_subscriptions_table), monotonic=time.time
            ),
            # Wall-clock expiry (not monotonic) so a controlled clock in tests ages it too.
            SecretsManagerSigningKeys(settings.webhook_secret_prefix, monotonic=time.time),
            timeout=settings.webhook_timeout_seconds,
            allow_loopback=settings.webhook_allow_loopback,
        )

    factories: dict[Channel, Callable[[], ChannelProvider]] = {
        Channel.EMAIL: email,
        Channel.SMS: sms,
        Channel.PUSH: push,
        Channel.WEBHOOK: webhook,
    }
    if settings.failure_rate <= 0:
        return LazyProviders(factories)
    if settings.failure_mode == "outage":
        rate, seed = settings.failure_rate, settings.failure_seed or 0
        return LazyProviders(factories, lambda p: OutageInjectingProvider(p, rate, seed))
    rng = random.Random(settings.failure_seed)
    return LazyProviders(
        factories, lambda provider: FaultInjectingProvider(provider, settings.failure_rate, rng)
    )


class LazyProviders(Mapping[Channel, ChannelProvider]):
    """Channel -> provider, each built by its factory (and ``wrap``-ped) on first access."""

    def __init__(
        self,
        factories: Mapping[Channel, Callable[[], ChannelProvider]],
        wrap: Callable[[ChannelProvider], ChannelProvider] = lambda provider: provider,
    ) -> None:
        self._factories = factories
        self._wrap = wrap
        self._built: dict[Channel, ChannelProvider] = {}

    def __getitem__(self, channel: Channel) -> ChannelProvider:
        if channel not in self._built:
            self._built[channel] = self._wrap(self._factories[channel]())
        return self._built[channel]

    def __iter__(self) -> Iterator[Channel]:
        return iter(self._factories)

    def __len__(self) -> int:
        return len(self._factories)


def build_stages(settings: SenderSettings, function_name: str | None) -> PolicyStages:
    """The policy stages from settings; rate limit and breaker need the policy state table."""
    from notifications.circuit_breaker import DynamoBreakerStore, LambdaEventSourceMappings
    from notifications.deferral import SqsSchedulerRequeue
    from notifications.ledger import DynamoLedger
    from notifications.rate_limit import DynamoCounterStore

    deferrer = Deferrer(
        SqsSchedulerRequeue(settings.schedule_group, settings.scheduler_role_arn),
        DynamoLedger(settings.ledger_table),
    )
    table = settings.policy_state_table
    if table is None:
        logger.warning("POLICY_STATE_TABLE not set: rate limit and circuit breaker are off")
        return PolicyStages(quiet_hours=QuietHoursPolicy(), deferrer=deferrer)
    return PolicyStages(
        quiet_hours=QuietHoursPolicy(),
        rate_limiter=RateLimiter(DynamoCounterStore(table), settings.rate_limit_per_minute),
        breaker=CircuitBreaker(
            DynamoBreakerStore(table),
            settings.breaker_failure_threshold,
            settings.breaker_open_seconds,
        ),
        deferrer=deferrer,
        mappings=LambdaEventSourceMappings(function_name) if function_name else None,
    )


def build_sender(settings: SenderSettings | None = None) -> Sender:
    """Wire the sender from the environment, once per cold start."""
    from notifications.admission import DynamoTransactions
    from notifications.ledger import DynamoLedger
    from notifications.preferences import DynamoPreferencesStore
    from notifications.queues import SqsQueues, urls_by_name

    settings = settings or SenderSettings.from_env()
    channel_urls = [settings.queue_url(channel) for channel in Channel]
    ledger = DynamoLedger(settings.ledger_table)
    stages = build_stages(settings, os.environ.get("AWS_LAMBDA_FUNCTION_NAME"))
    limiter = stages.rate_limiter
    return Sender(
        providers=build_providers(settings),
        renderer=TemplateRenderer(),
        ledger=ledger,
        queues=SqsQueues(),
        retry=RetryConfig(
            max_attempts=settings.max_attempts,
            initial_delay=settings.initial_delay_seconds,
            backoff_multiplier=settings.backoff_multiplier,
            max_delay=settings.max_delay_seconds,
            jitter=settings.backoff_jitter,
            rng=random.Random(settings.backoff_jitter_seed),
        ),
        queue_urls=urls_by_name(channel_urls),
        dlq_url=settings.notifications_dlq_url,
        stages=stages,
        stale_endpoints=DynamoPreferencesStore(settings.preferences_table),
        admission=(
            BatchAdmission(
                DynamoTransactions(), ledger, limiter, limiter.store if limiter else None
            )
            if settings.batch_admission
            else None
        ),
    )
