"""Rate limit, end to end: 150 orders for one user in a minute, on the local stack."""

from datetime import UTC, datetime

from notifications.adapters.ledger import DynamoLedger
from notifications.adapters.preferences import DynamoPreferencesStore
from notifications.preferences import Preferences
from tests.observe import sent_emails

USER = "user-123"


def publish_orders(stack, count):
    for n in range(count):
        stack.publish(
            "OrderPlaced",
            {
                "order_id": f"order-{n}",
                "user_id": USER,
                "total": {"amount": "10.00", "currency": "EUR"},
                "placed_at": "2026-11-28T12:00:00Z",
            },
            source="com.example.shop",
        )


def pump_without_waiting(stack):
    """Handle everything visible now; the clock does not move."""
    while stack.pump():
        pass


def test_150_notifications_in_a_minute_send_100_now_and_50_in_the_next_window(stack, clock):
    # Given a user who is reachable by email only, and the default limit of 100 per minute
    DynamoPreferencesStore(stack.physical_id("PreferencesTable")).put(
        Preferences(user_id=USER, email="alice@example.com")
    )
    window_end = datetime.fromtimestamp(clock.now() - clock.now() % 60 + 60, tz=UTC)

    # When 150 orders are placed within the minute and the stack runs without the clock moving
    publish_orders(stack, 150)
    pump_without_waiting(stack)

    # Then 100 emails went out at once, and 50 wait (delayed) on the email queue
    assert len(sent_emails()) == 100
    attributes = stack.clients.sqs.get_queue_attributes(
        QueueUrl=stack.queue_url("EmailQueue"), AttributeNames=["All"]
    )["Attributes"]
    assert attributes["ApproximateNumberOfMessagesDelayed"] == "50"
    ledger = DynamoLedger(stack.physical_id("LedgerTable"))
    items = list(ledger.scan())
    assert sorted(i["status"] for i in items).count("DEFERRED") == 50
    assert all(i["deferred_reason"] == "rate_limited" for i in items if i["status"] == "DEFERRED")

    # When the next window opens and the stack drains
    stack.drain()

    # Then all 150 are sent, and the 50 show DEFERRED (rate limited) then SENT after the window
    assert len(sent_emails()) == 150
    items = list(ledger.scan())
    assert {i["status"] for i in items} == {"SENT"}
    deferred = [i for i in items if i.get("deferrals")]
    assert len(deferred) == 50
    for item in deferred:
        assert [d["reason"] for d in item["deferrals"]] == ["rate_limited"]
        assert datetime.fromisoformat(item["updated_at"]) >= window_end
        assert item["attempts"] == 1
    assert all(
        datetime.fromisoformat(i["updated_at"]) < window_end for i in items if i not in deferred
    )
    # And the Deferred metric counted them
    assert metric_total(stack, "Deferred") == 50


def metric_total(stack, name):
    return sum(sum(d.values) for d in stack.metrics if d.name == name)
