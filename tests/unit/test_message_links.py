"""The preference-center links the email and SMS providers add (no network: messages are built,
not sent)."""

import email
from email.policy import default

from notifications.channels.base import RenderedMessage
from notifications.channels.email import SesEmailProvider
from notifications.channels.sms import SnsSmsProvider
from notifications.models import Channel
from notifications.preference_links import PreferenceLinks, Purpose, verify_token
from tests.samples import welcome

KEY = b"k" * 64
NOW = 1_800_000_000
BASE = "https://abc123.lambda-url.us-east-1.on.aws/"


class Keys:
    def keys(self):
        return [KEY]


LINKS = PreferenceLinks(BASE, Keys(), clock=lambda: NOW)
MESSAGE = RenderedMessage(
    subject="Your order",
    text="Thanks for your order.",
    html="<html><body><p>Thanks for your order.</p></body></html>",
)


def build(request, **options):
    raw = SesEmailProvider("shop@example.com", links=LINKS, **options).build_message(
        request, MESSAGE
    )
    return email.message_from_bytes(raw, policy=default)


def body(mime, kind):
    return mime.get_body((kind,)).get_content().replace("\r\n", "\n")


def test_an_email_carries_a_signed_one_click_header_and_a_manage_link_in_both_bodies():
    request = welcome(7).model_copy(update={"category": "order"})
    mime = build(request)
    unsubscribe = mime["List-Unsubscribe"]
    assert unsubscribe.startswith(f"<{BASE}unsubscribe?t=")
    assert mime["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    claims = verify_token(unsubscribe.strip("<>").split("t=")[1], [KEY], NOW)
    assert (claims.user_id, claims.category, claims.purpose) == (
        "user-7",
        "order",
        Purpose.UNSUBSCRIBE,
    )
    text = body(mime, "plain")
    assert text.startswith("Thanks for your order.\n\n--\nManage your notification preferences: ")
    manage = text.rsplit(": ", 1)[1].strip()
    assert verify_token(manage.split("t=")[1], [KEY], NOW).purpose is Purpose.MANAGE
    html = body(mime, "html")
    # The link goes inside the body, before </body>
    assert html.index('<a href="' + BASE + "preferences?t=") < html.index("</body>")


def test_the_manage_link_speaks_the_users_language():
    request = welcome(7).model_copy(update={"locale": "de-AT"})
    assert "Benachrichtigungseinstellungen verwalten: " in body(build(request), "plain")


def test_critical_emails_get_no_one_click_and_a_teams_own_url_takes_precedence():
    critical = welcome(7).model_copy(update={"critical": True, "category": "payment"})
    mime = build(critical)
    assert mime["List-Unsubscribe"] is None
    assert mime["List-Unsubscribe-Post"] is None
    assert "preferences?t=" in body(mime, "plain")
    own = build(welcome(7), unsubscribe_url="https://shop.example/u/{user_id}")
    assert own["List-Unsubscribe"] == "<https://shop.example/u/user-7>"
    assert own["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert "preferences?t=" in body(own, "plain")


def test_an_sms_gets_a_manage_link_only_for_allowed_categories_and_only_when_it_fits():
    sms = SnsSmsProvider(max_segments=1, links=LINKS, manage_link_categories=frozenset({"order"}))
    order = welcome(7, Channel.SMS).model_copy(update={"category": "order"})
    linked = sms.with_manage_link(order, "Order 1001 confirmed.")
    assert linked.startswith("Order 1001 confirmed.\nSettings: " + BASE + "preferences?t=")
    assert len(linked) <= 160
    # Another category: no link
    assert sms.with_manage_link(welcome(7, Channel.SMS), "Welcome!") == "Welcome!"
    # A text the link would push over the segment limit goes alone
    long_text = "x" * 120
    assert sms.with_manage_link(order, long_text) == long_text
