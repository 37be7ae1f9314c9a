"""Preferences on DynamoDB: one item per user, keyed by ``user_id`` (``preferences.py`` holds
the model and the store's Protocol)."""

from __future__ import annotations

import time
from collections.abc import Callable, Collection, Mapping
from typing import TYPE_CHECKING, Any

from notifications.adapters.dynamodb import DynamoTable, conditional, dynamodb, plain, wire
from notifications.errors import RetryableError
from notifications.models import Channel, QuietHours

# notifications.preferences (the Preferences record) is loaded on first use: the sender wires
# this store for the rare stale push endpoint and does not load it at its cold start.
if TYPE_CHECKING:
    from notifications.preferences import Preferences


def _parse(document: str) -> Preferences:
    from notifications.preferences import Preferences

    return Preferences.model_validate_json(document)


class DynamoPreferencesStore:
    """Preferences as one item per user, keyed by ``user_id``."""

    def __init__(self, table_name: str, sleep: Callable[[float], None] = time.sleep) -> None:
        self.table_name = table_name
        self.table = DynamoTable(table_name)
        self.sleep = sleep

    def get(self, user_id: str) -> Preferences | None:
        item = self.table.get_item(Key={"user_id": user_id})
        return None if item is None else _parse(item["document"])

    def get_many(self, user_ids: Collection[str]) -> dict[str, Preferences]:
        """The stored preferences of each of ``user_ids`` that has some (users without are
        absent from the result): one BatchGetItem per hundred users, resending the keys
        DynamoDB reports unprocessed (throttling, the 16 MB response limit) with a short
        backoff. Raises ``RetryableError`` when keys stay unprocessed."""
        from notifications.preferences import BATCH_GET_SIZE

        unique = sorted(set(user_ids))
        found: dict[str, Preferences] = {}
        for start in range(0, len(unique), BATCH_GET_SIZE):
            for item in self._batch_get(unique[start : start + BATCH_GET_SIZE]):
                found[item["user_id"]] = _parse(item["document"])
        return found

    def _batch_get(self, user_ids: list[str]) -> list[dict[str, Any]]:
        from notifications.preferences import BATCH_GET_BACKOFF_SECONDS, BATCH_GET_TRIES

        items: list[dict[str, Any]] = []
        keys = [wire({"user_id": u}) for u in user_ids]
        request: dict[str, Any] = {self.table_name: {"Keys": keys}}
        for attempt in range(BATCH_GET_TRIES):
            if attempt:
                self.sleep(BATCH_GET_BACKOFF_SECONDS * 2 ** (attempt - 1))
            response = dynamodb().batch_get_item(RequestItems=request)
            items.extend(plain(i) for i in response.get("Responses", {}).get(self.table_name, []))
            request = response.get("UnprocessedKeys") or {}
            if not request:
                return items
        unprocessed = len(request.get(self.table_name, {}).get("Keys", []))
        raise RetryableError(
            "preferences_unavailable", f"{unprocessed} preference keys stayed unprocessed"
        )

    def put(self, preferences: Preferences) -> None:
        self.table.put_item(
            Item={"user_id": preferences.user_id, "document": preferences.model_dump_json()}
        )

    def get_versioned(self, user_id: str) -> tuple[Preferences | None, str | None]:
        """The preferences and their stored document (the version ``replace`` checks),
        read consistently."""
        item = self.table.get_item(Key={"user_id": user_id}, ConsistentRead=True)
        if item is None:
            return None, None
        document = str(item["document"])
        return _parse(document), document

    def replace(self, preferences: Preferences, expected_document: str | None) -> bool:
        """Write ``preferences`` only if the stored document is still ``expected_document``
        (None: no item yet), with one UpdateItem; False when another writer came first."""
        condition = (
            "attribute_not_exists(user_id)" if expected_document is None else "document = :old"
        )
        values: dict[str, Any] = {":doc": preferences.model_dump_json()}
        if expected_document is not None:
            values[":old"] = expected_document
        response = conditional(
            self.table.update_item,
            Key={"user_id": preferences.user_id},
            UpdateExpression="SET document = :doc",
            ConditionExpression=condition,
            ExpressionAttributeValues=values,
        )
        return response is not None

    def delete(self, user_id: str) -> bool:
        """Remove a user's preferences; False when there were none."""
        response = self.table.delete_item(Key={"user_id": user_id}, ReturnValues="ALL_OLD")
        return "Attributes" in response

    def update(self, user_id: str, changes: Mapping[str, Any]) -> Preferences:
        """Read, apply ``changes`` (field name -> new value), validate, write; returns the new
        preferences. Creates them when the user has none. Last writer wins: this is the
        operator CLI's path, not a per-message one."""
        from notifications.preferences import updated

        new = updated(self.get(user_id), user_id, changes)
        self.put(new)
        return new

    def set_quiet_hours(self, user_id: str, quiet_hours: QuietHours | None) -> Preferences:
        return self.update(user_id, {"quiet_hours": quiet_hours})

    def opt_out(
        self, user_id: str, channel: Channel | None = None, category: str | None = None
    ) -> Preferences:
        return self._opt(user_id, channel, category, add=True)

    def opt_in(
        self, user_id: str, channel: Channel | None = None, category: str | None = None
    ) -> Preferences:
        return self._opt(user_id, channel, category, add=False)

    def _opt(
        self, user_id: str, channel: Channel | None, category: str | None, add: bool
    ) -> Preferences:
        from notifications.preferences import Preferences

        current = self.get(user_id) or Preferences(user_id=user_id)
        channels = set(current.opted_out_channels)
        categories = set(current.opted_out_categories)
        if channel is not None:
            channels = channels | {channel} if add else channels - {channel}
        if category is not None:
            categories = categories | {category} if add else categories - {category}
        return self.update(
            user_id, {"opted_out_channels": channels, "opted_out_categories": categories}
        )

    def remove_push_endpoint(self, user_id: str, endpoint_arn: str) -> bool:
        current = self.get(user_id)
        if current is None or endpoint_arn not in current.push_endpoints:
            return False
        endpoints = tuple(e for e in current.push_endpoints if e != endpoint_arn)
        self.put(current.model_copy(update={"push_endpoints": endpoints}))
        return True
