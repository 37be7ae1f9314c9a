"""The preferences model (a msgspec struct since issue 18): the documents the pydantic model
wrote read back unchanged, values built in code are read as before, bad ones are named."""

from datetime import time

import pytest

from notifications.models import Channel, QuietHours
from notifications.preferences import ChangeStamp, Preferences, PreferencesError, updated

# A document as the pydantic model wrote it (revision 664a409), byte for byte
STORED = (
    '{"user_id":"user-123","email":"alice@example.com","phone":null,"push_endpoints":'
    '["arn:aws:sns:us-east-1:123456789012:endpoint/GCM/shop/0001"],"locale":"en",'
    '"opted_out_channels":["sms"],"opted_out_categories":[],"quiet_hours":{"start":"22:00:00",'
    '"end":"07:00:00","timezone":"Europe/Zurich"},"suppressed_emails":[],"opted_out_pairs":[],'
    '"last_change":{"at":"2026-11-28T12:00:00+00:00","by":"user","via":"one_click"},'
    '"channel_chains":{"payment":["push","email"]}}'
)


def test_a_document_written_by_the_pydantic_model_reads_back_and_writes_the_same():
    prefs = Preferences.model_validate_json(STORED)
    assert prefs.opted_out_channels == frozenset({Channel.SMS})
    assert prefs.quiet_hours == QuietHours(start=time(22), end=time(7), timezone="Europe/Zurich")
    assert prefs.last_change == ChangeStamp(
        at="2026-11-28T12:00:00+00:00", by="user", via="one_click"
    )
    assert prefs.channel_chains == {"payment": (Channel.PUSH, Channel.EMAIL)}
    assert prefs.model_dump_json() == STORED


def test_values_built_in_code_are_read_as_the_decoder_reads_them():
    prefs = Preferences(
        user_id="user-1",
        opted_out_channels={"sms"},
        opted_out_pairs=["order:email"],
        push_endpoints=["arn:aws:sns:us-east-1:123456789012:endpoint/GCM/shop/0001"],
        channel_chains={"payment": ["sms", "email"]},
        quiet_hours={"start": "22:00", "end": "07:00"},
        last_change={"at": "2026-11-28T12:00:00+00:00", "by": "user", "via": "page_save"},
    )
    assert prefs.opted_out_channels == frozenset({Channel.SMS})
    assert isinstance(prefs.opted_out_pairs, frozenset)
    assert prefs.push_endpoints == ("arn:aws:sns:us-east-1:123456789012:endpoint/GCM/shop/0001",)
    assert prefs.channel_chains == {"payment": (Channel.SMS, Channel.EMAIL)}
    assert prefs.quiet_hours == QuietHours(start=time(22), end=time(7))
    assert prefs.last_change == ChangeStamp(
        at="2026-11-28T12:00:00+00:00", by="user", via="page_save"
    )
    assert prefs.opt_out_reason(Channel.EMAIL, "order") == "opted_out_category_channel:order:email"
    # And a channel name that is none is refused
    with pytest.raises(ValueError, match="'fax' is not a valid Channel"):
        Preferences(user_id="user-1", opted_out_channels={"fax"})


def test_bad_changes_name_every_field_and_no_value():
    current = Preferences(user_id="user-1", email="a@example.com")
    with pytest.raises(PreferencesError) as caught:
        updated(current, "user-1", {"locale": 5, "opted_out_channels": ["fax"], "colour": "red"})
    assert str(caught.value) == (
        "locale: Input should be a valid string; "
        "opted_out_channels: Invalid enum value - at `$[0]`; "
        "colour: Extra inputs are not permitted"
    )
    with pytest.raises(
        PreferencesError, match=r"^user_id: String should have at least 1 character$"
    ):
        updated(None, "", {"locale": "de"})
    with pytest.raises(
        PreferencesError, match=r"^quiet_hours: unknown IANA time zone 'Mars/Olympus'$"
    ):
        updated(
            current,
            "user-1",
            {"quiet_hours": {"start": "22:00", "end": "07:00", "timezone": "Mars/Olympus"}},
        )
    with pytest.raises(
        PreferencesError, match=r"^user_id: String should have at most 128 characters$"
    ):
        Preferences.model_validate({"user_id": "u" * 129})
