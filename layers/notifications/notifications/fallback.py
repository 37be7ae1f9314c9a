"""Channel fallback chains: when a channel cannot reach a user, the next channel tries.

Per category, an ordered chain of channels (``routing.FALLBACK_CHAINS``, overridden per user
by ``Preferences.channel_chains``). A notification that ends dead-lettered for a reason that
means "this channel cannot reach this user" (``FALLBACK_REASONS``; or attempts exhausted on a
channel of ``FALLBACK_ON_EXHAUSTED``) gets a successor on the next channel of its chain that
the event has not addressed to the user yet, where the user has a contact point and has not
opted out (such channels are skipped, not failures). The successor's id is derived from the
failed notification's id, so a dead letter handled twice asks for the same successor, and it
carries ``fallback_of``, which the ledger records. Delivered notifications never get here.
docs/producers.md#channel-fallback-chains explains the rules.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Protocol

from notifications.models import Channel, NotificationRequested, notification_id
from notifications.queues import NotificationQueues
from notifications.routing import FALLBACK_CHAINS, ROUTING_TABLE, first_reachable

# types only: pydantic (events, preferences) loads where they are used
if TYPE_CHECKING:
    from notifications.preferences import Preferences, PreferencesStore

# Dead-letter reasons that say the channel cannot reach this user (not that the provider or
# the message is broken: those would fail on every channel).
FALLBACK_REASONS = frozenset(
    {"invalid_recipient", "endpoint_disabled", "unsupported_platform", "no_contact_point"}
)
# Channels on which running out of attempts also counts as "cannot reach".
FALLBACK_ON_EXHAUSTED = frozenset({Channel.PUSH, Channel.SMS})
EXHAUSTED = "exhausted"


@dataclass(frozen=True)
class FallbackDecision:
    request: NotificationRequested | None
    # Channels of the chain passed over, with why (opted out, no contact point).
    skipped: tuple[str, ...] = field(default=())
    why_none: str | None = None


def chain_for(category: str, preferences: Preferences | None) -> tuple[Channel, ...]:
    """The user's own chain for the category, else the routing data's."""
    if preferences is not None and category in preferences.channel_chains:
        return preferences.channel_chains[category]
    return FALLBACK_CHAINS.get(category, ())


def eligible(failed: NotificationRequested, reason: str, failure_class: str) -> bool:
    if failed.channel is Channel.WEBHOOK or failed.user_id is None:
        return False
    if reason in FALLBACK_REASONS:
        return True
    return failure_class == EXHAUSTED and failed.channel in FALLBACK_ON_EXHAUSTED


def next_notification(
    failed: NotificationRequested,
    reason: str,
    failure_class: str,
    preferences: Preferences | None,
    now: datetime,
) -> FallbackDecision:
    """The successor of a dead-lettered notification, or why there is none."""
    if not eligible(failed, reason, failure_class):
        return FallbackDecision(None, why_none="not_a_reachability_failure")
    if preferences is None:
        return FallbackDecision(None, why_none="no_preferences")
    chain = chain_for(failed.category, preferences)
    if failed.channel not in chain:
        return FallbackDecision(None, why_none="channel_not_in_chain")
    rest = chain[chain.index(failed.channel) + 1 :]
    if failed.category not in preferences.channel_chains:
        # The route sent the event on each of its channels at once: those are not retried.
        route = ROUTING_TABLE.get(failed.event_type)
        routed = set(route.channels) if route else set()
        rest = tuple(c for c in rest if c not in routed)
    channel, skipped = first_reachable(rest, preferences, failed.category)
    if channel is None:
        return FallbackDecision(None, skipped, why_none="chain_exhausted")
    recipient = preferences.contact(channel)[0]
    successor = failed.model_copy(
        update={
            "notification_id": notification_id(
                f"fallback:{failed.notification_id}", channel, recipient, failed.template_id
            ),
            "channel": channel,
            "recipient": recipient,
            "requested_at": now,
            "redrive_count": 0,
            "fallback_of": failed.notification_id,
        }
    )
    return FallbackDecision(successor, skipped)


class FallbackLedger(Protocol):
    def record_fallback(
        self, notification_id: str, decision: FallbackDecision, now: datetime
    ) -> None: ...


class FallbackTrigger:
    """Called once per dead letter (the alarm function): enqueue its successor, if any, on
    the next channel's queue, and note the decision on the dead letter's ledger record."""

    def __init__(
        self,
        preferences: PreferencesStore,
        queues: NotificationQueues,
        queue_urls: Mapping[Channel, str],
        ledger: FallbackLedger,
    ) -> None:
        self.preferences = preferences
        self.queues = queues
        self.queue_urls = queue_urls
        self.ledger = ledger

    def after_dead_letter(
        self, failed: NotificationRequested, reason: str, failure_class: str, now: datetime
    ) -> FallbackDecision | None:
        """The decision taken, or None when the failure says nothing about reachability."""
        if not eligible(failed, reason, failure_class):
            return None
        assert failed.user_id is not None  # eligible() checked it
        preferences = self.preferences.get(failed.user_id)
        decision = next_notification(failed, reason, failure_class, preferences, now)
        if decision.request is not None:
            url = self.queue_urls[decision.request.channel]
            self.queues.enqueue(url, [decision.request])
        self.ledger.record_fallback(failed.notification_id, decision, now)
        return decision
