"""The preference center's requests and answers, over in-memory preferences and audit log."""

import re
from datetime import time
from html.parser import HTMLParser

from notifications.models import Channel, QuietHours
from notifications.preference_center import (
    HttpRequest,
    PreferenceCenter,
    request_from_function_url,
)
from notifications.preference_links import LinkClaims, Purpose, sign_token
from notifications.preferences import Preferences

KEY = b"k" * 64
NOW = 1_800_000_000.0


class MemoryPreferences:
    def __init__(self, *initial: Preferences) -> None:
        self.documents = {p.user_id: p.model_dump_json() for p in initial}
        self.writes = 0
        self.conflicts_left = 0

    def get_versioned(self, user_id):
        document = self.documents.get(user_id)
        if document is None:
            return None, None
        return Preferences.model_validate_json(document), document

    def replace(self, preferences, expected_document):
        if self.conflicts_left:
            self.conflicts_left -= 1
            return False
        if self.documents.get(preferences.user_id) != expected_document:
            return False
        self.documents[preferences.user_id] = preferences.model_dump_json()
        self.writes += 1
        return True

    def get(self, user_id):
        return self.get_versioned(user_id)[0]


class MemoryAudit:
    def __init__(self) -> None:
        self.entries = []

    def record(self, entry):
        self.entries.append(entry)
        return True


class Keys:
    def keys(self):
        return [KEY]


def center(*initial):
    store, audit = MemoryPreferences(*initial), MemoryAudit()
    return PreferenceCenter(store, audit, Keys(), clock=lambda: NOW), store, audit


def token(purpose=Purpose.MANAGE, user="user-123", category="order", expires=NOW + 600):
    return sign_token(LinkClaims(user, category, int(expires), purpose), KEY)


ALICE = Preferences(
    user_id="user-123",
    email="alice@example.com",
    phone="+14155550100",
    locale="de-CH",
    opted_out_channels=frozenset({Channel.PUSH}),
)


class Inputs(HTMLParser):
    """Every <input> of a page, by id: its attributes."""

    def __init__(self, html: str) -> None:
        super().__init__()
        self.inputs: dict[str, dict[str, str | None]] = {}
        self.labels: dict[str, str] = {}
        self.feed(html)

    def handle_starttag(self, tag, attrs):
        attributes = dict(attrs)
        if tag == "input" and attributes.get("id"):
            self.inputs[attributes["id"]] = attributes
        if tag == "label" and attributes.get("for"):
            self.labels[attributes["for"]] = ""


def test_the_page_shows_the_users_grid_in_her_language_with_critical_categories_locked():
    # Given Alice (de-CH, push off everywhere)
    app, _, _ = center(ALICE)
    # When she opens her manage link
    response, outcome = app.handle(HttpRequest("GET", "/preferences", query={"t": token()}))
    # Then the page is German (de-CH falls back to de), mobile-ready, labelled
    assert response.status == 200
    assert '<html lang="de">' in response.body
    assert 'name="viewport"' in response.body
    assert "Benachrichtigungseinstellungen" in response.body
    page = Inputs(response.body)
    # Every checkbox has a label, grouped per category in a fieldset with a legend
    boxes = {i: a for i, a in page.inputs.items() if a.get("type") == "checkbox"}
    assert set(boxes) == {
        "on-account-email",
        "on-order-email",
        "on-order-sms",
        "on-order-push",
        "on-payment-email",
        "on-payment-sms",
        "on-payment-push",
    }
    assert set(page.labels) >= set(boxes)
    assert response.body.count("<fieldset") == 4
    assert response.body.count("<legend>") == 4
    # Current state: push off (she opted out of the channel), the rest on
    assert "checked" not in boxes["on-order-push"]
    assert "checked" in boxes["on-order-email"]
    assert "checked" in boxes["on-order-sms"]
    # Payments are critical: shown on and disabled
    for box in ("on-payment-email", "on-payment-sms", "on-payment-push"):
        assert "disabled" in boxes[box]
        assert "checked" in boxes[box]
    assert "disabled" not in boxes["on-order-email"]
    # The signed token travels in a hidden field (the form's CSRF guard), no JavaScript
    assert page.inputs.get("timezone", {}).get("value") == "UTC"
    assert f'name="t" value="{token()}"' in response.body
    assert "<script" not in response.body
    assert outcome.user_id == "user-123"


def save(app, *on, **fields):
    form = {
        "t": [fields.pop("t", token())],
        "on": list(on),
        "action": [fields.pop("action", "save")],
    }
    form.update({k: [v] for k, v in fields.items()})
    return app.handle(HttpRequest("POST", "/preferences", form=form))[0]


