"""Classify botocore failures as retryable or permanent, with a machine reason code."""

from __future__ import annotations

from collections.abc import Mapping

from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    ConnectionClosedError,
    ConnectTimeoutError,
    EndpointConnectionError,
    ParamValidationError,
    ReadTimeoutError,
)
from botocore.exceptions import (
    ConnectionError as BotoConnectionError,
)

from notifications.errors import NotificationError, PermanentError, RetryableError

THROTTLING_CODES = frozenset(
    {
        "Throttling",
        "ThrottlingException",
        "ThrottledException",
        "TooManyRequestsException",
        "RequestLimitExceeded",
        "SlowDown",
        "KMSThrottlingException",
        "ProvisionedThroughputExceededException",
    }
)
UNAVAILABLE_CODES = frozenset(
    {
        "InternalFailure",
        "InternalError",
        "InternalErrorException",
        "InternalServiceError",
        "InternalServerError",
        "ServiceUnavailable",
        "ServiceUnavailableException",
        "KMSInternalException",
        "KMSOptInRequired",
        "RequestTimeout",
        "RequestTimeoutException",
    }
)


def error_code(error: ClientError) -> str:
    return str(error.response.get("Error", {}).get("Code", ""))


def error_message(error: ClientError) -> str:
    return str(error.response.get("Error", {}).get("Message", ""))


def classify_aws_error(
    error: Exception,
    permanent_codes: Mapping[str, str] | None = None,
    default_permanent: str = "provider_rejected",
) -> NotificationError:
    """Map a botocore exception to a ``RetryableError`` or ``PermanentError``.

    Throttling, 5xx, connection failures and timeouts are retryable; ``permanent_codes`` names
    the reason code of the service's own permanent errors; any other client error (a 4xx) is
    permanent with ``default_permanent``."""
    if isinstance(error, ClientError):
        code = error_code(error)
        status = int(error.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0)
        text = f"{code}: {error_message(error)}"[:300]
        if code in THROTTLING_CODES or status == 429:
            return RetryableError("provider_throttled", text)
        if permanent_codes and code in permanent_codes:
            return PermanentError(permanent_codes[code], text)
        if code in UNAVAILABLE_CODES or status >= 500:
            return RetryableError("provider_unavailable", text)
        return PermanentError(default_permanent, text)
    if isinstance(error, ConnectTimeoutError | ReadTimeoutError):
        return RetryableError("provider_timeout", type(error).__name__)
    if isinstance(error, EndpointConnectionError | ConnectionClosedError | BotoConnectionError):
        return RetryableError("provider_unavailable", type(error).__name__)
    if isinstance(error, ParamValidationError):
        return PermanentError("provider_request_invalid", str(error)[:300])
    if isinstance(error, BotoCoreError):
        # Credentials, configuration: not the message's fault, and fixable without changing it.
        return RetryableError("provider_unavailable", type(error).__name__)
    return RetryableError("provider_unavailable", type(error).__name__)
