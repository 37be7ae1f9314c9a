"""The preference center's audit trail: one ledger item per change a user made through a
signed link (who, when, how, what), next to the notifications' own records."""

from __future__ import annotations

from typing import Any

from notifications.adapters.dynamodb import DynamoTable, conditional
from notifications.ledger import RETENTION
from notifications.models import utc_iso
from notifications.preference_center import AuditEntry

# Not a notification status: the dashboard's figures ignore it, the by_status index finds it.
PREFERENCE_CHANGE = "PREFERENCE_CHANGE"


class LedgerAuditLog:
    """Writes ``AuditEntry`` items into the ledger table with one conditional PutItem."""

    def __init__(self, table_name: str) -> None:
        self.table_name = table_name
        self.table = DynamoTable(table_name)

    def record(self, entry: AuditEntry) -> bool:
        at = utc_iso(entry.at)
        item: dict[str, Any] = {
            "notification_id": entry.key,
            "kind": "preference_change",
            "status": PREFERENCE_CHANGE,
            "user_id": entry.user_id,
            "category": entry.category,
            "created_at": at,
            "updated_at": at,
            "expires_at": int((entry.at + RETENTION).timestamp()),
            "audit": [
                {
                    "action": entry.action,
                    "at": at,
                    "by": f"user:{entry.user_id}",
                    "via": entry.via,
                    "user_agent": entry.user_agent or "-",
                }
            ],
            "changes": {k: list(v) for k, v in entry.changes.items()},
        }
        response = conditional(
            self.table.put_item,
            Item=item,
            ConditionExpression="attribute_not_exists(notification_id)",
        )
        return response is not None
