"""``adapters.dynamodb``: every table through the low-level client with plain Python values in
and out, converted exactly as boto3's resource layer converted them."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import boto3
import pytest
from boto3.dynamodb.types import TypeSerializer
from hypothesis import example, given
from hypothesis import strategies as st

from notifications.adapters.dynamodb import DynamoTable, attribute, conditional, wire

REGION = "us-east-1"

scalars = st.one_of(
    st.text(max_size=20),
    st.integers(min_value=-(10**40), max_value=10**40),
    st.booleans(),
    st.none(),
    st.decimals(allow_nan=False, allow_infinity=False, places=3, max_value=10**9),
)
values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=5), inner),
    max_leaves=12,
)


def serialized_by_boto3(value: Any) -> Any:
    try:
        return TypeSerializer().serialize(value)
    except Exception as exc:  # the refusal itself is what is compared
        return type(exc)


def serialized_here(value: Any) -> Any:
    try:
        return attribute(value)
    except Exception as exc:
        return type(exc)


@given(values)
@example(10**38 - 1)  # the largest integer DynamoDB's 38 digits hold, and the first over it
@example(10**38)
@example(-(10**38))
@example([True, 1, "1", None, {"n": Decimal("1.50")}])
def test_values_go_on_the_wire_as_boto3s_serializer_writes_them(value):
    assert serialized_here(value) == serialized_by_boto3(value)


def test_wire_writes_strings_integers_and_booleans_as_dynamodb_reads_them():
    assert wire({"id": "n-1", "attempts": 3, "on": True, "big": -7}) == {
        "id": {"S": "n-1"},
        "attempts": {"N": "3"},
        "on": {"BOOL": True},
        "big": {"N": "-7"},
    }


def test_a_float_is_refused_as_the_resource_layer_refused_it():
    with pytest.raises(TypeError, match="Float types are not supported"):
        attribute(0.5)


@pytest.fixture
def table(moto_account: None) -> DynamoTable:
    boto3.client("dynamodb", region_name=REGION).create_table(
        TableName="things",
        KeySchema=[
            {"AttributeName": "pk", "KeyType": "HASH"},
            {"AttributeName": "sk", "KeyType": "RANGE"},
        ],
        AttributeDefinitions=[
            {"AttributeName": "pk", "AttributeType": "S"},
            {"AttributeName": "sk", "AttributeType": "S"},
        ],
        BillingMode="PAY_PER_REQUEST",
    )
    return DynamoTable("things")


def test_an_item_written_with_plain_values_reads_back_with_decimal_numbers(table):
    # Given an item with every kind of value the layer writes
    table.put_item(
        Item={
            "pk": "a",
            "sk": "1",
            "count": 7,
            "rate": Decimal("2.5"),
            "on": False,
            "none": None,
            "errors": [{"reason": "x", "at": "t"}],
        }
    )
    # Then reading it back gives the same values, numbers as Decimal
    assert table.get_item(Key={"pk": "a", "sk": "1"}, ConsistentRead=True) == {
        "pk": "a",
        "sk": "1",
        "count": Decimal("7"),
        "rate": Decimal("2.5"),
        "on": False,
        "none": None,
        "errors": [{"reason": "x", "at": "t"}],
    }
    # And a missing item is None
    assert table.get_item(Key={"pk": "a", "sk": "2"}) is None


def test_update_returns_its_attributes_as_plain_values(table):
    response = table.update_item(
        Key={"pk": "a", "sk": "1"},
        UpdateExpression="ADD used :n",
        ExpressionAttributeValues={":n": 3},
        ReturnValues="ALL_NEW",
    )
    assert response["Attributes"] == {"pk": "a", "sk": "1", "used": Decimal("3")}


def test_a_failed_condition_is_none_and_leaves_the_item(table):
    table.put_item(Item={"pk": "a", "sk": "1", "state": "OPEN"})
    refused = conditional(
        table.update_item,
        Key={"pk": "a", "sk": "1"},
        UpdateExpression="SET #s = :closed",
        ConditionExpression="#s = :closed",
        ExpressionAttributeNames={"#s": "state"},
        ExpressionAttributeValues={":closed": "CLOSED"},
    )
    assert refused is None
    assert table.get_item(Key={"pk": "a", "sk": "1"}) == {"pk": "a", "sk": "1", "state": "OPEN"}


def test_query_and_scan_read_every_page(table):
    # Given seven items and pages of two
    for n in range(7):
        table.put_item(Item={"pk": "a", "sk": f"{n:02d}", "n": n})
    table.put_item(Item={"pk": "b", "sk": "00", "n": 99})
    # When they are queried and scanned two at a time
    queried = table.query(
        KeyConditionExpression="pk = :pk", ExpressionAttributeValues={":pk": "a"}, Limit=2
    )
    scanned = table.scan(Limit=2)
    # Then every item of every page comes back
    assert [item["n"] for item in queried] == [0, 1, 2, 3, 4, 5, 6]
    assert sorted(item["n"] for item in scanned) == [0, 1, 2, 3, 4, 5, 6, 99]
