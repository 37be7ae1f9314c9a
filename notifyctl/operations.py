"""Dead-letter management: the notification dead-letter store (ledger) and EventsDLQ."""

from __future__ import annotations

import getpass
import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import msgspec
from botocore.exceptions import BotoCoreError, ClientError

from notifications.adapters.ledger import DynamoLedger
from notifications.adapters.sqs import SqsQueues
from notifications.errors import RetryableError
from notifications.models import NotificationRequested, NotificationStatus
from notifications.registry import CHANNELS
from notifyctl.dead_letter_queues import describe_events_dlq_message, fan_out_max_receives
from notifyctl.errors import OperationError
from notifyctl.ids import resolve_all
from notifyctl.target import StackTarget

QUEUE_OUTPUTS = {channel: spec.queue_url_output for channel, spec in CHANNELS.items()}
RECEIVE_VISIBILITY = 30  # seconds an EventsDLQ message stays hidden while an operator reads it


def operator() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no user database entry (containers)
        return "unknown"


@dataclass(frozen=True)
class RedriveResult:
    notification_id: str
    ok: bool
    detail: str


class DeadLetters:
    """The dead-letter store: DEAD_LETTERED records in the ledger."""

    def __init__(self, target: StackTarget) -> None:
        self.target = target
        self.ledger = DynamoLedger(target.output("LedgerTableName"))

    def list(
        self,
        channel: str | None = None,
        reason: str | None = None,
        since: datetime | None = None,
    ) -> Iterator[dict[str, Any]]:
        for record in self.ledger.by_status(NotificationStatus.DEAD_LETTERED.value, since):
            if channel and record.get("channel") != channel:
                continue
            if reason and record.get("dead_letter_reason") != reason:
                continue
            yield record

    def show(self, notification_id: str) -> dict[str, Any] | None:
        return self.ledger.get(notification_id)

    def redrive(self, notification_id: str) -> RedriveResult:
        """Back onto its channel queue with the same id (idempotency holds) and a fresh
        attempt budget; the record becomes REDRIVEN."""
        record = self.ledger.get(notification_id)
        if record is None:
            return RedriveResult(notification_id, False, "no such notification")
        try:
            request = NotificationRequested.model_validate_json(record.get("payload", ""))
        except (msgspec.ValidationError, msgspec.DecodeError):
            return RedriveResult(
                notification_id, False, "payload is not a notification request; purge it instead"
            )
        now, who = datetime.now(UTC), operator()
        if not self.ledger.mark_redriven(notification_id, now, who):
            return RedriveResult(notification_id, False, f"status is {record.get('status')}")
        redriven = request.model_copy(update={"redrive_count": request.redrive_count + 1})
        queue_url = self.target.output(QUEUE_OUTPUTS[request.channel])
        try:
            SqsQueues().enqueue(queue_url, [redriven])
        except (ClientError, BotoCoreError, RetryableError, ValueError) as exc:
            self.ledger.undo_redrive(notification_id, datetime.now(UTC), who, str(exc))
            return RedriveResult(notification_id, False, f"enqueue failed: {exc}")
        return RedriveResult(notification_id, True, f"re-enqueued on {request.channel.value}")

    def purge(self, notification_id: str) -> bool:
        return self.ledger.mark_purged(notification_id, datetime.now(UTC), operator())


class EventsDeadLetters:
    """EventsDLQ: domain events that could not be fanned out."""

    def __init__(self, target: StackTarget) -> None:
        self.target = target
        self.sqs = target.client("sqs")
        self.url = target.output("EventsDLQUrl")
        self._max_receives: int | None = None

    def _describe(self, message: dict[str, Any]) -> dict[str, Any]:
        if self._max_receives is None:
            self._max_receives = fan_out_max_receives(
                self.sqs, self.target.outputs.get("FanOutQueueUrl")
            )
        return describe_events_dlq_message(message, self._max_receives)

    def _receive_all(self) -> list[dict[str, Any]]:
        """Every message, hidden for a moment while read (SQS has no peek beyond ten)."""
        messages: list[dict[str, Any]] = []
        while batch := self.sqs.receive_message(
            QueueUrl=self.url,
            MaxNumberOfMessages=10,
            VisibilityTimeout=RECEIVE_VISIBILITY,
            AttributeNames=["All"],
            MessageAttributeNames=["All"],
        ).get("Messages", []):
            messages.extend(batch)
        return messages

    def _release(self, messages: list[dict[str, Any]]) -> None:
        for message in messages:
            self.sqs.change_message_visibility(
                QueueUrl=self.url, ReceiptHandle=message["ReceiptHandle"], VisibilityTimeout=0
            )

    def list(self) -> list[dict[str, Any]]:
        messages = self._receive_all()
        self._release(messages)
        return [self._describe(m) for m in messages]

    def _chosen(
        self, messages: list[dict[str, Any]], message_ids: Iterable[str] | None
    ) -> set[str] | None:
        """The message ids (or unique 8+ character prefixes) given, resolved against the
        messages received; an unknown one releases them all and raises ``OperationError``."""
        if message_ids is None:
            return None
        try:
            known = (str(m["MessageId"]) for m in messages)
            return set(resolve_all(message_ids, known, "EventsDLQ message"))
        except OperationError:
            self._release(messages)
            raise

    def replay(self, message_ids: Iterable[str] | None = None) -> list[dict[str, Any]]:
        """Put the chosen events (all when ``message_ids`` is None) back on the bus as they
        were, and delete them from EventsDLQ once EventBridge accepted them."""
        bus = self.target.output("EventBusName")
        events = self.target.client("events")
        messages = self._receive_all()
        message_ids = self._chosen(messages, message_ids)
        results, keep = [], []
        for message in messages:
            entry = self._describe(message)
            if message_ids is not None and entry["message_id"] not in message_ids:
                keep.append(message)
                continue
            event = entry["event"]
            if not isinstance(event, dict) or "detail-type" not in event:
                keep.append(message)
                results.append({**entry, "replayed": False, "why": "no event to replay"})
                continue
            response = events.put_events(
                Entries=[
                    {
                        "Source": str(event.get("source", "")),
                        "DetailType": str(event["detail-type"]),
                        "Detail": json.dumps(event.get("detail", {})),
                        "EventBusName": bus,
                    }
                ]
            )
            if response.get("FailedEntryCount"):
                keep.append(message)
                results.append({**entry, "replayed": False, "why": str(response["Entries"][0])})
                continue
            self.sqs.delete_message(QueueUrl=self.url, ReceiptHandle=message["ReceiptHandle"])
            results.append({**entry, "replayed": True})
        self._release(keep)
        return results

    def purge(self, message_ids: Iterable[str] | None = None) -> int:
        """Delete the chosen events, each leaving an audit record in the ledger."""
        ledger = DynamoLedger(self.target.output("LedgerTableName"))
        messages = self._receive_all()
        message_ids = self._chosen(messages, message_ids)
        purged, keep = 0, []
        for message in messages:
            if message_ids is None or message["MessageId"] in message_ids:
                entry = self._describe(message)
                ledger.record_event_purge(entry, datetime.now(UTC), operator())
                self.sqs.delete_message(QueueUrl=self.url, ReceiptHandle=message["ReceiptHandle"])
                purged += 1
            else:
                keep.append(message)
        self._release(keep)
        return purged
