"""Randomized fault schedules: a Hypothesis state machine drives the real stack through
transient and permanent provider faults, duplicate event deliveries, duplicate SQS deliveries,
handler crashes, clock jumps and event source mappings switched off and on. At quiescence:

- each intended (event, channel, recipient) has exactly one ledger record, SENT, SUPPRESSED
  or DEAD_LETTERED;
- no notification was sent more than 1 + (crashes after its provider accepted) times;
- the alarm function recorded every dead letter (one each once the bug in
  test_final_states.py is fixed: STRICT_ALARMS).

One stack serves every example (a deploy costs ~1.5 s); each example uses its own event ids,
and its teardown heals the stack (faults off, mappings on, time forward) and drains it.
"""

from __future__ import annotations

import json
import uuid
from collections import Counter

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, rule, run_state_machine_as_test

from notifications.adapters.preferences import DynamoPreferencesStore
from notifications.adapters.sqs import SqsQueues
from notifications.channels.email import SesEmailProvider
from notifications.channels.sms import SnsSmsProvider
from notifications.errors import PermanentError, RetryableError
from notifications.models import Channel
from notifications.preferences import Preferences
from tests.properties import examples
from tests.reliability.helpers import QUEUE_OF, ledger_items, queue_depth, set_mapping

SOURCE = "com.example.shop"
USERS = {
    # user: (email, phone); u2 has no email: its email is SUPPRESSED (no_contact_point)
    "sched-u0": ("u0@example.com", "+14155550100"),
    "sched-u1": ("u1@example.com", None),
    "sched-u2": (None, "+14155550102"),
}
PROVIDERS = {Channel.EMAIL: SesEmailProvider, Channel.SMS: SnsSmsProvider}
FINAL = {"SENT", "SUPPRESSED", "DEAD_LETTERED"}
# One alarm per dead letter, and none for anything else: see check() and test_final_states.py
STRICT_ALARMS = True


class ProcessKilled(BaseException):
    """The sender's process dies; nothing after it runs."""


class World:
    """Fault switches the patched providers read, and what they saw."""

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.faults: dict[Channel, str | None] = {Channel.EMAIL: None, Channel.SMS: None}
        self.crash_after_send = 0
        self.sends: Counter[str] = Counter()
        self.crashes: Counter[str] = Counter()
        self.queued: dict[str, object] = {}


