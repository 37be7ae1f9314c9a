"""The producer's contract on the local stack: nothing published is dropped silently, an
idempotency key notifies once, the CLI checks events against the catalog before sending, and a
channel that cannot reach a user falls back along the user's chain."""

import json

from typer.testing import CliRunner

from notifications.adapters.ledger import DynamoLedger
from notifications.adapters.preferences import DynamoPreferencesStore
from notifications.models import OrderPlaced
from notifications.preferences import Preferences
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


def with_preferences(stack, user_id, **fields):
    store = DynamoPreferencesStore(stack.physical_id("PreferencesTable"))
    store.put(Preferences(user_id=user_id, **fields))


def disabled_endpoint(stack, token):
    """A push endpoint the platform has disabled."""
    sns = stack.clients.sns
    app_arn = sns.create_platform_application(
        Name="shop", Platform="GCM", Attributes={"PlatformCredential": "key"}
    )["PlatformApplicationArn"]
    endpoint = sns.create_platform_endpoint(PlatformApplicationArn=app_arn, Token=token)[
        "EndpointArn"
    ]
    sns.set_endpoint_attributes(EndpointArn=endpoint, Attributes={"Enabled": "false"})
    return endpoint


def test_one_idempotency_key_published_five_times_notifies_once_per_channel(stack):
    # Given Alice and Bob with an email address and a phone number each
    with_preferences(stack, "user-123", email="alice@example.com", phone="+14155550100")
    with_preferences(stack, "user-456", email="bob@example.com", phone="+14155550101")
    publisher = Publisher(stack.bus_name, SHOP, events=stack.clients.events)
    order = OrderPlaced.model_validate(order_detail())

    # When a producer publishes Alice's order with the same key three times, then twice in
    # one call, and a non-Python producer sends it once more with PutEvents and the key
    first = [publisher.publish(order, idempotency_key="order-1001-placed") for _ in range(3)]
    keyed = order.model_copy(update={"idempotency_key": "order-1001-placed"})
    both = publisher.publish_many([keyed, keyed])
    put(stack, SHOP, "OrderPlaced", order_detail(idempotency_key="order-1001-placed"))
    # And Bob's order twice without a key (two events, as before idempotency keys)
    bobs = OrderPlaced.model_validate(order_detail(order_id="order-2002", user_id="user-456"))
    unkeyed = publisher.publish_many([bobs, bobs])
    stack.drain()

    # Then EventBridge accepted every publish as a distinct event
    results = first + both + unkeyed
    assert all(r.ok for r in results)
    assert len({r.event_id for r in results}) == 7
    # And Alice got one email and one SMS, Bob two of each
    emails = sorted(e.destinations[0] for e in sent_emails())
    assert emails == ["alice@example.com", "bob@example.com", "bob@example.com"]
    assert sorted(n for n, _ in sms_messages()) == ["+14155550100", "+14155550101", "+14155550101"]
    # And the ledger holds one record per channel for Alice's order
    alices = [r for r in ledger_records(stack) if r["user_id"] == "user-123"]
    assert sorted((r["channel"], r["status"]) for r in alices) == [
        ("email", "SENT"),
        ("sms", "SENT"),
    ]


def test_publish_refuses_what_the_catalog_refuses_and_a_key_notifies_once(stack):
    with_preferences(stack, "user-123", email="alice@example.com", phone="+14155550100")
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

    # When the valid event is published twice with one --idempotency-key
    outputs = [
        notifyctl("publish", "OrderPlaced", "--detail", detail, "--idempotency-key", "k-1")
        for _ in range(2)
    ]
    stack.drain()

    # Then both publishes succeed and Alice hears once per channel
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
    endpoint = disabled_endpoint(stack, "t-1")
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


def test_opted_out_channels_are_skipped_and_routed_channels_are_not_repeated(stack):
    # Given Carol, set up with the CLI: payments on push, then SMS, then email; opted out of
    # SMS; her push endpoint disabled
    carol = disabled_endpoint(stack, "t-2")
    bad = ("payment=fax", "payment=sms,sms", "payment=webhook", "push,sms")
    for value in bad:
        refused = notifyctl("preferences", "set", "carol", "--channel-chain", value)
        assert refused.exit_code == 2, refused.output
        assert len(refused.output.strip().splitlines()) == 1, refused.output
        assert refused.output.startswith("error: ")
    set_ = notifyctl(
        "preferences",
        "set",
        "carol",
        "--email",
        "carol@example.com",
        "--phone",
        "+14155550100",
        "--push-endpoint",
        carol,
        "--opt-out-channel",
        "sms",
        "--channel-chain",
        "payment=push, sms,email",
        "--channel-chain",
        "order=email",
    )
    assert set_.exit_code == 0, set_.output
    assert json.loads(set_.output)["channel_chains"] == {
        "payment": ["push", "sms", "email"],
        "order": ["email"],
    }
    removed = notifyctl("preferences", "set", "carol", "--channel-chain", "order=")
    assert json.loads(removed.output)["channel_chains"] == {"payment": ["push", "sms", "email"]}
    # And Dan without a chain of his own (his orders go to email, SMS and push at once),
    # whose push endpoint is disabled too
    dan = disabled_endpoint(stack, "t-3")
    with_preferences(
        stack, "dan", email="dan@example.com", phone="+14155550101", push_endpoints=(dan,)
    )

    # When Carol's payment and Dan's order arrive
    payment = load_event("fan_out/payment-received.json")["detail"] | {"user_id": "carol"}
    put(stack, SHOP, "PaymentReceived", payment)
    put(stack, SHOP, "OrderPlaced", order_detail(user_id="dan"))
    stack.drain()

    # Then Carol's push fell back straight to email, SMS skipped (not a failure)
    records = ledger_records(stack)
    carols = {r["channel"]: r for r in records if r["user_id"] == "carol"}
    assert sorted(carols) == ["email", "push"]
    assert carols["push"]["fallback_skipped"] == ["sms: opted_out_channel:sms"]
    assert carols["email"]["fallback_of"] == carols["push"]["notification_id"]
    assert carols["email"]["status"] == "SENT"
    # And Dan got email and SMS once each; his push dead letter got no fallback
    dans = {r["channel"]: r for r in records if r["user_id"] == "dan"}
    assert {c: r["status"] for c, r in dans.items()} == {
        "email": "SENT",
        "sms": "SENT",
        "push": "DEAD_LETTERED",
    }
    assert dans["push"]["fallback_none"] == "chain_exhausted"
    assert not any(r.get("fallback_of") for r in dans.values())
    assert sorted(e.destinations[0] for e in sent_emails()) == [
        "carol@example.com",
        "dan@example.com",
    ]
    assert [n for n, _ in sms_messages()] == ["+14155550101"]
