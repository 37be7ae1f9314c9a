"""The producer's contract on the local stack: nothing published is dropped silently, an
idempotency key notifies once, the CLI checks events against the catalog before sending, and a
channel that cannot reach a user falls back along the user's chain."""

import json

from typer.testing import CliRunner

from notifications.ledger import DynamoLedger
from notifications.models import OrderPlaced
from notifications.preferences import DynamoPreferencesStore, Preferences
from notifications.publishing import Publisher
from notifyctl.cli import app
from tests.observe import push_messages, sent_emails, sms_messages
from tests.samples import load_event

runner = CliRunner()
SHOP = "com.example.shop"


def notifyctl(*args):
    return runner.invoke(app, ["--stack-name", "notifications-local", *args])


def ledger_records(stack):
    return list(DynamoLedger(stack.physical_id("LedgerTable")).scan())


def put(stack, source, detail_type, detail):
    response = stack.clients.events.put_events(
        Entries=[
            {
                "Source": source,
                "DetailType": detail_type,
                "Detail": json.dumps(detail),
                "EventBusName": stack.bus_name,
            }
        ]
    )
    assert response["FailedEntryCount"] == 0


def order_detail(**extra):
    return load_event("fan_out/order-placed.json")["detail"] | extra


def test_unknown_types_versions_and_sources_end_in_events_dlq_with_their_reason(stack):
    # Given events no domain rule routes: an unknown type and a wrongly cased one from the
    # shop, an OrderPlaced of an unknown schema version, and an OrderPlaced from another source
    put(stack, SHOP, "OrderShipped", {"order_id": "o-1"})
    put(stack, SHOP, "orderplaced", order_detail())
    put(stack, SHOP, "OrderPlaced", order_detail(schema_version=2))
    put(stack, "com.evil", "OrderPlaced", order_detail())

    # When the pipeline drains
    stack.drain()

    # Then each is in EventsDLQ with its reason, as `events-dlq list` shows
    listed = notifyctl("events-dlq", "list", "--json")
    assert listed.exit_code == 0, listed.output
    entries = json.loads(listed.output)
    assert sorted((e["event_type"], e["reason"]) for e in entries) == [
        ("OrderPlaced", "unknown_event_type"),
        ("OrderPlaced", "unknown_source"),
        ("OrderShipped", "unknown_event_type"),
        ("orderplaced", "unknown_event_type"),
    ]
    by_reason = {e["reason"]: e["error"] for e in entries if e["event_type"] == "OrderPlaced"}
    assert "schema_version 2" in by_reason["unknown_event_type"]
    assert "'com.evil'" in by_reason["unknown_source"]
    # And the dashboard counts the four rejected events, and nothing was sent
    figures = json.loads(notifyctl("dashboard", "--json").output)
    assert figures["rejected_events"] == 4
    assert ledger_records(stack) == []


def alice(stack):
    store = DynamoPreferencesStore(stack.physical_id("PreferencesTable"))
    store.put(Preferences(user_id="user-123", email="alice@example.com", phone="+14155550100"))


def test_one_idempotency_key_published_five_times_notifies_once_per_channel(stack):
    # Given Alice with an email address and a phone number, and a producer's order event
    alice(stack)
    order = OrderPlaced.model_validate(order_detail())
    publisher = Publisher(stack.bus_name, SHOP, events=stack.clients.events)

    # When the producer publishes it with the same key three times, then twice in one call,
    # and a non-Python producer sends it once more with PutEvents and the key in the detail
    first = [publisher.publish(order, idempotency_key="order-1001-placed") for _ in range(3)]
    keyed = order.model_copy(update={"idempotency_key": "order-1001-placed"})
    both = publisher.publish_many([keyed, keyed])
    put(stack, SHOP, "OrderPlaced", order_detail(idempotency_key="order-1001-placed"))
    stack.drain()

    # Then EventBridge accepted six distinct events
    results = first + both
    assert all(r.ok for r in results)
    assert len({r.event_id for r in results}) == 5
    # And Alice got one email and one SMS, and the ledger holds one record per channel
    assert [e.destinations for e in sent_emails()] == [("alice@example.com",)]
    assert [number for number, _ in sms_messages()] == ["+14155550100"]
    records = ledger_records(stack)
    assert sorted((r["channel"], r["status"]) for r in records) == [
        ("email", "SENT"),
        ("sms", "SENT"),
    ]


def test_without_a_key_each_publish_is_its_own_event(stack):
    # Given Alice, When the same order is published twice without a key
    alice(stack)
    publisher = Publisher(stack.bus_name, SHOP, events=stack.clients.events)
    order = OrderPlaced.model_validate(order_detail())
    publisher.publish_many([order, order])
    stack.drain()

    # Then she hears about it twice, as before idempotency keys
    assert len(sent_emails()) == 2