def test_randomized_fault_schedules_keep_the_invariants(stack, clock, monkeypatch):
    world = World()
    for channel, provider in PROVIDERS.items():
        real = provider.send

        def send(self, request, message, _real=real, _channel=channel):
            fault = world.faults[_channel]
            if fault == "transient":
                raise RetryableError("provider_unavailable", "scheduled outage")
            if fault == "permanent":
                raise PermanentError("provider_rejected", "scheduled rejection")
            receipt = _real(self, request, message)
            world.sends[request.notification_id] += 1
            if world.crash_after_send:
                world.crash_after_send -= 1
                world.crashes[request.notification_id] += 1
                raise ProcessKilled("killed after the provider accepted")
            return receipt

        monkeypatch.setattr(provider, "send", send)
    real_enqueue = SqsQueues.enqueue

    def enqueue(self, queue_url, requests):
        for request in requests:
            world.queued[request.notification_id] = request
        return real_enqueue(self, queue_url, requests)

    monkeypatch.setattr(SqsQueues, "enqueue", enqueue)
    prefs = DynamoPreferencesStore(stack.physical_id("PreferencesTable"))
    for user, (email, phone) in USERS.items():
        prefs.put(Preferences(user_id=user, email=email, phone=phone))
    fan_out = stack.function("FanOutFunction")
    figures = Counter()

    def pump(rounds: int) -> None:
        for _ in range(rounds):
            try:
                stack.pump()
            except ProcessKilled:
                figures["crashes"] += 1

    class Schedules(RuleBasedStateMachine):
        @initialize()
        def start(self) -> None:
            world.reset()
            self.events: dict[str, dict] = {}
            self.expected: set[tuple[str, str, str]] = set()

        @rule(user=st.sampled_from(sorted(USERS)))
        def place_order(self, user: str) -> None:
            event_id = str(uuid.uuid4())
            event = {
                "version": "0",
                "id": event_id,
                "detail-type": "OrderPlaced",
                "source": SOURCE,
                "account": stack.account_id,
                "time": "2026-11-28T12:00:00Z",
                "region": "us-east-1",
                "resources": [],
                "detail": {
                    "order_id": f"o-{event_id[:8]}",
                    "user_id": user,
                    "total": {"amount": "9.50", "currency": "EUR"},
                    "placed_at": "2026-11-28T12:00:00Z",
                },
            }
            assert fan_out.invoke(json.loads(json.dumps(event))).ok
            self.events[event_id] = event
            email, phone = USERS[user]
            self.expected.add((event_id, "email", email or "-"))
            if phone:
                self.expected.add((event_id, "sms", phone))
            figures["events"] += 1

        @rule(data=st.data())
        def duplicate_event_delivery(self, data: st.DataObject) -> None:
            if self.events:
                event_id = data.draw(st.sampled_from(sorted(self.events)))
                assert fan_out.invoke(json.loads(json.dumps(self.events[event_id]))).ok
                figures["duplicate_events"] += 1

        @rule(data=st.data())
        def duplicate_sqs_delivery(self, data: st.DataObject) -> None:
            mine = sorted(n for n, r in world.queued.items() if r.event_id in self.events)
            if mine:
                request = world.queued[data.draw(st.sampled_from(mine))]
                real_enqueue(SqsQueues(), stack.queue_url(QUEUE_OF[request.channel]), [request])
                figures["duplicate_messages"] += 1

        @rule(
            channel=st.sampled_from([Channel.EMAIL, Channel.SMS]),
            fault=st.sampled_from([None, None, "transient", "permanent"]),
        )
        def provider_fault(self, channel: Channel, fault: str | None) -> None:
            world.faults[channel] = fault
            figures[f"fault_{fault}"] += 1

        @rule()
        def arm_crash(self) -> None:
            world.crash_after_send += 1

        @rule(rounds=st.integers(1, 4))
        def run(self, rounds: int) -> None:
            pump(rounds)

        @rule(seconds=st.sampled_from([1, 5, 30, 61, 200, 900]))
        def clock_jump(self, seconds: int) -> None:
            clock.advance(seconds)
            pump(1)

        @rule(channel=st.sampled_from(["EmailQueue", "SmsQueue"]), enabled=st.booleans())
        def toggle_mapping(self, channel: str, enabled: bool) -> None:
            set_mapping(stack, "SenderFunction", channel, enabled)

        def teardown(self) -> None:
            # Heal: faults off, no armed crash, polling on; let time pass until quiescent
            world.faults = {Channel.EMAIL: None, Channel.SMS: None}
            world.crash_after_send = 0
            for _ in range(40):
                for queue in ("EmailQueue", "SmsQueue"):
                    set_mapping(stack, "SenderFunction", queue, True)
                stack.drain(max_rounds=5_000)
                items = self.items()
                if all(i["status"] in FINAL for i in items.values()) and all(
                    queue_depth(stack, q) == 0
                    for q in ("EmailQueue", "SmsQueue", "NotificationsDLQ")
                ):
                    break
                clock.advance(120)
            self.check(self.items())

        def items(self) -> dict[str, dict]:
            return {
                n: i for n, i in ledger_items(stack).items() if i.get("event_id") in self.events
            }

        def check(self, items: dict[str, dict]) -> None:
            # Each intended (event, channel, recipient): exactly one record, in a final state
            recipients = {n: getattr(world.queued.get(n), "recipient", None) for n in items}
            seen = Counter(
                (i["event_id"], i["channel"], recipients[n] or "-") for n, i in items.items()
            )
            assert set(seen) == self.expected
            assert max(seen.values(), default=1) == 1
            assert {i["status"] for i in items.values()} <= FINAL, items
            # Sends per notification: at most 1 + the crashes after its provider accepted
            for notification_id in items:
                assert world.sends[notification_id] <= 1 + world.crashes[notification_id]
            sent = [n for n, i in items.items() if i["status"] == "SENT"]
            assert all(world.sends[n] >= 1 for n in sent)
            # One alarm record per dead letter
            dead = {n for n, i in items.items() if i["status"] == "DEAD_LETTERED"}
            alarms = Counter(
                json.loads(r.line).get("notification_id")
                for r in stack.logs
                if r.function == "DlqAlarmFunction" and '"notification dead-lettered"' in r.line
            )
            alarms = Counter({n: c for n, c in alarms.items() if n in items})
            # Every dead letter was alarmed. Exactly once, and never for a notification that is
            # not DEAD_LETTERED, only once test_final_states.py's bug is fixed: today a duplicate
            # delivery of a dead letter is claimed again, then sent (an alarm for a SENT one) or
            # dead-lettered and alarmed again. Set STRICT_ALARMS when the fix lands.
            assert dead <= set(alarms)
            if STRICT_ALARMS:
                assert alarms == Counter(dict.fromkeys(dead, 1))
            figures["alarm_records"] += sum(alarms.values())
            figures["extra_alarm_records"] += sum(alarms.values()) - len(dead)
            figures["dead_letters"] += len(dead)
            figures["sent"] += len(sent)
            figures["duplicate_sends"] += sum(max(0, world.sends[n] - 1) for n in items)

    run_state_machine_as_test(
        Schedules,
        settings=settings(
            max_examples=examples(25),
            stateful_step_count=30,
            deadline=None,
            suppress_health_check=list(HealthCheck),
        ),
    )
    print("\nrandomized schedules:", dict(figures))
    assert figures["events"] > 0
    assert figures["sent"] > 0
