"""The ledger on DynamoDB: one item per notification keyed by ``notification_id``
(``ledger.py`` holds its Protocol and what its answers mean)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from notifications.adapters.dynamodb import DynamoTable, conditional, dynamodb
from notifications.ledger import (
    PURGED,
    RETENTION,
    SETTLED_STATUSES,
    AttemptClaim,
    Claim,
    DeadLetterEntry,
    FailureRecord,
)
from notifications.masking import mask_recipient
from notifications.models import NotificationRequested, NotificationStatus, utc_iso

if TYPE_CHECKING:
    from notifications.fallback import FallbackDecision


def _base_attributes(request: NotificationRequested) -> dict[str, Any]:
    facts = {
        "channel": request.channel.value,
        "recipient_masked": mask_recipient(request.channel, request.recipient),
        "user_id": request.user_id or "-",
        "event_id": request.event_id,
        "event_type": request.event_type,
        "template_id": request.template_id,
        "category": request.category,
        "correlation_id": request.correlation_id,
        "occurred_at": utc_iso(request.occurred_at),
    }
    if request.fallback_of is not None:  # a channel fallback (notifications.fallback)
        facts["fallback_of"] = request.fallback_of
    return facts


def _description(request: NotificationRequested) -> tuple[str, dict[str, str], dict[str, Any]]:
    """SET clauses (with their names and values) that describe the notification in the first
    write about it and leave an existing description as it is: the facts of a request never
    change, ``created_at`` (the request's time) and ``expires_at`` are written once."""
    facts = _base_attributes(request)
    if request.keep_for_fallback:
        # Until the delivery feedback arrives: a permanent bounce falls back from it
        # (notifications.feedback); the feedback or the fallback decision removes it.
        facts["feedback_request"] = request.model_dump_json()
    names = {f"#d{i}": name for i, name in enumerate(facts)}
    values: dict[str, Any] = {f":d{i}": value for i, value in enumerate(facts.values())}
    values[":created"] = utc_iso(request.requested_at)
    values[":expires"] = _ttl(request.requested_at)
    clauses = [f"#d{i} = :d{i}" for i in range(len(facts))]
    clauses += [
        "created_at = if_not_exists(created_at, :created)",
        "expires_at = if_not_exists(expires_at, :expires)",
    ]
    return ", ".join(clauses), names, values


class DynamoLedger:
    """The ledger on a DynamoDB table keyed by ``notification_id``."""

    def __init__(self, table_name: str) -> None:
        self.table_name = table_name
        self.table = DynamoTable(table_name)

    def record_suppressed(self, request: NotificationRequested, reason: str, now: datetime) -> None:
        self._create(request, NotificationStatus.SUPPRESSED, now, {"suppressed_reason": reason})

    def _create(
        self,
        request: NotificationRequested,
        status: NotificationStatus,
        now: datetime,
        extra: dict[str, Any],
    ) -> bool:
        item = {
            "notification_id": request.notification_id,
            "status": status.value,
            "attempts": 0,
            "created_at": utc_iso(now),
            "updated_at": utc_iso(now),
            "expires_at": _ttl(now),
            **_base_attributes(request),
            **extra,
        }
        response = conditional(
            self.table.put_item,
            Item=item,
            ConditionExpression="attribute_not_exists(notification_id)",
        )
        return response is not None

    def _claim_update(
        self, request: NotificationRequested, lease_until: datetime, now: datetime, attempts: str
    ) -> dict[str, Any]:
        describe, names, values = _description(request)
        return {
            "Key": {"notification_id": request.notification_id},
            "UpdateExpression": (
                "SET #s = :sending, lease_until = :lease, updated_at = :now, "
                f"attempts = {attempts}, {describe}"
            ),
            "ExpressionAttributeNames": {"#s": "status", **names},
            "ExpressionAttributeValues": {
                **values,
                ":sending": NotificationStatus.SENDING.value,
                ":lease": utc_iso(lease_until),
                ":now": utc_iso(now),
                ":one": 1,
            },
        }

    def first_claim_action(
        self, request: NotificationRequested, lease_until: datetime, now: datetime
    ) -> dict[str, Any]:
        """``begin_attempt`` for a notification with no record yet (its first attempt, the
        common case) as an ``Update`` for ``TransactWriteItems``: creates the described record,
        SENDING, attempt 1, leased; its condition fails if any record exists."""
        return {
            "TableName": self.table_name,
            **self._claim_update(request, lease_until, now, attempts=":one"),
            "ConditionExpression": "attribute_not_exists(notification_id)",
        }

    def begin_attempt(
        self, request: NotificationRequested, lease_until: datetime, now: datetime
    ) -> AttemptClaim:
        """Claim the notification for one real attempt: counts the attempt and takes a lease
        until ``lease_until``. Refused when it is settled (SENT, DEAD_LETTERED, PURGED,
        SUPPRESSED: only an operator's redrive reopens one) or another lease is live."""
        update = self._claim_update(
            request, lease_until, now, attempts="if_not_exists(attempts, :zero) + :one"
        )
        update["ExpressionAttributeValues"].update(
            {
                ":sent": NotificationStatus.SENT.value,
                ":dead": NotificationStatus.DEAD_LETTERED.value,
                ":purged": NotificationStatus.PURGED.value,
                ":suppressed": NotificationStatus.SUPPRESSED.value,
                ":zero": 0,
            }
        )
        response = conditional(
            self.table.update_item,
            **update,
            ConditionExpression=(
                "attribute_not_exists(notification_id) OR "
                "(NOT #s IN (:sent, :dead, :purged, :suppressed) AND "
                "(attribute_not_exists(lease_until) OR lease_until < :now))"
            ),
            ReturnValues="ALL_NEW",
        )
        if response is None:
            old = self.get(request.notification_id) or {}
            if old.get("status") == NotificationStatus.SENT.value:
                return AttemptClaim(Claim.ALREADY_SENT, int(old.get("attempts", 0)))
            if old.get("status") in SETTLED_STATUSES:
                return AttemptClaim(Claim.SETTLED, int(old.get("attempts", 0)))
            lease = old.get("lease_until")
            return AttemptClaim(
                Claim.LEASED,
                int(old.get("attempts", 0)),
                datetime.fromisoformat(lease) if isinstance(lease, str) else None,
            )
        return AttemptClaim(Claim.GRANTED, int(response["Attributes"]["attempts"]))

    def release_claim(self, notification_id: str, lease_until: datetime) -> None:
        """Give back a claim taken for a send that then did not happen (a batch's claims are
        taken ahead; the circuit may open before this one's turn): one attempt fewer and no
        lease. Only while the lease is still the one taken."""
        conditional(
            self.table.update_item,
            Key={"notification_id": notification_id},
            UpdateExpression="SET attempts = attempts - :one REMOVE lease_until",
            ConditionExpression="lease_until = :lease",
            ExpressionAttributeValues={":one": 1, ":lease": utc_iso(lease_until)},
        )

    def record_sent(
        self, notification_id: str, provider_message_id: str | None, latency_ms: int, now: datetime
    ) -> None:
        """SENT, one write per send (the crash duplicate window). Through the low-level client
        with the wire values written out: the resource layer's value conversion cost about a
        third of this call's CPU, on the one write every message makes (docs/performance.md,
        "Sender CPU")."""
        values: dict[str, dict[str, str]] = {
            ":sent": {"S": NotificationStatus.SENT.value},
            ":now": {"S": utc_iso(now)},
            ":lat": {"N": str(int(latency_ms))},
        }
        provider_id = ""
        if provider_message_id:  # the index on it is sparse: only real ids are written
            values[":pmid"] = {"S": provider_message_id}
            provider_id = ", provider_message_id = :pmid"
        dynamodb().update_item(
            TableName=self.table_name,
            Key={"notification_id": {"S": notification_id}},
            UpdateExpression=(
                f"SET #s = :sent, updated_at = :now, latency_ms = :lat{provider_id} "
                "REMOVE lease_until, next_attempt_at"
            ),
            ExpressionAttributeNames={"#s": "status"},
            ExpressionAttributeValues=values,
        )

    def record_deferred(
        self, request: NotificationRequested, reason: str, until: datetime, now: datetime
    ) -> bool:
        """DEFERRED until ``until`` (quiet hours, rate limit, open circuit), appending to the
        record's ``deferrals``, which stay after SENT; False when it is SENT already."""
        describe, names, values = _description(request)
        response = conditional(
            self.table.update_item,
            Key={"notification_id": request.notification_id},
            UpdateExpression=(
                "SET #s = :deferred, deferred_reason = :reason, deferred_until = :until, "
                "updated_at = :now, deferrals = list_append(if_not_exists(deferrals, :none), "
                f":entry), attempts = if_not_exists(attempts, :zero), {describe} "
                "REMOVE lease_until"
            ),
            ConditionExpression="attribute_not_exists(notification_id) OR #s <> :sent",
            ExpressionAttributeNames={"#s": "status", **names},
            ExpressionAttributeValues={
                **values,
                ":deferred": NotificationStatus.DEFERRED.value,
                ":zero": 0,
                ":sent": NotificationStatus.SENT.value,
                ":reason": reason,
                ":until": utc_iso(until),
                ":now": utc_iso(now),
                ":none": [],
                ":entry": [{"reason": reason, "until": utc_iso(until), "at": utc_iso(now)}],
            },
        )
        return response is not None

    def record_parked(
        self, request: NotificationRequested, body: str, reason: str, now: datetime
    ) -> bool:
        """ENDPOINT_DISABLED with the message body (``payload``), kept for a replay (its
        webhook endpoint is disabled); False when it is SENT or settled already."""
        describe, names, values = _description(request)
        response = conditional(
            self.table.update_item,
            Key={"notification_id": request.notification_id},
            UpdateExpression=(
                "SET #s = :parked, parked_reason = :reason, parked_at = :now, updated_at = :now, "
                f"payload = :payload, attempts = if_not_exists(attempts, :zero), {describe} "
                "REMOVE lease_until, next_attempt_at"
            ),
            ConditionExpression=(
                "attribute_not_exists(notification_id) OR NOT #s IN (:sent, :dead, :purged)"
            ),
            ExpressionAttributeNames={"#s": "status", **names},
            ExpressionAttributeValues={
                **values,
                ":parked": NotificationStatus.ENDPOINT_DISABLED.value,
                ":reason": reason,
                ":now": utc_iso(now),
                ":payload": body[:200_000],
                ":zero": 0,
                ":sent": NotificationStatus.SENT.value,
                ":dead": NotificationStatus.DEAD_LETTERED.value,
                ":purged": NotificationStatus.PURGED.value,
            },
        )
        return response is not None

    def record_delivery_status(
        self,
        notification_id: str,
        delivery_status: str,
        detail: str,
        now: datetime,
        permanent: bool = False,
    ) -> dict[str, Any] | None:
        """Provider feedback on a sent notification; returns the record, None if unknown.
        A permanent failure (``delivery_permanent``) keeps the kept request for the fallback
        decision; any other feedback removes it: nothing will fall back from it."""
        values: dict[str, Any] = {
            ":ds": delivery_status,
            ":dd": detail[:300],
            ":now": utc_iso(now),
        }
        update = "SET delivery_status = :ds, delivery_detail = :dd, delivery_status_at = :now"
        if permanent:
            values[":perm"] = True
            update += ", delivery_permanent = :perm"
        else:
            update += " REMOVE feedback_request"
        response = conditional(
            self.table.update_item,
            Key={"notification_id": notification_id},
            UpdateExpression=update,
            ConditionExpression="attribute_exists(notification_id)",
            ExpressionAttributeValues=values,
            ReturnValues="ALL_NEW",
        )
        if response is None:
            return None
        return {k: _plain(v) for k, v in response["Attributes"].items()}

    def find_by_provider_message_id(self, provider_message_id: str) -> str | None:
        """The notification a provider's message id belongs to (index ``by_provider_message``)."""
        if not provider_message_id:
            return None
        items = self.table.query(
            IndexName="by_provider_message",
            KeyConditionExpression="provider_message_id = :id",
            ExpressionAttributeValues={":id": provider_message_id},
        )
        item = next(items, None)
        return None if item is None else str(item["notification_id"])

    def record_retrying(
        self, notification_id: str, failure: FailureRecord, next_attempt_at: datetime
    ) -> None:
        self._failure(
            notification_id,
            failure,
            "#s = :retrying, next_attempt_at = :next, ",
            {":retrying": NotificationStatus.RETRYING.value, ":next": utc_iso(next_attempt_at)},
        )

    def record_failed_attempt(self, notification_id: str, failure: FailureRecord) -> None:
        """A final failure: the message is on its way to the DLQ (the alarm function writes
        DEAD_LETTERED when it gets there); keep the error and release the lease."""
        self._failure(notification_id, failure, "", {})

    def _failure(
        self,
        notification_id: str,
        failure: FailureRecord,
        set_clause: str,
        values: dict[str, Any],
    ) -> None:
        self.table.update_item(
            Key={"notification_id": notification_id},
            UpdateExpression=(
                f"SET {set_clause}updated_at = :at, last_error = :err, last_reason = :reason, "
                "errors = list_append(if_not_exists(errors, :empty), :errs) REMOVE lease_until"
            ),
            ConditionExpression="attribute_exists(notification_id) AND #s <> :sent_status",
            ExpressionAttributeNames={"#s": "status"},
            ExpressionAttributeValues={
                **values,
                ":at": utc_iso(failure.at),
                ":err": failure.message[:500],
                ":reason": failure.reason,
                ":empty": [],
                ":errs": [failure.item()],
                ":sent_status": NotificationStatus.SENT.value,
            },
        )

    def record_dead_lettered(self, entry: DeadLetterEntry, now: datetime) -> None:
        names = {"#s": "status"}
        values: dict[str, Any] = {
            ":dead": NotificationStatus.DEAD_LETTERED.value,
            ":now": utc_iso(now),
            ":reason": entry.reason,
            ":err": entry.error[:1000],
            ":class": entry.failure_class,
            ":payload": entry.payload[:200_000],
            ":rc": entry.receive_count,
            ":mid": entry.dlq_message_id,
            ":zero": 0,
            ":ttl": _ttl(now),
            ":empty": [],
            ":errs": [{"reason": entry.reason, "message": entry.error[:500], "at": utc_iso(now)}],
        }
        sets = [
            "#s = :dead",
            "dead_lettered_at = :now",
            "updated_at = :now",
            "created_at = if_not_exists(created_at, :now)",
            "dead_letter_reason = :reason",
            "last_reason = :reason",
            "last_error = :err",
            "failure_class = :class",
            "payload = :payload",
            "receive_count = :rc",
            "dlq_message_id = :mid",
            "attempts = if_not_exists(attempts, :zero)",
            "expires_at = :ttl",
            "errors = if_not_exists(errors, :errs)",
        ]
        optional = {
            "channel": entry.channel,
            "recipient_masked": entry.recipient,
            "user_id": entry.user_id,
            "event_type": entry.event_type,
            "fallback_of": entry.fallback_of,
        }
        for index, (name, value) in enumerate(optional.items()):
            if value:
                names[f"#o{index}"] = name
                values[f":o{index}"] = value
                sets.append(f"#o{index} = if_not_exists(#o{index}, :o{index})")
        del values[":empty"]
        self.table.update_item(
            Key={"notification_id": entry.notification_id},
            # The request kept for delivery feedback is the payload now: no feedback will come.
            UpdateExpression="SET " + ", ".join(sets) + " REMOVE lease_until, feedback_request",
            ExpressionAttributeNames=names,
            ExpressionAttributeValues=values,
        )

    def record_fallback(
        self, notification_id: str, decision: FallbackDecision, now: datetime
    ) -> None:
        """On a dead letter's or bounced notification's record: the channel fallback it got
        (``fallback_notification_id``, ``fallback_channel``) or why none (``fallback_none``),
        and the chain's skipped channels. The request kept for the decision goes."""
        successor = decision.request
        values: dict[str, Any] = {":now": utc_iso(now), ":skipped": list(decision.skipped)}
        sets = ["fallback_decided_at = :now", "fallback_skipped = :skipped"]
        if successor is not None:
            values[":next"] = successor.notification_id
            values[":channel"] = successor.channel.value
            sets += ["fallback_notification_id = :next", "fallback_channel = :channel"]
        else:
            values[":none"] = decision.why_none or "none"
            sets.append("fallback_none = :none")
        self.table.update_item(
            Key={"notification_id": notification_id},
            UpdateExpression="SET " + ", ".join(sets) + " REMOVE feedback_request",
            ExpressionAttributeValues=values,
        )

    def by_status(self, status: str, since: datetime | None = None) -> Iterator[dict[str, Any]]:
        """Records in one status, newest change first, through the ``by_status`` index."""
        condition = "#s = :status" + (" AND updated_at >= :since" if since else "")
        values: dict[str, Any] = {":status": status}
        if since:
            values[":since"] = utc_iso(since)
        kwargs: dict[str, Any] = {
            "IndexName": "by_status",
            "KeyConditionExpression": condition,
            "ExpressionAttributeNames": {"#s": "status"},
            "ExpressionAttributeValues": values,
            "ScanIndexForward": False,
        }
        for item in self.table.query(**kwargs):
            yield {k: _plain(v) for k, v in item.items()}

    def mark_redriven(self, notification_id: str, now: datetime, operator: str) -> bool:
        """DEAD_LETTERED -> REDRIVEN with a fresh attempt budget; False if it was not dead."""
        return self._operator_action(
            notification_id,
            "SET #s = :redriven, attempts = :zero, redriven_at = :now, "
            "redrive_count = if_not_exists(redrive_count, :zero) + :one",
            {":redriven": NotificationStatus.REDRIVEN.value, ":zero": 0, ":one": 1},
            {"action": "redrive", "at": utc_iso(now), "by": operator},
            now,
        )

    def undo_redrive(self, notification_id: str, now: datetime, operator: str, why: str) -> None:
        """Back to DEAD_LETTERED when the redriven message could not be enqueued."""
        self._operator_action(
            notification_id,
            "SET #s = :dead",
            {":dead": NotificationStatus.DEAD_LETTERED.value},
            {"action": "redrive_failed", "at": utc_iso(now), "by": operator, "why": why[:300]},
            now,
            expected=NotificationStatus.REDRIVEN.value,
        )

    def mark_replayed(
        self, notification_id: str, expected: str, now: datetime, operator: str
    ) -> bool:
        """A webhook replay (``notifyctl webhooks replay``): DEAD_LETTERED or ENDPOINT_DISABLED
        -> REDRIVEN with a fresh attempt budget and an audit entry; False if the status is no
        longer ``expected``."""
        return self._operator_action(
            notification_id,
            "SET #s = :redriven, attempts = :zero, replayed_at = :now, "
            "redrive_count = if_not_exists(redrive_count, :zero) + :one",
            {":redriven": NotificationStatus.REDRIVEN.value, ":zero": 0, ":one": 1},
            {"action": "replay", "at": utc_iso(now), "by": operator, "from": expected},
            now,
            expected=expected,
        )

    def undo_replay(
        self, notification_id: str, status: str, now: datetime, operator: str, why: str
    ) -> None:
        """Back to ``status`` when the replayed message could not be enqueued."""
        self._operator_action(
            notification_id,
            "SET #s = :back",
            {":back": status},
            {"action": "replay_failed", "at": utc_iso(now), "by": operator, "why": why[:300]},
            now,
            expected=NotificationStatus.REDRIVEN.value,
        )

    def mark_purged(self, notification_id: str, now: datetime, operator: str) -> bool:
        """DEAD_LETTERED -> PURGED: the payload goes, the record stays as the audit entry."""
        return self._operator_action(
            notification_id,
            "SET #s = :purged, purged_at = :now REMOVE payload",
            {":purged": PURGED},
            {"action": "purge", "at": utc_iso(now), "by": operator},
            now,
        )

    def record_event_purge(self, entry: dict[str, Any], now: datetime, operator: str) -> None:
        """An audit record for a domain event an operator purged from EventsDLQ."""
        self.table.put_item(
            Item={
                "notification_id": f"events-dlq:{entry.get('message_id')}",
                "status": PURGED,
                "kind": "event",
                "event_id": str(entry.get("event_id") or "-"),
                "event_type": str(entry.get("event_type") or "-"),
                "dead_letter_reason": str(entry.get("reason") or "-"),
                "created_at": utc_iso(now),
                "updated_at": utc_iso(now),
                "expires_at": _ttl(now),
                "audit": [{"action": "purge", "at": utc_iso(now), "by": operator}],
            }
        )

    def _operator_action(
        self,
        notification_id: str,
        update: str,
        values: dict[str, Any],
        audit: dict[str, str],
        now: datetime,
        expected: str = NotificationStatus.DEAD_LETTERED.value,
    ) -> bool:
        set_part, _, remove_part = update.partition(" REMOVE ")
        expression = (
            f"{set_part}, updated_at = :now, "
            "audit = list_append(if_not_exists(audit, :none), :audit)"
            + (f" REMOVE {remove_part}" if remove_part else "")
        )
        response = conditional(
            self.table.update_item,
            Key={"notification_id": notification_id},
            UpdateExpression=expression,
            ConditionExpression="#s = :expected",
            ExpressionAttributeNames={"#s": "status"},
            ExpressionAttributeValues={
                **values,
                ":now": utc_iso(now),
                ":none": [],
                ":audit": [audit],
                ":expected": expected,
            },
        )
        return response is not None

    def scan(self) -> Iterator[dict[str, Any]]:
        """Every record, page by page (operators' views; not on a per-message path)."""
        for item in self.table.scan():
            yield {k: _plain(v) for k, v in item.items()}

    def get(self, notification_id: str) -> dict[str, Any] | None:
        item = self.table.get_item(Key={"notification_id": notification_id}, ConsistentRead=True)
        return None if item is None else {k: _plain(v) for k, v in item.items()}


def _ttl(now: datetime) -> int:
    return int((now + RETENTION).timestamp())


def _plain(value: Any) -> Any:
    """DynamoDB's Decimals and sets back to plain Python values."""
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, set):
        return sorted(_plain(v) for v in value)
    return value
