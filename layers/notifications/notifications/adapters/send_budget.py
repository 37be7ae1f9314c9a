"""Send budgets (``send_budget.py``) in the policy state table: per channel, one counter item
per one-second window (``pk = "budget#<channel>"``, ``sk`` = the window's epoch second,
``used``; TTL two minutes on) and one rate-cut item (``pk = "budget#<channel>"``,
``sk = "cut"``: ``rate``, ``at``)."""

from __future__ import annotations

from decimal import Decimal

from notifications.adapters.dynamodb import DynamoTable
from notifications.models import Channel
from notifications.send_budget import RateCut

WINDOW_TTL_SECONDS = 120
CUT_TTL_SECONDS = 3600


def budget_key(channel: Channel) -> str:
    return f"budget#{channel.value}"


class DynamoBudgetStore:
    def __init__(self, table_name: str) -> None:
        self.table_name = table_name
        self.table = DynamoTable(table_name)

    def take(self, channel: Channel, window: int, wanted: int, limit: int) -> int:
        response = self.table.update_item(
            Key={"pk": budget_key(channel), "sk": str(window)},
            UpdateExpression="ADD used :n SET expires_at = :ttl",
            ExpressionAttributeValues={":n": wanted, ":ttl": window + WINDOW_TTL_SECONDS},
            ReturnValues="UPDATED_NEW",
        )
        used = int(response["Attributes"]["used"])
        return max(min(wanted, limit - (used - wanted)), 0)

    def read_cut(self, channel: Channel) -> RateCut | None:
        item = self.table.get_item(Key={"pk": budget_key(channel), "sk": "cut"})
        if not item:
            return None
        return RateCut(float(item["rate"]), float(item["at"]))

    def write_cut(self, channel: Channel, cut: RateCut) -> None:
        self.table.put_item(
            Item={
                "pk": budget_key(channel),
                "sk": "cut",
                "rate": Decimal(str(round(cut.rate, 3))),
                "at": Decimal(str(round(cut.at, 3))),
                "expires_at": int(cut.at) + CUT_TTL_SECONDS,
            }
        )
