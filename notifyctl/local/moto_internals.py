"""The two places the runtime reaches into moto's in-process state.

moto (5.x) runs the Lambda behind an SQS event source mapping itself on every SendMessage
(needing Docker, ignoring `batchItemFailures`, and making failed messages visible again). The
mapping stays registered in two places: moto's Lambda backend (what the Lambda API reads) and
each queue's `lambda_event_source_mappings` (what SendMessage triggers). Clearing the latter
stops moto's invocation while `get/update_event_source_mapping` keep working.

Both work in-process (`mock_aws`) and with `ThreadedMotoServer`, which serves the same
process-global backends from a thread.
"""

from __future__ import annotations

from typing import Any

from moto.backends import get_backend


def _sqs_backend(account_id: str, region: str) -> Any:
    return get_backend("sqs")[account_id][region]


def detach_sqs_event_source_mappings(account_id: str, region: str) -> int:
    """Stop moto from invoking Lambda on SendMessage, for every queue. Returns how many."""
    detached = 0
    for queue in _sqs_backend(account_id, region).queues.values():
        mappings = getattr(queue, "lambda_event_source_mappings", None)
        if mappings:
            detached += len(mappings)
            mappings.clear()
    return detached


def next_visibility_change(account_id: str, region: str, queue_names: list[str]) -> float | None:
    """Epoch seconds at which the next in-flight or delayed message becomes visible, if any."""
    backend = _sqs_backend(account_id, region)
    wakeups: list[float] = []
    for name in queue_names:
        queue = backend.queues.get(name)
        if queue is None:
            continue
        for message in list(queue._messages):
            if not message.visible:
                wakeups.append(float(message.visible_at) / 1000)
            if message.delayed:
                wakeups.append(float(message.delayed_until) / 1000)
    return min(wakeups) if wakeups else None


def patch_event_bus_ref() -> None:
    """Make `Ref` to an AWS::Events::EventBus give its name, as in AWS.

    moto 5.2's EventBus model has no `physical_resource_id`, so `!Ref Bus` resolves to the model
    object and a rule's `EventBusName: !Ref Bus` fails to create. Idempotent.
    """
    from moto.events.models import EventBus

    if not hasattr(EventBus, "physical_resource_id"):
        EventBus.physical_resource_id = property(lambda self: self.name)  # type: ignore[attr-defined]


def patch_transactions_item_level_rollback() -> None:
    """Make moto's `TransactWriteItems` back up the items it names, not whole tables.

    moto 5.2 deep-copies every table a transaction touches (once per action) before applying
    it, and rolls a cancelled one back by swapping in the copies. That is quadratic in the
    table's size (the sender's batch admission, `notifications/admission.py`, runs one per
    batch against the ledger) and the swapped-out tables stayed alive: gigabytes over the
    2,000-notification chaos test. Here the items the transaction names are copied before it
    runs and put back if it is cancelled or refused; moto's own copy is made a no-op for tables
    while it runs. What DynamoDB does is unchanged: all or nothing, same errors. Idempotent.
    """
    import copy

    import moto.dynamodb.models as models
    from moto.dynamodb.models import DynamoDBBackend
    from moto.dynamodb.models.dynamo_type import DynamoType
    from moto.dynamodb.models.table import Table

    original = DynamoDBBackend.transact_write_items
    if getattr(original, "item_level_rollback", False):
        return

    class KeepTables:
        """`copy` for moto's module while a transaction runs: tables are not copied."""

        @staticmethod
        def deepcopy(value: Any, memo: Any = None) -> Any:
            return value if isinstance(value, Table) else copy.deepcopy(value, memo)

    def named_items(backend: Any, transact_items: list[dict[str, Any]]) -> list[Any]:
        saved = []
        for action in transact_items:
            op = next(iter(action.values()))
            table = backend.tables.get(op.get("TableName"))
            if table is None:
                continue
            key = op.get("Key") or op.get("Item") or {}
            if table.hash_key_attr not in key:
                continue
            hash_value = DynamoType(key[table.hash_key_attr])
            range_value = None
            if table.range_key_attr:
                if table.range_key_attr not in key:
                    continue
                range_value = DynamoType(key[table.range_key_attr])
            item = table.get_item(hash_value, range_value)
            saved.append((table, hash_value, range_value, copy.deepcopy(item)))
        return saved

    def put_back(saved: list[Any]) -> None:
        for table, hash_value, range_value, item in reversed(saved):
            if range_value is None:
                if item is None:
                    table.items.pop(hash_value, None)
                else:
                    table.items[hash_value] = item
            elif item is None:
                table.items[hash_value].pop(range_value, None)
            else:
                table.items[hash_value][range_value] = item

    def transact_write_items(self: Any, transact_items: list[dict[str, Any]]) -> None:
        saved = named_items(self, transact_items)
        models.copy = KeepTables  # type: ignore[assignment]
        try:
            original(self, transact_items)
        except Exception:
            put_back(saved)
            raise
        finally:
            models.copy = copy

    transact_write_items.item_level_rollback = True  # type: ignore[attr-defined]
    DynamoDBBackend.transact_write_items = transact_write_items  # type: ignore[method-assign]