def test_publish_refuses_what_the_catalog_refuses_with_one_line_and_sends_nothing(stack):
    detail = json.dumps(order_detail())
    cases = [
        (["NoSuchEvent", "--detail", detail], "unknown event type 'NoSuchEvent'"),
        (["orderplaced", "--detail", detail], "unknown event type 'orderplaced'"),
        (["OrderPlaced", "--source", "com.evil", "--detail", detail], "source 'com.evil'"),
        (
            ["OrderPlaced", "--detail", json.dumps({"order_id": "o-1"})],
            "detail.user_id: Field required",
        ),
        (
            ["OrderPlaced", "--idempotency-key", "", "--detail", detail],
            "detail.idempotency_key",
        ),
        (
            ["OrderPlaced", "--idempotency-key", "k" * 256, "--detail", detail],
            "detail.idempotency_key",
        ),
    ]
    for args, message in cases:
        result = notifyctl("publish", *args)
        assert result.exit_code == 2, (args, result.output)
        lines = result.output.strip().splitlines()
        assert len(lines) == 1, result.output
        assert lines[0].startswith("error: "), result.output
        assert message in lines[0], result.output
    # And nothing reached the bus: no rejected event, no notification
    stack.drain()
    assert json.loads(notifyctl("events-dlq", "list", "--json").output) == []
    assert ledger_records(stack) == []


def test_publish_with_an_idempotency_key_twice_notifies_once(stack):
    alice(stack)
    detail = json.dumps(order_detail())
    outputs = [
        notifyctl("publish", "OrderPlaced", "--detail", detail, "--idempotency-key", "k-1")
        for _ in range(2)
    ]
    stack.drain()
    assert all(o.exit_code == 0 for o in outputs), [o.output for o in outputs]
    assert all(o.output.startswith("published OrderPlaced ") for o in outputs)
    assert len(sent_emails()) == 1
    assert len(sms_messages()) == 1


def test_events_list_and_show_read_the_catalog():
    listed = notifyctl("events", "list", "--json")
    assert listed.exit_code == 0, listed.output
    assert [(r["name"], r["version"]) for r in json.loads(listed.output)] == [
        ("OrderPlaced", 1),
        ("PaymentReceived", 1),
        ("UserRegistered", 1),
    ]
    shown = json.loads(notifyctl("events", "show", "PaymentReceived").output)
    assert shown["schema"]["properties"]["detail-type"]["enum"] == ["PaymentReceived"]
    assert "idempotency_key" in shown["schema"]["definitions"]["PaymentReceived"]["properties"]
    assert shown["example"]["payment_id"] == "pay-1001"
    unknown = notifyctl("events", "show", "Nope")
    assert unknown.exit_code == 2
    assert unknown.output.strip().splitlines() == [
        "error: unknown event type 'Nope' (known: OrderPlaced, PaymentReceived, UserRegistered)"
    ]


def test_a_disabled_push_endpoint_falls_back_to_sms_then_email(stack):
    # Given Bob, who wants payments on push first, then SMS, then email: his push endpoint
    # is disabled by the platform and his phone number is not a real one
    sns = stack.clients.sns
    app_arn = sns.create_platform_application(
        Name="shop", Platform="GCM", Attributes={"PlatformCredential": "key"}
    )["PlatformApplicationArn"]
    endpoint = sns.create_platform_endpoint(PlatformApplicationArn=app_arn, Token="t-1")[
        "EndpointArn"
    ]
    sns.set_endpoint_attributes(EndpointArn=endpoint, Attributes={"Enabled": "false"})
    store = DynamoPreferencesStore(stack.physical_id("PreferencesTable"))
    store.put(
        Preferences(
            user_id="user-123",
            email="bob@example.com",
            phone="+1415555",
            push_endpoints=(endpoint,),
            channel_chains={"payment": ("push", "sms", "email")},
        )
    )

    # When his payment arrives
    put(stack, SHOP, "PaymentReceived", load_event("fan_out/payment-received.json")["detail"])
    stack.drain()

    # Then push was tried and dead-lettered, then SMS, then the email was sent: one chain
    records = {r["channel"]: r for r in ledger_records(stack)}
    assert sorted(records) == ["email", "push", "sms"]
    push, sms, email = records["push"], records["sms"], records["email"]
    assert (push["status"], push["dead_letter_reason"]) == ("DEAD_LETTERED", "endpoint_disabled")
    assert (sms["status"], sms["dead_letter_reason"]) == ("DEAD_LETTERED", "invalid_recipient")
    assert email["status"] == "SENT"
    assert sms["fallback_of"] == push["notification_id"]
    assert email["fallback_of"] == sms["notification_id"]
    assert [e.destinations for e in sent_emails()] == [("bob@example.com",)]
    assert push_messages() == []
    assert sms_messages() == []
    # And `dlq show` shows each dead letter's link to its successor
    shown = json.loads(notifyctl("dlq", "show", push["notification_id"]).output)
    assert shown["fallback_notification_id"] == sms["notification_id"]
    assert shown["fallback_channel"] == "sms"
    shown = json.loads(notifyctl("dlq", "show", sms["notification_id"]).output)
    assert shown["fallback_notification_id"] == email["notification_id"]
    # And the dashboard counts two fallbacks
    assert json.loads(notifyctl("dashboard", "--json").output)["fallbacks"] == 2


