from datetime import UTC, datetime

import pytest

from notifications.errors import PermanentError
from notifications.models import Channel, NotificationRequested, notification_id
from notifications.templates import TemplateRenderer, locale_chain

NOW = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)


def request(channel=Channel.EMAIL, template="welcome", locale="en", **data):
    recipient = "alice@example.com"
    return NotificationRequested(
        notification_id=notification_id("evt-1", channel, recipient, template),
        channel=channel,
        recipient=recipient,
        template_id=template,
        locale=locale,
        category="account",
        data=data,
        user_id="user-123",
        event_id="evt-1",
        event_type="UserRegistered",
        correlation_id="evt-1",
        occurred_at=NOW,
        requested_at=NOW,
    )


def test_the_original_spec_examples_are_real_templates():
    renderer = TemplateRenderer(platform="MyApp")
    welcome = renderer.render(request(Channel.SMS, name="Alice", user_id="user-123"))
    assert welcome.text == "Hello Alice, welcome to MyApp!"
    order = renderer.render(
        request(
            Channel.EMAIL,
            "order_confirm",
            order_id="1001",
            total={"amount": "42.50", "currency": "EUR"},
            item_count=2,
        )
    )
    assert order.subject == "Order #1001 confirmed"


def test_email_has_subject_text_and_html():
    message = TemplateRenderer().render(request(name="Alice", user_id="user-123"))
    assert message.subject == "Welcome to MyApp, Alice!"
    assert "Hello Alice" in message.text
    assert message.html is not None
    assert "<p>Hello Alice" in message.html


def test_locale_falls_back_from_region_to_language_to_english():
    assert list(locale_chain("de-CH")) == ["de-CH", "de", "en"]
    message = TemplateRenderer().render(request(locale="de-CH", name="Jörg", user_id="u"))
    assert message.subject == "Willkommen bei MyApp, Jörg!"
    assert TemplateRenderer().render(request(locale="fr", name="Zoé", user_id="u")).subject == (
        "Welcome to MyApp, Zoé!"
    )


def test_hostile_names_render_as_text_never_as_code():
    name = "{{ 7*7 }} <script>alert(1)</script>"
    message = TemplateRenderer().render(request(name=name, user_id="u"))
    assert "{{ 7*7 }}" in message.text
    assert "49" not in message.text
    assert message.html is not None
    assert "<script>" not in message.html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in message.html


def test_a_missing_variable_is_permanent_and_names_variable_and_template():
    with pytest.raises(PermanentError) as caught:
        TemplateRenderer().render(request(user_id="u"))  # no name
    assert caught.value.reason == "template_missing_variable"
    assert "'name'" in caught.value.message
    assert "welcome/en/" in caught.value.message


def test_an_unknown_template_is_permanent():
    with pytest.raises(PermanentError) as caught:
        TemplateRenderer().render(request(template="no_such_template", name="A"))
    assert caught.value.reason == "template_missing"


def test_webhook_payload_carries_the_event_data():
    message = TemplateRenderer().render(request(Channel.WEBHOOK, name="Alice"))
    assert message.payload["type"] == "UserRegistered"
    assert message.payload["data"] == {"name": "Alice"}


def test_one_renderer_keeps_each_template_s_own_parts_and_locales(tmp_path):
    """The renderer remembers which template files exist (docs/performance.md section 2): per
    template, locale and part, so what one template has never leaks into another's message."""
    for template, locale, files in (
        ("plain", "en", {"email_subject.txt": "Plain {{ n }}", "email_text.txt": "text"}),
        (
            "rich",
            "en",
            {
                "email_subject.txt": "Rich",
                "email_text.txt": "t",
                "email_html.html": "<b>{{ n }}</b>",
            },
        ),
        ("rich", "de", {"email_subject.txt": "Reich", "email_text.txt": "t"}),
    ):
        folder = tmp_path / template / locale
        folder.mkdir(parents=True)
        for name, text in files.items():
            (folder / name).write_text(text)
    renderer = TemplateRenderer(root=tmp_path)

    first = renderer.render(request(template="plain", n="1"))
    rich = renderer.render(request(template="rich", n="<2>"))
    german = renderer.render(request(template="rich", locale="de", n="3"))
    plain_de = renderer.render(request(template="plain", locale="de", n="4"))
    again = renderer.render(request(template="plain", n="5"))

    assert (first.subject, first.html) == ("Plain 1", None)
    assert (rich.subject, rich.html) == ("Rich", "<b>&lt;2&gt;</b>")
    assert (german.subject, german.html) == ("Reich", None)  # de has no HTML part
    assert (plain_de.subject, plain_de.html) == ("Plain 4", None)  # falls back to en
    assert (again.subject, again.html) == ("Plain 5", None)