# -- concurrency: one request at a time per service backend --------------------------------------

_SERIALIZED = "_notifyctl_serialized"
_JSON_FIRST = "_notifyctl_json_first"


def patch_template_parsing() -> None:
    """Let moto's CloudFormation read a JSON template body as JSON. Idempotent.

    moto parses every template with PyYAML's pure-Python loader first (JSON is YAML) and falls
    back to JSON on a YAML error. The local runtime always sends JSON (the translated template),
    and the YAML parse of it took seconds of each deploy; the result is the same document.
    A body that is not JSON still goes through moto's own parser."""
    import json

    from moto.cloudformation.models import ChangeSet, Stack

    if getattr(Stack, _JSON_FIRST, False):
        return
    yaml_first = Stack.parse_template

    def parse_template(template: str) -> dict[str, Any]:
        try:
            document = json.loads(template)
        except ValueError:
            return yaml_first(template)  # type: ignore[no-any-return]
        return document if isinstance(document, dict) else yaml_first(template)  # type: ignore[no-any-return]

    def change_set_parse(self: Any) -> None:
        self.template_dict = parse_template(self.template)

    Stack.parse_template = staticmethod(parse_template)  # type: ignore[method-assign, assignment]
    ChangeSet._parse_template = change_set_parse  # type: ignore[method-assign]
    setattr(Stack, _JSON_FIRST, True)


_RETENTION_DIRECT = "_notifyctl_retention_direct"


def patch_sqs_retention_check() -> None:
    """Make moto's ReceiveMessage linear, not quadratic, in the queue's depth. Idempotent.

    For every message it hands out, moto checks the retention period through
    `get_queue_attributes`, which builds *all* of the queue's attributes, the approximate
    message counts included: a walk over every message. A receive from a queue holding n
    messages cost O(10 n), and draining it O(n^2): 94% of the moto server's time in a
    10,000-email burst (`bench/drain.py`), under the SQS lock every other call waits on. The
    check reads the queue's retention period directly; what it decides is the same."""
    from moto.core.utils import unix_time
    from moto.sqs.models import SQSBackend

    if getattr(SQSBackend, _RETENTION_DIRECT, False):
        return

    def is_message_valid_based_on_retention_period(
        self: Any, queue_name: str, message: Any
    ) -> bool:
        retention = int(self.get_queue(queue_name).message_retention_period)
        return bool(retention + message.sent_timestamp / 1000 > unix_time())

    SQSBackend.is_message_valid_based_on_retention_period = (  # type: ignore[method-assign]
        is_message_valid_based_on_retention_period
    )
    setattr(SQSBackend, _RETENTION_DIRECT, True)


