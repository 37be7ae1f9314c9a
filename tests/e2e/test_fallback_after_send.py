"""Channel fallback after the send, and with several recipients on one channel, on the local
stack: an email that bounces permanently (SES's mailbox simulator) falls back to SMS once, even
when SES reports the bounce twice; a user with two push endpoints falls back only when
neither got the push."""

import json

from typer.testing import CliRunner

from notifications.adapters.ledger import DynamoLedger
from notifications.adapters.preferences import DynamoPreferencesStore
from notifications.preferences import Preferences
from notifyctl.cli import app
from tests.observe import push_messages, sent_emails, sms_messages
from tests.samples import load_event

runner = CliRunner()
SHOP = "com.example.shop"
BOUNCE = "bounce@simulator.amazonses.com"


def notifyctl(*args):
    return runner.invoke(app, ["--stack-name", "notifications-local", *args])


def by_channel(stack, user_id):
    records = DynamoLedger(stack.physical_id("LedgerTable")).scan()
    found = {}
    for record in records:
        if record.get("user_id") == user_id:
            assert record["channel"] not in found, record  # one notification per channel
            found[record["channel"]] = record
    return found


def put(stack, detail_type, detail):
    response = stack.clients.events.put_events(
        Entries=[
            {
                "Source": SHOP,
                "DetailType": detail_type,
                "Detail": json.dumps(detail),
                "EventBusName": stack.bus_name,
            }
        ]
    )
    assert response["FailedEntryCount"] == 0


def preferences(stack, **fields):
    DynamoPreferencesStore(stack.physical_id("PreferencesTable")).put(Preferences(**fields))


def test_a_permanent_bounce_falls_back_to_sms_once_even_when_reported_twice(stack):
    # Given Erin, whose address bounces for good (SES's simulator address) and who has a phone
    preferences(stack, user_id="erin", email=BOUNCE, phone="+14155550100")

    # When she registers (account: email, then SMS, then push) and the pipeline drains
    welcome = load_event("fan_out/user-registered.json")["detail"]
    put(stack, "UserRegistered", welcome | {"user_id": "erin", "email": BOUNCE})
    stack.drain()

    # Then the email was sent, SES reported a permanent bounce, and an SMS followed it
    records = by_channel(stack, "erin")
    assert sorted(records) == ["email", "sms"]
    email, sms = records["email"], records["sms"]
    assert (email["status"], email["delivery_status"]) == ("SENT", "BOUNCED")
    assert email["delivery_permanent"] is True
    assert email["fallback_notification_id"] == sms["notification_id"]
    assert email["fallback_channel"] == "sms"
    assert "feedback_request" not in email  # kept only until the decision
    assert (sms["status"], sms["fallback_of"]) == ("SENT", email["notification_id"])
    assert [e.destinations for e in sent_emails()] == [(BOUNCE,)]
    assert [number for number, _ in sms_messages()] == ["+14155550100"]
    # And `dlq show` (the full ledger record) shows the link, the dashboard counts it
    shown = json.loads(notifyctl("dlq", "show", email["notification_id"]).output)
    assert (shown["fallback_notification_id"], shown["delivery_status"]) == (
        sms["notification_id"],
        "BOUNCED",
    )
    assert json.loads(notifyctl("dashboard", "--json").output)["fallbacks"] == 1
    # And the address is suppressed, as for any hard bounce
    prefs = DynamoPreferencesStore(stack.physical_id("PreferencesTable")).get("erin")
    assert BOUNCE in prefs.suppressed_emails

    # When SES delivers the same bounce event a second time
    (bounce,) = stack.mailbox.published
    assert bounce["DetailType"] == "Email Bounced"
    stack.clients.events.put_events(Entries=[bounce])
    stack.drain()

    # Then nothing more was sent: still one SMS, one fallback
    assert [number for number, _ in sms_messages()] == ["+14155550100"]
    assert sorted(by_channel(stack, "erin")) == ["email", "sms"]
    assert json.loads(notifyctl("dashboard", "--json").output)["fallbacks"] == 1


def test_a_bounce_without_a_reachable_next_channel_falls_back_to_nothing(stack):
    # Given Finn, whose address bounces and who has no phone and no push endpoint
    preferences(stack, user_id="finn", email=BOUNCE)

    # When he registers
    welcome = load_event("fan_out/user-registered.json")["detail"]
    put(stack, "UserRegistered", welcome | {"user_id": "finn", "email": BOUNCE})
    stack.drain()

    # Then the bounce is recorded and nothing else is sent
    records = by_channel(stack, "finn")
    assert sorted(records) == ["email"]
    assert records["email"]["delivery_status"] == "BOUNCED"
    assert "fallback_notification_id" not in records["email"]
    assert sms_messages() == []
    assert push_messages() == []


def endpoint(stack, token, enabled):
    sns = stack.clients.sns
    app_arn = sns.create_platform_application(
        Name="shop", Platform="GCM", Attributes={"PlatformCredential": "key"}
    )["PlatformApplicationArn"]
    arn = sns.create_platform_endpoint(PlatformApplicationArn=app_arn, Token=token)["EndpointArn"]
    if not enabled:
        sns.set_endpoint_attributes(EndpointArn=arn, Attributes={"Enabled": "false"})
    return arn


def gina(stack, endpoints):
    """Gina wants payments on push, then SMS, then email; she has two phones' endpoints."""
    preferences(
        stack,
        user_id="gina",
        email="gina@example.com",
        phone="+14155550102",
        push_endpoints=endpoints,
        channel_chains={"payment": ("push", "sms", "email")},
    )
    payment = load_event("fan_out/payment-received.json")["detail"] | {"user_id": "gina"}
    put(stack, "PaymentReceived", payment)
    stack.drain()
    return DynamoLedger(stack.physical_id("LedgerTable")).scan()


def test_one_dead_push_endpoint_does_not_fall_back_when_the_other_got_the_push(stack):
    live, dead = endpoint(stack, "t-live", True), endpoint(stack, "t-dead", False)

    records = list(gina(stack, (dead, live)))

    # Then the live endpoint got the push, the dead one is dead-lettered, and no SMS or
    # email followed: the user was reached on push
    assert sorted((r["channel"], r["status"]) for r in records) == [
        ("push", "DEAD_LETTERED"),
        ("push", "SENT"),
    ]
    (dead_letter,) = [r for r in records if r["status"] == "DEAD_LETTERED"]
    assert dead_letter["fallback_none"] == "sibling_reached"
    assert [arn for arn, _ in push_messages()] == [live]
    assert sms_messages() == []
    assert sent_emails() == []


def test_two_dead_push_endpoints_fall_back_once(stack):
    first, second = endpoint(stack, "t-a", False), endpoint(stack, "t-b", False)

    records = list(gina(stack, (first, second)))

    # Then both pushes are dead-lettered and exactly one SMS followed, linked to one of them
    pushes = [r for r in records if r["channel"] == "push"]
    assert [r["status"] for r in pushes] == ["DEAD_LETTERED", "DEAD_LETTERED"]
    (sms,) = [r for r in records if r["channel"] == "sms"]
    assert sms["status"] == "SENT"
    assert sms["fallback_of"] in {r["notification_id"] for r in pushes}
    assert [number for number, _ in sms_messages()] == ["+14155550102"]
    assert sent_emails() == []
    assert json.loads(notifyctl("dashboard", "--json").output)["fallbacks"] == 1
