"""Chaos run: 2,000 notifications through the local stack with the provider failing 30% of
calls. Nothing is lost, nothing is sent twice, and the dead-letter rate is what 0.3^3 predicts."""

import pytest

from notifications.models import Channel
from tests.reliability.helpers import (
    binomial_bounds,
    dead_letters_recorded,
    enqueue,
    ledger_items,
    provider_calls,
    queue_depth,
    sends_per_recipient,
    welcome,
)

NOTIFICATIONS = 2_000
FAILURE_RATE = 0.3
MAX_ATTEMPTS = 3
SEED = 20261128


@pytest.mark.slow
def test_two_thousand_notifications_at_failure_rate_0_3(deploy_stack, record_property):
    # Given the stack with a provider failing 30% of calls (seeded), 3 attempts each, and
    # 1,000 email and 1,000 SMS notifications queued for 2,000 different users
    stack = deploy_stack(FailureRate=FAILURE_RATE, MaxAttempts=MAX_ATTEMPTS)
    stack.function("SenderFunction").environment["FAILURE_SEED"] = str(SEED)
    requests = [welcome(n, Channel.EMAIL if n % 2 else Channel.SMS) for n in range(NOTIFICATIONS)]
    enqueue(stack, requests)

    # When the stack runs to quiescence
    result = stack.drain(max_rounds=100_000)

    # Then every notification is exactly one of SENT or DEAD_LETTERED: none lost, none in flight
    items = ledger_items(stack)
    assert set(items) == {r.notification_id for r in requests}
    outcome = {nid: item["status"] for nid, item in items.items()}
    assert set(outcome.values()) <= {"SENT", "DEAD_LETTERED"}, set(outcome.values())
    sent = sum(1 for s in outcome.values() if s == "SENT")
    dead = sum(1 for s in outcome.values() if s == "DEAD_LETTERED")
    assert sent + dead == NOTIFICATIONS
    assert all(queue_depth(stack, q) == 0 for q in ("EmailQueue", "SmsQueue", "NotificationsDLQ"))
    # And the providers accepted exactly as many sends as the ledger calls SENT, one each
    calls = provider_calls(stack)
    assert calls["email"] + calls["sms"] == sent
    per_recipient = sends_per_recipient(stack)
    assert max(per_recipient.values()) == 1
    # And every dead letter used exactly MaxAttempts attempts and was recorded by the alarm
    # function
    assert {items[n]["attempts"] for n, s in outcome.items() if s == "DEAD_LETTERED"} == {3}
    assert dead_letters_recorded(stack) == dead
    # And the dead-letter fraction lies within the 99.9% binomial bounds of 0.3^3
    low, high = binomial_bounds(NOTIFICATIONS, FAILURE_RATE**MAX_ATTEMPTS, 0.999)
    attempts = sum(item["attempts"] for item in items.values())
    figures = {
        "notifications": NOTIFICATIONS,
        "sent": sent,
        "dead_lettered": dead,
        "dead_letter_fraction": round(dead / NOTIFICATIONS, 4),
        "expected_fraction": round(FAILURE_RATE**MAX_ATTEMPTS, 4),
        "bounds_99_9": f"[{low}, {high}]",
        "provider_calls": calls["email"] + calls["sms"],
        "provider_attempts": attempts,
        "clock_seconds": round(result.seconds_advanced, 1),
    }
    for name, value in figures.items():
        record_property(f"chaos_{name}", value)
    print("\nchaos run:", ", ".join(f"{k}={v}" for k, v in figures.items()))
    assert low <= dead <= high, figures