def serialize_backends() -> None:
    """Make moto's DynamoDB and SQS safe under concurrent requests. Idempotent.

    moto server answers each request in its own thread and moto's backends do not lock: two
    conditional writes on one item can both pass their check before either writes, a
    transaction can interleave with another's writes, and two receives can hand out the same
    message. Every public method of `DynamoDBBackend` and of `SQSBackend` runs under one lock
    per service, so a conditional write is check-and-set, a transaction is all-or-nothing to
    every other request, and a receive is atomic, as in AWS. A long poll
    (`WaitTimeSeconds` > 0) retries short receives, releasing the lock in between, so that
    senders are not blocked while it waits.
    """
    import threading
    import time

    from moto.dynamodb.models import DynamoDBBackend
    from moto.sqs.models import SQSBackend

    for backend_class in (DynamoDBBackend, SQSBackend):
        if getattr(backend_class, _SERIALIZED, False):
            continue
        lock = threading.RLock()
        for name, member in list(vars(backend_class).items()):
            if name.startswith("_") or not callable(member) or isinstance(member, type):
                continue
            setattr(backend_class, name, _locked(member, lock))
        setattr(backend_class, _SERIALIZED, True)

    receive = SQSBackend.receive_message
    sqs_lock: Any = getattr(receive, "_notifyctl_lock")  # noqa: B009 - set by _locked

    def receive_message(
        self: Any,
        queue_name: str,
        count: int,
        wait_seconds_timeout: int,
        visibility_timeout: int,
        message_attribute_names: list[str] | None = None,
    ) -> Any:
        deadline = time.monotonic() + max(0, int(wait_seconds_timeout or 0))
        while True:
            received = receive(
                self, queue_name, count, 0, visibility_timeout, message_attribute_names
            )
            if received or time.monotonic() >= deadline:
                return received
            time.sleep(0.02)

    receive_message._notifyctl_lock = sqs_lock  # type: ignore[attr-defined]
    SQSBackend.receive_message = receive_message  # type: ignore[method-assign]


def _locked(method: Any, lock: Any) -> Any:
    import functools

    @functools.wraps(method)
    def locked(*args: Any, **kwargs: Any) -> Any:
        with lock:
            return method(*args, **kwargs)

    locked._notifyctl_lock = lock  # type: ignore[attr-defined]
    return locked


# -- EventBridge as AWS delivers -----------------------------------------------------------------

# PutEvents: "The total entry size must be less than 256KB" (AWS's PutEvents reference and
# "Calculating PutEvents event entry size"); over it, the whole request is refused with
# ValidationException "Total size of the entries in the request is over the limit."
PUT_EVENTS_SIZE_LIMIT = 256 * 1024


def put_events_entry_size(entry: dict[str, Any]) -> int:
    """An entry's size as EventBridge computes it: Time 14 bytes, then the UTF-8 bytes of
    Source, DetailType, Detail and each Resources entry."""
    size = 14 if entry.get("Time") is not None else 0
    for key in ("Source", "DetailType", "Detail"):
        value = entry.get(key)
        if isinstance(value, str):
            size += len(value.encode("utf-8"))
    for resource in entry.get("Resources") or []:
        size += len(str(resource).encode("utf-8"))
    return size


def patch_eventbridge_delivery() -> None:
    """EventBridge rules deliver as in AWS. Idempotent.

    moto 5.2 matches every rule against every event put on its bus, so a schedule-only rule
    (no EventPattern, which moto treats as "match all") received every domain event, and a
    DISABLED rule delivered like an enabled one. Here a rule delivers a put event only if it
    is enabled and has an event pattern; schedule rules are fired by the local scheduler
    alone (`notifyctl/local/scheduler.py`). PutEvents refuses a request whose entries total
    more than 256 KB, as AWS does.
    """
    from moto.events.exceptions import ValidationException as EventsValidationException
    from moto.events.models import EventsBackend, Rule

    if getattr(Rule, _SERIALIZED, False):
        return
    send_to_targets = Rule.send_to_targets
    put_events = EventsBackend.put_events

    def delivering_send_to_targets(
        self: Any, original_event: Any, transform_input: bool = True
    ) -> None:
        if not str(self.state).startswith("ENABLED"):
            return
        if not self.event_pattern.get_pattern():
            return  # a schedule-only rule: it runs on its schedule, never on a put event
        send_to_targets(self, original_event, transform_input)

    def size_checked_put_events(self: Any, events: list[dict[str, Any]]) -> Any:
        if sum(put_events_entry_size(e) for e in events) > PUT_EVENTS_SIZE_LIMIT:
            raise EventsValidationException(
                "Total size of the entries in the request is over the limit."
            )
        return put_events(self, events)

    Rule.send_to_targets = delivering_send_to_targets  # type: ignore[method-assign]
    EventsBackend.put_events = size_checked_put_events  # type: ignore[method-assign]
    setattr(Rule, _SERIALIZED, True)
