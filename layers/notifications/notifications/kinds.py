"""The closed sets of names every function uses: channels and ledger statuses.

Plain enums without a validation library, so a function that only needs these names (the
breaker check, the settings) does not load one; ``notifications.models`` re-exports both.
"""

from __future__ import annotations

from enum import StrEnum


class Channel(StrEnum):
    EMAIL = "email"
    SMS = "sms"
    PUSH = "push"
    WEBHOOK = "webhook"


class NotificationStatus(StrEnum):
    REQUESTED = "REQUESTED"
    SENDING = "SENDING"
    SENT = "SENT"
    RETRYING = "RETRYING"
    DEFERRED = "DEFERRED"
    SUPPRESSED = "SUPPRESSED"
    DEAD_LETTERED = "DEAD_LETTERED"
    REDRIVEN = "REDRIVEN"
    PURGED = "PURGED"  # an operator dropped a dead letter; the record is the audit entry
    # Its webhook endpoint is disabled: kept with its body until `notifyctl webhooks replay`.
    ENDPOINT_DISABLED = "ENDPOINT_DISABLED"
