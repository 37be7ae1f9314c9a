"""The sender: delivers one channel-queue batch through the delivery pipeline.

Per record, in order (docs/architecture.md walks one notification through them):

1. parse (``contracts.parse_request``): a malformed body is dead-lettered at once with its
   reason;
2. the policy stages (``stages.py``), one list in one order: recipient, quiet hours, rate
   limit, circuit breaker. Each answers ``Go``, ``Defer(until, reason)`` (put back by
   ``deferral.py``, no attempt spent) or ``Reject(error)`` (dead-lettered at once);
3. claim (``Ledger.begin_attempt``, one conditional write with a lease): refuses a notification
   already SENT or settled (acknowledged as a duplicate) or being sent elsewhere (retried after
   the lease), and counts real attempts;
4. render and send through the channel's provider: the sends of a batch overlap in a bounded
   pool, never past the invocation's remaining time (``SenderBatch``; docs/performance.md,
   section 6);
5. settle: SENT with Sent and DeliveryLatency metrics; a failure goes to ``verdicts.decide``,
   which alone says ``Retry`` (visibility backoff), ``PutBack`` (the channel is down: back on
   the queue for its reopen time) or ``DeadLetter`` (to NotificationsDLQ, permanent or
   exhausted).

Before the records go one by one, the batch admission pre-pass (``admission.py``) asks the same
stage list which first attempts it may take ahead, and takes their rate slots and claims in one
DynamoDB transaction; those records skip the stages it settled and their own claim write.

All per-batch state (what was admitted and parsed, the lease, the metrics) lives in one
``SenderBatch``, built per invocation; ``Sender`` holds only what is wired once per cold start.
Attempt n is the ledger's count of real provider attempts, not ``ApproximateReceiveCount``
(a deferred message is a new message); SQS ``maxReceiveCount`` stays as the backstop for
crashes. No notification gets more than ``max_attempts`` provider attempts in total.
"""

from __future__ import annotations

import os
import random
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any, Protocol

import msgspec

from notifications.admission import Admitted, BatchAdmission
from notifications.batch import ItemFailure, PartialBatchResponse, SqsRecord, sqs_records
from notifications.channels.base import ChannelProvider, ProviderReceipt
from notifications.contracts import DeadLetterMessage, MalformedMessage, parse_request
from notifications.deferral import Deferrer, Destination
from notifications.errors import NotificationError, PermanentError, RetryableError, ServiceError
from notifications.ledger import Claim, FailureRecord, Ledger
from notifications.masking import mask_recipient
from notifications.models import Channel, NotificationRequested
from notifications.observability import logger
from notifications.operational_events import OperationalEvents
from notifications.queues import NotificationQueues, queue_name
from notifications.registry import build_provider
from notifications.retry import MAX_VISIBILITY_SECONDS, RetryConfig, RetryPolicy, RetrySchedule
from notifications.send_budget import BudgetStage
from notifications.settings import SenderSettings
from notifications.stages import (
    INJECTED_FAULT,
    PROVIDER_CHANNELS,
    BatchContext,
    BreakerStage,
    Delivery,
    Stage,
    admissible,
    run,
)
from notifications.templates import TemplateRenderer
from notifications.verdicts import (
    DeadLetter,
    Defer,
    Failure,
    FailureClass,
    Outcome,
    Park,
    PutBack,
    Reject,
    Retry,
    decide,
)

# A claim on a notification outlives the invocation by this much before another may take it.
LEASE_MARGIN = timedelta(seconds=5)
DEFAULT_LEASE = timedelta(seconds=30)
# SQS's 12 h visibility limit counts from the receive: a retry wait is kept this far inside it
# (the records of a batch were received up to the batching window before the batch began).
VISIBILITY_MARGIN = timedelta(seconds=60)
ENDPOINT_DISABLED = "endpoint_disabled"
# After its send ends, a record still needs this long to be settled (ledger write, metrics,
# queue calls); a send starts only when its timeout and this fit in the invocation's time.
SETTLE_MARGIN_SECONDS = 2.0
# A record the invocation has no time left to send goes back to its queue for this long.
CUT_DELAY = timedelta(seconds=1)
SEND_TIMEOUT = "send_timeout"


