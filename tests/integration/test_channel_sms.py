"""SNS SMS on moto: the published text and its message id."""

from __future__ import annotations

from datetime import UTC, datetime

import boto3
import pytest
from moto.sns.models import sns_backends

from notifications.channels.base import RenderedMessage
from notifications.channels.sms import SnsSmsProvider, count_segments
from notifications.errors import PermanentError
from notifications.models import Channel, NotificationRequested, notification_id

REGION = "us-east-1"
ACCOUNT = "123456789012"  # moto's default account
NOW = datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC)


def make_request(recipient: str) -> NotificationRequested:
    return NotificationRequested(
        notification_id=notification_id("evt-3", Channel.SMS, recipient, "payment"),
        channel=Channel.SMS,
        recipient=recipient,
        template_id="payment",
        category="payments",
        event_id="evt-3",
        event_type="PaymentReceived",
        correlation_id="evt-3",
        occurred_at=NOW,
        requested_at=NOW,
    )


def provider(**options: object) -> SnsSmsProvider:
    return SnsSmsProvider(
        sender_id="Shop",
        client_factory=lambda: boto3.client("sns", region_name=REGION),
        **options,  # type: ignore[arg-type]
    )


def sms_messages() -> dict[str, tuple[str, str]]:
    return dict(sns_backends[ACCOUNT][REGION].sms_messages)


@pytest.mark.usefixtures("moto_account")
def test_an_sms_is_published_and_its_message_id_returned() -> None:
    # When a payment SMS is sent
    receipt = provider().send(
        make_request("+447911123456"), RenderedMessage(text="Payment of 19.99 EUR received")
    )

    # Then SNS holds it under the id the receipt carries
    assert sms_messages() == {
        receipt.provider_message_id: ("+447911123456", "Payment of 19.99 EUR received")
    }


@pytest.mark.usefixtures("moto_account")
def test_an_emoji_text_over_the_limit_is_truncated_when_configured() -> None:
    # Given a provider that truncates at one segment
    text = "Your parcel is on its way 🚚 " * 5

    # When a long UCS-2 text is sent
    receipt = provider(max_segments=1, over_limit="truncate").send(
        make_request("+14155552671"), RenderedMessage(text=text)
    )

    # Then SNS holds a one-segment text ending with an ellipsis
    [(number, published)] = sms_messages().values()
    assert number == "+14155552671"
    assert published.endswith("…")
    assert count_segments(published).segments == 1
    assert receipt.detail["truncated"] == "true"


@pytest.mark.usefixtures("moto_account")
def test_an_invalid_number_never_reaches_sns() -> None:
    with pytest.raises(PermanentError) as failure:
        provider().send(make_request("+1555"), RenderedMessage(text="hi"))
    assert failure.value.reason == "invalid_recipient"
    assert sms_messages() == {}
