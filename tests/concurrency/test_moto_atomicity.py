"""DynamoDB's atomicity holds in the local runtime under concurrent requests.

moto server answers each request in its own thread and moto does not lock; the runtime
serializes moto's DynamoDB backend (`moto_internals.serialize_backends`). Here eight threads,
each with its own client, race conditional writes, conditional counters and transactions
over HTTP, as concurrent function invocations do."""

from __future__ import annotations

import sys
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import boto3
import pytest
import requests
from botocore.config import Config
from botocore.exceptions import ClientError
from moto.server import ThreadedMotoServer

from notifyctl.local import moto_internals

THREADS = 8


@pytest.fixture
def dynamodb() -> Iterator[Callable[[], Any]]:
    """A factory of DynamoDB clients on a fresh moto server, with table `race`."""
    moto_internals.patch_transactions_item_level_rollback()
    moto_internals.serialize_backends()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"

    def client() -> Any:
        return boto3.client(
            "dynamodb",
            region_name="us-east-1",
            endpoint_url=endpoint,
            config=Config(retries={"max_attempts": 1}),
        )

    client().create_table(
        TableName="race",
        KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # switch threads as often as possible: provoke interleavings
    try:
        yield client
    finally:
        sys.setswitchinterval(interval)
        requests.post(f"{endpoint}/moto-api/reset", timeout=10)
        server.stop()


def race(work: Callable[[Any, int], list[Any]], client: Callable[[], Any]) -> list[Any]:
    """Run `work(client, thread_number)` in THREADS threads at once; all their results."""
    with ThreadPoolExecutor(THREADS) as pool:
        parts = pool.map(lambda n: work(client(), n), range(THREADS))
        return [item for part in parts for item in part]


def refused(exc: ClientError) -> bool:
    return exc.response["Error"]["Code"] in {
        "ConditionalCheckFailedException",
        "TransactionCanceledException",
    }


def test_a_conditional_create_is_won_by_exactly_one_concurrent_writer(
    dynamodb: Callable[[], Any],
) -> None:
    def claim_all(client: Any, thread: int) -> list[tuple[str, int]]:
        won = []
        for key in range(25):
            try:
                client.put_item(
                    TableName="race",
                    Item={"id": {"S": f"k{key}"}, "owner": {"N": str(thread)}},
                    ConditionExpression="attribute_not_exists(id)",
                )
                won.append((f"k{key}", thread))
            except ClientError as exc:
                if not refused(exc):
                    raise
        return won

    # When eight writers race to create the same 25 items
    wins = race(claim_all, dynamodb)

    # Then every item was created once, by the writer the table names as its owner
    assert sorted(Counter(key for key, _ in wins).values()) == [1] * 25
    for key, thread in wins:
        item = dynamodb().get_item(TableName="race", Key={"id": {"S": key}})["Item"]
        assert item["owner"] == {"N": str(thread)}


def test_a_conditional_counter_never_passes_its_limit_nor_loses_an_increment(
    dynamodb: Callable[[], Any],
) -> None:
    def take_slots(client: Any, thread: int) -> list[int]:
        taken = []
        for _ in range(10):
            try:
                client.update_item(
                    TableName="race",
                    Key={"id": {"S": "slots"}},
                    UpdateExpression="ADD c :one",
                    ConditionExpression="attribute_not_exists(c) OR c < :limit",
                    ExpressionAttributeValues={":one": {"N": "1"}, ":limit": {"N": "50"}},
                )
                taken.append(thread)
            except ClientError as exc:
                if not refused(exc):
                    raise
        return taken

    # When eight invocations take slots of a 50-slot counter, 80 attempts in all
    taken = race(take_slots, dynamodb)

    # Then exactly 50 succeeded and the counter says 50
    assert len(taken) == 50
    item = dynamodb().get_item(TableName="race", Key={"id": {"S": "slots"}})["Item"]
    assert item["c"] == {"N": "50"}


def test_concurrent_transactions_are_all_or_nothing(dynamodb: Callable[[], Any]) -> None:
    def both(client: Any, thread: int) -> list[int]:
        committed = []
        for _ in range(8):
            try:
                client.transact_write_items(
                    TransactItems=[
                        {
                            "Update": {
                                "TableName": "race",
                                "Key": {"id": {"S": "a"}},
                                "UpdateExpression": "ADD n :one",
                                "ConditionExpression": "attribute_not_exists(n) OR n < :limit",
                                "ExpressionAttributeValues": {
                                    ":one": {"N": "1"},
                                    ":limit": {"N": "40"},
                                },
                            }
                        },
                        {
                            "Update": {
                                "TableName": "race",
                                "Key": {"id": {"S": "b"}},
                                "UpdateExpression": "ADD n :one",
                                "ExpressionAttributeValues": {":one": {"N": "1"}},
                            }
                        },
                    ]
                )
                committed.append(thread)
            except ClientError as exc:
                if not refused(exc):
                    raise
        return committed

    # When eight invocations each try 8 transactions that move two counters together,
    # the first under a limit of 40
    committed = race(both, dynamodb)

    # Then 40 committed, and both counters moved exactly 40: none half-applied
    client = dynamodb()
    a = client.get_item(TableName="race", Key={"id": {"S": "a"}})["Item"]["n"]
    b = client.get_item(TableName="race", Key={"id": {"S": "b"}})["Item"]["n"]
    assert len(committed) == 40
    assert (a, b) == ({"N": "40"}, {"N": "40"})