class StaleEndpoints(Protocol):
    def remove_push_endpoint(self, user_id: str, endpoint_arn: str) -> bool: ...


class Sender:
    """What the sender wires once per cold start; each batch gets a ``SenderBatch``."""

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
        stages: Sequence[Stage] = (),
        deferrer: Deferrer | None = None,
        stale_endpoints: StaleEndpoints | None = None,
        admission: BatchAdmission | None = None,
        webhook_retry: RetryPolicy | None = None,
        concurrency: int = 10,
        send_timeout: float = 10.0,
    ) -> None:
        if concurrency < 1 or send_timeout <= 0:
            raise ValueError("concurrency and send_timeout must be positive")
        self.providers = providers
        self.renderer = renderer
        self.ledger = ledger
        self.queues = queues
        self.retry = retry
        self.queue_urls = queue_urls  # queue name -> URL
        self.dlq_url = dlq_url
        self.clock = clock
        self.stages = tuple(stages)
        self.deferrer = deferrer
        self.stale_endpoints = stale_endpoints
        self.admission = admission
        self.webhook_retry = webhook_retry
        self.concurrency = concurrency
        self.send_timeout = send_timeout
        # Twice the sends in flight: a worker still waiting for an answer the batch gave up on
        # (its provider's own timeout ends it) does not hold up the next batch's sends.
        self.pool_workers = 2 * concurrency
        self._pool: ThreadPoolExecutor | None = None

    def pool(self) -> ThreadPoolExecutor | None:
        """The send pool (made on first use, kept for the environment's life); None when sends
        go one at a time (``concurrency`` 1: the sequential path)."""
        if self.concurrency == 1:
            return None
        if self._pool is None:
            self._pool = ThreadPoolExecutor(self.pool_workers, thread_name_prefix="send")
        return self._pool

    def process_batch(self, event: dict[str, Any], context: Any) -> PartialBatchResponse:
        remaining_ms = context.get_remaining_time_in_millis() if context is not None else None
        lease = (
            timedelta(milliseconds=remaining_ms) + LEASE_MARGIN if remaining_ms else DEFAULT_LEASE
        )
        remaining = (
            (lambda: context.get_remaining_time_in_millis() / 1000) if remaining_ms else None
        )
        records = sqs_records(event)
        batch = SenderBatch(self, lease, remaining)
        try:
            batch.prepare(records)
            return batch.run(records)
        finally:
            batch.finish()

    def retry_policy(self, channel: Channel) -> RetryPolicy:
        """The channel's retry policy: webhooks their schedule (``WebhookRetrySchedule``) when
        one is wired; email, SMS and push the exponential formula (``MaxAttempts``)."""
        if channel is Channel.WEBHOOK and self.webhook_retry is not None:
            return self.webhook_retry
        return self.retry


class _InFlight(msgspec.Struct):
    """A claimed record whose send runs in the pool."""

    delivery: Delivery
    record: SqsRecord
    attempt: int
    lease_until: datetime
    submitted: float  # time.monotonic() when it went into the pool


