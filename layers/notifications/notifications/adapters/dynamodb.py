"""DynamoDB through the low-level client with wire-format values: the one DynamoDB style of the
layer. No boto3 *resource*: building one loads and builds the resource model at the first
call (tens of milliseconds of every cold start), and its value conversion and extra event
handlers cost 7-21% of each call (docs/performance.md, "Cold start" and "Sender CPU").

Adapters write their values as plain Python (``str``, ``int``, ``Decimal``, ``bool``,
``None``, lists, dicts) through ``DynamoTable`` (or ``wire_request`` for a transaction's
actions), which converts them with boto3's own ``TypeSerializer`` and ``TypeDeserializer``,
the ones the resource layer applies: the same wire values, numbers read back as ``Decimal``, a
``float`` refused. Strings, integers and booleans are written out directly (``attribute``:
the same values, measured cheaper). The one write every message makes (``SENT``,
``DynamoLedger.record_sent``) has its wire values written out by hand.

``conditional`` is the one place a failed ``ConditionExpression`` is recognised: the call's
response, or None when its condition failed; any other error propagates.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import Any, TypeVar, cast

from boto3.dynamodb.types import TypeDeserializer, TypeSerializer
from botocore.exceptions import ClientError

from notifications.adapters.aws import client

CONDITION_FAILED = "ConditionalCheckFailedException"
T = TypeVar("T")

_serialize = TypeSerializer().serialize
_deserialize = TypeDeserializer().deserialize


def dynamodb() -> Any:
    """The shared low-level DynamoDB client."""
    return client("dynamodb")


# Integers DynamoDB's 38 digits hold exactly: ``TypeSerializer`` refuses larger ones.
_INT_LIMIT = 10**38


def attribute(value: Any) -> dict[str, Any]:
    """One plain value as a DynamoDB attribute value. Strings, integers and booleans (nearly
    every value the layer writes) are written out here, exactly as ``TypeSerializer`` writes
    them at a fifth of its cost (a claim's 16 values: about 5 against 24 µs); the rest
    (``Decimal``, ``None``, lists, maps, sets, bytes) and a ``float`` (refused) go to it."""
    kind = type(value)
    if kind is str:
        return {"S": value}
    if kind is int and -_INT_LIMIT < value < _INT_LIMIT:
        return {"N": str(value)}
    if kind is bool:
        return {"BOOL": value}
    return cast("dict[str, Any]", _serialize(value))


def wire(values: Mapping[str, Any]) -> dict[str, Any]:
    """Plain Python values (a key, an item, ``ExpressionAttributeValues``) as DynamoDB
    attribute values: ``{"id": "n-1", "attempts": 1}`` -> ``{"id": {"S": "n-1"},
    "attempts": {"N": "1"}}``."""
    return {name: attribute(value) for name, value in values.items()}


def plain(item: Mapping[str, Any]) -> dict[str, Any]:
    """An item (or ``Attributes``) the client returned, as plain Python values (numbers as
    ``Decimal``, as the resource layer gave them)."""
    return {name: _deserialize(value) for name, value in item.items()}


# The request parameters that hold attribute values (TransactWriteItems' actions included).
_VALUE_PARAMETERS = ("Key", "Item", "ExpressionAttributeValues")


def wire_request(parameters: Mapping[str, Any]) -> dict[str, Any]:
    """A request's parameters written with plain values (as the resource layer took them),
    its ``Key``, ``Item`` and ``ExpressionAttributeValues`` in wire format. Other parameters,
    ``ExclusiveStartKey`` among them (a ``LastEvaluatedKey`` passed back), go as they are."""
    request = dict(parameters)
    for name in _VALUE_PARAMETERS:
        if name in request:
            request[name] = wire(request[name])
    return request


class DynamoTable:
    """One table through the low-level client: plain Python values in and out, the calls and
    parameters of the client (``TableName`` given). ``query`` and ``scan`` yield every item of
    every page."""

    def __init__(self, name: str, client_factory: Callable[[], Any] = dynamodb) -> None:
        self.name = name
        self._client = client_factory

    def _request(self, parameters: Mapping[str, Any]) -> dict[str, Any]:
        return {"TableName": self.name, **wire_request(parameters)}

    def get_item(self, **parameters: Any) -> dict[str, Any] | None:
        """The item, or None when there is none."""
        item = self._client().get_item(**self._request(parameters)).get("Item")
        return None if item is None else plain(item)

    def put_item(self, **parameters: Any) -> dict[str, Any]:
        return self._answer(self._client().put_item(**self._request(parameters)))

    def update_item(self, **parameters: Any) -> dict[str, Any]:
        return self._answer(self._client().update_item(**self._request(parameters)))

    def delete_item(self, **parameters: Any) -> dict[str, Any]:
        return self._answer(self._client().delete_item(**self._request(parameters)))

    def query(self, **parameters: Any) -> Iterator[dict[str, Any]]:
        return self._pages(self._client().query, parameters)

    def scan(self, **parameters: Any) -> Iterator[dict[str, Any]]:
        return self._pages(self._client().scan, parameters)

    def _pages(
        self, call: Callable[..., dict[str, Any]], parameters: Mapping[str, Any]
    ) -> Iterator[dict[str, Any]]:
        request = self._request(parameters)
        while True:
            page = call(**request)
            for item in page.get("Items", []):
                yield plain(item)
            if "LastEvaluatedKey" not in page:
                return
            request["ExclusiveStartKey"] = page["LastEvaluatedKey"]

    @staticmethod
    def _answer(response: dict[str, Any]) -> dict[str, Any]:
        """The response, its ``Attributes`` (``ReturnValues``) as plain values."""
        if "Attributes" in response:
            response["Attributes"] = plain(response["Attributes"])
        return response


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