def test_saving_the_grid_and_quiet_hours_writes_them_and_confirms():
    app, store, audit = center(ALICE)
    # When Alice keeps order email, turns order SMS off and push back on, sets quiet hours
    response = save(
        app,
        "order:email",
        "order:push",
        "account:email",
        quiet_start="22:00",
        quiet_end="07:30",
        timezone="Europe/Zurich",
    )
    # Then the confirmation shows, and her preferences say exactly that
    assert response.status == 200
    assert "Ihre Einstellungen sind gespeichert." in response.body
    saved = store.get("user-123")
    assert saved.opted_out_pairs == frozenset({"order:sms"})
    assert saved.opted_out_channels == frozenset()  # push is on again for order
    assert saved.quiet_hours == QuietHours(
        start=time(22, 0), end=time(7, 30), timezone="Europe/Zurich"
    )
    assert saved.opt_out_reason(Channel.SMS, "order") == "opted_out_category_channel:order:sms"
    assert saved.opt_out_reason(Channel.EMAIL, "order") is None
    assert saved.last_change.via == "page_save"
    assert saved.last_change.by == "user"
    # And the audit entry says who, how and what
    (entry,) = audit.entries
    assert (entry.user_id, entry.action, entry.via) == ("user-123", "page_save", "preference_page")
    assert entry.changes == {
        "opted_out": ["order:sms"],
        "quiet_hours": ["22:00-07:30 Europe/Zurich"],
    }
    # And the page shows the new state
    boxes = Inputs(response.body).inputs
    assert "checked" not in boxes["on-order-sms"]
    assert "checked" in boxes["on-order-push"]
    assert boxes["quiet_start"]["value"] == "22:00"


def test_a_crafted_post_cannot_turn_a_critical_category_off():
    app, store, _ = center(ALICE)
    # When the form leaves out every payment box (as a crafted request would)
    save(app, "order:email", "order:sms", "order:push", "account:email")
    # Then payments still reach every channel she has
    saved = store.get("user-123")
    assert all(saved.opt_out_reason(c, "payment") is None for c in (Channel.EMAIL, Channel.SMS))
    assert not any(p.startswith("payment:") for p in saved.opted_out_pairs)


def test_unsubscribe_from_all_non_critical_turns_off_every_other_pair():
    app, store, audit = center(ALICE)
    response = save(app, action="unsubscribe_all")
    assert response.status == 200
    assert "alle nicht wichtigen Benachrichtigungen abbestellt" in response.body
    saved = store.get("user-123")
    assert saved.opted_out_pairs == frozenset(
        {"account:email", "order:email", "order:sms", "order:push"}
    )
    assert saved.opt_out_reason(Channel.EMAIL, "payment") is None
    assert audit.entries[0].action == "page_unsubscribe_all"


def test_bad_form_values_answer_400_naming_them_and_write_nothing():
    app, store, audit = center(ALICE)
    for fields, named in (
        ({"quiet_start": "22:00", "quiet_end": "", "timezone": "UTC"}, "both a start and an end"),
        ({"quiet_start": "25:00", "quiet_end": "07:00", "timezone": "UTC"}, "25:00"),
        (
            {"quiet_start": "22:00", "quiet_end": "07:00", "timezone": "Mars/Olympus"},
            "Mars/Olympus",
        ),
        ({"action": "delete_everything"}, "delete_everything"),
    ):
        response = save(app, "order:email", **fields)
        assert response.status == 400, fields
        assert named in response.body, (fields, response.body)
    response = save(app, "order:fax")
    assert response.status == 400
    assert "order:fax" in response.body
    assert store.writes == 0
    assert audit.entries == []


def test_missing_forged_expired_and_misused_tokens_get_a_4xx_page_and_change_nothing():
    app, store, audit = center(ALICE)
    forged = sign_token(LinkClaims("user-123", "order", int(NOW) + 600, Purpose.MANAGE), b"x" * 64)
    cases = {
        None: (400, "missing"),
        "garbage": (400, "malformed"),
        forged: (403, "bad_signature"),
        token(expires=NOW - 1): (410, "expired"),
        token(Purpose.UNSUBSCRIBE): (403, "wrong_purpose"),
    }
    for value, (status, reason) in cases.items():
        form = {"on": ["order:email"], "action": ["unsubscribe_all"]}
        if value is not None:
            form["t"] = [value]
        response, outcome = app.handle(HttpRequest("POST", "/preferences", form=form))
        assert (response.status, outcome.reason) == (status, reason)
        assert f'data-reason="{reason}"' in response.body
        assert 'role="alert"' in response.body
    # A manage token cannot one-click unsubscribe either
    response, _ = app.handle(
        HttpRequest("POST", "/unsubscribe", query={"t": token()}, body="List-Unsubscribe=One-Click",
                    form={"List-Unsubscribe": ["One-Click"]})
    )  # fmt: skip
    assert response.status == 403
    assert store.writes == 0
    assert audit.entries == []


