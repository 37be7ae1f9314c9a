"""The raw MIME message the SES provider writes: what a mail client parses back from it.

Every message is read back with the stdlib parser (``policy.default``), as a receiving mail
client would, and compared with what was meant to be sent and with what the previous builder
(the stdlib ``EmailMessage`` with ``policy.SMTP``, kept below as ``legacy_build``) produced.
"""

from __future__ import annotations

import email
import random
import re
from email.message import EmailMessage
from email.policy import SMTP, default
from email.utils import formataddr
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from notifications.channels.base import RenderedMessage
from notifications.channels.email import SesEmailProvider, header_safe, unstructured_header
from notifications.errors import PermanentError
from notifications.models import AttachmentRef, NotificationRequested
from tests.properties import examples
from tests.unit.test_channel_email import FakeSes, make_request

SENDER = "Shop <noreply@shop.example>"
UNSUBSCRIBE = "https://shop.example/unsubscribe?u={user_id}&n={notification_id}&c={category}"
MESSAGE = RenderedMessage(
    subject="Welcome to Shop, Alice!",
    text="Hello Alice, welcome to Shop!\n\nYour account user-123 is ready.\n",
    html="<p>Hello Alice, welcome to Shop!</p>\n<p>Your account is ready.</p>\n",
)


class Store:
    """Attachment bytes by key; records the bound each fetch was given."""

    def __init__(self, contents: dict[str, bytes]) -> None:
        self.contents = contents
        self.bounds: list[int] = []

    def fetch(self, ref: AttachmentRef, max_bytes: int) -> bytes:
        self.bounds.append(max_bytes)
        data = self.contents[ref.key]
        if len(data) > max_bytes:
            raise PermanentError("message_too_large", "too big")
        return data


def attachment(key: str, filename: str, content_type: str = "application/pdf") -> AttachmentRef:
    return AttachmentRef(bucket="b", key=key, filename=filename, content_type=content_type)


def provider(sender: str = SENDER, **options: Any) -> SesEmailProvider:
    return SesEmailProvider(sender, client_factory=lambda: FakeSes(), **options)  # type: ignore[arg-type,return-value]


def parse(raw: bytes) -> EmailMessage:
    parsed = email.message_from_bytes(raw, policy=default)
    assert isinstance(parsed, EmailMessage)
    return parsed


def body(mime: EmailMessage, kind: str) -> str:
    part = mime.get_body((kind,))
    assert part is not None
    content = part.get_content()
    assert isinstance(content, str)
    return content.replace("\r\n", "\n")  # the parser keeps the wire's CRLF


def shape(mime: EmailMessage) -> list[str]:
    return [part.get_content_type() for part in mime.walk()]