class SenderBatch:
    """One batch of the sender: the admission pre-pass, then each record through the stages
    and its claim, in order, on the handler's thread; the claimed records' sends overlap in
    the sender's pool (at most ``concurrency`` at a time), and each is settled on the
    handler's thread as it ends. Only ``provider.send`` runs in a worker thread: the stages,
    ledger writes, metrics and queue calls stay single-threaded, as before.

    Time: ``remaining()`` is the invocation's time left (None: unbounded). The send timeout
    is the sender's, capped at half of what is left when the batch begins, less the settle
    margin. A record's send starts only while the send timeout + ``SETTLE_MARGIN_SECONDS`` fit
    in it; a record that cannot start in time is put back without a claim (no attempt spent;
    ``CUT_DELAY``). A send not answered ``send_timeout`` after it went into the pool is given
    up: a retryable ``send_timeout`` failure if it started (its worker's answer, whenever it
    comes, is dropped, so nothing is recorded after the handler returns), or, if every worker
    was busy and it had not started, cancelled (``Future.cancel``: it never starts) and put
    back, its claim given back. So the handler returns before its deadline with no send of its
    own still to start (docs/performance.md, section 6).
    """

    def __init__(
        self, sender: Sender, lease: timedelta, remaining: Callable[[], float] | None = None
    ) -> None:
        self.sender = sender
        self.context = BatchContext(clock=sender.clock, lease=lease)
        self.received_at = sender.clock()  # the batch's records were received by now
        self.remaining = remaining
        # Capped so that a short function timeout still leaves half of it for starting sends.
        self.send_timeout = sender.send_timeout
        if remaining is not None:
            self.send_timeout = min(self.send_timeout, (remaining() - SETTLE_MARGIN_SECONDS) / 2)
        self.admitted: dict[str, Admitted] = {}
        self.parsed: dict[str, NotificationRequested] = {}
        self.in_flight: dict[Future[ProviderReceipt], _InFlight] = {}
        # Sends in flight at most: the sender's concurrency, down to one after a retryable
        # failure until a send succeeds (a failing provider is probed one send at a time, so
        # the circuit breaker opens as it did when every send went one after another).
        self.window = sender.concurrency
        self.failures: list[ItemFailure] = []

    # -- the batch hooks ---------------------------------------------------------------------

    def prepare(self, records: Sequence[SqsRecord]) -> None:
        for stage in self.sender.stages:
            if isinstance(stage, BudgetStage):
                stage.begin_batch(len(records))
                continue
            begin_batch = getattr(stage, "begin_batch", None)
            if begin_batch is not None:  # the breaker, endpoint health: per-batch reads
                begin_batch()
        self._admit_ahead(records)

    def finish(self) -> None:
        self.context.metrics.flush()

    def run(self, records: Sequence[SqsRecord]) -> PartialBatchResponse:
        """Every record through the stages and its claim in order, the sends overlapped; the
        batch's partial batch response (as ``batch.process_partially``: a record whose
        processing raised is reported failed and logged, the others carry on)."""
        for record in records:
            while len(self.in_flight) >= self.window:
                self._collect(block=True)
            self._collect(block=False)
            self._step(record, partial(self.deliver, record))
        while self.in_flight:
            self._collect(block=True)
        return {"batchItemFailures": self.failures}

    # -- time ----------------------------------------------------------------------------------

    def _time_for_a_send(self) -> bool:
        """A send started now would end, and be settled, before the invocation does."""
        return (
            self.remaining is None or self.remaining() >= self.send_timeout + SETTLE_MARGIN_SECONDS
        )

    def _cut(
        self,
        delivery: Delivery,
        record: SqsRecord,
        claim_until: datetime | None,
        why: str = "no time left in the invocation to send",
    ) -> Outcome:
        """Not sent for lack of time: back on its queue for ``CUT_DELAY``, its claim (if one
        was taken) given back, so no attempt is spent."""
        sender, request = self.sender, delivery.request
        now = sender.clock()
        if claim_until is not None:
            sender.ledger.release_claim(request.notification_id, claim_until)
        logger.info(f"{why}: put back", extra=_log_ids(request))
        if sender.deferrer is not None:
            sender.deferrer.put_back(
                request, delivery.body, delivery.destination, now + CUT_DELAY, now
            )
            return Outcome.PUT_BACK
        sender.queues.delay_visibility(
            delivery.destination.queue_url, record.receipt_handle, int(CUT_DELAY.total_seconds())
        )
        return Outcome.RETRY

    # -- the sends in flight -------------------------------------------------------------------

    def _collect(self, block: bool) -> None:
        """Settle the sends that ended; give up those past their timeout. ``block``: wait until
        at least one of them is settled or given up."""
        while self.in_flight:
            timeout = self._next_due() if block else 0
            done, _ = wait(self.in_flight, timeout=timeout, return_when=FIRST_COMPLETED)
            for future in done:
                flight = self.in_flight.pop(future)
                self._step(flight.record, partial(self._sent_or_failed, flight, future))
            given_up = self._give_up_late()
            if done or given_up or not block:
                return

    def _next_due(self) -> float:
        """Seconds until the earliest send in flight is due to be given up."""
        due = min(flight.submitted for flight in self.in_flight.values()) + self.send_timeout
        return max(due - time.monotonic(), 0.0)

    def _give_up_late(self) -> bool:
        """Give up the sends submitted ``send_timeout`` ago or more: one not started yet (every
        worker busy) is cancelled and put back, its claim given back; one running is a
        retryable ``send_timeout`` failure, and its answer, whenever it comes, is dropped."""
        now = time.monotonic()
        late = [
            future
            for future, flight in self.in_flight.items()
            if now - flight.submitted >= self.send_timeout
        ]
        for future in late:
            flight = self.in_flight.pop(future)
            if future.cancel():
                self._step(flight.record, partial(self._not_started, flight))
            else:
                self._step(flight.record, partial(self._timed_out, flight))
        return bool(late)

    def _sent_or_failed(self, flight: _InFlight, future: Future[ProviderReceipt]) -> Outcome:
        return self._after_send(flight.delivery, flight.record, flight.attempt, future.result)

    def _not_started(self, flight: _InFlight) -> Outcome:
        why = "the send did not start in time"
        return self._cut(flight.delivery, flight.record, flight.lease_until, why)

    def _timed_out(self, flight: _InFlight) -> Outcome:
        error = RetryableError(SEND_TIMEOUT, f"no answer within {self.send_timeout:g} s")
        return self._failed(flight.delivery, error, flight.attempt, flight.record)

    def _step(self, record: SqsRecord, step: Callable[[], Outcome | None]) -> None:
        """Run one record's ``step``; report the record to SQS unless it was settled (as
        ``batch.process_partially``: a step that raised is logged, the others carry on)."""
        try:
            outcome = step()
        except Exception:  # noqa: BLE001 - reported to SQS, which redelivers it; logged here
            logger.warning(
                "record processing failed; left for a retry",
                extra={"message_id": record.message_id},
                exc_info=True,
            )
            self.failures.append({"itemIdentifier": record.message_id})
            return
        if outcome is not None and not outcome.acknowledged:
            logger.info("record left for a retry", extra={"message_id": record.message_id})
            self.failures.append({"itemIdentifier": record.message_id})

    # -- the admission pre-pass ----------------------------------------------------------------

    def _admit_ahead(self, records: Sequence[SqsRecord]) -> None:
        """Rate slots and claims of the batch's first attempts that every stage would admit,
        in one transaction (``admission.py``)."""
        admission = self.sender.admission
        if admission is None or len(records) < 2:
            return
        now = self.sender.clock()
        candidates = []
        for record in records:
            if record.receive_count > 1:
                continue  # received before: it has a record, and would cancel the transaction
            try:
                request = parse_request(record.body)
            except MalformedMessage:
                continue  # the record's own turn dead-letters it with its reason
            self.parsed[record.message_id] = request
            if admissible(self.sender.stages, request, now):
                candidates.append(request)
        if len(candidates) < 2:
            return
        try:
            self.admitted = admission.admit(candidates, now + self.context.lease, now)
        except ServiceError as exc:
            # Not lost: every record then takes its own slot and claim, and fails on its own.
            logger.warning(
                "batch admission failed, records go one by one", extra={"error": str(exc)[:300]}
            )

    # -- one record ----------------------------------------------------------------------------

    def deliver(self, record: SqsRecord) -> Outcome | None:
        """Stages and claim; the send inline (sequential) or in the pool (None: in flight)."""
        sender = self.sender
        source_url = sender.queue_urls.get(queue_name(record.event_source_arn), "")
        request = self.parsed.pop(record.message_id, None)
        if request is None:
            try:
                request = parse_request(record.body)
            except MalformedMessage as exc:
                return self._dead_letter(
                    record, None, exc, FailureClass.PERMANENT, record.receive_count
                )
        delivery = Delivery(
            request=request,
            body=record.body,
            receipt_handle=record.receipt_handle,
            destination=Destination(source_url, record.event_source_arn),
            message_id=record.message_id,
        )
        now = sender.clock()
        # Admitted ahead: the stages it settled (recipient, quiet hours, rate slot) and the claim.
        admitted = self.admitted.pop(request.notification_id, None)
        if not self._time_for_a_send():
            return self._cut(delivery, record, admitted.lease_until if admitted else None)
        verdict = run(sender.stages, delivery, now, self.context, admitted is not None)
        if isinstance(verdict, Reject):
            self.context.metrics.count("Failed", request.channel.value)
            return self._settle(delivery, Failure(verdict.error, 0, now), record, claimed=False)
        if isinstance(verdict, Defer | Park) and admitted is not None:
            # the circuit opened (an endpoint failed) earlier in this batch
            sender.ledger.release_claim(request.notification_id, admitted.lease_until)
        if isinstance(verdict, Defer):
            return self._defer(delivery, verdict, now)
        if isinstance(verdict, Park):
            return self._park(delivery, verdict, now)
        return self._attempt(delivery, record, admitted, now)

    def _attempt(
        self, delivery: Delivery, record: SqsRecord, admitted: Admitted | None, now: datetime
    ) -> Outcome | None:
        """Claim (unless admitted ahead), render, send (None: in the pool), settle."""
        sender, request = self.sender, delivery.request
        lease_until = admitted.lease_until if admitted is not None else now + self.context.lease
        claim = (
            admitted.claim
            if admitted is not None
            else sender.ledger.begin_attempt(request, lease_until=lease_until, now=now)
        )
        if claim.outcome in (Claim.ALREADY_SENT, Claim.SETTLED):
            logger.info(
                "duplicate delivery skipped", extra={**_log_ids(request), "claim": claim.outcome}
            )
            return Outcome.DUPLICATE
        if claim.outcome is Claim.LEASED:
            wait = (claim.lease_until - now).total_seconds() if claim.lease_until else 30.0
            sender.queues.delay_visibility(
                delivery.destination.queue_url,
                record.receipt_handle,
                sender.retry.visibility_timeout(1, wait),
            )
            logger.info("notification is being sent elsewhere", extra=_log_ids(request))
            return Outcome.RETRY
        attempt = claim.attempts
        limit = sender.retry_policy(request.channel).max_attempts
        if attempt > limit:
            # Attempts were used up by sends that crashed before recording their outcome.
            exhausted = PermanentError(
                "attempts_exhausted", f"{attempt - 1} attempts made, limit {limit}"
            )
            failure = Failure(exhausted, attempt - 1, now, exhausted=True)
            return self._settle(delivery, failure, record, claimed=True)

        try:
            message = sender.renderer.render(request)
            provider = sender.providers[request.channel]
        except NotificationError as exc:
            return self._failed(delivery, exc, attempt, record)
        except Exception as exc:  # noqa: BLE001 - an unexpected failure is treated as transient
            logger.exception("unexpected send failure", extra=_log_ids(request))
            error = RetryableError("unexpected_error", f"{type(exc).__name__}: {exc}")
            return self._failed(delivery, error, attempt, record)
        if delivery.not_after is not None and sender.clock() >= delivery.not_after:
            # Its send-budget slot's second is over: starting now would spend the next one's.
            return self._cut(delivery, record, lease_until, "its send-budget second passed")
        pool = sender.pool()
        if pool is None:
            return self._after_send(
                delivery, record, attempt, lambda: provider.send(request, message)
            )
        flight = _InFlight(delivery, record, attempt, lease_until, time.monotonic())
        self.in_flight[pool.submit(provider.send, request, message)] = flight
        return None

    def _after_send(
        self,
        delivery: Delivery,
        record: SqsRecord,
        attempt: int,
        result: Callable[[], ProviderReceipt],
    ) -> Outcome:
        """Settle a send from ``result()``: its receipt, or the error it raises."""
        try:
            receipt = result()
        except NotificationError as exc:
            return self._failed(delivery, exc, attempt, record)
        except Exception as exc:  # noqa: BLE001 - an unexpected failure is treated as transient
            logger.exception("unexpected send failure", extra=_log_ids(delivery.request))
            error = RetryableError("unexpected_error", f"{type(exc).__name__}: {exc}")
            return self._failed(delivery, error, attempt, record)
        return self._sent(delivery, receipt.provider_message_id, attempt)

    def _sent(self, delivery: Delivery, provider_message_id: str | None, attempt: int) -> Outcome:
        request = delivery.request
        sent_at = self.sender.clock()
        latency_ms = max(int((sent_at - request.occurred_at).total_seconds() * 1000), 0)
        self.sender.ledger.record_sent(
            request.notification_id, provider_message_id, latency_ms, sent_at
        )
        self.window = self.sender.concurrency
        for stage in self.sender.stages:
            stage.sent(delivery, self.context)
        self.context.metrics.count("Sent", request.channel.value)
        self.context.metrics.latency(request.channel.value, latency_ms)
        logger.info("notification sent", extra={**_log_ids(request), "attempt": attempt})
        return Outcome.SENT

    def _defer(self, delivery: Delivery, verdict: Defer, now: datetime) -> Outcome:
        deferrer = self.sender.deferrer
        request = delivery.request
        if deferrer is None:
            raise RuntimeError("a policy stage deferred a notification but no deferrer is wired")
        if not deferrer.defer(
            request, delivery.body, delivery.destination, verdict.until, verdict.reason.value, now
        ):
            logger.info("duplicate delivery skipped", extra=_log_ids(request))
            return Outcome.DUPLICATE
        self.context.metrics.count("Deferred", request.channel.value)
        logger.info(
            "notification deferred",
            extra={
                **_log_ids(request),
                "reason": verdict.reason.value,
                "delay_s": round((verdict.until - now).total_seconds(), 3),
            },
        )
        return Outcome.DEFERRED

    def _park(self, delivery: Delivery, verdict: Park, now: datetime) -> Outcome:
        """Keep it in the ledger with its body (its webhook endpoint is disabled); a replay
        sends it again. Acknowledged: nothing waits in the queue for an endpoint that is off."""
        request = delivery.request
        if not self.sender.ledger.record_parked(request, delivery.body, verdict.reason, now):
            logger.info("duplicate delivery skipped", extra=_log_ids(request))
            return Outcome.DUPLICATE
        self.context.metrics.count("Parked", request.channel.value)
        logger.info("notification parked", extra={**_log_ids(request), "reason": verdict.reason})
        return Outcome.PARKED

    def _failed(
        self, delivery: Delivery, error: NotificationError, attempt: int, record: SqsRecord
    ) -> Outcome:
        """A send failed: the stages hear of a retryable failure (the breaker counts it and may
        say the channel is down until some time), then ``decide`` says what it becomes."""
        now = self.sender.clock()
        hold_until = None
        if error.retryable:
            if error.reason != INJECTED_FAULT and delivery.request.channel in PROVIDER_CHANNELS:
                # a failure the channel's breaker counts; a webhook endpoint's failure is its
                # own (endpoint_health.py) and never slows its neighbours' sends
                self.window = 1
            for stage in self.sender.stages:
                hold_until = stage.failed(delivery, error, now, self.context) or hold_until
        failure = Failure(
            error,
            attempt,
            now,
            hold_until=hold_until,
            can_put_back=self.sender.deferrer is not None,
            visibility_room=self._visibility_room(now),
        )
        return self._settle(delivery, failure, record, claimed=True)

    def _visibility_room(self, now: datetime) -> float:
        """Seconds of visibility delay SQS still allows the batch's receives."""
        used = now - self.received_at + VISIBILITY_MARGIN
        return max(MAX_VISIBILITY_SECONDS - used.total_seconds(), 0.0)

    def _settle(
        self, delivery: Delivery, failure: Failure, record: SqsRecord, claimed: bool
    ) -> Outcome:
        """Carry out what ``decide`` makes of ``failure``. ``claimed``: the notification was
        claimed (it has a ledger record whose lease to release and error to keep)."""
        action = decide(failure, self.sender.retry_policy(delivery.request.channel))
        if isinstance(action, DeadLetter):
            if not claimed:
                return self._dead_letter(
                    record, delivery.request, failure.error, action.failure_class, failure.attempt
                )
            return self._give_up(delivery, failure, record, action.failure_class)
        return self._retry(delivery, failure, action)

    def _retry(self, delivery: Delivery, failure: Failure, action: Retry | PutBack) -> Outcome:
        sender, request, error, now = self.sender, delivery.request, failure.error, failure.now
        sender.ledger.record_retrying(
            request.notification_id,
            FailureRecord(error.reason, error.message, now),
            next_attempt_at=action.at,
        )
        self.context.metrics.count("Failed", request.channel.value)
        self.context.metrics.count("Retried", request.channel.value)
        logger.warning(
            "notification retry scheduled",
            extra={
                **_log_ids(request),
                "attempt": failure.attempt,
                "reason": error.reason,
                "delay_s": round((action.at - now).total_seconds(), 3),
            },
        )
        if isinstance(action, PutBack):
            assert sender.deferrer is not None  # decide puts back only with a deferrer wired
            sender.deferrer.put_back(request, delivery.body, delivery.destination, action.at, now)
            return Outcome.PUT_BACK
        sender.queues.delay_visibility(
            delivery.destination.queue_url, delivery.receipt_handle, action.visibility_seconds
        )
        return Outcome.RETRY

    def _give_up(
        self,
        delivery: Delivery,
        failure: Failure,
        record: SqsRecord,
        failure_class: FailureClass,
    ) -> Outcome:
        request, error = delivery.request, failure.error
        self.sender.ledger.record_failed_attempt(
            request.notification_id,
            FailureRecord(error.reason, error.message, self.sender.clock()),
        )
        outcome = self._dead_letter(record, request, error, failure_class, failure.attempt)
        self.context.metrics.count("Failed", request.channel.value)
        stale = self.sender.stale_endpoints
        if error.reason == ENDPOINT_DISABLED and request.user_id and stale is not None:
            # A disabled or deleted push endpoint never comes back: stop routing to it.
            stale.remove_push_endpoint(request.user_id, request.recipient)
        return outcome

    def _dead_letter(
        self,
        record: SqsRecord,
        request: NotificationRequested | None,
        error: NotificationError,
        failure_class: FailureClass,
        attempt: int,
    ) -> Outcome:
        sender = self.sender
        source_url = sender.queue_urls.get(queue_name(record.event_source_arn), "")
        letter = DeadLetterMessage(
            reason=error.reason,
            error=error.message,
            failure_class=failure_class,
            attempts=attempt,
            source_queue=queue_name(source_url or record.event_source_arn),
            notification_id=request.notification_id if request else None,
            channel=request.channel.value if request else None,
        )
        sender.queues.dead_letter(sender.dlq_url, record.body, letter)
        logger.error(
            "notification dead-lettered",
            extra={
                **(_log_ids(request) if request else {"message_id": record.message_id}),
                "reason": error.reason,
                "failure_class": failure_class.value,
                "attempt": attempt,
            },
        )
        return Outcome.DEAD_LETTERED