def one_click(app, value, content_type="application/x-www-form-urlencoded", body=None):
    event = {
        "version": "2.0",
        "rawPath": "/unsubscribe",
        "rawQueryString": f"t={value}",
        "queryStringParameters": {"t": value},
        "headers": {"content-type": content_type, "user-agent": "Mozilla/5.0 (Google-Unsubscribe)"},
        "requestContext": {"http": {"method": "POST", "path": "/unsubscribe"}},
        "body": body if body is not None else "List-Unsubscribe=One-Click",
        "isBase64Encoded": False,
    }
    return app.handle(request_from_function_url(event))[0]


def test_one_click_opts_the_category_email_out_and_a_replay_is_a_quiet_200():
    app, store, audit = center(ALICE)
    unsubscribe = token(Purpose.UNSUBSCRIBE)
    # When a mailbox provider POSTs List-Unsubscribe=One-Click (RFC 8058)
    first = one_click(app, unsubscribe)
    # Then 200, order email is off, order SMS and other categories untouched
    assert first.status == 200
    saved = store.get("user-123")
    assert saved.opted_out_pairs == frozenset({"order:email"})
    assert saved.opt_out_reason(Channel.SMS, "order") is None
    assert saved.last_change.via == "one_click"
    (entry,) = audit.entries
    assert (entry.action, entry.via, entry.category) == (
        "one_click_unsubscribe",
        "list_unsubscribe_post",
        "order",
    )
    assert entry.user_agent == "Mozilla/5.0 (Google-Unsubscribe)"
    # When it is POSTed again (a retry, a replay): 200, nothing written, nothing recorded
    again = one_click(app, unsubscribe)
    assert again.status == 200
    assert store.writes == 1
    assert len(audit.entries) == 1


def test_one_click_accepts_rfc_8058s_multipart_form_and_refuses_other_bodies():
    app, store, _ = center(ALICE)
    boundary = "XXXXboundary"
    multipart = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="List-Unsubscribe"\r\n\r\n'
        f"One-Click\r\n--{boundary}--\r\n"
    )
    response = one_click(
        app, token(Purpose.UNSUBSCRIBE), f"multipart/form-data; boundary={boundary}", multipart
    )
    assert response.status == 200
    assert store.get("user-123").opted_out_pairs == frozenset({"order:email"})
    wrong = one_click(app, token(Purpose.UNSUBSCRIBE, category="account"), body="Unsubscribe=Yes")
    assert wrong.status == 400
    assert store.get("user-123").opted_out_pairs == frozenset({"order:email"})


def test_an_unsubscribe_link_opened_in_a_browser_asks_first_and_critical_ones_are_refused():
    app, store, _ = center(ALICE)
    # A GET (a click, or a mail scanner following the link) changes nothing
    response, _ = app.handle(
        HttpRequest("GET", "/unsubscribe", query={"t": token(Purpose.UNSUBSCRIBE)})
    )
    assert response.status == 200
    assert re.search(r'<form method="post" action="/unsubscribe">', response.body)
    assert 'name="List-Unsubscribe" value="One-Click"' in response.body
    assert store.writes == 0
    # A payment (critical) unsubscribe token is refused
    critical = token(Purpose.UNSUBSCRIBE, category="payment")
    assert one_click(app, critical).status == 409
    assert store.writes == 0


def test_unknown_paths_and_methods_are_4xx():
    app, _, _ = center(ALICE)
    assert app.handle(HttpRequest("GET", "/admin", query={"t": token()}))[0].status == 404
    response = app.handle(HttpRequest("DELETE", "/preferences", query={"t": token()}))[0]
    assert response.status == 405
    assert response.headers["Allow"] == "GET, POST"


def test_a_concurrent_write_is_retried_on_fresh_preferences():
    app, store, _ = center(ALICE)
    store.conflicts_left = 1
    response = save(app, "order:email")
    assert response.status == 200
    assert store.writes == 1
    store.conflicts_left = 3
    assert save(app, "order:email").status == 409


def test_a_user_without_preferences_gets_the_default_page_in_english():
    app, store, _ = center()
    response, _ = app.handle(HttpRequest("GET", "/preferences", query={"t": token(user="u-new")}))
    assert response.status == 200
    assert '<html lang="en">' in response.body
    assert store.writes == 0
