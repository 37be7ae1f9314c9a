"""The values each enumerated CLI option accepts, read from the sources the product itself uses.

One small function per kind of value, so that a command never keeps its own list and a new
source (a channel registry, an event catalog) replaces one function body, not every command:

- channels: ``notifications.models.Channel``, and for preferences the channels the routing
  table addresses from a user's contact points (webhooks go by subscription, not preference);
- event types and categories: the routing table (``notifications.routing.ROUTING_TABLE``);
- locales: the template locales on disk (``message_templates/<id>/<locale>/``);
- time zones: the IANA database as ``zoneinfo`` sees it, the same check as the models'.
"""

from __future__ import annotations

from collections.abc import Iterable
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from notifications.models import Channel
from notifications.registry import CHANNELS
from notifications.routing import ROUTING_TABLE
from notifications.templates import TEMPLATE_ROOT

ALL_EVENT_TYPES = "*"


class ChoiceError(ValueError):
    """A value outside the allowed set; the message names the value and what is allowed."""


def channels() -> list[str]:
    """Every delivery channel (dead letters, metrics), as the channel registry names them."""
    return [spec.label for spec in CHANNELS.values()]


def preference_channels() -> list[str]:
    """Channels a user's preferences govern: those the routing table sends to contact points."""
    routed = {c for route in ROUTING_TABLE.values() for c in route.channels}
    return [channel.value for channel in Channel if channel in routed]


def event_types() -> list[str]:
    """Domain event types the fan-out routes."""
    return sorted(ROUTING_TABLE)


def webhook_event_types() -> list[str]:
    """Event types delivered to webhook subscribers, plus ``*`` for all of them."""
    return [*sorted(t for t, route in ROUTING_TABLE.items() if route.webhooks), ALL_EVENT_TYPES]


def categories() -> list[str]:
    """Notification categories a user can opt out of."""
    return sorted({route.category for route in ROUTING_TABLE.values()})


def locales() -> list[str]:
    """Locales some message template exists in."""
    return sorted({p.name for p in TEMPLATE_ROOT.glob("*/*") if p.is_dir()})


def check(option: str, value: str, allowed: Iterable[str]) -> str:
    """``value`` when it is one of ``allowed``, else a ``ChoiceError`` naming both."""
    allowed = list(allowed)
    if value not in allowed:
        raise ChoiceError(f"{option} {value!r} is not one of: {', '.join(allowed)}")
    return value


def check_locale(value: str) -> str:
    """A locale whose language has templates: ``de`` and ``de-CH`` (rendered from ``de``)."""
    known = locales()
    language = value.replace("_", "-").split("-")[0]
    if value not in known and language not in known:
        raise ChoiceError(
            f"--locale {value!r} has no templates; use one of {', '.join(known)}"
            " (or a regional form such as de-CH)"
        )
    return value


def check_timezone(value: str) -> str:
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        raise ChoiceError(
            f"--timezone {value!r} is not an IANA time zone (e.g. Europe/Zurich, UTC)"
        ) from None
    return value
