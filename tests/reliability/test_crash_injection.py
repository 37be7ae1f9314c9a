"""Crash injection: the sender dies at each dangerous point, and redelivery recovers every
notification with no more duplicate sends than the documented window allows
(docs/architecture.md, "Idempotency": one duplicate per crash between the provider's
acceptance and the SENT record)."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

import pytest

from notifications.adapters.ledger import DynamoLedger
from notifications.channels.email import SesEmailProvider
from notifications.models import Channel
from notifications.templates import TemplateRenderer
from notifyctl.local import functions
from tests.reliability.helpers import (
    enqueue,
    ledger_items,
    provider_calls,
    queue_depth,
    sends_per_recipient,
    welcome,
)

BATCH = 10
SENDER_TIMEOUT = 30  # the template's SenderTimeoutSeconds default
VISIBILITY_TIMEOUT = 6 * SENDER_TIMEOUT


class ProcessKilled(BaseException):
    """A crash no handler can catch: the Lambda process dies (OOM kill, SIGKILL)."""


def run_until_quiescent(stack, max_crashes=50):
    """Pump the stack like Lambda would; a killed process only loses its invocation."""
    crashes = 0
    while True:
        try:
            stack.drain(max_rounds=10_000)
            return crashes
        except ProcessKilled:
            crashes += 1
            assert crashes <= max_crashes


def all_sent_once_or_within_window(stack, requests, duplicates_allowed):
    items = ledger_items(stack)
    assert {items[r.notification_id]["status"] for r in requests} == {"SENT"}
    per_recipient = sends_per_recipient(stack)
    assert set(per_recipient) == {r.recipient for r in requests}
    duplicates = sum(per_recipient.values()) - len(requests)
    assert 0 <= duplicates <= duplicates_allowed
    assert queue_depth(stack, "EmailQueue") == 0
    assert queue_depth(stack, "NotificationsDLQ") == 0
    return duplicates


def test_killed_after_the_provider_accepted_before_any_record(
    deploy_stack, clock, monkeypatch, record_property
):
    # Given a sender sending one email at a time (SenderConcurrency=1: with concurrent sends
    # the window is the sends in flight at the crash, see the test below), its process killed
    # right after SES accepted the 3rd email of the batch, before SENT could be written (the
    # documented window)
    stack = deploy_stack(SenderConcurrency=1)
    requests = [welcome(n) for n in range(BATCH)]
    enqueue(stack, requests)
    real_send = SesEmailProvider.send
    sends = []

    def send(self, request, message):
        receipt = real_send(self, request, message)
        sends.append(request.notification_id)
        if len(sends) == 3:
            raise ProcessKilled("killed after the provider accepted")
        return receipt

    monkeypatch.setattr(SesEmailProvider, "send", send)
    started = clock.now()

    # When the stack runs on: the batch comes back after the queue's visibility timeout
    crashes = run_until_quiescent(stack)

    # Then every notification is SENT; the two sent before the crash are found SENT or their
    # lease long expired... exactly one duplicate: the email whose SENT record the crash lost
    assert crashes == 1
    duplicates = all_sent_once_or_within_window(stack, requests, duplicates_allowed=crashes)
    assert duplicates == 1
    lost = ledger_items(stack)[sends[2]]
    assert lost["attempts"] == 2
    # And the crashed invocation's lease did not hold the notification beyond the redelivery:
    # it went out at the first redelivery, one visibility timeout after the crash
    assert clock.now() - started <= VISIBILITY_TIMEOUT + 1
    record_property("crash_after_provider_duplicates", duplicates)


def test_killed_with_sends_in_flight_duplicates_at_most_those_in_flight(
    stack, monkeypatch, record_property
):
    # Given concurrent sends (SenderConcurrency 10, the default) and a sender process killed
    # right after SES accepted the 3rd email of the batch: the other sends of the batch may be
    # in flight, accepted, and not yet recorded SENT when the process dies
    requests = [welcome(n) for n in range(BATCH)]
    enqueue(stack, requests)
    real_send = SesEmailProvider.send
    sends = []

    def send(self, request, message):
        receipt = real_send(self, request, message)
        sends.append(request.notification_id)
        if len(sends) == 3:
            raise ProcessKilled("killed after the provider accepted")
        return receipt

    monkeypatch.setattr(SesEmailProvider, "send", send)

    # When the stack runs on
    crashes = run_until_quiescent(stack)

    # Then every notification is SENT, with at most one duplicate per send in flight at the
    # crash (docs/performance.md, section 6: the crash window of concurrent sends)
    assert crashes == 1
    duplicates = all_sent_once_or_within_window(stack, requests, duplicates_allowed=10)
    assert duplicates >= 1
    record_property("crash_with_sends_in_flight_duplicates", duplicates)


def test_killed_mid_batch_between_records(deploy_stack, monkeypatch, record_property):
    # Given a sender sending one email at a time (SenderConcurrency=1: concurrent sends of the
    # records rendered before may be accepted and not yet recorded, as above), its process
    # killed while writing the ledger for the 6th notification of a batch (after its claim,
    # before its provider call)
    stack = deploy_stack(SenderConcurrency=1)
    requests = [welcome(n) for n in range(BATCH)]
    enqueue(stack, requests)
    real_render = TemplateRenderer.render
    renders = []

    def render(self, request):
        renders.append(request.notification_id)
        if len(renders) == 6:
            raise ProcessKilled("killed mid-batch")
        return real_render(self, request)

    monkeypatch.setattr(TemplateRenderer, "render", render)

    # When the stack runs on
    crashes = run_until_quiescent(stack)

    # Then all ten are SENT exactly once: the five sent before the crash were recorded, so
    # their redelivery is acknowledged as a duplicate without a second send, and the five
    # the batch had claimed ahead (admission.py) are claimed again once the lease has run out:
    # the crash cost each of them an attempt, as it costs the one it interrupted
    assert crashes == 1
    duplicates = all_sent_once_or_within_window(stack, requests, duplicates_allowed=0)
    record_property("crash_mid_batch_duplicates", duplicates)
    items = ledger_items(stack)
    sent_first = renders[:5]
    assert [items[n]["attempts"] for n in sent_first] == [1] * 5
    assert sorted(items[r.notification_id]["attempts"] for r in requests) == [1] * 5 + [2] * 5


def test_an_invocation_past_its_timeout_is_failed_and_redelivered(
    stack, clock, monkeypatch, record_property
):
    # Given a provider that hangs past the sender's 30 s timeout on the 4th email, once
    requests = [welcome(n) for n in range(BATCH)]
    enqueue(stack, requests)
    real_send = SesEmailProvider.send
    calls = []

    # The in-process runtime counts an invocation's time on the monotonic clock (real elapsed
    # time, docs/local-runtime.md), so the hang moves that clock too, as seen by the runtime only
    hung = [0.0]
    monotonic = time.monotonic
    monkeypatch.setattr(functions, "time", SimpleNamespace(monotonic=lambda: monotonic() + hung[0]))

    def send(self, request, message):
        calls.append(request.notification_id)
        if len(calls) == 4:
            clock.advance(SENDER_TIMEOUT + 1)
            hung[0] += SENDER_TIMEOUT + 1
        return real_send(self, request, message)

    monkeypatch.setattr(SesEmailProvider, "send", send)

    # When the stack runs: the runtime reports Sandbox.Timedout and deletes nothing
    stack.drain()

    # Then the timed-out invocation is recorded as failed
    email_arn_part = stack.queue_url("EmailQueue").rsplit("/", 1)[-1]
    poller = next(p for p in stack.pollers if p.queue_name == email_arn_part)
    errors = [i.error.error_type for i in poller.invocations if i.error]
    assert errors == ["Sandbox.Timedout"]
    # And every notification is SENT. The handler had recorded all ten SENT before its result was
    # discarded, so the redelivered batch is acknowledged with no second send: zero duplicates
    duplicates = all_sent_once_or_within_window(stack, requests, duplicates_allowed=1)
    assert duplicates == 0
    record_property("timeout_duplicates", duplicates)


def test_a_crash_that_never_ends_is_dead_lettered_by_the_attempt_cap(stack, monkeypatch):
    # Given one notification whose every attempt kills the process after SES accepted it
    request = welcome(1)
    enqueue(stack, [request])
    real_send = SesEmailProvider.send

    def send(self, request_, message):
        real_send(self, request_, message)
        raise ProcessKilled("killed every time")

    monkeypatch.setattr(SesEmailProvider, "send", send)

    # When the stack runs to quiescence
    crashes = run_until_quiescent(stack)

    # Then the ledger's attempt count (MaxAttempts = 3) stopped it, not SQS's maxReceiveCount
    # (8): the 4th receive's claim found three attempts spent and the sender dead-lettered it
    # with the reason; it was sent once per crash, never more
    item = ledger_items(stack)[request.notification_id]
    assert item["status"] == "DEAD_LETTERED"
    assert item["dead_letter_reason"] == "attempts_exhausted"
    assert item["failure_class"] == "exhausted"
    assert crashes == 3
    assert provider_calls(stack)["email"] == crashes


def test_a_crash_before_any_attempt_is_dead_lettered_by_the_receive_backstop(stack, monkeypatch):
    # Given one notification whose every receive kills the process before its claim, so no
    # attempt is ever counted
    request = welcome(2)
    enqueue(stack, [request])

    def begin_attempt(self, request_, lease_until, now):
        raise ProcessKilled("killed before the claim")

    monkeypatch.setattr(DynamoLedger, "begin_attempt", begin_attempt)

    # When the stack runs to quiescence
    crashes = run_until_quiescent(stack)

    # Then SQS's maxReceiveCount (MaxAttempts 3 + 5 = 8) moved it to the DLQ, where the alarm
    # function recorded why; nothing was sent
    assert crashes == 8
    item = ledger_items(stack)[request.notification_id]
    assert item["status"] == "DEAD_LETTERED"
    assert item["dead_letter_reason"] == "max_receive_count_exceeded"
    assert provider_calls(stack)["email"] == 0


@pytest.mark.parametrize("channel", [Channel.EMAIL])
def test_a_leased_notification_waits_only_until_the_lease_expires(stack, clock, channel):
    # Given a notification claimed by an invocation that then vanished (a live lease, SENDING)
    request = welcome(5, channel)
    enqueue(stack, [request])
    ledger = DynamoLedger(stack.physical_id("LedgerTable"))
    now = datetime.fromtimestamp(clock.now(), UTC)
    lease_until = now + timedelta(seconds=SENDER_TIMEOUT + 5)
    assert ledger.begin_attempt(request, lease_until=lease_until, now=now).outcome == "granted"

    # When the stack runs
    stack.drain()

    # Then it is sent once, no earlier than the lease's end and not much later
    item = ledger_items(stack)[request.notification_id]
    assert item["status"] == "SENT"
    assert provider_calls(stack)["email"] == 1
    sent_at = datetime.fromisoformat(item["updated_at"])
    assert lease_until <= sent_at <= lease_until + timedelta(seconds=2)
