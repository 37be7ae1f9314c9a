"""`notifyctl preferences get|set` against the local stack, and what the fan-out makes of it."""

import json

from typer.testing import CliRunner

from notifications.adapters.ledger import DynamoLedger
from notifyctl.cli import app
from tests.samples import load_event


def notifyctl(*args):
    return CliRunner().invoke(app, ["--stack-name", "notifications-local", *args])


def test_set_get_and_the_fan_out_honours_them(stack):
    # Given Alice's preferences set through the CLI, SMS opted out
    result = notifyctl(
        "preferences", "set", "user-123",
        "--email", "alice@example.com",
        "--phone", "+14155550100",
        "--locale", "de-CH",
        "--opt-out-channel", "sms",
        "--quiet-hours", "22:00-07:00", "--timezone", "Europe/Zurich",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    shown = json.loads(notifyctl("preferences", "get", "user-123").output)
    assert shown["phone"] == "+14155550100"
    assert shown["opted_out_channels"] == ["sms"]
    assert shown["quiet_hours"] == {
        "start": "22:00:00",
        "end": "07:00:00",
        "timezone": "Europe/Zurich",
    }

    # When she orders
    fanned = stack.function("FanOutFunction").invoke(load_event("fan_out/order-placed.json"))

    # Then the email is enqueued, and the SMS is SUPPRESSED with the reason
    assert fanned.result["enqueued"] == {"email": 1}
    records = {r["channel"]: r for r in DynamoLedger(stack.physical_id("LedgerTable")).scan()}
    assert records["sms"]["status"] == "SUPPRESSED"
    assert records["sms"]["suppressed_reason"] == "opted_out_channel:sms"

    # When she opts back in, Then the opt-out is gone and the rest stays
    notifyctl("preferences", "set", "user-123", "--opt-in-channel", "sms")
    shown = json.loads(notifyctl("preferences", "get", "user-123").output)
    assert shown["opted_out_channels"] == []
    assert shown["email"] == "alice@example.com"


def test_bad_values_are_refused_and_nothing_is_written(stack):
    for args, message in (
        (["--email", "invalid@@example.com"], "not a valid email address"),
        (["--phone", "0041 79 000"], "E.164"),
        (["--quiet-hours", "22-7"], "HH:MM-HH:MM"),
        (["--quiet-hours", "22:00-07:00", "--timezone", "Mars/Olympus"], "Mars/Olympus"),
        (["--opt-out-channel", "fax"], "--opt-out-channel 'fax' is not one of: email, sms, push"),
    ):
        result = notifyctl("preferences", "set", "user-9", *args)
        assert result.exit_code == 2, args
        assert message in result.output, (args, result.output)
    assert notifyctl("preferences", "get", "user-9").exit_code == 1  # not found
