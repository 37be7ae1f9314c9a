"""One helper to mask personal data (emails, phone numbers, tokens) before it reaches a log."""

from __future__ import annotations

import re
from urllib.parse import urlsplit

from notifications.kinds import Channel

_PHONE = re.compile(r"^\+?[0-9][0-9 ().-]{4,}$")
_ENDPOINT_ARN = re.compile(r"^(arn:[^:]+:sns:[^:]*:[^:]*:endpoint/[^/]+/[^/]+/)(.+)$")


def mask_email(value: str) -> str:
    """``alice@example.com`` -> ``a***@example.com`` (the domain helps operations; the user
    part is personal)."""
    local, _, domain = value.rpartition("@")
    if not local:
        return "***"
    return f"{local[0]}***@{domain}"


def mask_phone(value: str) -> str:
    """``+447700900123`` -> ``+44*******23``: country prefix and the last two digits."""
    digits = value.strip()
    if len(digits) <= 5:
        return "***"
    return digits[:3] + "*" * (len(digits) - 5) + digits[-2:]


def mask_token(value: str) -> str:
    """A token, secret or opaque id: its first four characters, never more than a quarter."""
    if len(value) < 16:
        return "***"
    return value[:4] + "***"


def mask_url(value: str) -> str:
    """A URL: scheme and host only (paths and queries often carry tokens)."""
    try:
        parts = urlsplit(value)
        host = parts.hostname or ""
    except ValueError:
        return "***"
    if not parts.scheme or not host:
        return "***"
    return f"{parts.scheme}://{host}/***"


def mask(value: str) -> str:
    """Mask any value that may identify a person, guessing its kind from its shape."""
    if "@" in value and "://" not in value:
        return mask_email(value)
    if "://" in value:
        return mask_url(value)
    if _PHONE.match(value):
        return mask_phone(value)
    endpoint = _ENDPOINT_ARN.match(value)
    if endpoint:
        return endpoint.group(1) + mask_token(endpoint.group(2))
    return mask_token(value)


def mask_recipient(channel: Channel | str, value: str) -> str:
    """Mask a notification's recipient the way its channel needs. Webhook recipients are
    subscription ids, which identify a customer's endpoint configuration, not a person."""
    kind = Channel(channel)
    if kind is Channel.EMAIL:
        return mask_email(value)
    if kind is Channel.SMS:
        return mask_phone(value)
    if kind is Channel.PUSH:
        return mask(value)
    return value
