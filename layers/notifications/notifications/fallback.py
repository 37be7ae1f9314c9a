"""Channel fallback chains: when a channel cannot reach a user, the next channel tries.

Per category, an ordered chain of channels (``routing.FALLBACK_CHAINS``, overridden per user
by ``Preferences.channel_chains``). A notification that ends without reaching the user for a
reason that means "this channel cannot reach this user" gets a successor on the next channel
of its chain that the event has not addressed to the user yet, where the user has a contact
point and has not opted out (such channels are skipped, not failures). Two paths end there:
a dead letter (the alarm function; ``FALLBACK_REASONS``, or attempts exhausted on a channel of
``FALLBACK_ON_EXHAUSTED``) and a permanent bounce reported after the send (the feedback
function; reason ``permanent_bounce``).

A user reached on one channel through several recipients (several push endpoints) is not
reached only when none of them did: the channel falls back only once every sibling
(``NotificationRequested.siblings``) has failed for good; the last one to fail triggers it.
The successor's id derives from the smallest id of the failed notification and its siblings,
so a failure handled twice, or two siblings failing at once, ask for the same successor. It
carries ``fallback_of``, which the ledger records. Delivered notifications never get here.
docs/producers.md#channel-fallback-chains explains the rules.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol

import msgspec

from notifications.models import Channel, NotificationRequested, NotificationStatus, notification_id
from notifications.queues import NotificationQueues
from notifications.routing import (
    chain_for,
    fallback_candidates,
    falls_back_after_send,
    first_reachable,
)

# types only: the events and preferences modules load where they are used
if TYPE_CHECKING:
    from notifications.preferences import Preferences, PreferencesStore

PERMANENT_BOUNCE = "permanent_bounce"
# Reasons that say the channel cannot reach this user (not that the provider or the message
# is broken: those would fail on every channel).
FALLBACK_REASONS = frozenset(
    {
        "invalid_recipient",
        "endpoint_disabled",
        "unsupported_platform",
        "no_contact_point",
        PERMANENT_BOUNCE,
    }
)
# Channels on which running out of attempts also counts as "cannot reach".
FALLBACK_ON_EXHAUSTED = frozenset({Channel.PUSH, Channel.SMS})
EXHAUSTED = "exhausted"


class FallbackDecision(msgspec.Struct, frozen=True):
    request: NotificationRequested | None
    # Channels of the chain passed over, with why (opted out, no contact point).
    skipped: tuple[str, ...] = ()
    why_none: str | None = None


__all__ = ["chain_for"]  # re-exported: the chain a fallback follows


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
    if failed.channel not in chain_for(failed.category, preferences):
        return FallbackDecision(None, why_none="channel_not_in_chain")
    rest = fallback_candidates(failed.channel, failed.category, failed.event_type, preferences)
    channel, skipped = first_reachable(rest, preferences, failed.category)
    if channel is None:
        return FallbackDecision(None, skipped, why_none="chain_exhausted")
    recipient = preferences.contact(channel)[0]
    successor = failed.model_copy(
        update={
            "notification_id": notification_id(
                f"fallback:{min(failed.notification_id, *failed.siblings)}",
                channel,
                recipient,
                failed.template_id,
            ),
            "channel": channel,
            "recipient": recipient,
            "requested_at": now,
            "redrive_count": 0,
            "fallback_of": failed.notification_id,
            "siblings": (),
            "keep_for_fallback": falls_back_after_send(
                channel, failed.category, failed.event_type, failed.user_id, preferences
            ),
        }
    )
    return FallbackDecision(successor, skipped)


# What a sibling's ledger record says about reaching the user.
REACHED, PENDING, FAILED = "reached", "pending", "failed"
_FAILED_STATUSES = frozenset(
    {NotificationStatus.DEAD_LETTERED, NotificationStatus.SUPPRESSED, NotificationStatus.PURGED}
)


def sibling_state(record: Mapping[str, Any] | None) -> str:
    """A sibling reached the user (SENT, and no permanent bounce reported since), failed for
    good (dead-lettered, suppressed, purged, or bounced permanently), or may still do either
    (no record yet: still queued; or on its way: sending, retrying, deferred, redriven)."""
    if record is None:
        return PENDING
    status = record.get("status")
    if status == NotificationStatus.SENT:
        return FAILED if record.get("delivery_permanent") else REACHED
    if status in _FAILED_STATUSES:
        return FAILED
    return PENDING


class FallbackLedger(Protocol):
    def record_fallback(
        self, notification_id: str, decision: FallbackDecision, now: datetime
    ) -> None: ...

    def get(self, notification_id: str) -> dict[str, Any] | None: ...


class FallbackTrigger:
    """Called once per failure that ends a notification (the alarm function for a dead
    letter, the feedback function for a permanent bounce): enqueue its successor, if any, on
    the next channel's queue, and note the decision on the failed notification's ledger record.

    The failure must be in the ledger before this is called (dead letter or bounce recorded):
    two siblings failing at once then each read the other's failure, so at least one of them
    falls back (both, with the same successor id, at worst)."""

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

    def after_failure(
        self, failed: NotificationRequested, reason: str, failure_class: str, now: datetime
    ) -> FallbackDecision | None:
        """The decision taken, or None when the failure says nothing about reachability."""
        if not eligible(failed, reason, failure_class):
            return None
        assert failed.user_id is not None  # eligible() checked it
        waiting = self._siblings_in_the_way(failed)
        if waiting is not None:
            decision = FallbackDecision(None, why_none=waiting)
        else:
            preferences = self.preferences.get(failed.user_id)
            decision = next_notification(failed, reason, failure_class, preferences, now)
        if decision.request is not None:
            url = self.queue_urls[decision.request.channel]
            self.queues.enqueue(url, [decision.request])
        self.ledger.record_fallback(failed.notification_id, decision, now)
        return decision

    def _siblings_in_the_way(self, failed: NotificationRequested) -> str | None:
        """``sibling_reached`` or ``sibling_pending`` when another notification of the event
        to the user on this channel reached them or still may; None when all failed."""
        states = {sibling_state(self.ledger.get(sibling)) for sibling in failed.siblings}
        if REACHED in states:
            return "sibling_reached"
        if PENDING in states:
            return "sibling_pending"
        return None


def build_fallback_trigger(
    queue_urls: Mapping[Channel, str] | None,
    preferences: PreferencesStore,
    ledger: FallbackLedger,
) -> FallbackTrigger | None:
    """A trigger on SQS when the template gives the function the channel queues, else none
    (the function then records failures without falling back)."""
    from notifications.adapters.sqs import SqsQueues

    if queue_urls is None:
        return None
    return FallbackTrigger(preferences, SqsQueues(), queue_urls, ledger)
