"""The routing table: which domain event produces which notifications on which channels."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Protocol

import msgspec

from notifications.models import (
    Channel,
    NotificationRequested,
    event_identity,
    notification_id,
)

# types only: the events and preferences modules load where they are used
if TYPE_CHECKING:
    from notifications.events import DomainEvent, EventEnvelope
    from notifications.preferences import Preferences

NO_CONTACT_POINT = "no_contact_point"


class Route(msgspec.Struct, frozen=True):
    template_id: str
    category: str
    channels: tuple[Channel, ...]
    # Take the email address from this field of the event rather than the preferences.
    email_from_event: str | None = None
    webhooks: bool = False
    # Critical categories bypass quiet hours (never a hard opt-out).
    critical: bool = False
    # SMS of this route end with a short signed "manage preferences" link (when it fits).
    sms_manage_link: bool = False


ROUTING_TABLE: Mapping[str, Route] = {
    "UserRegistered": Route(
        template_id="welcome",
        category="account",
        channels=(Channel.EMAIL,),
        email_from_event="email",
    ),
    "OrderPlaced": Route(
        template_id="order_confirm",
        category="order",
        channels=(Channel.EMAIL, Channel.SMS, Channel.PUSH),
        webhooks=True,
        sms_manage_link=True,
    ),
    "PaymentReceived": Route(
        template_id="payment_received",
        category="payment",
        channels=(Channel.EMAIL, Channel.SMS, Channel.PUSH),
        webhooks=True,
        critical=True,
    ),
}


def sms_manage_link_categories() -> frozenset[str]:
    """Categories whose SMS carry a "manage preferences" link (docs/channels.md)."""
    return frozenset(r.category for r in ROUTING_TABLE.values() if r.sms_manage_link)


# Channel fallback chains per category (notifications.fallback): where a notification goes
# next when its channel cannot reach the user. A route sends on each of its channels at once,
# so a chain only adds the channels its route does not have; a user's own chain
# (Preferences.channel_chains) replaces both for its category: one channel at a time.
FALLBACK_CHAINS: Mapping[str, tuple[Channel, ...]] = {
    "account": (Channel.EMAIL, Channel.SMS, Channel.PUSH),
    "order": (Channel.PUSH, Channel.SMS, Channel.EMAIL),
    "payment": (Channel.PUSH, Channel.SMS, Channel.EMAIL),
}


# Channels whose provider reports after the send whether the message arrived (SES bounces,
# SNS SMS delivery status): a permanent failure reported there falls back too.
FEEDBACK_CHANNELS = frozenset({Channel.EMAIL, Channel.SMS})


def chain_for(category: str, preferences: Preferences | None) -> tuple[Channel, ...]:
    """The user's own chain for the category, else the routing data's."""
    if preferences is not None and category in preferences.channel_chains:
        return preferences.channel_chains[category]
    return FALLBACK_CHAINS.get(category, ())


def fallback_candidates(
    channel: Channel, category: str, event_type: str, preferences: Preferences
) -> tuple[Channel, ...]:
    """The channels after ``channel`` in the user's chain for the category that a fallback
    may try: without a chain of the user's own, not the channels the route sent on at once."""
    chain = chain_for(category, preferences)
    if channel not in chain:
        return ()
    rest = chain[chain.index(channel) + 1 :]
    if category not in preferences.channel_chains:
        route = ROUTING_TABLE.get(event_type)
        routed = set(route.channels) if route else set()
        rest = tuple(c for c in rest if c not in routed)
    return rest


class Subscription(Protocol):
    @property
    def subscription_id(self) -> str: ...


class PlannedNotification(msgspec.Struct, frozen=True):
    request: NotificationRequested
    suppressed_reason: str | None = None


