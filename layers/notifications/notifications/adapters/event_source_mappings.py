"""The Lambda API: the sender function's event source mappings, switched off and on by the
circuit breaker (``circuit_breaker.EventSourceMappings``)."""

from __future__ import annotations

from typing import Any

from notifications.adapters.aws import client


class LambdaEventSourceMappings:
    """Lambda API adapter; mapping UUIDs are looked up once per process."""

    def __init__(self, function_name: str) -> None:
        self.function_name = function_name
        self._uuids: dict[str, str] | None = None

    def _mappings(self) -> dict[str, str]:
        if self._uuids is None:
            uuids: dict[str, str] = {}
            kwargs: dict[str, Any] = {"FunctionName": self.function_name}
            while True:
                page = client("lambda").list_event_source_mappings(**kwargs)
                for mapping in page.get("EventSourceMappings", []):
                    uuids[mapping["EventSourceArn"]] = mapping["UUID"]
                if not page.get("NextMarker"):
                    break
                kwargs["Marker"] = page["NextMarker"]
            self._uuids = uuids
        return self._uuids

    def queue_arns(self) -> list[str]:
        return sorted(self._mappings())

    def is_enabled(self, queue_arn: str) -> bool:
        mapping = client("lambda").get_event_source_mapping(UUID=self._mappings()[queue_arn])
        return mapping.get("State") not in ("Disabled", "Disabling")

    def set_enabled(self, queue_arn: str, enabled: bool) -> None:
        client("lambda").update_event_source_mapping(
            UUID=self._mappings()[queue_arn], Enabled=enabled
        )
