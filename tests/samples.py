"""The one helper that loads sample events from events/."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

EVENTS = Path(__file__).resolve().parent.parent / "events"


def load_event(name: str) -> Any:
    """``load_event("fan_out/user-registered.json")``: a fresh copy each call."""
    return json.loads((EVENTS / name).read_text())
