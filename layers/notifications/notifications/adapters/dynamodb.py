"""DynamoDB through the resource API (typed Python values): the one DynamoDB style of the layer.

``conditional`` is the one place a failed ``ConditionExpression`` is recognised: the call's
response, or None when its condition failed; any other error propagates.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar

from botocore.exceptions import BotoCoreError, ClientError

from notifications.adapters.aws import table
from notifications.admission import NOT_FAILED
from notifications.errors import ServiceError

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


class DynamoTransactions:
    """``TransactWriteItems`` through the DynamoDB resource's client (typed Python values)."""

    def write(self, actions: Sequence[Mapping[str, Any]], token: str) -> list[str] | None:
        dynamodb = table(str(actions[0]["TableName"])).meta.client
        try:
            dynamodb.transact_write_items(
                TransactItems=[{"Update": dict(action)} for action in actions],
                ClientRequestToken=token,
            )
        except ClientError as exc:
            if error_code(exc) != "TransactionCanceledException":
                raise ServiceError("transaction_failed", f"{type(exc).__name__}: {exc}") from exc
            reasons = exc.response.get("CancellationReasons") or []
            return [str(reason.get("Code") or NOT_FAILED) for reason in reasons]
        except BotoCoreError as exc:
            raise ServiceError("transaction_failed", f"{type(exc).__name__}: {exc}") from exc
        return None
