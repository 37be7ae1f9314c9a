"""The local runtime's patch of moto's TransactWriteItems (item-level rollback): all or nothing
as in DynamoDB, without copying whole tables."""

import boto3
import pytest
from botocore.exceptions import ClientError

from notifyctl.local import moto_internals


@pytest.fixture
def tables(moto_account):
    moto_internals.patch_transactions_item_level_rollback()
    dynamodb = boto3.client("dynamodb", region_name="us-east-1")
    dynamodb.create_table(
        TableName="ledger",
        KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    dynamodb.create_table(
        TableName="policy",
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
    return dynamodb


def claim(item_id):
    return {
        "Update": {
            "TableName": "ledger",
            "Key": {"id": {"S": item_id}},
            "UpdateExpression": "SET s = :s",
            "ConditionExpression": "attribute_not_exists(id)",
            "ExpressionAttributeValues": {":s": {"S": "SENDING"}},
        }
    }


def count(pk, n=1):
    return {
        "Update": {
            "TableName": "policy",
            "Key": {"pk": {"S": pk}, "sk": {"S": "w1"}},
            "UpdateExpression": "ADD c :n",
            "ExpressionAttributeValues": {":n": {"N": str(n)}},
        }
    }


def test_a_cancelled_transaction_leaves_every_item_as_it_was(tables):
    # Given an existing claim and counter
    tables.transact_write_items(TransactItems=[claim("a"), count("u1")])

    # When a transaction creates one item, adds to the counter, then fails a condition
    with pytest.raises(ClientError) as refused:
        tables.transact_write_items(TransactItems=[claim("b"), count("u1", 5), claim("a")])

    # Then it is cancelled, naming the failed action, and nothing of it remains
    assert refused.value.response["Error"]["Code"] == "TransactionCanceledException"
    codes = [r["Code"] for r in refused.value.response["CancellationReasons"]]
    assert codes == ["None", "None", "ConditionalCheckFailed"]
    assert "Item" not in tables.get_item(TableName="ledger", Key={"id": {"S": "b"}})
    counter = tables.get_item(TableName="policy", Key={"pk": {"S": "u1"}, "sk": {"S": "w1"}})
    assert counter["Item"]["c"] == {"N": "1"}
    assert tables.scan(TableName="ledger")["Count"] == 1


def test_a_committed_transaction_applies_every_action(tables):
    tables.transact_write_items(TransactItems=[claim("a"), claim("b"), count("u2", 2)])
    assert tables.scan(TableName="ledger")["Count"] == 2
    counter = tables.get_item(TableName="policy", Key={"pk": {"S": "u2"}, "sk": {"S": "w1"}})
    assert counter["Item"]["c"] == {"N": "2"}


def test_two_actions_on_one_item_are_refused_and_undone(tables):
    with pytest.raises(ClientError) as refused:
        tables.transact_write_items(TransactItems=[claim("c"), claim("c")])
    assert refused.value.response["Error"]["Code"] == "ValidationException"
    assert "Item" not in tables.get_item(TableName="ledger", Key={"id": {"S": "c"}})


def test_the_patch_is_installed_once():
    moto_internals.patch_transactions_item_level_rollback()
    from moto.dynamodb.models import DynamoDBBackend

    patched = DynamoDBBackend.transact_write_items
    moto_internals.patch_transactions_item_level_rollback()
    assert DynamoDBBackend.transact_write_items is patched
    assert patched.item_level_rollback