def test_an_opted_out_channel_is_skipped_and_routed_channels_are_not_repeated(stack):
    # Given Carol, whose chain is push, SMS, email, opted out of SMS, with a stale endpoint
    sns = stack.clients.sns
    app_arn = sns.create_platform_application(
        Name="shop", Platform="GCM", Attributes={"PlatformCredential": "key"}
    )["PlatformApplicationArn"]
    endpoint = sns.create_platform_endpoint(PlatformApplicationArn=app_arn, Token="t-2")[
        "EndpointArn"
    ]
    sns.set_endpoint_attributes(EndpointArn=endpoint, Attributes={"Enabled": "false"})
    store = DynamoPreferencesStore(stack.physical_id("PreferencesTable"))
    store.put(
        Preferences(
            user_id="user-123",
            email="carol@example.com",
            phone="+14155550100",
            push_endpoints=(endpoint,),
            opted_out_channels=frozenset({"sms"}),
            channel_chains={"payment": ("push", "sms", "email")},
        )
    )

    # When her payment arrives
    put(stack, SHOP, "PaymentReceived", load_event("fan_out/payment-received.json")["detail"])
    stack.drain()

    # Then push fell back straight to email, SMS skipped (not a failure), nothing on SMS
    records = {r["channel"]: r for r in ledger_records(stack)}
    assert sorted(records) == ["email", "push"]
    assert records["push"]["fallback_skipped"] == ["sms: opted_out_channel:sms"]
    assert records["email"]["fallback_of"] == records["push"]["notification_id"]
    assert records["email"]["status"] == "SENT"
    assert sms_messages() == []


def test_a_route_that_already_reached_the_user_elsewhere_gets_no_fallback(stack):
    # Given Dan without a chain of his own: his order goes to email, SMS and push at once,
    # and his push endpoint is disabled
    sns = stack.clients.sns
    app_arn = sns.create_platform_application(
        Name="shop", Platform="GCM", Attributes={"PlatformCredential": "key"}
    )["PlatformApplicationArn"]
    endpoint = sns.create_platform_endpoint(PlatformApplicationArn=app_arn, Token="t-3")[
        "EndpointArn"
    ]
    sns.set_endpoint_attributes(EndpointArn=endpoint, Attributes={"Enabled": "false"})
    store = DynamoPreferencesStore(stack.physical_id("PreferencesTable"))
    store.put(
        Preferences(
            user_id="user-123",
            email="dan@example.com",
            phone="+14155550100",
            push_endpoints=(endpoint,),
        )
    )

    # When his order arrives
    put(stack, SHOP, "OrderPlaced", order_detail())
    stack.drain()

    # Then email and SMS went out once each, and the push dead letter got no fallback
    records = {r["channel"]: r for r in ledger_records(stack)}
    assert {c: r["status"] for c, r in records.items()} == {
        "email": "SENT",
        "sms": "SENT",
        "push": "DEAD_LETTERED",
    }
    assert records["push"]["fallback_none"] == "chain_exhausted"
    assert not any(r.get("fallback_of") for r in records.values())
    assert len(sent_emails()) == 1
    assert len(sms_messages()) == 1


def test_a_users_chain_is_set_and_removed_with_preferences_set(stack):
    set_ = notifyctl("preferences", "set", "user-9", "--channel-chain", "payment=push, sms,email")
    assert set_.exit_code == 0, set_.output
    assert json.loads(set_.output)["channel_chains"] == {"payment": ["push", "sms", "email"]}
    for bad in ("payment=fax", "payment=sms,sms", "payment=webhook", "push,sms"):
        refused = notifyctl("preferences", "set", "user-9", "--channel-chain", bad)
        assert refused.exit_code == 2, refused.output
        assert len(refused.output.strip().splitlines()) == 1, refused.output
        assert refused.output.startswith("error: ")
    removed = notifyctl("preferences", "set", "user-9", "--channel-chain", "payment=")
    assert json.loads(removed.output)["channel_chains"] == {}
