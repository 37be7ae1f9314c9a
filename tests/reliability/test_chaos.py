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


@pytest.mark.soak  # about 6 minutes of CPU: make soak, not make test
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


OUTAGE_NOTIFICATIONS = 100
OUTAGE_SEED = 7


def test_provider_outages_open_the_breaker_and_lose_nothing(deploy_stack, clock, record_property):
    # Given providers down in half of all 60 s windows (FailureMode outage: the breaker counts
    # these failures), 3 attempts each, and 50 email and 50 SMS notifications queued
    stack = deploy_stack(FailureRate=0.5, FailureMode="outage", MaxAttempts=MAX_ATTEMPTS)
    stack.function("SenderFunction").environment["FAILURE_SEED"] = str(OUTAGE_SEED)
    requests = [
        welcome(n, Channel.EMAIL if n % 2 else Channel.SMS) for n in range(OUTAGE_NOTIFICATIONS)
    ]
    enqueue(stack, requests)
    started = clock.now()

    # When the stack runs, time passing, until every notification is settled (the breaker
    # check re-enables a channel's polling on its schedule)
    for _ in range(240):
        stack.drain(max_rounds=100_000)
        items = ledger_items(stack)
        if len(items) == OUTAGE_NOTIFICATIONS and all(
            i["status"] in ("SENT", "DEAD_LETTERED") for i in items.values()
        ):
            break
        clock.advance(30)

    # Then nothing is lost: every notification is SENT or DEAD_LETTERED, every queue empty
    items = ledger_items(stack)
    assert set(items) == {r.notification_id for r in requests}
    outcome = {nid: item["status"] for nid, item in items.items()}
    assert set(outcome.values()) <= {"SENT", "DEAD_LETTERED"}, set(outcome.values())
    assert all(queue_depth(stack, q) == 0 for q in ("EmailQueue", "SmsQueue", "NotificationsDLQ"))
    sent = sum(1 for s in outcome.values() if s == "SENT")
    dead = OUTAGE_NOTIFICATIONS - sent
    # And the providers accepted one send per SENT notification, none twice
    calls = provider_calls(stack)
    assert calls["email"] + calls["sms"] == sent
    assert max(sends_per_recipient(stack).values(), default=0) <= 1
    # And attempts stayed bounded: none over MaxAttempts; the dead letters spent all three on
    # the outage and were recorded by the alarm function
    assert max(item["attempts"] for item in items.values()) <= MAX_ATTEMPTS
    dead_items = [i for i in items.values() if i["status"] == "DEAD_LETTERED"]
    assert {(i["attempts"], i["dead_letter_reason"]) for i in dead_items} <= {
        (MAX_ATTEMPTS, "injected_outage")
    }
    assert dead_letters_recorded(stack) == dead
    # And the outages reached the breaker: it opened, and notifications waited for it (deferred
    # circuit_open, no attempt spent) instead of burning their attempts
    opened = sum(
        1
        for r in stack.logs
        if r.function == "SenderFunction" and '"circuit breaker opened"' in r.line
    )
    waited = sum(
        1
        for item in items.values()
        if any(d["reason"] == "circuit_open" for d in item.get("deferrals", []))
    )
    assert opened >= 1
    assert waited >= 1
    # And so most were delivered: retrying through a down window without the breaker spends
    # all three attempts within seconds (with this seed, every one of them dead-lettered)
    assert sent >= OUTAGE_NOTIFICATIONS // 2, (sent, dead)
    figures = {
        "notifications": OUTAGE_NOTIFICATIONS,
        "sent": sent,
        "dead_lettered": dead,
        "breaker_opened": opened,
        "waited_for_breaker": waited,
        "provider_attempts": sum(item["attempts"] for item in items.values()),
        "clock_seconds": round(clock.now() - started, 1),
    }
    for name, value in figures.items():
        record_property(f"outage_{name}", value)
    print("\noutage chaos run:", ", ".join(f"{k}={v}" for k, v in figures.items()))
