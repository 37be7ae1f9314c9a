"""The channel registry: everything the code needs to know about a channel, in one entry.

A ``ChannelSpec`` names a channel's recipient validator and provider factory (module paths,
imported on first use so a cold start loads only the libraries of the channel its batch holds),
its queue's logical id in ``template.yaml`` (and so the stack outputs ``<QueueId>Url`` /
``<QueueId>Arn``, the event source mapping ``<QueueId>`` of the sender, the alarm
``<QueueId>...``), its settings field for the queue URL, and its dashboard label.

Adding a channel is one entry here, its ``Channel`` member (``models.py``), its provider module
and its template block; ``tests/integration/test_template.py`` derives the per-channel queue,
mapping, alarm and output blocks from this registry and fails if one is missing.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import TYPE_CHECKING, cast

import msgspec

from notifications.kinds import Channel

if TYPE_CHECKING:
    from notifications.channels.base import ChannelProvider
    from notifications.settings import SenderSettings


class ChannelSpec(msgspec.Struct, frozen=True):
    channel: Channel
    queue_id: str  # the queue's logical id in template.yaml
    label: str  # as the dashboard and the CLI show it
    validator: str  # "module:function": raises PermanentError for an unreachable recipient
    provider: str  # "module:function": SenderSettings -> ChannelProvider

    @property
    def queue_url_output(self) -> str:
        return f"{self.queue_id}Url"

    @property
    def queue_arn_output(self) -> str:
        return f"{self.queue_id}Arn"

    @property
    def queue_url_env(self) -> str:
        """The functions' environment variable holding the queue URL."""
        return f"QUEUE_URL_{self.channel.value.upper()}"


def _load(path: str) -> Callable[..., object]:
    module, _, name = path.partition(":")
    return cast("Callable[..., object]", getattr(importlib.import_module(module), name))


CHANNELS: dict[Channel, ChannelSpec] = {
    spec.channel: spec
    for spec in (
        ChannelSpec(
            Channel.EMAIL,
            "EmailQueue",
            "email",
            "notifications.channels.email:validate_recipient",
            "notifications.channels.factories:email",
        ),
        ChannelSpec(
            Channel.SMS,
            "SmsQueue",
            "sms",
            "notifications.channels.sms:validate_phone",
            "notifications.channels.factories:sms",
        ),
        ChannelSpec(
            Channel.PUSH,
            "PushQueue",
            "push",
            "notifications.channels.push:platform_of",
            "notifications.channels.factories:push",
        ),
        ChannelSpec(
            Channel.WEBHOOK,
            "WebhookQueue",
            "webhook",
            # A webhook's recipient is its subscription id; its URL is checked at send time.
            "notifications.registry:any_recipient",
            "notifications.channels.factories:webhook",
        ),
    )
}


def spec(channel: Channel) -> ChannelSpec:
    return CHANNELS[channel]


def any_recipient(recipient: str) -> str:
    return recipient


def validate_recipient(channel: Channel, recipient: str) -> None:
    """Raise ``PermanentError`` for a recipient ``channel`` can never reach."""
    _load(CHANNELS[channel].validator)(recipient)


def build_provider(channel: Channel, settings: SenderSettings) -> ChannelProvider:
    return cast("ChannelProvider", _load(CHANNELS[channel].provider)(settings))
