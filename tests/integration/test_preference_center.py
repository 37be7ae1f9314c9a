"""The preference center on the local stack: the links real messages carry, the one-click
POST a mailbox provider sends, the page's save, and the refusals. The function runs through
its Lambda contract with function URL events (payload 2.0), as AWS invokes it."""

from __future__ import annotations

import json
from urllib.parse import urlsplit

import boto3

from notifications.adapters.ledger import DynamoLedger
from notifications.adapters.preferences import DynamoPreferencesStore
from notifications.models import Channel
from notifications.preferences import Preferences
from notifyctl.local.function_urls import function_url_event
from tests.observe import sent_emails, sms_messages
from tests.samples import load_event

USER = "user-123"


def seed(stack, **fields):
    store = DynamoPreferencesStore(stack.physical_id("PreferencesTable"))
    store.put(Preferences(user_id=USER, email="alice@example.com", phone="+14155550100", **fields))
    return store


def order(stack, order_id="order-1001"):
    detail = {**load_event("fan_out/order-placed.json")["detail"], "order_id": order_id}
    stack.publish("OrderPlaced", detail, source="com.example.shop")
    stack.drain()


def call(stack, method, url, body="", content_type="application/x-www-form-urlencoded", agent=""):
    """One request to the preference center's function URL, as AWS delivers it."""
    parts = urlsplit(url)
    target = parts.path + (f"?{parts.query}" if parts.query else "")
    headers = {"Content-Type": content_type, "User-Agent": agent} if body else {"User-Agent": agent}
    event = function_url_event(method, target, headers, body.encode(), "198.51.100.7", parts.netloc)
    invocation = stack.function("PreferenceCenterFunction").invoke(event)
    assert invocation.ok, invocation.error
    return invocation.result["statusCode"], invocation.result["body"]


def ledger_changes(stack):
    return [
        r
        for r in DynamoLedger(stack.physical_id("LedgerTable")).scan()
        if r.get("kind") == "preference_change"
    ]


def test_messages_carry_signed_links_and_a_mailbox_providers_one_click_post_unsubscribes(stack):
    # Given Alice with email and SMS, When she orders
    store = seed(stack)
    order(stack)

    # Then the order email carries a one-click List-Unsubscribe to the preference center
    (mail,) = sent_emails()
    base = stack.outputs["PreferenceCenterUrl"]
    unsubscribe = mail.message["List-Unsubscribe"].strip("<>")
    assert unsubscribe.startswith(base + "unsubscribe?t=")
    assert mail.message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    # And a "manage preferences" link at the end of both bodies
    text, html = mail.body("plain"), mail.body("html")
    assert f"Manage your notification preferences: {base}preferences?t=" in text
    assert f'<a href="{base}preferences?t=' in html
    # And the order SMS ends with a short manage link
    ((number, sms),) = sms_messages()
    assert number == "+14155550100"
    assert f"\nSettings: {base}preferences?t=" in sms

    # When Gmail POSTs the one-click unsubscribe (RFC 8058: the header's URL, form body)
    status, body = call(
        stack, "POST", unsubscribe, "List-Unsubscribe=One-Click", agent="Google-Unsubscribe"
    )

    # Then it answers 200, order email is off and nothing else is
    assert status == 200
    assert "no longer get emails" in body
    saved = store.get(USER)
    assert saved.opted_out_pairs == frozenset({"order:email"})
    assert saved.last_change is not None
    assert saved.last_change.via == "one_click"
    # And the ledger's audit records who, when and how
    (change,) = ledger_changes(stack)
    assert change["user_id"] == USER
    assert change["status"] == "PREFERENCE_CHANGE"
    assert change["changes"] == {"opted_out": ["order:email"]}
    (audit,) = change["audit"]
    assert audit["action"] == "one_click_unsubscribe"
    assert audit["via"] == "list_unsubscribe_post"
    assert audit["by"] == f"user:{USER}"
    assert audit["user_agent"] == "Google-Unsubscribe"
    assert audit["at"] == change["created_at"]

    # When the provider retries the same POST: 200 again, nothing new recorded
    assert call(stack, "POST", unsubscribe, "List-Unsubscribe=One-Click")[0] == 200
    assert len(ledger_changes(stack)) == 1

    # When she orders again, Then the email is SUPPRESSED for that reason, the SMS still goes
    order(stack, "order-1002")
    suppressed = [
        r
        for r in DynamoLedger(stack.physical_id("LedgerTable")).scan()
        if r.get("status") == "SUPPRESSED"
    ]
    assert [(r["channel"], r["suppressed_reason"]) for r in suppressed] == [
        ("email", "opted_out_category_channel:order:email")
    ]
    assert len(sent_emails()) == 1
    assert len(sms_messages()) == 2

    # And no log line of any function holds a token
    tokens = {unsubscribe.split("t=")[1], text.split("preferences?t=")[1].split()[0]}
    assert not [line for line in stack.logs for token in tokens if token in line.line]
    assert any("preference center request" in record.line for record in stack.logs)


