"""Security through the whole local stack: SSRF targets, template and header injection,
oversized payloads, and no secret or personal data in any function's log output.

The address checks themselves are unit-tested target by target in
tests/unit/test_channel_ssrf.py (46 targets) and the provider's redirect and rebinding handling
in tests/unit/test_channel_webhook.py and tests/integration/test_channel_webhook.py; here the
real WebhookProvider, wired by the deployed sender, meets hostile subscriptions end to end.
"""

from __future__ import annotations

import re
import socket
from collections.abc import Sequence

import pytest

from notifications.adapters.preferences import DynamoPreferencesStore
from notifications.channels.webhook import (
    DynamoSubscriptionStore,
    SecretsManagerSigningKeys,
    WebhookSubscription,
)
from notifications.models import Channel
from notifications.preferences import Preferences
from notifyctl.webhook_receiver import WebhookReceiver
from tests.observe import push_messages, sent_emails, sms_messages
from tests.reliability.helpers import (
    drain_messages,
    enqueue,
    ledger_items,
    set_mapping,
    welcome,
)

SOURCE = "com.example.shop"
PUBLIC = "93.184.216.34"
FAKE_DNS: dict[str, Sequence[str]] = {
    "hooks.example.com": [PUBLIC],
    "metadata.example": ["169.254.169.254"],
    "internal.example": ["10.0.0.5"],
    "mixed.example": [PUBLIC, "192.168.0.10"],
    "v6loop.example": ["::1"],
    "mapped.example": ["::ffff:10.1.2.3"],
}
HOSTILE = {
    "plain-http": "http://hooks.example.com/",
    "file-scheme": "file:///etc/passwd",
    "loopback": "https://127.0.0.1/",
    "localhost-name": "https://localhost/",
    "decimal-ip": "https://2130706433/",
    "hex-ip": "https://0x7f000001/",
    "ipv6-loopback": "https://[::1]/",
    "ipv4-mapped": "https://[::ffff:127.0.0.1]/",
    "metadata": "https://169.254.169.254/latest/meta-data/",
    "metadata-v6": "https://[fd00:ec2::254]/",
    "metadata-by-name": "https://metadata.example/",
    "private-10": "https://10.0.0.1/",
    "private-192": "https://192.168.1.1/",
    "private-by-name": "https://internal.example/",
    "one-bad-address": "https://mixed.example/",
    "mapped-by-name": "https://mapped.example/",
    "nat64": "https://[64:ff9b::a00:1]/",
    "cgnat": "https://100.64.1.1/",
    "link-local": "https://169.254.1.1/",
    "credentials": "https://user:pass@hooks.example.com/",
    "v6-loopback-by-name": "https://v6loop.example/",
}
REBINDING = "https://rebind.example/hook"


def order(n: int, user: str) -> dict:
    return {
        "order_id": f"order-{n}",
        "user_id": user,
        "total": {"amount": "10.00", "currency": "EUR"},
        "placed_at": "2026-11-28T12:00:00Z",
    }


