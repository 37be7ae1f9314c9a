"""User preferences: contact points, opt-outs, quiet hours and locale, in a DynamoDB table."""

from __future__ import annotations

import time
from collections.abc import Callable, Collection, Mapping
from typing import Any, Protocol

from pydantic import BaseModel, ConfigDict, Field

from notifications.aws import resource, table
from notifications.errors import RetryableError
from notifications.models import Channel, QuietHours

__all__ = ["ChangeStamp", "DynamoPreferencesStore", "Preferences", "PreferencesStore", "QuietHours"]


class ChangeStamp(BaseModel):
    """Who changed the preferences last, when and how (the preference center writes it)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    at: str  # ISO 8601, UTC
    by: str  # "user" (through a signed link) or an operator
    via: str  # one_click, page_save, page_unsubscribe_all


def pair(category: str, channel: Channel) -> str:
    """The key of one (category, channel) opt-out: ``order:email``."""
    return f"{category}:{channel.value}"


class Preferences(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    user_id: str = Field(min_length=1, max_length=128)
    email: str | None = None
    phone: str | None = None  # E.164
    push_endpoints: tuple[str, ...] = ()  # SNS platform endpoint ARNs
    locale: str = "en"
    opted_out_channels: frozenset[Channel] = frozenset()
    opted_out_categories: frozenset[str] = frozenset()
    quiet_hours: QuietHours | None = None
    # Addresses that hard-bounced or complained: never mailed again.
    suppressed_emails: frozenset[str] = frozenset()
    # One category on one channel ("order:email"): the preference center's grid and one-click.
    opted_out_pairs: frozenset[str] = frozenset()
    last_change: ChangeStamp | None = None
    # Per category, the user's own channel order: the category reaches them on the first
    # channel of it they can be reached on, then falls back along it (notifications.fallback).
    channel_chains: dict[str, tuple[Channel, ...]] = Field(default_factory=dict)

    def contact(self, channel: Channel) -> tuple[str, ...]:
        """The user's contact points on a channel (webhooks are per subscription, not per user)."""
        if channel is Channel.EMAIL:
            return (self.email,) if self.email else ()
        if channel is Channel.SMS:
            return (self.phone,) if self.phone else ()
        if channel is Channel.PUSH:
            return self.push_endpoints
        return ()

    def opt_out_reason(self, channel: Channel, category: str) -> str | None:
        if channel in self.opted_out_channels:
            return f"opted_out_channel:{channel.value}"
        if category in self.opted_out_categories:
            return f"opted_out_category:{category}"
        if pair(category, channel) in self.opted_out_pairs:
            return f"opted_out_category_channel:{pair(category, channel)}"
        return None


BATCH_GET_SIZE = 100  # BatchGetItem's limit of keys per request
BATCH_GET_TRIES = 5  # requests per chunk while DynamoDB returns UnprocessedKeys
BATCH_GET_BACKOFF_SECONDS = 0.05  # doubled after each try that left keys unprocessed


class PreferencesStore(Protocol):
    def get(self, user_id: str) -> Preferences | None: ...
    def get_many(self, user_ids: Collection[str]) -> dict[str, Preferences]: ...
    def put(self, preferences: Preferences) -> None: ...


def updated(current: Preferences | None, user_id: str, changes: Mapping[str, Any]) -> Preferences:
    """``current`` (or empty preferences for ``user_id``) with ``changes`` applied and the
    result validated as a whole, so a bad value (an unknown time zone, a bad channel) fails
    with pydantic's message and nothing is written."""
    base = current.model_dump() if current is not None else {"user_id": user_id}
    return Preferences.model_validate({**base, **changes, "user_id": user_id})


class DynamoPreferencesStore:
    """Preferences as one item per user, keyed by ``user_id``."""

    def __init__(self, table_name: str, sleep: Callable[[float], None] = time.sleep) -> None:
        self.table_name = table_name
        self.sleep = sleep

    def _table(self) -> Any:
        return table(self.table_name)

    def get(self, user_id: str) -> Preferences | None:
        item = self._table().get_item(Key={"user_id": user_id}).get("Item")
        return None if item is None else Preferences.model_validate_json(item["document"])

    def get_many(self, user_ids: Collection[str]) -> dict[str, Preferences]:
        """The stored preferences of each of ``user_ids`` that has some (users without are
        absent from the result): one BatchGetItem per hundred users, resending the keys
        DynamoDB reports unprocessed (throttling, the 16 MB response limit) with a short
        backoff. Raises ``RetryableError`` when keys stay unprocessed."""
        unique = sorted(set(user_ids))
        found: dict[str, Preferences] = {}
        for start in range(0, len(unique), BATCH_GET_SIZE):
            for item in self._batch_get(unique[start : start + BATCH_GET_SIZE]):
                found[item["user_id"]] = Preferences.model_validate_json(item["document"])
        return found

    def _batch_get(self, user_ids: list[str]) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = []
        request: dict[str, Any] = {self.table_name: {"Keys": [{"user_id": u} for u in user_ids]}}
        for attempt in range(BATCH_GET_TRIES):
            if attempt:
                self.sleep(BATCH_GET_BACKOFF_SECONDS * 2 ** (attempt - 1))
            response = resource("dynamodb").batch_get_item(RequestItems=request)
            items.extend(response.get("Responses", {}).get(self.table_name, []))
            request = response.get("UnprocessedKeys") or {}
            if not request:
                return items
        unprocessed = len(request.get(self.table_name, {}).get("Keys", []))
        raise RetryableError(
            "preferences_unavailable", f"{unprocessed} preference keys stayed unprocessed"
        )

    def put(self, preferences: Preferences) -> None:
        self._table().put_item(
            Item={"user_id": preferences.user_id, "document": preferences.model_dump_json()}
        )

    def get_versioned(self, user_id: str) -> tuple[Preferences | None, str | None]:
        """The preferences and their stored document (the version ``replace`` checks),
        read consistently."""
        item = self._table().get_item(Key={"user_id": user_id}, ConsistentRead=True).get("Item")
        if item is None:
            return None, None
        document = str(item["document"])
        return Preferences.model_validate_json(document), document

    def replace(self, preferences: Preferences, expected_document: str | None) -> bool:
        """Write ``preferences`` only if the stored document is still ``expected_document``
        (None: no item yet), with one UpdateItem; False when another writer came first."""
        from botocore.exceptions import ClientError

        condition = (
            "attribute_not_exists(user_id)" if expected_document is None else "document = :old"
        )
        values: dict[str, Any] = {":doc": preferences.model_dump_json()}
        if expected_document is not None:
            values[":old"] = expected_document
        try:
            self._table().update_item(
                Key={"user_id": preferences.user_id},
                UpdateExpression="SET document = :doc",
                ConditionExpression=condition,
                ExpressionAttributeValues=values,
            )
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException":
                return False
            raise
        return True

    def delete(self, user_id: str) -> bool:
        """Remove a user's preferences; False when there were none."""
        response = self._table().delete_item(Key={"user_id": user_id}, ReturnValues="ALL_OLD")
        return "Attributes" in response

    def update(self, user_id: str, changes: Mapping[str, Any]) -> Preferences:
        """Read, apply ``changes`` (field name -> new value), validate, write; returns the new
        preferences. Creates them when the user has none. Last writer wins: this is the
        operator CLI's path, not a per-message one."""
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