def _log_ids(request: NotificationRequested) -> dict[str, str]:
    return {
        "notification_id": request.notification_id,
        "channel": request.channel.value,
        "recipient": mask_recipient(request.channel, request.recipient),
        "event_id": request.event_id,
    }


def _as_built(channel: Channel, provider: ChannelProvider) -> ChannelProvider:
    return provider


def build_providers(settings: SenderSettings) -> Mapping[Channel, ChannelProvider]:
    """One provider per channel (``registry.py``), built on first use, so a cold start loads
    only the libraries of the channel its batch holds (a batch comes from one channel queue),
    with its modelled latency when ``PROVIDER_LATENCY`` names the channel.
    Wrapped in fault injection when ``FAILURE_RATE`` > 0: one ``random.Random(FAILURE_SEED)``
    shared by all channels, drawn from in the order of sends, as when they were built eagerly;
    or, with ``FAILURE_MODE=outage``, provider outages in whole windows (``channels/faults.py``)."""
    # PROVIDER_LATENCY (local runs, benchmarks): each send of a modelled channel takes a drawn
    # time first (channels/latency.py); the fault wrappers go around it. Without a model (and
    # without FAILURE_RATE) the cold start loads neither module.
    latency: Callable[[Channel, ChannelProvider], ChannelProvider] = _as_built
    if settings.provider_latency.strip():
        from notifications.channels.latency import parse_latency, with_latency

        latency = with_latency(parse_latency(settings.provider_latency))

    def factory(channel: Channel) -> Callable[[], ChannelProvider]:
        return lambda: latency(channel, build_provider(channel, settings))

    factories = {channel: factory(channel) for channel in Channel}
    if settings.failure_rate <= 0:
        return LazyProviders(factories)
    from notifications.channels.faults import FaultInjectingProvider, OutageInjectingProvider

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


