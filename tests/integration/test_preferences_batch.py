"""``DynamoPreferencesStore.get_many``: the fan-out's one read of a batch's preferences."""

from __future__ import annotations

from typing import Any

import boto3
import pytest
from botocore.client import BaseClient

from notifications.adapters.preferences import DynamoPreferencesStore
from notifications.errors import RetryableError
from notifications.preferences import Preferences

TABLE = "preferences-test"
_original_call = BaseClient._make_api_call


@pytest.fixture
def store(moto_account: None) -> DynamoPreferencesStore:
    boto3.client("dynamodb").create_table(
        TableName=TABLE,
        KeySchema=[{"AttributeName": "user_id", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "user_id", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    return DynamoPreferencesStore(TABLE, sleep=lambda seconds: None)


def batch_gets(monkeypatch: pytest.MonkeyPatch, unprocessed: int = 0) -> list[dict[str, Any]]:
    """Record every BatchGetItem; the first ``unprocessed`` of them answer with their last key
    left unprocessed, as DynamoDB does when throttled."""
    calls: list[dict[str, Any]] = []

    def call(client: BaseClient, operation: str, params: dict[str, Any]) -> Any:
        if operation != "BatchGetItem":
            return _original_call(client, operation, params)
        calls.append(params)
        if len(calls) > unprocessed:
            return _original_call(client, operation, params)
        keys = params["RequestItems"][TABLE]["Keys"]
        response: dict[str, Any] = {"Responses": {TABLE: []}}
        if len(keys) > 1:
            answered = {"RequestItems": {TABLE: {"Keys": keys[:-1]}}}
            response = _original_call(client, operation, answered)
        response["UnprocessedKeys"] = {TABLE: {"Keys": keys[-1:]}}
        return response

    monkeypatch.setattr(BaseClient, "_make_api_call", call)
    return calls


def test_many_users_are_read_a_hundred_per_request(store, monkeypatch):
    # Given 250 users with preferences
    users = [f"user-{n:03d}" for n in range(250)]
    for user in users:
        store.put(Preferences(user_id=user, email=f"{user}@example.com"))
    calls = batch_gets(monkeypatch)

    # When the preferences of all of them, a user without any and a repeat are asked for
    found = store.get_many([*users, "nobody", users[0]])

    # Then three requests of at most 100 keys returned every stored user, and no one else
    assert [len(c["RequestItems"][TABLE]["Keys"]) for c in calls] == [100, 100, 51]
    assert sorted(found) == users
    assert found["user-007"].email == "user-007@example.com"


def test_unprocessed_keys_are_asked_for_again(store, monkeypatch):
    # Given two users, and DynamoDB leaving one key unprocessed twice
    for user in ("ann", "bob"):
        store.put(Preferences(user_id=user, email=f"{user}@example.com"))
    calls = batch_gets(monkeypatch, unprocessed=2)

    # When both are read
    found = store.get_many(["ann", "bob"])

    # Then the unprocessed key was resent until DynamoDB answered it
    assert sorted(found) == ["ann", "bob"]
    assert len(calls) == 3
    assert calls[1]["RequestItems"][TABLE]["Keys"] == [{"user_id": {"S": "bob"}}]  # wire format


def test_keys_that_stay_unprocessed_fail_retryably(store, monkeypatch):
    # Given DynamoDB never processing the last key
    store.put(Preferences(user_id="ann", email="ann@example.com"))
    batch_gets(monkeypatch, unprocessed=1000)

    # When the batch is read, Then the fan-out gets a retryable error (its events are retried)
    with pytest.raises(RetryableError) as raised:
        store.get_many(["ann", "bob"])
    assert raised.value.reason == "preferences_unavailable"
