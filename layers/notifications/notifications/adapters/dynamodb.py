"""DynamoDB through the resource API (typed Python values): the one DynamoDB style of the layer.

``conditional`` is the one place a failed ``ConditionExpression`` is recognised: the call's
response, or None when its condition failed; any other error propagates.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from botocore.exceptions import ClientError

CONDITION_FAILED = "ConditionalCheckFailedException"
T = TypeVar("T")


def error_code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


def conditional(call: Callable[..., T], /, **kwargs: Any) -> T | None:
    """``call(**kwargs)``; None when DynamoDB refused it because its condition failed."""
    try:
        return call(**kwargs)
    except ClientError as exc:
        if error_code(exc) == CONDITION_FAILED:
            return None
        raise