def test_hostile_webhook_targets_are_never_contacted(stack, monkeypatch):
    # Given a DNS where rebind.example answers a public address first and loopback afterwards,
    # a network that records every connection attempt (and refuses it), and one subscription per
    # hostile target plus the rebinding one, all for OrderPlaced
    lookups: list[str] = []
    connections: list[tuple[str, int]] = []

    def getaddrinfo(host, port, *args, **kwargs):
        lookups.append(host)
        if host == "rebind.example":
            answers = [PUBLIC] if lookups.count(host) == 1 else ["127.0.0.1"]
        else:
            answers = FAKE_DNS.get(host)
            if answers is None:
                raise socket.gaierror(f"no such host {host}")
        return [
            (socket.AF_INET6 if ":" in a else socket.AF_INET, socket.SOCK_STREAM, 6, "", (a, port))
            for a in answers
        ]

    def create_connection(address, *args, **kwargs):
        connections.append(address)
        raise ConnectionRefusedError("test network: refused")

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    monkeypatch.setattr(socket, "create_connection", create_connection)
    store = DynamoSubscriptionStore(stack.physical_id("WebhookSubscriptionsTable"))
    keys = SecretsManagerSigningKeys(
        stack.function("SenderFunction").environment["WEBHOOK_SECRET_PREFIX"]
    )
    for name, url in {**HOSTILE, "rebinding": REBINDING}.items():
        keys.create(name)
        store.put(
            WebhookSubscription(name, url, ("OrderPlaced",), secret_id=keys.secret_name(name))
        )
    assert len(HOSTILE) + 1 >= 15

    # When an order is placed and the stack drains
    stack.publish("OrderPlaced", order(1, "user-none"), source=SOURCE)
    stack.drain()

    # Then every hostile target's notification is dead-lettered as unsafe_target after one
    # attempt, and none of them was ever connected to
    webhooks = {
        i["recipient_masked"]: i for i in ledger_items(stack).values() if i["channel"] == "webhook"
    }
    assert set(webhooks) == {*HOSTILE, "rebinding"}
    for name in HOSTILE:
        assert webhooks[name]["status"] == "DEAD_LETTERED", name
        assert webhooks[name]["dead_letter_reason"] == "unsafe_target", name
        assert webhooks[name]["attempts"] == 1, name
    # And the rebinding host was connected to only at the address that passed the check; when
    # its DNS turned to loopback on the retry, the target was refused without a connection
    assert connections == [(PUBLIC, 443)]
    assert webhooks["rebinding"]["status"] == "DEAD_LETTERED"
    assert webhooks["rebinding"]["dead_letter_reason"] == "unsafe_target"
    assert [e["reason"] for e in webhooks["rebinding"]["errors"]][:2] == [
        "provider_unavailable",
        "unsafe_target",
    ]


def test_template_and_header_injection_stay_inert_text(stack):
    # Given users whose names carry template syntax, HTML and a CRLF header injection
    names = {
        "tpl": "{{ 7*7 }}{% for c in ().__class__.__bases__ %}{{ c }}{% endfor %}",
        "html": "<script>alert(1)</script>",
        "crlf": "Eve\r\nBcc: victim@evil.example\r\nX-Injected: 1",
    }
    for key, name in names.items():
        stack.publish(
            "UserRegistered",
            {
                "user_id": f"inj-{key}",
                "email": f"{key}@example.com",
                "name": name,
                "registered_at": "2026-11-28T12:00:00Z",
            },
            source=SOURCE,
        )

    # When the stack drains
    stack.drain()

    # Then every welcome was sent; each name appears as literal text, never evaluated
    emails = {e.destinations[0]: e for e in sent_emails()}
    assert set(emails) == {"tpl@example.com", "html@example.com", "crlf@example.com"}
    template = emails["tpl@example.com"]
    assert "{{ 7*7 }}" in template.subject
    assert "49" not in template.subject
    assert "{{ 7*7 }}" in template.body("plain")
    assert "__bases__" in template.body("plain")
    assert "<class" not in template.body("plain")
    # And HTML is escaped in the HTML part
    html = emails["html@example.com"].body("html")
    assert "<script>" not in html
    assert "&lt;script&gt;" in html
    # And the CRLF name stayed inside one Subject line: no Bcc or injected header, one recipient
    crlf = emails["crlf@example.com"]
    assert crlf.message["Bcc"] is None
    assert crlf.message["X-Injected"] is None
    assert "\n" not in crlf.subject
    assert "\r" not in crlf.subject
    assert crlf.destinations == ("crlf@example.com",)


def test_oversized_payloads_fail_permanently_with_their_reason(stack):
    # Given an SMS far over the 3-segment limit and a push whose payload exceeds 4 KB
    set_mapping(stack, "DlqAlarmFunction", "NotificationsDLQ", enabled=False)
    app = stack.clients.sns.create_platform_application(
        Name="app", Platform="GCM", Attributes={"PlatformCredential": "x"}
    )["PlatformApplicationArn"]
    endpoint = stack.clients.sns.create_platform_endpoint(
        PlatformApplicationArn=app, Token="device-1"
    )["EndpointArn"]
    long_sms = welcome(1, Channel.SMS).model_copy(
        update={"data": {"name": "x" * 2_000, "user_id": "user-1"}}
    )
    big_push = welcome(2, Channel.SMS).model_copy(
        update={
            "channel": Channel.PUSH,
            "recipient": endpoint,
            "data": {"name": "y" * 5_000, "user_id": "user-2"},
        }
    )
    fine = welcome(3, Channel.SMS)
    enqueue(stack, [long_sms, big_push, fine])

    # When the sender handles them
    stack.drain()

    # Then both oversized ones are in the DLQ after one attempt with their reasons; the good one
    # is sent
    dead = drain_messages(stack, "NotificationsDLQ")
    reasons = sorted(m["MessageAttributes"]["reason"]["StringValue"] for m in dead)
    assert reasons == ["payload_too_large", "sms_too_long"]
    assert all(m["MessageAttributes"]["attempts"]["StringValue"] == "1" for m in dead)
    assert [number for number, _ in sms_messages()] == [fine.recipient]
    assert push_messages() == []


