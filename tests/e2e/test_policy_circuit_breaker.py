"""Circuit breaker, end to end: a 10-minute SMS provider outage on the local stack."""

from notifications.adapters.ledger import DynamoLedger
from notifications.adapters.preferences import DynamoPreferencesStore
from notifications.channels.sms import SnsSmsProvider
from notifications.errors import RetryableError
from notifications.preferences import Preferences
from tests.observe import sent_emails, sms_messages

OUTAGE_SECONDS = 600


def mapping_state(stack, queue_logical_id):
    arn = stack.clients.sqs.get_queue_attributes(
        QueueUrl=stack.queue_url(queue_logical_id), AttributeNames=["QueueArn"]
    )["Attributes"]["QueueArn"]
    (mapping,) = stack.clients.lambda_.list_event_source_mappings(
        FunctionName=stack.physical_id("SenderFunction"), EventSourceArn=arn
    )["EventSourceMappings"]
    return mapping["State"]


def place_orders(stack, users):
    store = DynamoPreferencesStore(stack.physical_id("PreferencesTable"))
    for n in users:
        store.put(
            Preferences(user_id=f"user-{n}", email=f"user{n}@example.com", phone=f"+1415555{n:04d}")
        )
        stack.publish(
            "OrderPlaced",
            {
                "order_id": f"order-{n}",
                "user_id": f"user-{n}",
                "total": {"amount": "10.00", "currency": "EUR"},
                "placed_at": "2026-11-28T12:00:00Z",
            },
            source="com.example.shop",
        )


def test_a_ten_minute_sms_outage_opens_the_breaker_and_loses_nothing(stack, clock, monkeypatch):
    # Given an SMS provider that fails (retryably) for the next ten minutes
    outage_ends = clock.now() + OUTAGE_SECONDS
    real_send = SnsSmsProvider.send
    calls_during_outage = []

    def send(self, request, message):
        if clock.now() < outage_ends:
            calls_during_outage.append(request.notification_id)
            raise RetryableError("provider_unavailable", "SNS SMS is down")
        return real_send(self, request, message)

    monkeypatch.setattr(SnsSmsProvider, "send", send)

    # When 100 orders are placed (an email and an SMS each) and the stack runs
    place_orders(stack, range(100))
    stack.drain()

    # Then the breaker opened: SMS polling stopped, nothing was sent by SMS, email flowed
    assert mapping_state(stack, "SmsQueue") == "Disabled"
    assert sms_messages() == []
    assert len(sent_emails()) == 100

    # When two minutes later 100 more orders come in, still inside the outage
    clock.advance(120)
    place_orders(stack, range(100, 200))
    stack.drain()

    # Then their emails go out at once while SMS still waits
    assert len(sent_emails()) == 200
    assert sms_messages() == []

    # When time runs on past the end of the outage, the stack running all along
    while clock.now() < outage_ends + 300:
        stack.drain()
        clock.advance(20)
    stack.drain()

    # Then every SMS was delivered after recovery, and polling is back on
    assert len(sms_messages()) == 200
    assert mapping_state(stack, "SmsQueue") == "Enabled"
    # And the provider was called only a handful of times during the outage (the failures that
    # opened the breaker and one trial per half-open), not once per queued message
    assert 5 <= len(calls_during_outage) < 20
    # And nothing was dead-lettered, and no SMS used more than MaxAttempts (3) attempts
    ledger = list(DynamoLedger(stack.physical_id("LedgerTable")).scan())
    assert {i["status"] for i in ledger} == {"SENT"}
    assert max(i["attempts"] for i in ledger if i["channel"] == "sms") <= 3
    dlq = stack.clients.sqs.get_queue_attributes(
        QueueUrl=stack.queue_url("NotificationsDLQ"), AttributeNames=["All"]
    )["Attributes"]
    assert dlq["ApproximateNumberOfMessages"] == "0"