def legacy_build(
    sender: SesEmailProvider, request: NotificationRequested, message: RenderedMessage
) -> bytes:
    """The previous ``build_message`` (stdlib EmailMessage, SMTP policy), as the oracle."""
    mime = EmailMessage(policy=SMTP)
    mime["Subject"] = header_safe(message.subject or "")
    mime["From"] = sender.sender
    mime["To"] = formataddr(("", request.recipient))
    mime["X-Notification-Id"] = request.notification_id
    unsubscribe = ", ".join(sender._list_unsubscribe(request))
    if unsubscribe:
        mime["List-Unsubscribe"] = unsubscribe
        if sender.unsubscribe_url:
            mime["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
    mime.set_content(message.text or "", subtype="plain", charset="utf-8")
    if message.html:
        mime.add_alternative(message.html, subtype="html", charset="utf-8")
    for ref in request.attachments:
        assert sender.attachments is not None
        data = sender.attachments.fetch(ref, sender.max_message_bytes)
        maintype, _, subtype = ref.content_type.partition("/")
        if not maintype or not subtype:
            maintype, subtype = "application", "octet-stream"
        filename = header_safe(ref.filename, 255).replace("/", "_").replace("\\", "_")
        mime.add_attachment(data, maintype=maintype, subtype=subtype, filename=filename)
    return mime.as_bytes()


def meaning(mime: EmailMessage) -> dict[str, Any]:
    """What a mail client shows: decoded headers, the part tree, each part's content."""
    headers = ("Subject", "From", "To", "X-Notification-Id", "List-Unsubscribe-Post")
    return {
        "headers": {name: str(mime[name]) for name in headers},
        "unsubscribe": re.sub(r"\s+", "", str(mime["List-Unsubscribe"])),
        "shape": shape(mime),
        "contents": [
            (part.get_content_type(), part.get_filename(), part.get_content())
            for part in mime.walk()
            if not part.is_multipart()
        ],
    }


def test_text_html_attachments_and_unsubscribe_read_back_as_sent() -> None:
    # Given a provider with attachments and both unsubscribe targets
    store = Store({"pdf": b"%PDF-1.7 \x00\xff invoice", "csv": b"a,b\r\n1,2\r\n"})
    sender = provider(
        attachments=store, unsubscribe_url=UNSUBSCRIBE, unsubscribe_mailto="unsub@shop.example"
    )
    request = make_request(
        attachments=(attachment("pdf", "invoice.pdf"), attachment("csv", "data.csv", "text/csv"))
    )

    # When it builds the message
    raw = sender.build_message(request, MESSAGE)

    # Then a mail client reads back every part of it
    mime = parse(raw)
    assert shape(mime) == [
        "multipart/mixed",
        "multipart/alternative",
        "text/plain",
        "text/html",
        "application/pdf",
        "text/csv",
    ]
    assert mime["Subject"] == "Welcome to Shop, Alice!"
    assert mime["From"] == SENDER
    assert mime["To"] == "alice@example.com"
    assert mime["X-Notification-Id"] == request.notification_id
    assert mime["MIME-Version"] == "1.0"
    assert body(mime, "plain") == MESSAGE.text
    assert body(mime, "html") == MESSAGE.html
    parts = list(mime.iter_attachments())
    assert [p.get_filename() for p in parts] == ["invoice.pdf", "data.csv"]
    assert [p.get_payload(decode=True) for p in parts] == [store.contents["pdf"], b"a,b\r\n1,2\r\n"]
    # and the unsubscribe URLs stand verbatim in the raw header (RFC 2369: no encoded words)
    url = f"https://shop.example/unsubscribe?u=user-123&n={request.notification_id}&c=account"
    assert f"List-Unsubscribe: <{url}>,\r\n <mailto:unsub@shop.example>\r\n".encode() in raw
    assert b"List-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n" in raw


def test_every_line_ends_in_crlf_and_stays_within_the_limits() -> None:
    # Given a message with a long non-ASCII subject, long body lines and an attachment
    sender = provider(attachments=Store({"k": bytes(range(256)) * 40}))
    message = RenderedMessage(
        subject="Grüße aus Köln \u2013 " * 20, text="ä" * 300 + "\n\nx" * 5, html="<p>" + "y" * 500
    )

    # When it builds the message
    raw = sender.build_message(make_request(attachments=(attachment("k", "a.bin"),)), message)

    # Then every line ends in CRLF, none is bare, and no line exceeds 78 characters
    assert raw.endswith(b"\r\n")
    assert raw.count(b"\n") == raw.count(b"\r\n") == raw.count(b"\r")
    assert max(len(line) for line in raw.split(b"\r\n")) <= 78


def test_non_ascii_subject_and_display_name_are_rfc2047_encoded() -> None:
    # Given a sender with an accented display name and a German subject
    sender = provider("Boutique Élodie <noreply@shop.example>")
    message = RenderedMessage(subject="Willkommen, Jürgen! 🎉", text="Hallo Jürgen")

    # When it builds the message
    raw = sender.build_message(make_request(), message)

    # Then the raw headers are ASCII encoded words and read back as written
    head = raw.split(b"\r\n\r\n")[0]
    assert head.isascii()
    assert b"=?utf-8?" in head
    mime = parse(raw)
    assert mime["Subject"] == "Willkommen, Jürgen! 🎉"
    assert mime["From"].addresses[0].display_name == "Boutique Élodie"
    assert mime["From"].addresses[0].addr_spec == "noreply@shop.example"
    assert shape(mime) == ["text/plain"]
    assert body(mime, "plain") == "Hallo Jürgen\n"


def test_a_long_ascii_subject_is_folded_at_spaces_and_stays_readable() -> None:
    # Given a 200-character ASCII subject
    subject = " ".join(f"word{n}" for n in range(34))

    # When the message is built
    raw = provider().build_message(make_request(), RenderedMessage("t", subject))

    # Then its header lines are within 78 characters, not encoded, and read back whole
    head = raw.split(b"\r\n\r\n")[0].decode()
    lines = head.split("MIME-Version")[0].split("\r\n")
    assert lines[0].startswith("Subject: word0 word1")
    assert lines[1].startswith(" word")
    assert max(len(line) for line in lines) <= 78
    assert "=?" not in head
    assert parse(raw)["Subject"] == subject


@pytest.mark.parametrize(
    "subject",
    [
        "Hi\r\nBcc: victim@example.com",
        "Hi\nBcc: victim@example.com",
        "Hi\rBcc: x@example.com",
        "Hï\r\nBcc: victim@example.com",
        "Hi\u2028Bcc: x@example.com",
    ],
)
def test_a_line_break_in_a_subject_or_filename_does_not_start_a_header(subject: str) -> None:
    # Given a subject and an attachment filename carrying a line break and a header
    sender = provider(attachments=Store({"k": b"data"}))
    request = make_request(attachments=(attachment("k", subject),))

    # When the message is built
    mime = parse(sender.build_message(request, RenderedMessage(subject=subject, text="t")))

    # Then there is no Bcc header anywhere and the subject reads as one line
    assert all(part["Bcc"] is None for part in mime.walk())
    assert mime["Subject"] == header_safe(subject)
    assert "Bcc:" in mime["Subject"]
    assert [p.get_filename() for p in mime.iter_attachments()] == [header_safe(subject)]


def test_a_display_name_with_a_line_break_is_refused() -> None:
    # Given a configured sender whose display name carries a header, Then it is refused
    with pytest.raises(ValueError, match="control characters"):
        provider("Shop\r\nBcc: victim@example.com <noreply@shop.example>")


def test_a_boundary_found_in_the_content_is_not_used(monkeypatch: pytest.MonkeyPatch) -> None:
    # Given a text body that holds the first boundary the builder would draw
    draws = iter([1, 1, 2])
    monkeypatch.setattr(random, "getrandbits", lambda bits: next(draws))
    text = "before\n--===============0000000000000000001==\nafter"

    # When the message is built
    mime = parse(provider().build_message(make_request(), RenderedMessage(text, "x", "<p>x</p>")))

    # Then the message still has its two parts and the text intact
    assert shape(mime) == ["multipart/alternative", "text/plain", "text/html"]
    assert body(mime, "plain") == text + "\n"


def test_the_size_bound_is_exact_and_attachments_see_the_space_left() -> None:
    # Given a message with two attachments and its exact size
    store = Store({"a": b"a" * 3000, "b": b"b" * 3000})
    request = make_request(attachments=(attachment("a", "a.bin"), attachment("b", "b.bin")))
    size = len(provider(attachments=store).build_message(request, MESSAGE))

    # When the bound is exactly that size, Then it is built
    store.bounds.clear()
    assert len(provider(attachments=store, max_message_bytes=size).build_message(request, MESSAGE))
    # and each fetch was bounded by the space left, the second by less than the first
    assert store.bounds[0] > store.bounds[1] > 0

    # When the bound is one byte less, Then the message is refused as too large
    with pytest.raises(PermanentError) as failure:
        provider(attachments=store, max_message_bytes=size - 1).build_message(request, MESSAGE)
    assert failure.value.reason == "message_too_large"


def test_an_attachment_beyond_the_space_left_is_refused_before_it_is_read() -> None:
    # Given a bound that the text and HTML nearly fill
    store = Store({"a": b"a" * 1000})
    request = make_request(attachments=(attachment("a", "a.bin"),))

    # When the message is built, Then the store is asked for less than the attachment
    with pytest.raises(PermanentError) as failure:
        provider(attachments=store, max_message_bytes=1500).build_message(request, MESSAGE)
    assert failure.value.reason == "message_too_large"
    assert store.bounds[0] < 1000


def test_an_html_only_message_keeps_an_empty_text_alternative() -> None:
    mime = parse(provider().build_message(make_request(), RenderedMessage("", "s", "<p>x</p>")))
    assert shape(mime) == ["multipart/alternative", "text/plain", "text/html"]
    assert body(mime, "html") == "<p>x</p>\n"


@pytest.mark.parametrize(
    ("filename", "content_type"),
    [
        ("Rechnung Jürgen.pdf", "application/pdf"),
        ('quote"and\\back.txt', "text/plain; charset=utf-8"),
        ("dir/evil.sh", "weird type"),
        ("x" * 200 + ".pdf", "APPLICATION/PDF"),
    ],
)
def test_unusual_filenames_and_types_read_back_as_the_previous_builder(
    filename: str, content_type: str
) -> None:
    # Given an attachment with a filename or type outside the plain fast path
    store = Store({"k": b"\x00\x01 binary"})
    sender = provider(attachments=store, unsubscribe_url=UNSUBSCRIBE)
    request = make_request(attachments=(attachment("k", filename, content_type),))

    # When it builds the message, Then a mail client sees what the previous builder sent
    new = parse(sender.build_message(request, MESSAGE))
    old = parse(legacy_build(sender, request, MESSAGE))
    assert meaning(new) == meaning(old)
    assert "/" not in (next(new.iter_attachments()).get_filename() or "/")


header_text = st.text(min_size=1, max_size=300).filter(lambda s: bool(header_safe(s)))
body_text = st.text(max_size=400)


@settings(
    max_examples=examples(150), deadline=None, suppress_health_check=[HealthCheck.filter_too_much]
)
@given(subject=header_text, text=body_text, html=st.one_of(st.none(), body_text))
def test_any_subject_and_bodies_read_back_as_the_previous_builder(
    subject: str, text: str, html: str | None
) -> None:
    # Given any subject and bodies (any Unicode, any line breaks)
    sender = provider(unsubscribe_url=UNSUBSCRIBE)
    request = make_request()
    message = RenderedMessage(subject=subject, text=text or "t", html=html)

    # When the message is built
    raw = sender.build_message(request, message)

    # Then a mail client sees exactly what the previous builder sent, subject included
    new = parse(raw)
    assert meaning(new) == meaning(parse(legacy_build(sender, request, message)))
    assert new["Subject"] == header_safe(subject)
    assert raw.count(b"\n") == raw.count(b"\r\n") == raw.count(b"\r")
    assert max(len(line) for line in raw.split(b"\r\n")) <= 998


@given(value=header_text)
def test_an_unstructured_header_is_folded_or_encoded_within_78_characters(value: str) -> None:
    # Given any header-safe value, When it is written as a header
    safe = header_safe(value)
    line = unstructured_header("Subject", safe)

    # Then it is ASCII, CRLF-terminated, within 78 characters a line, and reads back as given
    assert line.isascii()
    assert line.endswith("\r\n")
    assert max(len(part) for part in line.split("\r\n")) <= 78
    assert parse(line.encode() + b"\r\nbody")["Subject"] == safe


@settings(max_examples=examples(60), deadline=None)
@given(data=st.binary(max_size=600))
def test_any_attachment_bytes_read_back_unchanged(data: bytes) -> None:
    # Given an attachment of any bytes (empty included), When the message is built
    sender = provider(attachments=Store({"k": data}))
    raw = sender.build_message(make_request(attachments=(attachment("k", "a.bin"),)), MESSAGE)

    # Then the attachment reads back byte for byte, in base64 lines of at most 76 characters
    parts = list(parse(raw).iter_attachments())
    assert [part.get_payload(decode=True) for part in parts] == [data]
    assert max(len(line) for line in raw.split(b"\r\n\r\n", 1)[1].split(b"\r\n")) <= 76
