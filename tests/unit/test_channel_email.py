"""SES email provider: the raw MIME message it builds and how it classifies failures."""

from __future__ import annotations

import email
from datetime import UTC, datetime
from email.message import EmailMessage
from email.policy import default
from typing import Any

import pytest
from botocore.exceptions import ClientError, ConnectTimeoutError, EndpointConnectionError

from notifications.channels.base import RenderedMessage
from notifications.channels.email import SesEmailProvider, header_safe
from notifications.errors import NotificationError, PermanentError, RetryableError
from notifications.models import AttachmentRef, Channel, NotificationRequested, notification_id

NOW = datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC)


def make_request(recipient: str = "alice@example.com", **changes: Any) -> NotificationRequested:
    fields: dict[str, Any] = {
        "notification_id": notification_id("evt-1", Channel.EMAIL, recipient, "welcome"),
        "channel": Channel.EMAIL,
        "recipient": recipient,
        "template_id": "welcome",
        "category": "account",
        "user_id": "user-123",
        "event_id": "evt-1",
        "event_type": "UserRegistered",
        "correlation_id": "evt-1",
        "occurred_at": NOW,
        "requested_at": NOW,
    }
    fields.update(changes)
    return NotificationRequested(**fields)


MESSAGE = RenderedMessage(subject="Welcome, Alice", text="Hello Alice", html="<p>Hello Alice</p>")


class FakeSes:
    def __init__(self, error: Exception | None = None) -> None:
        self.calls: list[dict[str, Any]] = []
        self.error = error

    def send_email(self, **kwargs: Any) -> dict[str, Any]:
        self.calls.append(kwargs)
        if self.error is not None:
            raise self.error
        return {"MessageId": "ses-message-1"}


class FakeStore:
    def __init__(self, content: bytes) -> None:
        self.content = content

    def fetch(self, ref: AttachmentRef, max_bytes: int) -> bytes:
        if len(self.content) > max_bytes:
            raise PermanentError("message_too_large", "too big")
        return self.content


def client_error(code: str, status: int = 400, message: str = "nope") -> ClientError:
    return ClientError(
        {
            "Error": {"Code": code, "Message": message},
            "ResponseMetadata": {"HTTPStatusCode": status},  # type: ignore[typeddict-item]
        },
        "SendEmail",
    )


def provider(ses: FakeSes, **options: Any) -> SesEmailProvider:
    return SesEmailProvider(
        "Shop <noreply@shop.example>",
        configuration_set="notifications",
        client_factory=lambda: ses,  # type: ignore[arg-type,return-value]
        **options,
    )


def parse(raw: bytes) -> EmailMessage:
    parsed = email.message_from_bytes(raw, policy=default)
    assert isinstance(parsed, EmailMessage)
    return parsed


