"""Failure classes: every failure is retryable or permanent and carries a machine reason code."""

from __future__ import annotations


class NotificationError(Exception):
    """Base class: a short machine ``reason`` code plus a human ``message``."""

    retryable: bool = False

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(f"{reason}: {message}")
        self.reason = reason
        self.message = message


class RetryableError(NotificationError):
    """A transient failure (timeout, 5xx, throttling): try again after a backoff delay.

    ``retry_after`` (seconds) is a provider's own hint, such as an HTTP ``Retry-After``; when
    set it replaces the computed backoff delay for this attempt.
    """

    retryable = True

    def __init__(self, reason: str, message: str, retry_after: float | None = None) -> None:
        super().__init__(reason, message)
        self.retry_after = retry_after


class PermanentError(NotificationError):
    """A failure that retrying cannot fix (invalid address, template error, 4xx)."""

    retryable = False


class ServiceError(RetryableError):
    """An AWS call failed (not a condition: ``adapters.dynamodb.conditional`` answers those),
    turned into the domain's error by the adapter that made it."""