def test_critical_emails_have_no_one_click_and_their_sms_no_link(stack):
    # Given Alice, When she pays (payments are critical)
    seed(stack)
    payment = load_event("fan_out/payment-received.json")["detail"]
    stack.publish("PaymentReceived", payment, source="com.example.shop")
    stack.drain()
    # Then the receipt has a manage link but no List-Unsubscribe (it cannot be turned off)
    (mail,) = sent_emails()
    assert mail.message["List-Unsubscribe"] is None
    assert mail.message["List-Unsubscribe-Post"] is None
    assert "preferences?t=" in mail.body("plain")
    # And its SMS carries no link (the category does not allow one)
    ((_, sms),) = sms_messages()
    assert "http" not in sms

    # And the sample one-click POST (events/, a token signed with no key of this stack) is
    # refused with the error page, changing nothing
    sample = stack.function("PreferenceCenterFunction").invoke(
        load_event("preference_center/one-click-post.json")
    )
    assert sample.result["statusCode"] == 403
    assert sample.result["headers"]["Content-Type"] == "text/html; charset=utf-8"
    assert 'data-reason="bad_signature"' in sample.result["body"]
    assert ledger_changes(stack) == []


def test_forged_expired_and_retired_key_links_are_refused(stack, clock):
    seed(stack)
    order(stack)
    (mail,) = sent_emails()
    manage = mail.body("plain").split("preferences: ")[1].split()[0]
    assert call(stack, "GET", manage)[0] == 200

    # A forged token (the user id swapped in the payload) and a bare user id are refused
    base = stack.outputs["PreferenceCenterUrl"]
    status, body = call(stack, "GET", f"{base}preferences?t=dXNlci05OTk.AAAAAAAAAAAAAAAAAAAAAA")
    assert status == 403
    assert 'data-reason="bad_signature"' in body
    assert call(stack, "GET", f"{base}preferences?user_id={USER}")[0] == 400

    # A key rotation: old links keep working during the grace period...
    secret_arn = stack.outputs["PreferenceLinkSecretArn"]
    from notifications.preference_links import SecretsManagerLinkKeys

    keys = SecretsManagerLinkKeys(secret_arn, cache_seconds=0)
    keys.rotate()
    clock.advance(301)  # the function's key cache (5 minutes) expires
    assert call(stack, "GET", manage)[0] == 200
    # ...and not after the previous key is retired
    keys.retire_previous()
    clock.advance(301)
    status, body = call(stack, "GET", manage)
    assert status == 403
    assert 'data-reason="bad_signature"' in body
    stored = json.loads(
        boto3.client("secretsmanager").get_secret_value(SecretId=secret_arn)["SecretString"]
    )
    assert set(stored) == {"current"}

    # A link older than 60 days has expired (signed now with the current key)
    order(stack, "order-1002")
    fresh = sent_emails()[-1].body("plain").split("preferences: ")[1].split()[0]
    clock.advance(60 * 24 * 3600 + 1)
    status, body = call(stack, "GET", fresh)
    assert status == 410
    assert 'data-reason="expired"' in body
    assert (
        DynamoPreferencesStore(stack.physical_id("PreferencesTable"))
        .get(USER)
        .opt_out_reason(Channel.EMAIL, "order")
        is None
    )
    assert ledger_changes(stack) == []


# ---------------------------------------------------------------- template and CLI


