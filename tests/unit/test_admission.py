"""Batch admission: which messages one transaction admits, and what falls back to one by one."""

from datetime import UTC, datetime, timedelta

import pytest

from notifications.admission import BatchAdmission
from notifications.ledger import Claim
from notifications.models import Channel
from notifications.rate_limit import RateLimiter
from tests.samples import welcome

NOW = datetime(2025, 1, 6, 9, 0, 17, tzinfo=UTC)
LEASE = NOW + timedelta(seconds=35)


class Claims:
    def first_claim_action(self, request, lease_until, now):
        return {"TableName": "ledger", "Key": {"notification_id": request.notification_id}}


class Counters:
    def add_action(self, slot, count, limit):
        return {"TableName": "policy", "Key": {"pk": slot.key, "sk": slot.window}, "n": count}

    def increment_below(self, slot, limit):  # the per-message path, unused here
        raise AssertionError("admission never takes a slot one by one")


class ScriptedTransactions:
    """Answers each transaction with the next script entry: a function of the actions that
    returns None (committed) or the cancellation codes."""

    def __init__(self, *script):
        self.script = list(script)
        self.calls = []

    def write(self, actions, token):
        self.calls.append(list(actions))
        return self.script.pop(0)(actions)


def committed(actions):
    return None


def fail_where(predicate, code="ConditionalCheckFailed"):
    return lambda actions: [code if predicate(a) else "None" for a in actions]


def admission(transactions, per_window=10):
    limiter = RateLimiter(Counters(), per_window=per_window)
    return BatchAdmission(transactions, Claims(), limiter, limiter.store)


def test_a_batch_of_first_attempts_is_admitted_in_one_transaction():
    # Given five notifications, two of them for the same user
    requests = [welcome(n) for n in range(4)] + [welcome(0, event="evt-again")]
    transactions = ScriptedTransactions(committed)

    # When they are admitted
    admitted = admission(transactions).admit(requests, LEASE, NOW)

    # Then one transaction claimed all five and added to four counters, two for user 0
    assert set(admitted) == {r.notification_id for r in requests}
    claims = [a.claim for a in admitted.values()]
    assert all(c.outcome is Claim.GRANTED and c.attempts == 1 for c in claims)
    assert all(a.lease_until == LEASE for a in admitted.values())
    [actions] = transactions.calls
    claims = [a for a in actions if a["TableName"] == "ledger"]
    counters = {a["Key"]["pk"]: a["n"] for a in actions if a["TableName"] == "policy"}
    assert len(claims) == 5
    assert counters == {f"rate#email#user:user-{n}": 2 if n == 0 else 1 for n in range(4)}


def test_a_claim_that_fails_leaves_the_batch_and_the_rest_are_admitted():
    # Given a batch where one notification already has a ledger record
    requests = [welcome(n) for n in range(3)]
    known = requests[1].notification_id
    transactions = ScriptedTransactions(
        fail_where(lambda a: a["Key"].get("notification_id") == known), committed
    )

    # When they are admitted
    admitted = admission(transactions).admit(requests, LEASE, NOW)

    # Then the second transaction left it out (its claim and its user's counter), and it is
    # not admitted: it goes the per-message way
    assert set(admitted) == {requests[0].notification_id, requests[2].notification_id}
    second = transactions.calls[1]
    assert known not in [a["Key"].get("notification_id") for a in second]
    assert "rate#email#user:user-1" not in [a["Key"].get("pk") for a in second]


def test_a_counter_without_room_sends_its_users_messages_one_by_one():
    # Given user 0's counter has no room for both of its messages
    requests = [welcome(0), welcome(0, event="evt-b"), welcome(1)]
    transactions = ScriptedTransactions(
        fail_where(lambda a: a["Key"].get("pk") == "rate#email#user:user-0"), committed
    )

    # When they are admitted
    admitted = admission(transactions).admit(requests, LEASE, NOW)

    # Then only user 1's message is admitted
    assert list(admitted) == [requests[2].notification_id]


def test_more_messages_for_one_user_than_a_window_allows_never_enter_the_transaction():
    # Given a limit of 2 per minute and three messages for user 0 (a new counter would take
    # all three in one ADD)
    requests = [welcome(0, event=f"evt-{i}") for i in range(3)] + [welcome(1)]
    transactions = ScriptedTransactions(committed)

    # When they are admitted
    admitted = admission(transactions, per_window=2).admit(requests, LEASE, NOW)

    # Then user 0's go one by one, where the limit defers the third
    assert list(admitted) == [requests[3].notification_id]
    assert [a["Key"].get("pk") for a in transactions.calls[0] if a["TableName"] == "policy"] == [
        "rate#email#user:user-1"
    ]


@pytest.mark.parametrize("code", ["TransactionConflict", "ThrottlingError"])
def test_any_other_cancellation_sends_the_whole_batch_one_by_one(code):
    # Given a transaction cancelled by a conflict with another writer (or throttling)
    requests = [welcome(n) for n in range(3)]
    transactions = ScriptedTransactions(fail_where(lambda a: a["TableName"] == "policy", code))

    # When they are admitted
    admitted = admission(transactions).admit(requests, LEASE, NOW)

    # Then none is: each takes its own slot and claim, and nothing is tried again here
    assert admitted == {}
    assert len(transactions.calls) == 1


def test_a_notification_twice_in_a_batch_is_admitted_once():
    # Given the same notification in two messages of one batch
    request = welcome(3)
    transactions = ScriptedTransactions(committed)

    # When they are admitted
    admitted = admission(transactions).admit([request, welcome(4), request], LEASE, NOW)

    # Then one claim for it (two would make DynamoDB refuse the whole transaction)
    claims = [a for a in transactions.calls[0] if a["TableName"] == "ledger"]
    assert [a["Key"]["notification_id"] for a in claims] == [
        request.notification_id,
        welcome(4).notification_id,
    ]
    assert set(admitted) == {request.notification_id, welcome(4).notification_id}


def test_rounds_are_bounded_and_large_batches_are_split():
    # Given 30 messages, and transactions that always fail one more claim
    requests = [welcome(n, channel=Channel.SMS) for n in range(30)]

    def fail_first_claim(actions):
        return ["ConditionalCheckFailed"] + ["None"] * (len(actions) - 1)

    transactions = ScriptedTransactions(*[fail_first_claim] * 6)

    # When they are admitted
    admitted = admission(transactions).admit(requests, LEASE, NOW)

    # Then two chunks (25 + 5 messages), three rounds each, and nothing admitted
    assert [sum(a["TableName"] == "ledger" for a in call) for call in transactions.calls] == [
        25,
        24,
        23,
        5,
        4,
        3,
    ]
    assert admitted == {}


def test_without_a_rate_limit_only_claims_are_written():
    transactions = ScriptedTransactions(committed)
    admitted = BatchAdmission(transactions, Claims()).admit([welcome(1), welcome(2)], LEASE, NOW)
    assert len(admitted) == 2
    assert [a["TableName"] for a in transactions.calls[0]] == ["ledger", "ledger"]
