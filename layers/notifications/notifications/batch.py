"""Partial batch responses for an SQS event source mapping.

The sender and the alarm function handle an SQS batch record by record and report the records
that failed in ``batchItemFailures`` (the mapping's ``ReportBatchItemFailures``), so SQS keeps
only those. Powertools' ``BatchProcessor`` does the same, but importing it (with its data
classes and asyncio) cost about 50 ms of each cold start of both functions for what is the loop
below (docs/performance.md, figure 3). Behaviour kept from it: a record whose handler raises is
reported failed and logged with its traceback (at warning; errors the handler expects, listed
in ``expected``, without one); the other records carry on; a batch where every record failed is
returned as such (``raise_on_entire_batch_failure=False``), not raised.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypedDict

from notifications.observability import logger


class ItemFailure(TypedDict):
    itemIdentifier: str


class PartialBatchResponse(TypedDict):
    batchItemFailures: list[ItemFailure]


@dataclass(frozen=True)
class SqsRecord:
    """One record of an SQS event, as Lambda delivers it."""

    message_id: str
    receipt_handle: str
    body: str
    event_source_arn: str
    receive_count: int = 1
    attributes: Mapping[str, str] = field(default_factory=dict)  # string message attributes

    @classmethod
    def from_event(cls, raw: Mapping[str, Any]) -> SqsRecord:
        message_attributes = raw.get("messageAttributes") or {}
        return cls(
            message_id=str(raw["messageId"]),
            receipt_handle=str(raw.get("receiptHandle", "")),
            body=str(raw.get("body") or ""),
            event_source_arn=str(raw.get("eventSourceARN", "")),
            receive_count=int((raw.get("attributes") or {}).get("ApproximateReceiveCount") or 1),
            attributes={
                name: str(value["stringValue"])
                for name, value in message_attributes.items()
                if isinstance(value, Mapping) and value.get("stringValue") is not None
            },
        )


def sqs_records(event: Mapping[str, Any]) -> list[SqsRecord]:
    """The records of an SQS event."""
    return [SqsRecord.from_event(raw) for raw in event.get("Records") or []]


def process_partially(
    records: Sequence[SqsRecord],
    handle: Callable[[SqsRecord], object],
    expected: tuple[type[Exception], ...] = (),
) -> PartialBatchResponse:
    """Run ``handle`` on every record; the ones that raised are the batch's item failures."""
    failures: list[ItemFailure] = []
    for record in records:
        try:
            handle(record)
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
    return {"batchItemFailures": failures}