def test_text_html_and_attachment_travel_as_one_raw_message() -> None:
    # Given a provider with an attachment store and an unsubscribe link
    ses = FakeSes()
    sender = provider(
        ses,
        attachments=FakeStore(b"%PDF-1.7 invoice"),
        unsubscribe_url="https://shop.example/unsubscribe?u={user_id}&c={category}",
    )
    request = make_request(
        attachments=(
            AttachmentRef(
                bucket="b", key="k", filename="invoice.pdf", content_type="application/pdf"
            ),
        )
    )

    # When it sends
    receipt = sender.send(request, MESSAGE)

    # Then SES got one raw message with text, HTML and the attachment
    assert receipt.provider_message_id == "ses-message-1"
    call = ses.calls[0]
    assert call["Destination"] == {"ToAddresses": ["alice@example.com"]}
    assert call["ConfigurationSetName"] == "notifications"
    assert {"Name": "notification_id", "Value": request.notification_id} in call["EmailTags"]
    mime = parse(call["Content"]["Raw"]["Data"])
    assert mime.get_content_type() == "multipart/mixed"
    assert mime["Subject"] == "Welcome, Alice"
    assert mime["List-Unsubscribe"] == "<https://shop.example/unsubscribe?u=user-123&c=account>"
    assert mime["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    body = mime.get_body(("plain",))
    html = mime.get_body(("html",))
    assert body is not None
    assert body.get_content().strip() == "Hello Alice"
    assert html is not None
    assert html.get_content().strip() == "<p>Hello Alice</p>"
    attachments = list(mime.iter_attachments())
    assert [part.get_filename() for part in attachments] == ["invoice.pdf"]
    assert attachments[0].get_content() == b"%PDF-1.7 invoice"


@pytest.mark.parametrize(
    "subject",
    ["Hi\r\nBcc: victim@example.com", "Hi\nBcc: victim@example.com", "Hi\rBcc: x@example.com"],
)
def test_a_subject_cannot_inject_headers(subject: str) -> None:
    # Given a subject rendered with a line break and a header in it
    ses = FakeSes()

    # When it is sent
    provider(ses).send(make_request(), RenderedMessage(subject=subject, text="t"))

    # Then the message has no Bcc header and the subject is one line
    mime = parse(ses.calls[0]["Content"]["Raw"]["Data"])
    assert mime["Bcc"] is None
    assert "\n" not in str(mime["Subject"])
    assert "Bcc:" in str(mime["Subject"])


def test_header_safe_folds_every_control_character() -> None:
    assert header_safe("a\r\n\tb\x00c\u2028d") == "a b c d"


@pytest.mark.parametrize(
    "address",
    [
        "invalid@@example.com",
        "plainaddress",
        "alice@",
        "@example.com",
        "a b@example.com",
        "alice@example..com",
    ],
)
def test_an_invalid_address_is_a_permanent_failure(address: str) -> None:
    # Given an address no mail server could accept
    ses = FakeSes()

    # When it is sent, Then it fails permanently without calling SES
    with pytest.raises(PermanentError) as failure:
        provider(ses).send(make_request(address), MESSAGE)
    assert failure.value.reason == "invalid_recipient"
    assert address not in failure.value.message
    assert ses.calls == []


def test_a_message_over_the_size_bound_is_permanent() -> None:
    ses = FakeSes()
    sender = provider(ses, attachments=FakeStore(b"x" * 5000), max_message_bytes=4000)
    request = make_request(attachments=(AttachmentRef(bucket="b", key="k", filename="big.bin"),))
    with pytest.raises(PermanentError) as failure:
        sender.send(request, MESSAGE)
    assert failure.value.reason == "message_too_large"
    assert ses.calls == []


@pytest.mark.parametrize(
    ("error", "kind", "reason"),
    [
        (client_error("TooManyRequestsException", 429), RetryableError, "provider_throttled"),
        (client_error("Throttling", 400), RetryableError, "provider_throttled"),
        (client_error("InternalFailure", 500), RetryableError, "provider_unavailable"),
        (client_error("ServiceUnavailable", 503), RetryableError, "provider_unavailable"),
        (ConnectTimeoutError(endpoint_url="https://email"), RetryableError, "provider_timeout"),
        (
            EndpointConnectionError(endpoint_url="https://email"),
            RetryableError,
            "provider_unavailable",
        ),
        (client_error("MessageRejected"), PermanentError, "message_rejected"),
        (
            client_error("MessageRejected", message="Email address is not verified."),
            PermanentError,
            "sender_not_verified",
        ),
        (client_error("AccountSuspendedException"), PermanentError, "account_suspended"),
        (client_error("SendingPausedException"), PermanentError, "sending_paused"),
        (client_error("BadRequestException"), PermanentError, "provider_rejected"),
    ],
)
def test_provider_failures_are_classified(
    error: Exception, kind: type[NotificationError], reason: str
) -> None:
    # Given SES failing in a given way, When a message is sent, Then the failure has its class
    with pytest.raises(kind) as failure:
        provider(FakeSes(error)).send(make_request(), MESSAGE)
    assert failure.value.reason == reason


def test_without_an_attachment_store_attachments_are_refused() -> None:
    request = make_request(attachments=(AttachmentRef(bucket="b", key="k", filename="a.txt"),))
    with pytest.raises(PermanentError) as failure:
        provider(FakeSes()).send(request, MESSAGE)
    assert failure.value.reason == "attachments_unsupported"