def plan_notifications(
    envelope: EventEnvelope,
    event: DomainEvent,
    preferences: Preferences | None,
    subscriptions: Sequence[Subscription],
    now: datetime,
) -> list[PlannedNotification]:
    """Every notification an event asks for: one per (channel, recipient), each either to send
    or suppressed with its reason (opted out, no contact point)."""
    route = ROUTING_TABLE[envelope.detail_type]
    data = event.data()
    identity = event_identity(
        envelope.id, envelope.source, envelope.detail_type, event.idempotency_key
    )
    user_id = data.get("user_id")
    locale = (preferences.locale if preferences else None) or data.get("locale") or "en"

    def request(
        channel: Channel, recipient: str, template_id: str, others: tuple[str, ...] = ()
    ) -> NotificationRequested:
        siblings = tuple(
            notification_id(identity, channel, other, template_id)
            for other in others
            if other != recipient
        )
        return NotificationRequested(
            notification_id=notification_id(identity, channel, recipient, template_id),
            siblings=siblings,
            keep_for_fallback=falls_back_after_send(
                channel, route.category, envelope.detail_type, user_id, preferences
            ),
            channel=channel,
            recipient=recipient,
            template_id=template_id,
            locale=locale,
            category=route.category,
            data=data,
            user_id=user_id,
            event_id=envelope.id,
            event_type=envelope.detail_type,
            correlation_id=envelope.id,
            occurred_at=envelope.time,
            requested_at=now,
            quiet_hours=preferences.quiet_hours if preferences else None,
            critical=route.critical,
        )

    planned: list[PlannedNotification] = []
    channels = route.channels
    chain = preferences.channel_chains.get(route.category) if preferences else None
    if preferences is not None and chain:
        # The user's own chain: its first reachable channel only, the rest are fallbacks.
        first, _ = first_reachable(chain, preferences, route.category)
        channels = (first,) if first is not None else route.channels
    for channel in channels:
        if channel is Channel.EMAIL and route.email_from_event:
            recipients: tuple[str, ...] = (str(data[route.email_from_event]),)
        else:
            recipients = preferences.contact(channel) if preferences else ()
        if not recipients:
            if channel is Channel.EMAIL:  # the one channel every route promises
                planned.append(
                    PlannedNotification(request(channel, "-", route.template_id), NO_CONTACT_POINT)
                )
            continue
        reason = preferences.opt_out_reason(channel, route.category) if preferences else None
        if (
            channel is Channel.EMAIL
            and preferences
            and recipients[0] in preferences.suppressed_emails
        ):
            reason = reason or "address_suppressed"
        planned.extend(
            PlannedNotification(request(channel, r, route.template_id, recipients), reason)
            for r in recipients
        )
    if route.webhooks:
        planned.extend(
            PlannedNotification(request(Channel.WEBHOOK, s.subscription_id, envelope.detail_type))
            for s in subscriptions
        )
    return planned


def falls_back_after_send(
    channel: Channel,
    category: str,
    event_type: str,
    user_id: object,
    preferences: Preferences | None,
) -> bool:
    """Whether a permanent bounce of this notification would have a channel to fall back to
    (a contact point, not opted out): only then is its request kept until the feedback."""
    if channel not in FEEDBACK_CHANNELS or user_id is None or preferences is None:
        return False
    rest = fallback_candidates(channel, category, event_type, preferences)
    return first_reachable(rest, preferences, category)[0] is not None


def first_reachable(
    chain: tuple[Channel, ...], preferences: Preferences, category: str
) -> tuple[Channel | None, tuple[str, ...]]:
    """The first channel of ``chain`` the user can be reached on (a contact point, not opted
    out), and the channels passed over with why."""
    skipped: list[str] = []
    for channel in chain:
        opted_out = preferences.opt_out_reason(channel, category)
        if opted_out is not None:
            skipped.append(f"{channel.value}: {opted_out}")
        elif not preferences.contact(channel):
            skipped.append(f"{channel.value}: {NO_CONTACT_POINT}")
        else:
            return channel, tuple(skipped)
    return None, tuple(skipped)