def build_stages(
    settings: SenderSettings, function_name: str | None
) -> tuple[list[Stage], Deferrer]:
    """The policy stages in their order, and the deferrer that puts back what they defer. Rate
    limit, breaker and endpoint health need the policy state table; without it they are off."""
    from notifications.adapters.event_source_mappings import LambdaEventSourceMappings
    from notifications.adapters.ledger import DynamoLedger
    from notifications.adapters.policy_state import (
        DynamoBreakerStore,
        DynamoCounterStore,
        DynamoHealthStore,
    )
    from notifications.adapters.sqs import SqsSchedulerRequeue
    from notifications.circuit_breaker import CircuitBreaker
    from notifications.endpoint_health import EndpointHealthStage
    from notifications.quiet_hours import QuietHoursPolicy
    from notifications.rate_limit import RateLimiter
    from notifications.stages import QuietHoursStage, RateLimitStage, RecipientStage

    deferrer = Deferrer(
        SqsSchedulerRequeue(settings.schedule_group, settings.scheduler_role_arn),
        DynamoLedger(settings.ledger_table),
    )
    stages: list[Stage] = [RecipientStage(), QuietHoursStage(QuietHoursPolicy())]
    table = settings.policy_state_table
    if table is None:
        logger.warning(
            "POLICY_STATE_TABLE not set: rate limit, circuit breaker and endpoint health are off"
        )
        return stages, deferrer
    stages.append(
        RateLimitStage(RateLimiter(DynamoCounterStore(table), settings.rate_limit_per_minute))
    )
    stages.append(
        BreakerStage(
            CircuitBreaker(
                DynamoBreakerStore(table),
                settings.breaker_failure_threshold,
                settings.breaker_open_seconds,
            ),
            LambdaEventSourceMappings(function_name) if function_name else None,
        )
    )
    stages.append(
        EndpointHealthStage(
            DynamoHealthStore(table),
            webhook_schedule(settings),
            timedelta(hours=settings.webhook_disable_after_hours),
            operational_events(settings.event_bus_name),
        )
    )
    rates = settings.send_rates()
    if any(rate > 0 for rate in rates.values()):
        from notifications.adapters.send_budget import DynamoBudgetStore
        from notifications.send_budget import SendBudget

        # Last: only records about to be sent take a slot of the provider's budget.
        stages.append(BudgetStage(SendBudget(DynamoBudgetStore(table), rates)))
    return stages, deferrer


