"""The stack's own EventBridge bus, for the operational events (``operational_events.py``)."""

from __future__ import annotations

from typing import Any

from notifications.adapters.aws import client


class EventBridgePutter:
    """Puts one event at a time on ``bus_name`` (operational events are rare: no batching)."""

    def __init__(self, bus_name: str) -> None:
        self.bus_name = bus_name

    def put(self, source: str, detail_type: str, detail: str) -> None:
        response: dict[str, Any] = client("events").put_events(
            Entries=[
                {
                    "Source": source,
                    "DetailType": detail_type,
                    "Detail": detail,
                    "EventBusName": self.bus_name,
                }
            ]
        )
        if response.get("FailedEntryCount"):
            entry = response["Entries"][0]
            raise RuntimeError(
                f"PutEvents refused {detail_type}: {entry.get('ErrorCode')} "
                f"{entry.get('ErrorMessage', '')}".strip()
            )
