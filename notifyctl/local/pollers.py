"""In-process pollers: the SQS event source mapping, and async invocation through a tap queue."""

from __future__ import annotations

import base64
import json
import logging
import uuid
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Protocol, cast

from botocore.exceptions import ClientError

from notifyctl.local.aws import AwsClients
from notifyctl.local.clock import Clock
from notifyctl.local.functions import Function, Invocation

log = logging.getLogger(__name__)

SQS_RECEIVE_LIMIT = 10
DEFAULT_ASYNC_RETRIES = 2
# Without ScalingConfig AWS scales an SQS mapping up to the function's reserved (or the
# account's) concurrency; locally such a mapping runs at most 5 invocations at once (the
# template's MaxConcurrencyPerChannel default), so a laptop is not flooded with processes.
DEFAULT_MAXIMUM_CONCURRENCY = 5


class Poller(Protocol):
    """One source of invocations; `poll_once` handles what is ready now."""

    queue_url: str
    queue_name: str

    @property
    def active(self) -> bool:
        """Whether this poller currently consumes its queue (a disabled mapping does not)."""
        ...

    def poll_once(self) -> int:
        """Receive and process what is ready now; return how many records were handled."""
        ...

    def close(self) -> None:
        """Release the threads it holds."""
        ...


def queue_name_from_arn(arn: str) -> str:
    return arn.split(":")[5]


def queue_url_from_arn(clients: AwsClients, arn: str) -> str:
    parts = arn.split(":")
    return clients.sqs.get_queue_url(QueueName=parts[5], QueueOwnerAWSAccountId=parts[4])[
        "QueueUrl"
    ]


def _message_attributes(raw: dict[str, Any]) -> dict[str, Any]:
    """SQS MessageAttributes in the camelCase shape Lambda puts in the event."""
    converted: dict[str, Any] = {}
    for name, value in raw.items():
        attribute: dict[str, Any] = {
            "stringListValues": value.get("StringListValues", []),
            "binaryListValues": value.get("BinaryListValues", []),
            "dataType": value["DataType"],
        }
        if "StringValue" in value:
            attribute["stringValue"] = value["StringValue"]
        if "BinaryValue" in value:
            attribute["binaryValue"] = base64.b64encode(value["BinaryValue"]).decode()
        converted[name] = attribute
    return converted


def sqs_event_record(message: dict[str, Any], queue_arn: str, region: str) -> dict[str, Any]:
    """One Records[] entry of the event Lambda sends for an SQS event source mapping."""
    return {
        "messageId": message["MessageId"],
        "receiptHandle": message["ReceiptHandle"],
        "body": message["Body"],
        "attributes": dict(message.get("Attributes", {})),
        "messageAttributes": _message_attributes(message.get("MessageAttributes", {})),
        "md5OfMessageAttributes": message.get("MD5OfMessageAttributes"),
        "md5OfBody": message["MD5OfBody"],
        "eventSource": "aws:sqs",
        "eventSourceARN": queue_arn,
        "awsRegion": region,
    }


def failed_item_ids(result: Any, batch_ids: set[str]) -> set[str] | None:
    """Ids reported in `batchItemFailures`, or None if the response is malformed.

    As in AWS: a missing/null/empty list means all succeeded; an entry without a valid
    `itemIdentifier` from this batch makes Lambda treat the whole batch as failed.
    """
    if result is None:
        return set()
    if not isinstance(result, dict):
        return set()
    failures = result.get("batchItemFailures")
    if failures is None:
        return set()
    if not isinstance(failures, list):
        return None
    ids: set[str] = set()
    for failure in failures:
        item_id = failure.get("itemIdentifier") if isinstance(failure, dict) else None
        if not isinstance(item_id, str) or item_id not in batch_ids:
            return None
        ids.add(item_id)
    return ids


@dataclass(frozen=True)
class MappingState:
    enabled: bool
    batch_size: int
    batching_window_seconds: int
    report_batch_item_failures: bool
    maximum_concurrency: int = 1


