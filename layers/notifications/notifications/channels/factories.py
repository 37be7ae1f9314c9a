"""Provider factories, one per channel, named by the channel registry (``registry.py``).

Each builds its channel's provider from the sender's settings; each imports its provider's
module only when called, so a cold start loads only the libraries of the channel its batch
holds (a batch comes from one channel queue).
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from notifications.channels.base import ChannelProvider
from notifications.settings import SenderSettings

if TYPE_CHECKING:
    from notifications.preference_links import PreferenceLinks


def preference_links(settings: SenderSettings) -> PreferenceLinks | None:
    """Signed preference-center links, when the stack has the preference center."""
    if not settings.preference_center_url or not settings.preference_link_secret_arn:
        return None
    from notifications.preference_links import PreferenceLinks, SecretsManagerLinkKeys

    # Wall-clock cache expiry (not monotonic) so a controlled clock in tests ages it too.
    keys = SecretsManagerLinkKeys(settings.preference_link_secret_arn, monotonic=time.time)
    return PreferenceLinks(settings.preference_center_url, keys)


def email(settings: SenderSettings) -> ChannelProvider:
    from notifications.channels.email import S3AttachmentStore, SesEmailProvider

    return SesEmailProvider(
        sender=settings.sender_email,
        configuration_set=settings.ses_configuration_set,
        attachments=S3AttachmentStore() if settings.attachments_bucket else None,
        unsubscribe_url=settings.unsubscribe_url,
        links=preference_links(settings),
    )


def sms(settings: SenderSettings) -> ChannelProvider:
    from notifications.channels.sms import SnsSmsProvider
    from notifications.routing import sms_manage_link_categories

    return SnsSmsProvider(
        sms_type=settings.sms_type,
        sender_id=settings.sms_sender_id,
        max_segments=settings.sms_max_segments,
        links=preference_links(settings),
        manage_link_categories=sms_manage_link_categories(),
    )


def push(settings: SenderSettings) -> ChannelProvider:
    from notifications.channels.push import SnsPushProvider

    return SnsPushProvider()


def webhook(settings: SenderSettings) -> ChannelProvider:
    from notifications.channels.webhook import (
        CachedSubscriptionStore,
        DynamoSubscriptionStore,
        SecretsManagerSigningKeys,
        WebhookProvider,
    )

    return WebhookProvider(
        CachedSubscriptionStore(
            DynamoSubscriptionStore(settings.webhook_subscriptions_table), monotonic=time.time
        ),
        # Wall-clock expiry (not monotonic) so a controlled clock in tests ages it too.
        SecretsManagerSigningKeys(settings.webhook_secret_prefix, monotonic=time.time),
        timeout=settings.webhook_timeout_seconds,
        allow_loopback=settings.webhook_allow_loopback,
    )