def test_the_template_gives_the_function_a_public_url_least_privilege_logs_and_an_alarm():
    from notifyctl.local.translate import load_template, translate
    from tests.conftest import TEMPLATE

    resources = translate(load_template(TEMPLATE), {})["Resources"]
    function = resources["PreferenceCenterFunction"]["Properties"]
    # A function URL whose only credential is the signed token
    (url,) = [r for r in resources.values() if r["Type"] == "AWS::Lambda::Url"]
    assert url["Properties"]["AuthType"] == "NONE"
    assert url["Properties"]["TargetFunctionArn"] == {"Ref": "PreferenceCenterFunction"}
    # Its own log group, with the stack's retention
    assert function["LoggingConfig"] == {"LogGroup": {"Ref": "PreferenceCenterLogGroup"}}
    assert resources["PreferenceCenterLogGroup"]["Properties"]["RetentionInDays"] == {
        "Ref": "LogRetentionDays"
    }
    # Exactly these grants: two item actions on preferences, one put on the ledger, one secret
    role = resources["PreferenceCenterFunctionRole"]["Properties"]
    statements = [s for p in role["Policies"] for s in p["PolicyDocument"]["Statement"]]
    grants = {
        (action, json.dumps(statement["Resource"], sort_keys=True))
        for statement in statements
        for action in (
            [statement["Action"]] if isinstance(statement["Action"], str) else statement["Action"]
        )
    }
    preferences = json.dumps({"Fn::GetAtt": ["PreferencesTable", "Arn"]})
    assert grants == {
        ("dynamodb:GetItem", preferences),
        ("dynamodb:UpdateItem", preferences),
        ("dynamodb:PutItem", json.dumps({"Fn::GetAtt": ["LedgerTable", "Arn"]})),
        ("secretsmanager:GetSecretValue", json.dumps({"Ref": "PreferenceLinkSecret"})),
    }
    # The secret is never in an environment variable: only its ARN
    variables = function["Environment"]["Variables"]
    assert variables["PREFERENCE_LINK_SECRET_ARN"] == {"Ref": "PreferenceLinkSecret"}
    sender = resources["SenderFunction"]["Properties"]["Environment"]["Variables"]
    assert sender["PREFERENCE_CENTER_URL"] == {
        "Fn::GetAtt": ["PreferenceCenterFunctionUrl", "FunctionUrl"]
    }
    # An errors alarm to the admins, and a dashboard widget
    alarm = resources["PreferenceCenterErrorsAlarm"]["Properties"]
    assert alarm["MetricName"] == "Errors"
    assert alarm["Dimensions"] == [
        {"Name": "FunctionName", "Value": {"Ref": "PreferenceCenterFunction"}}
    ]
    assert alarm["AlarmActions"] == [{"Ref": "AlertsTopic"}]
    body = resources["NotificationsDashboard"]["Properties"]["DashboardBody"]["Fn::Sub"][0]
    assert '"Preference center requests and errors"' in body
    assert '"Errors", "FunctionName", "${PreferenceCenterFunction}"' in body


def test_notifyctl_prints_a_fresh_link_that_opens_the_page_and_refuses_bad_values(stack):
    from typer.testing import CliRunner

    from notifyctl.cli import app

    def notifyctl(*args):
        return CliRunner().invoke(app, ["--stack-name", "notifications-local", *args])

    # When an operator asks for Alice's link
    result = notifyctl("preferences", "link", USER, "--category", "order")
    # Then one line: the stack's function URL with a token the function accepts
    assert result.exit_code == 0, result.output
    link = result.output.strip()
    assert "\n" not in link
    assert link.startswith(stack.outputs["PreferenceCenterUrl"] + "preferences?t=")
    status, body = call(stack, "GET", link)
    assert status == 200
    assert 'class="current"' in body.split('id="category-order"')[1][:40]
    one_click = notifyctl("preferences", "link", USER, "--unsubscribe").output.strip()
    assert "/unsubscribe?t=" in one_click
    # And a bad category or a critical one-click is one line naming it, exit 2, no traceback
    for args, named in (
        (["--category", "newsletter"], "'newsletter'"),
        (["--category", "payment", "--unsubscribe"], "'payment'"),
    ):
        result = notifyctl("preferences", "link", USER, *args)
        assert result.exit_code == 2
        assert named in result.output
        assert "Traceback" not in result.output
        assert len(result.output.strip().splitlines()) == 1


def test_a_preferences_write_conditioned_on_a_stale_document_is_refused(moto_account):
    # Given the preferences table and Alice's stored preferences
    dynamodb = boto3.client("dynamodb")
    dynamodb.create_table(
        TableName="prefs",
        KeySchema=[{"AttributeName": "user_id", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "user_id", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    store = DynamoPreferencesStore("prefs")
    first = Preferences(user_id=USER, email="alice@example.com")
    assert store.replace(first, None)
    assert not store.replace(first, None)  # "no item yet" no longer holds
    _, document = store.get_versioned(USER)
    # When two writers read the same version and both write
    mine = first.model_copy(update={"locale": "de"})
    theirs = first.model_copy(update={"locale": "fr"})
    assert store.replace(mine, document)
    # Then the second one is refused and the first one's change stays
    assert not store.replace(theirs, document)
    assert store.get(USER).locale == "de"
