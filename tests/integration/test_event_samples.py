"""Every sample in events/ invoked in-process, as `sam local invoke -e` would, with the result
events/README.md documents."""

import json

from notifications.adapters.ledger import DynamoLedger
from tests.integration.test_sender_backoff import all_messages, subscribe_alerts
from tests.observe import sent_emails, sms_messages
from tests.samples import EVENTS, load_event


def queue_arn(stack, logical_id):
    return stack.clients.sqs.get_queue_attributes(
        QueueUrl=stack.queue_url(logical_id), AttributeNames=["QueueArn"]
    )["Attributes"]["QueueArn"]


def aimed_at(stack, sample, logical_id):
    """A sample SQS batch with its source ARN pointed at the deployed queue (sam local invoke
    uses the names in events/env.json instead)."""
    event = load_event(sample)
    for record in event["Records"]:
        record["eventSourceARN"] = queue_arn(stack, logical_id)
    return event


def test_every_sample_is_covered_here():
    samples = {p.relative_to(EVENTS).as_posix() for p in EVENTS.rglob("*.json")}
    covered = {
        "fan_out/user-registered.json",
        "fan_out/order-placed.json",
        "fan_out/payment-received.json",
        "fan_out/order-placed-invalid.json",
        "fan_out/sqs-batch.json",
        "sender/sqs-batch.json",
        "dlq_alarm/dlq-batch.json",
        "env.json",
        "put-events/user-registered.json",  # tests/integration/test_event_routing.py
        "put-events/order-placed.json",
        "put-events/payment-received.json",
        "schemas/UserRegistered.json",  # tests/unit/test_catalog.py
        "schemas/OrderPlaced.json",
        "schemas/PaymentReceived.json",
        # tests/unit/test_operational_events.py
        "schemas/operational/NotificationDeadLettered.json",
        "schemas/operational/WebhookEndpointDisabled.json",
        "schemas/operational/WebhookEndpointRecovered.json",
        "delivery_feedback/ses-delivery.json",  # tests/integration/test_delivery_feedback.py
        "delivery_feedback/ses-bounce.json",
        "delivery_feedback/ses-complaint.json",
        "delivery_feedback/sms-delivery-logs.json",
        "preference_center/one-click-post.json",  # tests/integration/test_preference_center.py
    }
    assert samples == covered


def test_fan_out_samples_in_order_of_a_customer_journey(stack):
    fan_out = stack.function("FanOutFunction")
    results = {
        name: fan_out.invoke(load_event(f"fan_out/{name}.json")).result
        for name in ("user-registered", "order-placed", "payment-received", "order-placed-invalid")
    }
    assert results["user-registered"]["enqueued"] == {"email": 1}
    # Registration stored Alice's address, so her order and payment reach her by email
    assert results["order-placed"]["enqueued"] == {"email": 1}
    assert results["payment-received"]["enqueued"] == {"email": 1}
    assert results["order-placed-invalid"]["rejected_reason"] == "invalid_event"


def test_fan_out_sqs_batch_sample_is_the_journey_in_one_batch(stack):
    # Given the four fan-out samples as one FanOutQueue batch, as the event source mapping
    # delivers them
    event = aimed_at(stack, "fan_out/sqs-batch.json", "FanOutQueue")

    # When the fan-out gets it
    invocation = stack.function("FanOutFunction").invoke(event)

    # Then nothing is left to retry: three emails wait on the email queue (the registration's
    # first preferences reach the order and payment of the same batch), and the invalid order
    # is in EventsDLQ with its reason
    assert invocation.ok, invocation.error
    assert invocation.result == {"batchItemFailures": []}
    emails = all_messages(stack, stack.queue_url("EmailQueue"))
    templates = sorted(json.loads(m["Body"])["template_id"] for m in emails)
    assert templates == ["order_confirm", "payment_received", "welcome"]
    (rejected,) = all_messages(stack, stack.queue_url("EventsDLQ"))
    assert rejected["MessageAttributes"]["reason"]["StringValue"] == "invalid_event"


def test_sender_sample_sends_the_welcome_and_order_emails(stack):
    invocation = stack.function("SenderFunction").invoke(
        aimed_at(stack, "sender/sqs-batch.json", "EmailQueue")
    )

    assert invocation.ok, invocation.error
    assert invocation.result == {"batchItemFailures": []}
    emails = sent_emails()
    assert [e.destinations for e in emails] == [("alice@example.com",)] * 2
    # the sender sends a batch concurrently: the order SES records them in is not fixed
    assert sorted(e.subject for e in emails) == [
        "Order #order-1001 confirmed",
        "Welcome to MyApp, Alice!",
    ]
    assert sms_messages() == []


def test_dlq_sample_records_two_dead_letters_and_alerts_once(stack):
    inbox = subscribe_alerts(stack)
    event = aimed_at(stack, "dlq_alarm/dlq-batch.json", "NotificationsDLQ")

    invocation = stack.function("DlqAlarmFunction").invoke(event)

    assert invocation.ok, invocation.error
    records = {
        i["dead_letter_reason"]: i for i in DynamoLedger(stack.physical_id("LedgerTable")).scan()
    }
    assert set(records) == {"provider_timeout", "max_receive_count_exceeded"}
    assert records["provider_timeout"]["status"] == "DEAD_LETTERED"
    assert records["provider_timeout"]["receive_count"] == 3
    alerts = all_messages(stack, inbox)
    assert len(alerts) == 1
    assert "2 notification(s) dead-lettered" in json.loads(alerts[0]["Body"])["Subject"]


def test_env_json_names_every_variable_each_function_gets(stack):
    """events/env.json (for `sam local invoke --env-vars`) covers every deployed function's
    environment, no more and no less."""
    env = load_event("env.json")
    assert set(env) == set(stack.functions)
    for logical_id, variables in env.items():
        deployed = set(stack.function(logical_id).spec.environment)
        assert set(variables) == deployed, logical_id
