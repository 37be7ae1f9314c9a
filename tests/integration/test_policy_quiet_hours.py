"""Quiet hours and opt-outs through the fan-out and the sender, on moto with a controlled clock.

The clock starts at 2026-11-28 12:00 UTC, which is 07:00 in New York.
"""

from datetime import time

from notifications.adapters.ledger import DynamoLedger
from notifications.adapters.preferences import DynamoPreferencesStore
from notifications.models import QuietHours
from notifications.preferences import Preferences
from tests.observe import sent_emails, sms_messages
from tests.samples import load_event

NIGHT_IN_NEW_YORK = QuietHours(start=time(22), end=time(7, 30), timezone="America/New_York")


def prefs(stack, **changes):
    DynamoPreferencesStore(stack.physical_id("PreferencesTable")).put(
        Preferences(user_id="user-123", email="alice@example.com", **changes)
    )


def settle(stack):
    """Run everything that is ready without moving the clock."""
    while stack.pump():
        pass


def ledger_items(stack):
    return list(DynamoLedger(stack.physical_id("LedgerTable")).scan())


def test_an_order_at_7_in_new_york_waits_for_the_end_of_quiet_hours_via_scheduler(stack, clock):
    # Given Alice's quiet hours 22:00-07:30 in New York (it is 07:00 there)
    prefs(stack, quiet_hours=NIGHT_IN_NEW_YORK)

    # When her order is fanned out and the sender runs
    assert stack.function("FanOutFunction").invoke(load_event("fan_out/order-placed.json")).ok
    settle(stack)

    # Then nothing is sent; the ledger says DEFERRED until 07:30 New York (12:30 UTC)
    assert sent_emails() == []
    (item,) = ledger_items(stack)
    assert item["status"] == "DEFERRED"
    assert item["deferred_reason"] == "quiet_hours"
    assert item["deferred_until"] == "2026-11-28T12:30:00.000+00:00"
    assert item["attempts"] == 0
    # And, 30 minutes being beyond SQS's 15-minute delay, a one-time Scheduler schedule holds it
    group = stack.function("SenderFunction").environment["SCHEDULE_GROUP"]
    scheduler = stack.clients.client("scheduler")
    (schedule,) = scheduler.list_schedules(GroupName=group)["Schedules"]
    detail = scheduler.get_schedule(Name=schedule["Name"], GroupName=group)
    assert detail["ScheduleExpression"] == "at(2026-11-28T12:30:00)"
    assert detail["Target"]["Arn"].endswith(stack.queue_url("EmailQueue").rsplit("/", 1)[-1])

    # When it is one second before the end of quiet hours
    clock.advance(30 * 60 - 1)
    settle(stack)
    # Then still nothing
    assert sent_emails() == []

    # When quiet hours end
    clock.advance(1)
    settle(stack)

    # Then the email goes out, recorded SENT after one attempt, and the schedule is gone
    assert [e.destinations[0] for e in sent_emails()] == ["alice@example.com"]
    (item,) = ledger_items(stack)
    assert (item["status"], item["attempts"]) == ("SENT", 1)
    assert [d["reason"] for d in item["deferrals"]] == ["quiet_hours"]
    assert scheduler.list_schedules(GroupName=group)["Schedules"] == []


def test_a_short_quiet_period_left_waits_in_the_queue_with_a_delay(stack, clock):
    # Given quiet hours ending at 07:10 New York (ten minutes from now)
    prefs(
        stack, quiet_hours=QuietHours(start=time(22), end=time(7, 10), timezone="America/New_York")
    )

    # When her order is fanned out and the sender runs
    assert stack.function("FanOutFunction").invoke(load_event("fan_out/order-placed.json")).ok
    settle(stack)

    # Then it waits as a delayed message on the email queue, not a schedule
    attributes = stack.clients.sqs.get_queue_attributes(
        QueueUrl=stack.queue_url("EmailQueue"), AttributeNames=["All"]
    )["Attributes"]
    assert attributes["ApproximateNumberOfMessagesDelayed"] == "1"
    assert sent_emails() == []

    # When the stack drains (the clock jumps to the end of the delay)
    stack.drain()

    # Then it is sent at 07:10 New York
    (item,) = ledger_items(stack)
    assert item["status"] == "SENT"
    assert item["updated_at"] >= "2026-11-28T12:10:00"


def test_a_payment_receipt_bypasses_quiet_hours_but_not_an_opt_out(stack):
    # Given Alice inside her quiet hours, with a phone she opted out of SMS for
    prefs(stack, quiet_hours=NIGHT_IN_NEW_YORK, phone="+14155550100", opted_out_channels={"sms"})

    # When her payment is received (a critical category)
    assert stack.function("FanOutFunction").invoke(load_event("fan_out/payment-received.json")).ok
    settle(stack)

    # Then the receipt email goes out at once despite the quiet hours
    assert [e.destinations[0] for e in sent_emails()] == ["alice@example.com"]
    # And no SMS is sent: it is recorded SUPPRESSED with the opt-out as reason
    assert sms_messages() == []
    by_channel = {i["channel"]: i for i in ledger_items(stack)}
    assert by_channel["email"]["status"] == "SENT"
    assert by_channel["sms"]["status"] == "SUPPRESSED"
    assert by_channel["sms"]["suppressed_reason"] == "opted_out_channel:sms"
