"""SES email on moto: text, HTML and an S3 attachment arrive as one raw message."""

from __future__ import annotations

import email
from datetime import UTC, datetime
from email.message import EmailMessage
from email.policy import default
from typing import Any

import boto3
import pytest
from moto.ses.models import ses_backends

from notifications.channels.base import RenderedMessage
from notifications.channels.email import S3AttachmentStore, SesEmailProvider
from notifications.errors import PermanentError
from notifications.models import AttachmentRef, Channel, NotificationRequested, notification_id

REGION = "us-east-1"
ACCOUNT = "123456789012"  # moto's default account
SENDER = "noreply@shop.example"
BUCKET = "notification-attachments"
NOW = datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC)
INVOICE = b"%PDF-1.7\n" + bytes(range(256)) * 8  # binary content survives base64


def make_request(
    recipient: str, attachments: tuple[AttachmentRef, ...] = ()
) -> NotificationRequested:
    return NotificationRequested(
        notification_id=notification_id("evt-9", Channel.EMAIL, recipient, "order-placed"),
        channel=Channel.EMAIL,
        recipient=recipient,
        template_id="order-placed",
        category="orders",
        user_id="user-123",
        event_id="evt-9",
        event_type="OrderPlaced",
        correlation_id="evt-9",
        occurred_at=NOW,
        requested_at=NOW,
        attachments=attachments,
    )


@pytest.fixture
def ses_with_bucket(moto_account: None) -> None:
    boto3.client("sesv2", region_name=REGION).create_email_identity(EmailIdentity=SENDER)
    s3 = boto3.client("s3", region_name=REGION)
    s3.create_bucket(Bucket=BUCKET)
    s3.put_object(Bucket=BUCKET, Key="invoices/42.pdf", Body=INVOICE)


def provider(**options: Any) -> SesEmailProvider:
    return SesEmailProvider(
        sender=f"Shop <{SENDER}>",
        configuration_set=None,
        attachments=S3AttachmentStore(lambda: boto3.client("s3", region_name=REGION)),
        unsubscribe_url="https://shop.example/unsubscribe/{user_id}",
        client_factory=lambda: boto3.client("sesv2", region_name=REGION),
        **options,
    )


def sent_messages() -> list[Any]:
    return list(ses_backends[ACCOUNT][REGION].sent_messages)


@pytest.mark.usefixtures("ses_with_bucket")
def test_html_text_and_an_attachment_arrive_as_one_raw_message() -> None:
    # Given an order email with an invoice stored in S3
    request = make_request(
        "alice@example.com",
        (
            AttachmentRef(
                bucket=BUCKET,
                key="invoices/42.pdf",
                filename="invoice-42.pdf",
                content_type="application/pdf",
            ),
        ),
    )
    message = RenderedMessage(
        subject="Your order 42 — thank you",
        text="Order 42: 19.99 EUR",
        html="<h1>Order 42</h1><p>19.99&nbsp;EUR</p>",
    )

    # When it is sent through SES
    receipt = provider().send(request, message)

    # Then moto's SES holds exactly one raw message with that id
    [stored] = sent_messages()
    assert stored.id == receipt.provider_message_id
    # (moto adds the To header's address to the API's Destination, so it may appear twice)
    assert set(stored.destinations) == {"alice@example.com"}

    # And parsed back, it has the headers, both bodies and the attachment
    mime = email.message_from_string(stored.raw_data, policy=default)
    assert isinstance(mime, EmailMessage)
    assert mime["Subject"] == "Your order 42 — thank you"
    assert mime["From"] == f"Shop <{SENDER}>"
    assert mime["To"] == "alice@example.com"
    assert mime["List-Unsubscribe"] == "<https://shop.example/unsubscribe/user-123>"
    assert mime.get_content_type() == "multipart/mixed"
    [alternative, attachment] = list(mime.iter_parts())
    assert alternative.get_content_type() == "multipart/alternative"
    assert [part.get_content_type() for part in alternative.iter_parts()] == [
        "text/plain",
        "text/html",
    ]
    text = mime.get_body(("plain",))
    html = mime.get_body(("html",))
    assert text is not None
    assert text.get_content().strip() == "Order 42: 19.99 EUR"
    assert html is not None
    assert html.get_content().strip() == "<h1>Order 42</h1><p>19.99&nbsp;EUR</p>"
    assert isinstance(attachment, EmailMessage)
    assert attachment.get_filename() == "invoice-42.pdf"
    assert attachment.get_content_type() == "application/pdf"
    assert attachment.get_content() == INVOICE


@pytest.mark.usefixtures("ses_with_bucket")
def test_a_missing_attachment_is_permanent_and_nothing_is_sent() -> None:
    request = make_request(
        "alice@example.com", (AttachmentRef(bucket=BUCKET, key="gone.pdf", filename="gone.pdf"),)
    )
    with pytest.raises(PermanentError) as failure:
        provider().send(request, RenderedMessage(subject="s", text="t"))
    assert failure.value.reason == "attachment_missing"
    assert sent_messages() == []


@pytest.mark.usefixtures("ses_with_bucket")
def test_invalid_address_from_the_original_spec_is_permanent() -> None:
    with pytest.raises(PermanentError) as failure:
        provider().send(
            make_request("invalid@@example.com"), RenderedMessage(subject="s", text="t")
        )
    assert failure.value.reason == "invalid_recipient"
    assert sent_messages() == []


def test_an_unverified_sender_is_rejected_permanently(moto_account: None) -> None:
    # Given no verified identity, When a message is sent, Then SES's rejection is permanent
    with pytest.raises(PermanentError) as failure:
        provider().send(make_request("alice@example.com"), RenderedMessage(subject="s", text="t"))
    assert failure.value.reason in {"message_rejected", "sender_not_verified"}
    assert sent_messages() == []
