"""Batch admission: a batch's rate-limit slots and ledger claims in one DynamoDB transaction.

One at a time, a message costs two conditional writes before its provider call: a slot in the
user's rate-limit counter (``rate_limit.py``) and the ledger claim that guards the send
(``ledger.py``). For the messages of a batch that are first attempts (no ledger record yet:
every message on the happy path), ``BatchAdmission`` takes both for the whole batch in one
``TransactWriteItems``: a claim per message and one update per rate counter, adding the number
of that counter's messages. Two requests per message become one per batch.

All or nothing: when a condition fails, DynamoDB cancels the transaction and its
``CancellationReasons`` say which action failed. A message whose claim failed (it has a record:
a retry, a duplicate, a deferred one back) or whose counter had no room for all of its user's
messages leaves the batch path, and the rest are tried again. What leaves goes the per-message
way (``RateLimiter.acquire``, then ``Ledger.begin_attempt``), which handles retries, duplicates,
leases and a counter with room for some. Any other cancellation (a conflict with a concurrent
transaction on the same counter, throttling) sends the whole batch the per-message way.

Cost: DynamoDB bills a transactional write two write units per item, so the two writes per
message cost four write units instead of two (docs/performance.md weighs requests against
dollars). A claimed message is always either sent, released (``Ledger.release_claim``, when the
circuit opens before its turn) or, after a crash, retried when its lease ends, counting the
attempt the crash cost, as a crash between claim and send always has.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any, Protocol

import msgspec

from notifications.ledger import AttemptClaim, Claim
from notifications.models import NotificationRequested
from notifications.rate_limit import RateLimiter, RateSlot

# Messages per transaction: a claim each plus at most one counter each stays far below
# DynamoDB's 100 actions (and 4 MB) per TransactWriteItems.
CHUNK = 25
# Rounds of dropping the messages that failed a condition before the rest go one by one.
MAX_ROUNDS = 3
CONDITION_FAILED = "ConditionalCheckFailed"
NOT_FAILED = "None"


class Admitted(msgspec.Struct, frozen=True):
    """A message admitted ahead: its rate slot is taken and its claim granted (attempt 1)."""

    claim: AttemptClaim
    lease_until: datetime


class Transactions(Protocol):
    def write(self, actions: Sequence[Mapping[str, Any]], token: str) -> list[str] | None:
        """Apply every ``Update`` in ``actions`` or none: None when committed, else the
        cancellation code of each action (``"None"`` for one that did not fail)."""
        ...


class ClaimActions(Protocol):
    def first_claim_action(
        self, request: NotificationRequested, lease_until: datetime, now: datetime
    ) -> dict[str, Any]: ...


class CounterActions(Protocol):
    def add_action(self, slot: RateSlot, count: int, limit: int) -> dict[str, Any]: ...


class BatchAdmission:
    def __init__(
        self,
        transactions: Transactions,
        claims: ClaimActions,
        limiter: RateLimiter | None = None,
        counters: CounterActions | None = None,
    ) -> None:
        if (limiter is None) != (counters is None):
            raise ValueError("a rate limiter needs its counter actions, and the reverse")
        self.transactions = transactions
        self.claims = claims
        self.limiter = limiter
        self.counters = counters

    def admit(
        self, requests: Sequence[NotificationRequested], lease_until: datetime, now: datetime
    ) -> dict[str, Admitted]:
        """Notification id -> ``Admitted`` for those whose slot and first claim were taken;
        the others are left to the per-message path. A notification id twice in ``requests``
        is admitted at most once (its first message)."""
        unique: dict[str, NotificationRequested] = {}
        for request in requests:
            unique.setdefault(request.notification_id, request)
        firsts = list(unique.values())
        admitted: dict[str, Admitted] = {}
        for start in range(0, len(firsts), CHUNK):
            chunk = firsts[start : start + CHUNK]
            for request in self._admit_chunk(chunk, lease_until, now):
                admitted[request.notification_id] = Admitted(
                    AttemptClaim(Claim.GRANTED, attempts=1), lease_until
                )
        return admitted

    def _admit_chunk(
        self, pending: list[NotificationRequested], lease_until: datetime, now: datetime
    ) -> list[NotificationRequested]:
        slots = (
            {r.notification_id: self.limiter.slot(r, now) for r in pending}
            if self.limiter is not None
            else {}
        )
        if self.limiter is not None:
            # A user with more messages here than a window allows goes one by one.
            per_key = Counter(slot.key for slot in slots.values())
            limit = self.limiter.per_window
            pending = [r for r in pending if per_key[slots[r.notification_id].key] <= limit]
        for _ in range(MAX_ROUNDS):
            if not pending:
                return []
            actions, owners = self._actions(pending, slots, lease_until, now)
            codes = self.transactions.write(actions, _token(actions))
            if codes is None:
                return pending
            if len(codes) != len(actions) or any(
                code not in (NOT_FAILED, CONDITION_FAILED) for code in codes
            ):
                return []
            failed = {
                notification_id
                for code, ids in zip(codes, owners, strict=True)
                if code == CONDITION_FAILED
                for notification_id in ids
            }
            if not failed:
                return []
            pending = [r for r in pending if r.notification_id not in failed]
        return []

    def _actions(
        self,
        pending: list[NotificationRequested],
        slots: Mapping[str, RateSlot],
        lease_until: datetime,
        now: datetime,
    ) -> tuple[list[dict[str, Any]], list[list[str]]]:
        """The transaction's actions and, for each, the notification ids it stands for."""
        actions = [self.claims.first_claim_action(r, lease_until, now) for r in pending]
        owners = [[r.notification_id] for r in pending]
        if self.limiter is not None and self.counters is not None:
            by_slot: dict[tuple[str, str], tuple[RateSlot, list[str]]] = {}
            for request in pending:
                slot = slots[request.notification_id]
                by_slot.setdefault((slot.key, slot.window), (slot, []))[1].append(
                    request.notification_id
                )
            for slot, ids in by_slot.values():
                actions.append(self.counters.add_action(slot, len(ids), self.limiter.per_window))
                owners.append(ids)
        return actions, owners


def _token(actions: Sequence[Mapping[str, Any]]) -> str:
    """An idempotency token for the exact transaction: botocore's retry of a request that
    timed out after DynamoDB applied it is then a no-op instead of a failed condition."""
    digest = hashlib.sha256(repr([sorted(a.items()) for a in actions]).encode())
    return digest.hexdigest()[:36]