EMAIL = re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}")
PHONE = re.compile(r"\+?\d[\d ()-]{7,}\d")


@pytest.mark.slow
def test_no_secret_email_or_phone_number_in_any_log_line(deploy_stack, caplog):
    # Given a full run: users with email, phone and push; a signed webhook subscriber; a provider
    # failing half the time (retries, dead letters, alerts); an invalid event carrying an address
    stack = deploy_stack(FailureRate=0.5, WebhookAllowLoopback="true")
    caplog.set_level("INFO")  # POWERTOOLS_LOG_LEVEL in the template is INFO
    prefs = DynamoPreferencesStore(stack.physical_id("PreferencesTable"))
    emails = [f"person{n}.secret@example.org" for n in range(8)]
    phones = [f"+1415555{n:04d}" for n in range(8)]
    for n in range(8):
        prefs.put(Preferences(user_id=f"user-{n}", email=emails[n], phone=phones[n]))
    keys = SecretsManagerSigningKeys(
        stack.function("SenderFunction").environment["WEBHOOK_SECRET_PREFIX"]
    )
    with WebhookReceiver().running() as receiver:
        secret = keys.create("erp")
        receiver.secrets["erp"] = secret
        DynamoSubscriptionStore(stack.physical_id("WebhookSubscriptionsTable")).put(
            WebhookSubscription(
                "erp", receiver.url("erp"), ("*",), secret_id=keys.secret_name("erp")
            )
        )
        for n in range(8):
            stack.publish("OrderPlaced", order(n, f"user-{n}"), source=SOURCE)
            stack.publish(
                "PaymentReceived",
                {
                    "payment_id": f"pay-{n}",
                    "order_id": f"order-{n}",
                    "user_id": f"user-{n}",
                    "amount": {"amount": "10.00", "currency": "EUR"},
                    "received_at": "2026-11-28T12:00:00Z",
                },
                source=SOURCE,
            )
        stack.publish(
            "UserRegistered",
            {
                "user_id": "new-1",
                "email": "brand.new@example.org",
                "name": "New",
                "registered_at": "2026-11-28T12:00:00Z",
            },
            source=SOURCE,
        )
        stack.publish(
            "UserRegistered",
            {
                "user_id": "bad",
                "email": "leaky@example.org",
                "registered_at": "not a date",
                "phone": "+14155559999",
            },
            source=SOURCE,
        )
        stack.drain()
        assert receiver.accepted, "the webhook subscriber received nothing"
    statuses = {i["status"] for i in ledger_items(stack).values()}
    assert {"SENT", "DEAD_LETTERED"} <= statuses, statuses  # retries and dead letters happened

    # When every line any function printed, and every record the runtime logged, is collected
    text = "\n".join(r.line for r in stack.logs) + "\n" + caplog.text
    assert len(stack.logs) > 50

    # Then no signing secret appears, in full or as its key material
    assert secret not in text
    assert secret.removeprefix("whsec_") not in text
    # And recipients were logged, masked (so the checks below look at real log traffic)
    assert "***@example.org" in text
    # And no full email address: only masked ones (a***@example.org) and the sender identity
    sender = stack.function("SenderFunction").environment["SENDER_EMAIL"]
    leaked = {m for m in EMAIL.findall(text) if "*" not in m and m != sender}
    assert leaked == set()
    for address in [*emails, "brand.new@example.org", "leaky@example.org"]:
        assert address not in text
    # And no phone number
    for number in [*phones, "+14155559999"]:
        assert number not in text
        assert number.lstrip("+") not in text
    assert [
        p
        for p in PHONE.findall(text)
        if re.sub(r"\D", "", p) in {re.sub(r"\D", "", x) for x in phones}
    ] == []
