"""SMS: segment counting, E.164 validation, the segment limit and the SNS publish call."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from botocore.exceptions import ClientError

from notifications.channels.base import RenderedMessage
from notifications.channels.sms import SegmentCount, SnsSmsProvider, count_segments
from notifications.errors import NotificationError, PermanentError, RetryableError
from notifications.models import Channel, NotificationRequested, notification_id

NOW = datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC)
UK = "+447911123456"
US = "+14155552671"


def make_request(recipient: str = UK) -> NotificationRequested:
    return NotificationRequested(
        notification_id=notification_id("evt-1", Channel.SMS, recipient, "order"),
        channel=Channel.SMS,
        recipient=recipient,
        template_id="order",
        category="orders",
        event_id="evt-1",
        event_type="OrderPlaced",
        correlation_id="evt-1",
        occurred_at=NOW,
        requested_at=NOW,
    )


class FakeSns:
    def __init__(self, error: Exception | None = None) -> None:
        self.calls: list[dict[str, Any]] = []
        self.error = error

    def publish(self, **kwargs: Any) -> dict[str, Any]:
        self.calls.append(kwargs)
        if self.error is not None:
            raise self.error
        return {"MessageId": "sns-sms-1"}


def provider(sns: FakeSns, **options: Any) -> SnsSmsProvider:
    return SnsSmsProvider(client_factory=lambda: sns, **options)  # type: ignore[arg-type,return-value]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", SegmentCount("GSM-7", 1, 0)),
        ("a" * 160, SegmentCount("GSM-7", 1, 160)),
        ("a" * 161, SegmentCount("GSM-7", 2, 161)),
        ("a" * 306, SegmentCount("GSM-7", 2, 306)),
        ("a" * 307, SegmentCount("GSM-7", 3, 307)),
        ("é" * 160, SegmentCount("GSM-7", 1, 160)),  # é is in the GSM-7 basic table
        ("€" * 80, SegmentCount("GSM-7", 1, 160)),  # extension table: 2 septets each
        ("€" * 81, SegmentCount("GSM-7", 2, 162)),
        ("[" + "a" * 159, SegmentCount("GSM-7", 2, 161)),
        ("a" * 152 + "{" + "a" * 20, SegmentCount("GSM-7", 2, 174)),  # escape never split
        ("a" * 152 + "{" + "a" * 152, SegmentCount("GSM-7", 3, 306)),
        ("ж" * 70, SegmentCount("UCS-2", 1, 70)),
        ("ж" * 71, SegmentCount("UCS-2", 2, 71)),
        ("ж" * 134, SegmentCount("UCS-2", 2, 134)),
        ("ж" * 135, SegmentCount("UCS-2", 3, 135)),
        ("a" * 69 + "ç", SegmentCount("UCS-2", 1, 70)),  # ç is not GSM-7: the whole text is UCS-2
        ("😀" * 35, SegmentCount("UCS-2", 1, 70)),  # an emoji is two UTF-16 units
        ("😀" * 36, SegmentCount("UCS-2", 2, 72)),
        ("a" * 66 + "😀" + "a" * 67, SegmentCount("UCS-2", 3, 135)),  # surrogates never split
        ("Hi 👋", SegmentCount("UCS-2", 1, 5)),
    ],
)
def test_segment_counting(text: str, expected: SegmentCount) -> None:
    assert count_segments(text) == expected


def test_a_message_is_published_with_its_type_and_sender_id() -> None:
    # Given a transactional provider with a sender id
    sns = FakeSns()

    # When it sends to a UK number
    receipt = provider(sns, sender_id="Shop").send(
        make_request(UK), RenderedMessage(text="Order 42 shipped")
    )

    # Then SNS got the number, the text and both attributes, and the receipt has SNS's id
    assert sns.calls == [
        {
            "PhoneNumber": UK,
            "Message": "Order 42 shipped",
            "MessageAttributes": {
                "AWS.SNS.SMS.SMSType": {"DataType": "String", "StringValue": "Transactional"},
                "AWS.SNS.SMS.SenderID": {"DataType": "String", "StringValue": "Shop"},
            },
        }
    ]
    assert receipt.provider_message_id == "sns-sms-1"
    assert receipt.detail == {"encoding": "GSM-7", "segments": "1", "truncated": "false"}


def test_the_sender_id_is_left_out_where_the_country_does_not_allow_it() -> None:
    sns = FakeSns()
    provider(sns, sender_id="Shop", sms_type="Promotional").send(
        make_request(US), RenderedMessage(text="Sale")
    )
    assert sns.calls[0]["MessageAttributes"] == {
        "AWS.SNS.SMS.SMSType": {"DataType": "String", "StringValue": "Promotional"}
    }


@pytest.mark.parametrize(
    "number",
    [
        "07911123456",
        "+44 7911 123456",
        "+1555",
        "+4479111234567890",
        "+999123456789",
        "447911123456",
        "not-a-number",
    ],
)
def test_a_number_that_is_not_valid_e164_is_permanent(number: str) -> None:
    sns = FakeSns()
    with pytest.raises(PermanentError) as failure:
        provider(sns).send(make_request(number), RenderedMessage(text="hi"))
    assert failure.value.reason == "invalid_recipient"
    assert sns.calls == []


def test_over_the_segment_limit_the_default_is_a_permanent_error() -> None:
    # Given a limit of 2 segments, When a 3-segment text is sent, Then nothing is published
    sns = FakeSns()
    with pytest.raises(PermanentError) as failure:
        provider(sns, max_segments=2).send(make_request(), RenderedMessage(text="a" * 307))
    assert failure.value.reason == "sms_too_long"
    assert sns.calls == []


def test_exactly_at_the_limit_is_sent_whole() -> None:
    sns = FakeSns()
    provider(sns, max_segments=2).send(make_request(), RenderedMessage(text="a" * 306))
    assert sns.calls[0]["Message"] == "a" * 306


@pytest.mark.parametrize(
    ("text", "ending", "encoding"),
    [("word " * 100, "...", "GSM-7"), ("😀" * 200, "…", "UCS-2"), ("ж" * 300, "…", "UCS-2")],
)
def test_truncation_cuts_to_the_limit_with_an_ellipsis(
    text: str, ending: str, encoding: str
) -> None:
    # Given a provider that truncates over 2 segments
    sns = FakeSns()

    # When a long text is sent
    receipt = provider(sns, max_segments=2, over_limit="truncate").send(
        make_request(), RenderedMessage(text=text)
    )

    # Then what was published fits 2 segments, keeps its encoding and ends with an ellipsis
    sent = sns.calls[0]["Message"]
    assert sent.endswith(ending)
    assert text.startswith(sent.removesuffix(ending))
    assert count_segments(sent).segments == 2
    assert count_segments(sent).encoding == encoding
    assert receipt.detail["truncated"] == "true"


@pytest.mark.parametrize(
    ("code", "status", "kind", "reason"),
    [
        ("Throttling", 400, RetryableError, "provider_throttled"),
        ("InternalError", 500, RetryableError, "provider_unavailable"),
        ("InvalidParameter", 400, PermanentError, "provider_rejected"),
        ("AuthorizationError", 403, PermanentError, "provider_unauthorized"),
    ],
)
def test_sns_failures_are_classified(
    code: str, status: int, kind: type[NotificationError], reason: str
) -> None:
    error = ClientError(
        {
            "Error": {"Code": code, "Message": "x"},
            "ResponseMetadata": {"HTTPStatusCode": status},  # type: ignore[typeddict-item]
        },
        "Publish",
    )
    with pytest.raises(kind) as failure:
        provider(FakeSns(error)).send(make_request(), RenderedMessage(text="hi"))
    assert failure.value.reason == reason


def test_invalid_configuration_fails_at_construction() -> None:
    with pytest.raises(ValueError, match="sender_id"):
        SnsSmsProvider(sender_id="Way-too-long-id")
    with pytest.raises(ValueError, match="sms_type"):
        SnsSmsProvider(sms_type="Bulk")  # type: ignore[arg-type]
