"""Toy EventBridge target: records each event; detail.fail makes it raise."""

from __future__ import annotations

from typing import Any

from toylib import record


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    record("on_event", {"event": event, "request_id": context.aws_request_id})
    if event["detail"].get("fail"):
        raise RuntimeError(f"cannot handle {event['detail']['name']}")
    return {"ok": True}
