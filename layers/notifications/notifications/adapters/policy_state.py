"""The policy state table on DynamoDB: rate-limit counters (``rate_limit.py``), circuit
breaker items (``circuit_breaker.py``) and webhook endpoint health (``endpoint_health.py``),
keyed ``pk``/``sk``."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from notifications.adapters.dynamodb import DynamoTable, conditional
from notifications.circuit_breaker import BREAKER_KEY, BreakerRecord, BreakerState
from notifications.endpoint_health import ENDPOINT_KEY, REPLAY_KEY, EndpointHealth
from notifications.kinds import Channel
from notifications.rate_limit import RateSlot


class DynamoCounterStore:
    """Counters in the policy state table (``pk``, ``sk``, TTL ``expires_at``)."""

    def __init__(self, table_name: str) -> None:
        self.table_name = table_name
        self.table = DynamoTable(table_name)

    def add_action(self, slot: RateSlot, count: int, limit: int) -> dict[str, Any]:
        """The update that adds ``count`` to a counter if that keeps it within ``limit``: the
        parameters of ``UpdateItem`` and of an ``Update`` in ``TransactWriteItems``."""
        return {
            "TableName": self.table_name,
            "Key": {"pk": slot.key, "sk": slot.window},
            "UpdateExpression": "ADD #c :n SET expires_at = :ttl",
            "ConditionExpression": "attribute_not_exists(#c) OR #c <= :room",
            "ExpressionAttributeNames": {"#c": "count"},
            "ExpressionAttributeValues": {
                ":n": count,
                ":room": limit - count,
                ":ttl": slot.expires_at,
            },
        }

    def increment_below(self, slot: RateSlot, limit: int) -> bool:
        action = self.add_action(slot, 1, limit)
        del action["TableName"]
        return conditional(self.table.update_item, **action) is not None


def _time(value: Any) -> datetime | None:
    return datetime.fromtimestamp(float(value), tz=UTC) if value is not None else None


def _record(item: dict[str, Any] | None) -> BreakerRecord:
    if not item:
        return BreakerRecord()
    return BreakerRecord(
        state=BreakerState(item.get("state", BreakerState.CLOSED.value)),
        failures=int(item.get("failures", 0)),
        open_until=_time(item.get("open_until")),
        trial_until=_time(item.get("trial_until")),
        mapping_disabled=bool(item.get("mapping_disabled", False)),
    )


def _epoch(moment: datetime) -> int:
    return int(moment.timestamp())


class DynamoBreakerStore:
    """Breaker items in the policy state table. Times are epoch seconds (whole seconds; the
    open period is rounded up by at most one second)."""

    def __init__(self, table_name: str) -> None:
        self.table_name = table_name
        self.table = DynamoTable(table_name)

    def _key(self, channel: Channel) -> dict[str, str]:
        return {"pk": BREAKER_KEY, "sk": channel.value}

    def read(self, channel: Channel) -> BreakerRecord:
        return _record(self.table.get_item(Key=self._key(channel)))

    def _conditional(self, **kwargs: Any) -> dict[str, Any] | None:
        return conditional(self.table.update_item, **kwargs)

    def claim_trial(self, channel: Channel, now: datetime, until: datetime) -> bool:
        return (
            self._conditional(
                Key=self._key(channel),
                UpdateExpression="SET trial_until = :until",
                ConditionExpression=(
                    "#s = :open AND open_until <= :now AND "
                    "(attribute_not_exists(trial_until) OR trial_until < :now)"
                ),
                ExpressionAttributeNames={"#s": "state"},
                ExpressionAttributeValues={
                    ":open": BreakerState.OPEN.value,
                    ":now": Decimal(str(round(now.timestamp(), 3))),
                    ":until": _epoch(until) + 1,
                },
            )
            is not None
        )

    def add_failure(self, channel: Channel) -> BreakerRecord:
        response = self.table.update_item(
            Key=self._key(channel),
            UpdateExpression="ADD failures :one SET #s = if_not_exists(#s, :closed)",
            ExpressionAttributeNames={"#s": "state"},
            ExpressionAttributeValues={":one": 1, ":closed": BreakerState.CLOSED.value},
            ReturnValues="ALL_NEW",
        )
        return _record(response.get("Attributes"))

    def open(self, channel: Channel, until: datetime, now: datetime, from_trial: bool) -> bool:
        values: dict[str, Any] = {
            ":open": BreakerState.OPEN.value,
            ":until": _epoch(until) + 1,
            ":yes": True,
        }
        condition = "attribute_not_exists(#s) OR #s <> :open"
        if from_trial:
            condition = "#s = :open"
        return (
            self._conditional(
                Key=self._key(channel),
                UpdateExpression=(
                    "SET #s = :open, open_until = :until, mapping_disabled = :yes "
                    "REMOVE trial_until"
                ),
                ConditionExpression=condition,
                ExpressionAttributeNames={"#s": "state"},
                ExpressionAttributeValues=values,
            )
            is not None
        )

    def close(self, channel: Channel) -> None:
        self.table.update_item(
            Key=self._key(channel),
            UpdateExpression="SET #s = :closed, failures = :zero REMOVE open_until, trial_until",
            ExpressionAttributeNames={"#s": "state"},
            ExpressionAttributeValues={":closed": BreakerState.CLOSED.value, ":zero": 0},
        )

    def set_mapping_disabled(self, channel: Channel, disabled: bool) -> None:
        self.table.update_item(
            Key=self._key(channel),
            UpdateExpression="SET mapping_disabled = :flag",
            ExpressionAttributeValues={":flag": disabled},
        )


# -- per-endpoint health of webhook subscriptions (endpoint_health.py) ---------------------------


def _health(subscription_id: str, item: dict[str, Any] | None) -> EndpointHealth:
    item = item or {}
    return EndpointHealth(
        subscription_id=subscription_id,
        consecutive_failures=int(item.get("consecutive_failures", 0)),
        probe_failures=int(item.get("probe_failures", 0)),
        failing_since=_time(item.get("failing_since")),
        next_attempt_at=_time(item.get("next_attempt_at")),
        last_success_at=_time(item.get("last_success_at")),
        last_failure_at=_time(item.get("last_failure_at")),
        last_reason=item.get("last_reason"),
        disabled_at=_time(item.get("disabled_at")),
    )


def _stamp(moment: datetime) -> Decimal:
    return Decimal(str(round(moment.timestamp(), 3)))


class DynamoHealthStore:
    """Endpoint health items in the policy state table (``pk = "endpoint"``,
    ``sk = <subscription_id>``). Times are epoch seconds with milliseconds."""

    def __init__(self, table_name: str) -> None:
        self.table_name = table_name
        self.table = DynamoTable(table_name)

    def _key(self, subscription_id: str) -> dict[str, str]:
        return {"pk": ENDPOINT_KEY, "sk": subscription_id}

    def read(self, subscription_id: str) -> EndpointHealth:
        return _health(subscription_id, self.table.get_item(Key=self._key(subscription_id)))

    def read_all(self) -> list[EndpointHealth]:
        items = self.table.query(
            KeyConditionExpression="pk = :pk", ExpressionAttributeValues={":pk": ENDPOINT_KEY}
        )
        return [_health(str(item["sk"]), item) for item in items]

    def record_failure(
        self,
        subscription_id: str,
        reason: str,
        now: datetime,
        next_attempt_at: datetime,
        probe: bool,
    ) -> EndpointHealth:
        response = self.table.update_item(
            Key=self._key(subscription_id),
            UpdateExpression=(
                "ADD consecutive_failures :one, probe_failures :probe "
                "SET failing_since = if_not_exists(failing_since, :now), last_failure_at = :now, "
                "last_reason = :reason, next_attempt_at = :next"
            ),
            ExpressionAttributeValues={
                ":one": 1,
                ":probe": 1 if probe else 0,
                ":now": _stamp(now),
                ":reason": reason,
                ":next": _stamp(next_attempt_at),
            },
            ReturnValues="ALL_NEW",
        )
        return _health(subscription_id, response.get("Attributes"))

    def record_success(self, subscription_id: str, now: datetime) -> EndpointHealth:
        response = self.table.update_item(
            Key=self._key(subscription_id),
            UpdateExpression=(
                "SET last_success_at = :now, consecutive_failures = :zero, probe_failures = :zero "
                "REMOVE failing_since, next_attempt_at"
            ),
            ExpressionAttributeValues={":now": _stamp(now), ":zero": 0},
            ReturnValues="ALL_OLD",
        )
        return _health(subscription_id, response.get("Attributes"))

    def claim_probe(self, subscription_id: str, now: datetime, until: datetime) -> bool:
        return (
            conditional(
                self.table.update_item,
                Key=self._key(subscription_id),
                UpdateExpression="SET next_attempt_at = :until",
                ConditionExpression="next_attempt_at <= :now AND attribute_not_exists(disabled_at)",
                ExpressionAttributeValues={":now": _stamp(now), ":until": _stamp(until)},
            )
            is not None
        )

    def disable(self, subscription_id: str, now: datetime) -> bool:
        return (
            conditional(
                self.table.update_item,
                Key=self._key(subscription_id),
                UpdateExpression="SET disabled_at = :now",
                ConditionExpression="attribute_not_exists(disabled_at)",
                ExpressionAttributeValues={":now": _stamp(now)},
            )
            is not None
        )

    def record_replay(self, subscription_id: str, audit: dict[str, Any], now: datetime) -> None:
        """The audit record of one ``notifyctl webhooks replay`` (``pk = "replay"``,
        ``sk = <subscription_id>#<time>``)."""
        self.table.put_item(
            Item={
                "pk": REPLAY_KEY,
                "sk": f"{subscription_id}#{now.isoformat()}",
                "subscription_id": subscription_id,
                "at": now.isoformat(),
                **{k: v for k, v in audit.items() if v is not None},
            }
        )

    def replays(self, subscription_id: str) -> list[dict[str, Any]]:
        return list(
            self.table.query(
                KeyConditionExpression="pk = :pk AND begins_with(sk, :sub)",
                ExpressionAttributeValues={":pk": REPLAY_KEY, ":sub": f"{subscription_id}#"},
            )
        )

    def enable(self, subscription_id: str, now: datetime) -> bool:
        """Re-enable: a fresh start (no failing period); False if it was not disabled."""
        return (
            conditional(
                self.table.update_item,
                Key=self._key(subscription_id),
                UpdateExpression=(
                    "SET consecutive_failures = :zero, probe_failures = :zero, enabled_at = :now "
                    "REMOVE disabled_at, failing_since, next_attempt_at"
                ),
                ConditionExpression="attribute_exists(disabled_at)",
                ExpressionAttributeValues={":now": _stamp(now), ":zero": 0},
            )
            is not None
        )
