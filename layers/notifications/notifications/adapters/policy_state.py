"""The policy state table on DynamoDB: rate-limit counters (``rate_limit.py``) and circuit
breaker items (``circuit_breaker.py``), keyed ``pk``/``sk``."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from notifications.adapters.aws import table
from notifications.adapters.dynamodb import conditional
from notifications.circuit_breaker import BREAKER_KEY, BreakerRecord, BreakerState
from notifications.kinds import Channel
from notifications.rate_limit import RateSlot


class DynamoCounterStore:
    """Counters in the policy state table (``pk``, ``sk``, TTL ``expires_at``)."""

    def __init__(self, table_name: str) -> None:
        self.table_name = table_name

    def _table(self) -> Any:
        return table(self.table_name)

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
        return conditional(self._table().update_item, **action) is not None


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

    def _table(self) -> Any:
        return table(self.table_name)

    def _key(self, channel: Channel) -> dict[str, str]:
        return {"pk": BREAKER_KEY, "sk": channel.value}

    def read(self, channel: Channel) -> BreakerRecord:
        return _record(self._table().get_item(Key=self._key(channel)).get("Item"))

    def _conditional(self, **kwargs: Any) -> dict[str, Any] | None:
        response: dict[str, Any] | None = conditional(self._table().update_item, **kwargs)
        return response

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
        response = self._table().update_item(
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
        self._table().update_item(
            Key=self._key(channel),
            UpdateExpression="SET #s = :closed, failures = :zero REMOVE open_until, trial_until",
            ExpressionAttributeNames={"#s": "state"},
            ExpressionAttributeValues={":closed": BreakerState.CLOSED.value, ":zero": 0},
        )

    def set_mapping_disabled(self, channel: Channel, disabled: bool) -> None:
        self._table().update_item(
            Key=self._key(channel),
            UpdateExpression="SET mapping_disabled = :flag",
            ExpressionAttributeValues={":flag": disabled},
        )
