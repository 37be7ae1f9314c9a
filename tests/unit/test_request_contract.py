"""The channel-queue request (``NotificationRequested``, a msgspec struct since issue 18): the
same rules as the pydantic model it replaced, on decoding and on construction, and a bad body
reported field by field."""

from __future__ import annotations

import json
from datetime import UTC, datetime, time

import pytest

from notifications.contracts import MalformedMessage, parse_request
from notifications.models import AttachmentRef, Channel, NotificationRequested, QuietHours
from notifications.preferences import Preferences
from tests.samples import welcome


def body(**changes: object) -> str:
    fields = json.loads(welcome(1).model_dump_json())
    fields.update(changes)
    return json.dumps({k: v for k, v in fields.items() if v is not ...})


def problems(text: str) -> str:
    with pytest.raises(MalformedMessage) as raised:
        parse_request(text)
    assert raised.value.reason == "malformed_message"
    return raised.value.message


def test_a_request_travels_as_compact_json_and_reads_back_equal():
    # Given a request with every kind of field set
    request = welcome(1).model_copy(
        update={
            "attachments": (AttachmentRef(bucket="b", key="k.pdf", filename="k.pdf"),),
            "quiet_hours": QuietHours(start=time(22), end=time(7, 30), timezone="Europe/Berlin"),
            "data": {"name": "Ada", "total": {"amount": "12.50", "currency": "EUR"}},
        }
    )
    # When it is written as a queue body and parsed back
    text = request.model_dump_json()
    # Then the body is the JSON the pydantic model wrote (compact, enum values, ISO times)
    assert '"channel":"email"' in text
    assert '"quiet_hours":{"start":"22:00:00","end":"07:30:00","timezone":"Europe/Berlin"}' in text
    assert '"occurred_at":"2026-11-28T12:00:00Z"' in text
    # And it reads back equal, field for field
    assert parse_request(text) == request


def test_every_bad_field_of_a_body_is_named_without_its_value():
    text = body(
        notification_id="not-a-uuid",
        channel="pigeon",
        recipient="x" * 2049,
        template_id="   ",
        occurred_at="2025-01-01T09:00:00",  # no time zone
        redrive_count=-1,
        event_id=...,  # dropped
        colour="blue",  # unknown
    )
    message = problems(text)
    assert "notification_id: Input should be a valid UUID" in message
    assert "channel: Invalid enum value" in message
    assert "recipient: String should have at most 2048 characters" in message
    assert "template_id: String should have at least 1 character" in message
    assert "occurred_at: Input should have timezone info" in message
    assert "redrive_count: Input should be greater than or equal to 0" in message
    assert "event_id: Field required" in message
    assert "colour: Extra inputs are not permitted" in message
    assert "pigeon" not in message
    assert "xxxx" not in message


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("{not json", "(root): Invalid JSON"),
        ("[]", "(root): Input should be an object"),
        ("null", "(root): Input should be an object"),
    ],
)
def test_a_body_that_is_no_object_is_malformed_at_the_root(text, expected):
    assert problems(text).startswith(expected)


def test_wrong_json_types_are_refused_by_field():
    message = problems(body(redrive_count="3", critical="yes", data=[1]))
    assert "redrive_count: Expected `int`, got `str`" in message
    assert "critical: Expected `bool`, got `str`" in message
    assert "data: Expected `object`, got `array`" in message


def test_an_attachment_or_quiet_hours_inside_a_body_are_checked_too():
    bad_attachment = body(attachments=[{"bucket": "b", "key": "", "filename": "f"}])
    assert "attachments: key: String should have at least 1 character" in problems(bad_attachment)
    bad_zone = body(quiet_hours={"start": "22:00:00", "end": "07:00:00", "timezone": "Mars/X"})
    assert "quiet_hours: unknown IANA time zone 'Mars/X'" in problems(bad_zone)


def test_building_a_request_in_code_checks_and_normalises_the_same_way():
    at = datetime(2025, 1, 1, tzinfo=UTC)
    fields = {
        "notification_id": "00000000-0000-4000-8000-000000000001",
        "channel": "sms",
        "recipient": "+14155550100",
        "template_id": "  welcome ",
        "category": "account",
        "event_id": "evt-1",
        "event_type": "UserRegistered",
        "correlation_id": "evt-1",
        "occurred_at": at,
        "requested_at": at,
        "attachments": [],
    }
    request = NotificationRequested(**fields)
    # identifiers are stripped, a channel name becomes the Channel, a list a tuple
    assert request.template_id == "welcome"
    assert request.channel is Channel.SMS
    assert request.attachments == ()
    with pytest.raises(ValueError, match="requested_at: Input should have timezone info"):
        NotificationRequested(**{**fields, "requested_at": datetime(2025, 1, 1)})
    with pytest.raises(ValueError, match="notification_id: Input should be a valid UUID"):
        NotificationRequested(**{**fields, "notification_id": "n-1"})


def test_quiet_hours_inside_preferences_read_and_write_as_before():
    # Given preferences stored as JSON by the pydantic model (a dataclass field now)
    stored = '{"user_id":"u-1","quiet_hours":{"start":"22:00","end":"07:00","timezone":"UTC"}}'
    preferences = Preferences.model_validate_json(stored)
    # Then the quiet hours are the dataclass, and they are written back in the same shape
    assert preferences.quiet_hours == QuietHours(start=time(22), end=time(7))
    assert json.loads(preferences.model_dump_json())["quiet_hours"] == {
        "start": "22:00:00",
        "end": "07:00:00",
        "timezone": "UTC",
    }
    # And an unknown key inside them is refused, as before
    with pytest.raises(ValueError, match=r"quiet_hours\.colour"):
        Preferences.model_validate_json(
            '{"user_id":"u-1","quiet_hours":{"start":"22:00","end":"07:00","colour":"red"}}'
        )
