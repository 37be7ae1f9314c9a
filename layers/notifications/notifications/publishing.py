"""The typed publish client for Python producers (an EventBridge adapter).

``Publisher(bus_name, source).publish(UserRegistered(...), idempotency_key="signup-42")`` puts
one domain event on the bus; ``publish_many`` puts any number, packed into PutEvents calls of
at most ten entries and 256 KB, resending only the entries EventBridge reports as failed, and
returns one ``PublishResult`` per event, in order. The event's type is its catalog name, its
``detail`` the model as JSON (with ``schema_version`` and the idempotency key). Pass the same
key when you retry a publish whose answer you did not see: the notifications go out once
(docs/producers.md).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from notifications.adapters.aws import aws_error, client
from notifications.catalog import CATALOG
from notifications.events import DomainEvent

MAX_ENTRIES = 10  # PutEvents' limit per request
MAX_REQUEST_BYTES = 256 * 1024  # PutEvents' limit on the sum of its entries' sizes
TIME_BYTES = 14  # what an entry's Time adds to its size (AWS's size rule)
DEFAULT_TRIES = 3
BACKOFF_SECONDS = 0.1  # before the second try; doubled before each later one
# Entry error codes no resend can fix; any other failed entry is resent.
PERMANENT_ERRORS = frozenset(
    {
        "AccessDeniedException",
        "InvalidArgument",
        "MalformedDetail",
        "NotAuthorizedForSourceException",
        "ValidationException",
        "EntryTooLarge",
    }
)


class EventsApi(Protocol):
    def put_events(self, *, Entries: list[dict[str, Any]]) -> dict[str, Any]: ...


@dataclass(frozen=True)
class PublishResult:
    """One event's outcome: its EventBridge id once accepted, else the last error."""

    event_type: str
    idempotency_key: str | None
    event_id: str | None = None
    error_code: str | None = None
    error_message: str | None = None
    tries: int = 0

    @property
    def ok(self) -> bool:
        return self.event_id is not None


def event_type_of(event: DomainEvent) -> str:
    """The catalog name of ``event``'s model."""
    for entry in CATALOG.values():
        if type(event) is entry.model:
            return entry.name
    raise ValueError(f"{type(event).__name__} is not an event type of the catalog")


def entry_size(entry: dict[str, Any]) -> int:
    """An entry's size as PutEvents counts it: UTF-8 bytes of Source, DetailType, Detail and
    each resource, plus 14 when Time is set."""
    size = TIME_BYTES if entry.get("Time") is not None else 0
    for key in ("Source", "DetailType", "Detail"):
        size += len(str(entry.get(key, "")).encode())
    return size + sum(len(r.encode()) for r in entry.get("Resources", ()))


def chunks(entries: Sequence[dict[str, Any]]) -> list[list[int]]:
    """Indexes of ``entries`` grouped into requests of at most ten entries and 256 KB, in
    order. An entry over 256 KB on its own gets a request of its own (EventBridge refuses it,
    and only it)."""
    groups: list[list[int]] = []
    current: list[int] = []
    size = 0
    for index, entry in enumerate(entries):
        entry_bytes = entry_size(entry)
        if current and (len(current) == MAX_ENTRIES or size + entry_bytes > MAX_REQUEST_BYTES):
            groups.append(current)
            current, size = [], 0
        current.append(index)
        size += entry_bytes
    if current:
        groups.append(current)
    return groups


class Publisher:
    def __init__(
        self,
        bus_name: str,
        source: str,
        events: EventsApi | None = None,
        tries: int = DEFAULT_TRIES,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.bus_name = bus_name
        self.source = source
        self._events = events
        self.tries = max(tries, 1)
        self.sleep = sleep

    @property
    def events(self) -> EventsApi:
        if self._events is None:
            self._events = client("events")
        return self._events

    def publish(self, event: DomainEvent, idempotency_key: str | None = None) -> PublishResult:
        """Put one event; ``idempotency_key`` (1-255 characters) replaces the event's own."""
        if idempotency_key is not None:
            event = event.model_validate({**event.model_dump(), "idempotency_key": idempotency_key})
        return self.publish_many([event])[0]

    def publish_many(self, events: Sequence[DomainEvent]) -> list[PublishResult]:
        """Put every event (each with its own ``idempotency_key``, if any); one result each."""
        entries = [self.entry(event) for event in events]
        results: dict[int, PublishResult] = {}
        pending = list(range(len(entries)))
        for attempt in range(1, self.tries + 1):
            if attempt > 1:
                self.sleep(BACKOFF_SECONDS * 2 ** (attempt - 2))
            for group in chunks([entries[i] for i in pending]):
                indexes = [pending[g] for g in group]
                answers = self._put([entries[i] for i in indexes])
                for index, answer in zip(indexes, answers, strict=True):
                    results[index] = PublishResult(
                        event_type=entries[index]["DetailType"],
                        idempotency_key=events[index].idempotency_key,
                        event_id=answer.get("EventId"),
                        error_code=answer.get("ErrorCode"),
                        error_message=answer.get("ErrorMessage"),
                        tries=attempt,
                    )
            pending = [
                i
                for i in pending
                if not results[i].ok and results[i].error_code not in PERMANENT_ERRORS
            ]
            if not pending:
                break
        return [results[i] for i in range(len(entries))]

    def entry(self, event: DomainEvent) -> dict[str, Any]:
        return {
            "Source": self.source,
            "DetailType": event_type_of(event),
            "Detail": event.model_dump_json(exclude_none=True),
            "EventBusName": self.bus_name,
        }

    def _put(self, entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """One PutEvents: an answer per entry. A request refused as a whole answers each of
        its entries with the error (an entry too large for any request: EntryTooLarge)."""
        if len(entries) == 1 and entry_size(entries[0]) > MAX_REQUEST_BYTES:
            size = entry_size(entries[0])
            message = f"the entry is {size} bytes; PutEvents takes at most {MAX_REQUEST_BYTES}"
            return [{"ErrorCode": "EntryTooLarge", "ErrorMessage": message}]
        try:
            response = self.events.put_events(Entries=entries)
        except Exception as exc:
            refused = aws_error(exc)  # a request refused as a whole; anything else propagates
            if refused is None:
                raise
            code, message = refused
            return [{"ErrorCode": code, "ErrorMessage": message}] * len(entries)
        answers: list[dict[str, Any]] = response.get("Entries", [])
        if len(answers) != len(entries):
            raise RuntimeError(f"PutEvents answered {len(answers)} entries for {len(entries)} sent")
        return answers