def webhook_schedule(settings: SenderSettings) -> RetrySchedule:
    return RetrySchedule.parse(
        settings.webhook_retry_schedule,
        jitter=settings.backoff_jitter,
        rng=random.Random(settings.backoff_jitter_seed),
    )


def operational_events(bus_name: str | None) -> OperationalEvents | None:
    """The operational events' publisher on the stack's bus (``EVENT_BUS_NAME``); None
    without one (a bare ``sam local invoke``): the events are then only logged."""
    if not bus_name:
        return None
    from notifications.adapters.events import EventBridgePutter

    return OperationalEvents(EventBridgePutter(bus_name))


def build_sender(settings: SenderSettings | None = None) -> Sender:
    """Wire the sender from the environment, once per cold start."""
    from notifications.adapters.ledger import DynamoLedger
    from notifications.adapters.preferences import DynamoPreferencesStore
    from notifications.adapters.sqs import SqsQueues
    from notifications.adapters.transactions import DynamoTransactions
    from notifications.queues import urls_by_name
    from notifications.stages import RateLimitStage

    settings = settings or SenderSettings.from_env()
    channel_urls = [settings.queue_url(channel) for channel in Channel]
    ledger = DynamoLedger(settings.ledger_table)
    stages, deferrer = build_stages(settings, os.environ.get("AWS_LAMBDA_FUNCTION_NAME"))
    limiter = next((s.limiter for s in stages if isinstance(s, RateLimitStage)), None)
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
        concurrency=settings.sender_concurrency,
        send_timeout=settings.send_timeout_seconds,
        stages=stages,
        deferrer=deferrer,
        stale_endpoints=DynamoPreferencesStore(settings.preferences_table),
        admission=(
            BatchAdmission(
                DynamoTransactions(), ledger, limiter, limiter.store if limiter else None
            )
            if settings.batch_admission
            else None
        ),
        webhook_retry=webhook_schedule(settings),
    )
