"""The one way a function handles an SQS batch: per-batch work, partial batch responses.

The fan-out, the sender and the alarm function each build a ``BatchWork`` per batch (the
batch's state lives there, not on the object built once per cold start) and hand it to
``run_batch``: ``prepare`` sees every record first (the fan-out plans and enqueues the whole
batch, the sender admits its first attempts in one transaction), ``handle`` settles one record
(False, or an exception: SQS must offer it again), ``finish`` runs once at the end (metrics,
the alarm's one alert). The records that were not settled are reported in
``batchItemFailures`` (the mapping's ``ReportBatchItemFailures``), so SQS keeps only those.
Powertools' ``BatchProcessor`` does the same, but importing it (with its data
classes and asyncio) cost about 50 ms of each cold start of both functions for what is the loop
below (docs/performance.md, figure 3). Behaviour kept from it: a record whose handler raises is
reported failed and logged with its traceback (at warning; errors the handler expects, listed
in ``expected``, without one); the other records carry on; a batch where every record failed is
returned as such (``raise_on_entire_batch_failure=False``), not raised.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol, TypedDict

import msgspec

from notifications.observability import logger


class ItemFailure(TypedDict):
    itemIdentifier: str


class PartialBatchResponse(TypedDict):
    batchItemFailures: list[ItemFailure]


class SqsRecord(msgspec.Struct, frozen=True):
    """One record of an SQS event, as Lambda delivers it."""

    message_id: str
    receipt_handle: str
    body: str
    event_source_arn: str
    receive_count: int = 1
    attributes: Mapping[str, str] = msgspec.field(default_factory=dict)  # string message attributes

    @classmethod
    def from_event(cls, raw: Mapping[str, Any]) -> SqsRecord:
        message_attributes = raw.get("messageAttributes") or {}
        return cls(
            message_id=str(raw["messageId"]),
            receipt_handle=str(raw.get("receiptHandle", "")),
            body=_body(raw.get("body")),
            event_source_arn=str(raw.get("eventSourceARN", "")),
            receive_count=_receive_count(raw),
            attributes={
                name: str(value["stringValue"])
                for name, value in message_attributes.items()
                if isinstance(value, Mapping) and value.get("stringValue") is not None
            },
        )


def _body(body: object) -> str:
    if isinstance(body, str):
        return body
    return "" if body is None else json.dumps(body, default=str)


def _receive_count(raw: Mapping[str, Any]) -> int:
    attributes = raw.get("attributes")
    count = attributes.get("ApproximateReceiveCount") if isinstance(attributes, Mapping) else None
    try:
        return max(int(count), 1) if count is not None else 1
    except (TypeError, ValueError):
        return 1


def sqs_records(event: Mapping[str, Any]) -> list[SqsRecord]:
    """The records of an SQS event."""
    return [SqsRecord.from_event(raw) for raw in event.get("Records") or []]


class BatchWork(Protocol):
    """One batch's state and hooks."""

    def prepare(self, records: Sequence[SqsRecord]) -> None: ...

    def handle(self, record: SqsRecord) -> bool:
        """True when the record is settled; False when SQS must offer it again."""
        ...

    def finish(self) -> None: ...


def run_batch(event: Mapping[str, Any], work: BatchWork) -> PartialBatchResponse:
    """Prepare, handle each record, finish: the batch's partial batch response."""
    records = sqs_records(event)
    try:
        work.prepare(records)
        return process_partially(records, work.handle)
    finally:
        work.finish()


def process_partially(
    records: Sequence[SqsRecord],
    handle: Callable[[SqsRecord], object],
    expected: tuple[type[Exception], ...] = (),
) -> PartialBatchResponse:
    """Run ``handle`` on every record; the ones that raised or answered False are the
    batch's item failures."""
    failures: list[ItemFailure] = []
    for record in records:
        try:
            settled = handle(record)
        except expected as exc:
            logger.info(
                "record left for a retry",
                extra={"message_id": record.message_id, "why": str(exc)[:300]},
            )
            failures.append({"itemIdentifier": record.message_id})
        except Exception:  # noqa: BLE001 - reported to SQS, which redelivers it; logged here
            logger.warning(
                "record processing failed; left for a retry",
                extra={"message_id": record.message_id},
                exc_info=True,
            )
            failures.append({"itemIdentifier": record.message_id})
        else:
            if settled is False:
                logger.info("record left for a retry", extra={"message_id": record.message_id})
                failures.append({"itemIdentifier": record.message_id})
    return {"batchItemFailures": failures}