class SqsEventSourcePoller:
    """What Lambda's SQS poller does for one event source mapping.

    The mapping's state is read from the Lambda API on every round, so enabling, disabling or
    resizing it while the runtime runs takes effect on the next round.

    Each round takes up to `ScalingConfig.MaximumConcurrency` batches (capped by the runtime's
    `concurrency`) and invokes them at once, one invocation per batch, as Lambda's pollers
    do; the round ends when all of them have returned.
    """

    def __init__(
        self,
        mapping_uuid: str,
        queue_arn: str,
        function: Function,
        clients: AwsClients,
        concurrency: int | None = None,
    ) -> None:
        self.mapping_uuid = mapping_uuid
        self.queue_arn = queue_arn
        self.queue_name = queue_name_from_arn(queue_arn)
        self.queue_url = queue_url_from_arn(clients, queue_arn)
        self.function = function
        self._clients = clients
        self._concurrency_cap = concurrency
        self._executor: ThreadPoolExecutor | None = None
        self._executor_size = 0
        self.invocations: list[Invocation] = []

    def state(self) -> MappingState:
        mapping = self._clients.lambda_.get_event_source_mapping(UUID=self.mapping_uuid)
        scaling = mapping.get("ScalingConfig") or {}
        maximum = int(scaling.get("MaximumConcurrency") or DEFAULT_MAXIMUM_CONCURRENCY)
        if self._concurrency_cap is not None:
            maximum = min(maximum, self._concurrency_cap)
        return MappingState(
            enabled=mapping.get("State") in ("Enabled", "Enabling", "Updating"),
            batch_size=int(mapping.get("BatchSize") or 10),
            batching_window_seconds=int(mapping.get("MaximumBatchingWindowInSeconds") or 0),
            report_batch_item_failures="ReportBatchItemFailures"
            in (mapping.get("FunctionResponseTypes") or []),
            maximum_concurrency=max(1, maximum),
        )

    @property
    def active(self) -> bool:
        return self.state().enabled

    def _receive_batch(self, batch_size: int) -> list[dict[str, Any]]:
        # The batching window is honoured by gathering everything visible now, up to BatchSize,
        # without waiting: in-process, nothing else can send while the poller waits.
        messages: list[dict[str, Any]] = []
        while len(messages) < batch_size:
            response = self._clients.sqs.receive_message(
                QueueUrl=self.queue_url,
                MaxNumberOfMessages=min(SQS_RECEIVE_LIMIT, batch_size - len(messages)),
                WaitTimeSeconds=0,
                AttributeNames=["All"],
                MessageAttributeNames=["All"],
            )
            received = cast(list[dict[str, Any]], response.get("Messages", []))
            if not received:
                break
            messages.extend(received)
        return messages

    def poll_once(self) -> int:
        state = self.state()
        if not state.enabled:
            return 0
        batches: list[list[dict[str, Any]]] = []
        while len(batches) < state.maximum_concurrency:
            messages = self._receive_batch(state.batch_size)
            if not messages:
                break
            batches.append(messages)
        if len(batches) <= 1:
            return sum(self._invoke(state, batch) for batch in batches)
        if self._executor is None or self._executor_size != state.maximum_concurrency:
            self.close()
            self._executor_size = state.maximum_concurrency
            self._executor = ThreadPoolExecutor(
                max_workers=state.maximum_concurrency,
                thread_name_prefix=f"poller-{self.queue_name}",
            )
        return sum(self._executor.map(lambda batch: self._invoke(state, batch), batches))

    def close(self) -> None:
        if self._executor is not None:
            self._executor.shutdown(wait=True)
            self._executor = None

    def _invoke(self, state: MappingState, messages: list[dict[str, Any]]) -> int:
        region = self._clients.region
        event = {"Records": [sqs_event_record(m, self.queue_arn, region) for m in messages]}
        invocation = self.function.invoke(event)
        self.invocations.append(invocation)
        if not invocation.ok:
            # The whole batch returns to the queue when its visibility timeout runs out.
            return len(messages)
        failed: set[str] | None = set()
        if state.report_batch_item_failures:
            failed = failed_item_ids(invocation.result, {m["MessageId"] for m in messages})
        if failed is None:
            log.warning(
                "malformed batchItemFailures; whole batch failed",
                extra={"function": self.function.spec.logical_id},
            )
            return len(messages)
        to_delete = [m for m in messages if m["MessageId"] not in failed]
        for start in range(0, len(to_delete), SQS_RECEIVE_LIMIT):
            chunk = to_delete[start : start + SQS_RECEIVE_LIMIT]
            self._clients.sqs.delete_message_batch(
                QueueUrl=self.queue_url,
                Entries=[
                    {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(chunk)
                ],
            )
        return len(messages)


@dataclass(frozen=True)
class AsyncInvokeConfig:
    maximum_retry_attempts: int
    on_failure_destination: str | None


def failure_destination_record(
    invocation: Invocation,
    function_arn: str,
    event: Any,
    invoke_count: int,
    timestamp: datetime,
) -> dict[str, Any]:
    """The record Lambda sends to an OnFailure destination after an async invocation failed."""
    error = invocation.error
    return {
        "version": "1.0",
        "timestamp": timestamp.strftime("%Y-%m-%dT%H:%M:%S.")
        + f"{timestamp.microsecond // 1000:03d}Z",
        "requestContext": {
            "requestId": invocation.request_id,
            "functionArn": f"{function_arn}:$LATEST",
            "condition": "RetriesExhausted",
            "approximateInvokeCount": invoke_count,
        },
        "requestPayload": event,
        "responseContext": {
            "statusCode": 200,
            "executedVersion": "$LATEST",
            "functionError": "Unhandled",
        },
        "responsePayload": error.as_payload(invocation.request_id) if error else None,
    }


class AsyncInvokePoller:
    """Async (Event) invocation of a function, fed by the tap queue of an EventBridge target.

    Each event is one invocation. On error the event stays in the tap queue and comes back
    after the next retry delay (`ApproximateReceiveCount` counts attempts); once the function's
    MaximumRetryAttempts are used up, the invocation record goes to its OnFailure destination.
    """

    def __init__(
        self,
        queue_url: str,
        function: Function,
        clients: AwsClients,
        clock: Clock,
        retry_delays: Sequence[float],
        rule_name: str = "",
        account_id: str = "",
        static_input: str | None = None,
        rule_arn: str = "",
        dead_letter_arn: str | None = None,
    ) -> None:
        self.queue_url = queue_url
        self.queue_name = queue_url.rstrip("/").rsplit("/", 1)[-1]
        self.function = function
        self.rule_name = rule_name
        self._account_id = account_id
        self._static_input = static_input
        self._rule_arn = rule_arn
        self._dead_letter_arn = dead_letter_arn
        self._clients = clients
        self._clock = clock
        self._retry_delays = tuple(retry_delays) or (0.0,)
        self.invocations: list[Invocation] = []
        self.failures_sent: list[dict[str, Any]] = []
        self.undeliverable: list[str] = []

    @property
    def active(self) -> bool:
        return True

    def close(self) -> None:
        """Nothing to release: one event at a time, in the round's thread."""

    def config(self) -> AsyncInvokeConfig:
        try:
            response = self._clients.lambda_.get_function_event_invoke_config(
                FunctionName=self.function.spec.name
            )
        except ClientError:
            return AsyncInvokeConfig(DEFAULT_ASYNC_RETRIES, None)
        retries = response.get("MaximumRetryAttempts")
        destination = response.get("DestinationConfig", {}).get("OnFailure", {}).get("Destination")
        return AsyncInvokeConfig(
            DEFAULT_ASYNC_RETRIES if retries is None else int(retries), destination or None
        )

    def poll_once(self) -> int:
        response = self._clients.sqs.receive_message(
            QueueUrl=self.queue_url,
            MaxNumberOfMessages=SQS_RECEIVE_LIMIT,
            WaitTimeSeconds=0,
            AttributeNames=["All"],
        )
        messages = cast(list[dict[str, Any]], response.get("Messages", []))
        for message in messages:
            self._handle(message)
        return len(messages)

    def _handle(self, message: dict[str, Any]) -> None:
        event = self._event(message["Body"])
        if not self._function_exists():
            self._undeliverable(message, event)
            return
        attempt = int(message["Attributes"]["ApproximateReceiveCount"])
        request_id = str(uuid.uuid5(uuid.NAMESPACE_URL, message["MessageId"]))
        invocation = self.function.invoke(event, request_id=request_id)
        self.invocations.append(invocation)
        if invocation.ok:
            self._delete(message)
            return
        config = self.config()
        if attempt <= config.maximum_retry_attempts:
            delay = self._retry_delays[min(attempt - 1, len(self._retry_delays) - 1)]
            self._clients.sqs.change_message_visibility(
                QueueUrl=self.queue_url,
                ReceiptHandle=message["ReceiptHandle"],
                VisibilityTimeout=max(0, round(delay)),
            )
            return
        if config.on_failure_destination:
            record = failure_destination_record(
                invocation,
                self.function.spec.arn,
                event,
                attempt,
                datetime.fromtimestamp(self._clock.now(), tz=timezone.utc),
            )
            self._send(config.on_failure_destination, record)
            self.failures_sent.append(record)
        else:
            log.warning(
                "async invocation failed, no OnFailure destination: event dropped",
                extra={"function": self.function.spec.logical_id},
            )
        self._delete(message)

    def _function_exists(self) -> bool:
        try:
            self._clients.lambda_.get_function(FunctionName=self.function.spec.name)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") == "ResourceNotFoundException":
                return False
            raise
        return True

    def _undeliverable(self, message: dict[str, Any], event: Any) -> None:
        """EventBridge could not deliver to the function: it no longer exists.

        AWS does not retry that (RetryPolicy is for retryable errors) and sends the event to
        the target's DeadLetterConfig queue at once, with the reason in message attributes;
        without one the event is dropped.
        """
        self.undeliverable.append(message["MessageId"])
        if self._dead_letter_arn:
            reason = f"Function not found: {self.function.spec.arn}"
            attributes = {
                "RULE_ARN": self._rule_arn,
                "TARGET_ARN": self.function.spec.arn,
                "ERROR_CODE": "ResourceNotFoundException",
                "ERROR_MESSAGE": reason,
                "RETRY_ATTEMPTS": "0",
            }
            self._clients.sqs.send_message(
                QueueUrl=queue_url_from_arn(self._clients, self._dead_letter_arn),
                MessageBody=json.dumps(event),
                MessageAttributes={
                    name: {"DataType": "String", "StringValue": value}
                    for name, value in attributes.items()
                    if value
                },
            )
        else:
            log.warning(
                "event undeliverable (function not found), no DeadLetterConfig: event dropped",
                extra={"rule": self.rule_name},
            )
        self._delete(message)

    def _event(self, body: str) -> Any:
        """The event as EventBridge would hand it to the function.

        moto ignores a target's constant `Input` and drops `account` from the default event
        shape; both are restored here.
        """
        if self._static_input is not None:
            return json.loads(self._static_input)
        event = json.loads(body)
        if isinstance(event, dict) and "detail-type" in event and "account" not in event:
            keys = ("version", "id", "detail-type", "source", "account", "time", "region")
            restored = {key: event.get(key) for key in keys}
            restored["account"] = self._account_id
            restored.update({k: v for k, v in event.items() if k not in restored})
            return restored
        return event

    def _send(self, destination: str, record: dict[str, Any]) -> None:
        service = destination.split(":")[2]
        body = json.dumps(record)
        if service == "sqs":
            self._clients.sqs.send_message(
                QueueUrl=queue_url_from_arn(self._clients, destination), MessageBody=body
            )
        elif service == "sns":
            self._clients.sns.publish(TopicArn=destination, Message=body)
        elif service == "events":
            self._clients.events.put_events(
                Entries=[
                    {
                        "Source": "lambda",
                        "DetailType": "Lambda Function Invocation Result - Failure",
                        "Detail": body,
                        "EventBusName": destination,
                    }
                ]
            )
        else:
            raise NotImplementedError(f"OnFailure destination not emulated: {destination}")

    def _delete(self, message: dict[str, Any]) -> None:
        self._clients.sqs.delete_message(
            QueueUrl=self.queue_url, ReceiptHandle=message["ReceiptHandle"]
        )
