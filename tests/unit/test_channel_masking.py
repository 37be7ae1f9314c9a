"""Masking: what a log line may show of a recipient."""

from __future__ import annotations

import pytest

from notifications.masking import mask, mask_recipient
from notifications.models import Channel


@pytest.mark.parametrize(
    ("value", "masked"),
    [
        ("alice@example.com", "a***@example.com"),
        ("invalid@@example.com", "i***@example.com"),
        ("+447911123456", "+44********56"),
        ("https://hooks.example.com/in?token=abc", "https://hooks.example.com/***"),
        ("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "whse***"),
        ("short", "***"),
        (
            "arn:aws:sns:eu-west-1:123456789012:endpoint/GCM/shop/1f3c5a7e-0000-4000-8000-000000000003",
            "arn:aws:sns:eu-west-1:123456789012:endpoint/GCM/shop/1f3c***",
        ),
    ],
)
def test_mask_hides_the_personal_part(value: str, masked: str) -> None:
    assert mask(value) == masked


@pytest.mark.parametrize(
    ("channel", "value", "masked"),
    [
        (Channel.EMAIL, "bob.smith@example.org", "b***@example.org"),
        ("sms", "+14155552671", "+14*******71"),
        (Channel.WEBHOOK, "sub-1", "sub-1"),
    ],
)
def test_mask_recipient_follows_the_channel(
    channel: Channel | str, value: str, masked: str
) -> None:
    assert mask_recipient(channel, value) == masked
    if channel != Channel.WEBHOOK:
        assert value not in mask_recipient(channel, value)
