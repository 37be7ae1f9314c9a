"""DynamoDB ``TransactWriteItems`` for the batch admission (``admission.Transactions``)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from notifications.adapters.dynamodb import dynamodb, error_code, wire_request
from notifications.admission import NOT_FAILED
from notifications.errors import ServiceError


class DynamoTransactions:
    """``TransactWriteItems`` through the low-level client; the actions come with plain
    Python values (``Key``, ``ExpressionAttributeValues``) and go in wire format."""

    def write(self, actions: Sequence[Mapping[str, Any]], token: str) -> list[str] | None:
        try:
            dynamodb().transact_write_items(
                TransactItems=[{"Update": wire_request(action)} for action in actions],
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
