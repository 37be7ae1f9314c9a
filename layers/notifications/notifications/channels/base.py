"""What every channel provider offers the sender."""

from __future__ import annotations

from typing import Protocol

import msgspec

from notifications.models import NotificationRequested


class RenderedMessage(msgspec.Struct, frozen=True):
    """A template rendered for one channel. Which parts are set depends on the channel:
    email uses subject, text and html; SMS text; push title, text (the body), badge, deep_link;
    webhook ``payload`` (a JSON-ready dict)."""

    text: str = ""
    subject: str | None = None
    html: str | None = None
    title: str | None = None
    badge: int | None = None
    deep_link: str | None = None
    payload: dict[str, object] = msgspec.field(default_factory=dict)


class ProviderReceipt(msgspec.Struct, frozen=True):
    """The provider's acceptance of a message."""

    provider_message_id: str | None
    detail: dict[str, str] = msgspec.field(default_factory=dict)


class ChannelProvider(Protocol):
    """Delivers one rendered notification. Raises ``RetryableError`` or ``PermanentError``
    (``notifications.errors``) on failure; returns a receipt once the provider accepted it."""

    def send(self, request: NotificationRequested, message: RenderedMessage) -> ProviderReceipt: ...
