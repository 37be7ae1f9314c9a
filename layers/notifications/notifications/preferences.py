"""User preferences: contact points, opt-outs, quiet hours and locale, in a DynamoDB table."""

from __future__ import annotations

from datetime import time
from typing import Any, Protocol
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, field_validator

from notifications.aws import resource
from notifications.models import Channel


class QuietHours(BaseModel):
    """A daily quiet period in the user's own time zone; it may wrap past midnight."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    start: time
    end: time
    timezone: str = "UTC"

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown IANA time zone {value!r}") from exc
        return value


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
        return None


class PreferencesStore(Protocol):
    def get(self, user_id: str) -> Preferences | None: ...
    def put(self, preferences: Preferences) -> None: ...


class DynamoPreferencesStore:
    """Preferences as one item per user, keyed by ``user_id``."""

    def __init__(self, table_name: str) -> None:
        self.table_name = table_name

    def _table(self) -> Any:
        return resource("dynamodb").Table(self.table_name)

    def get(self, user_id: str) -> Preferences | None:
        item = self._table().get_item(Key={"user_id": user_id}).get("Item")
        return None if item is None else Preferences.model_validate_json(item["document"])

    def put(self, preferences: Preferences) -> None:
        self._table().put_item(
            Item={"user_id": preferences.user_id, "document": preferences.model_dump_json()}
        )

    def remove_push_endpoint(self, user_id: str, endpoint_arn: str) -> bool:
        current = self.get(user_id)
        if current is None or endpoint_arn not in current.push_endpoints:
            return False
        endpoints = tuple(e for e in current.push_endpoints if e != endpoint_arn)
        self.put(current.model_copy(update={"push_endpoints": endpoints}))
        return True
