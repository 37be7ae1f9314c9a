"""Operational events: their documented schemas, what each carries, and that a failed put is
reported without undoing anything."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import jsonschema
import msgspec
import pytest

from notifications.endpoint_health import EndpointHealth
from notifications.ledger import DeadLetterEntry
from notifications.operational_event_models import OPERATIONAL_EVENTS, schema_text
from notifications.operational_events import OPERATIONS_SOURCE, OperationalEvents

SCHEMAS = Path(__file__).resolve().parents[2] / "events" / "schemas" / "operational"
NOW = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
SINCE = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)


class Bus:
    def __init__(self, fail: bool = False) -> None:
        self.fail = fail
        self.events: list[dict[str, object]] = []

    def put(self, source: str, detail_type: str, detail: str) -> None:
        if self.fail:
            raise RuntimeError("AccessDeniedException")
        self.events.append(
            {"source": source, "detail-type": detail_type, "detail": json.loads(detail)}
        )


def validator(detail_type: str) -> jsonschema.Draft4Validator:
    schema = json.loads((SCHEMAS / f"{detail_type}.json").read_text())
    jsonschema.Draft4Validator.check_schema(schema)
    return jsonschema.Draft4Validator(schema)


def test_the_schema_files_are_what_the_models_generate():
    assert sorted(p.stem for p in SCHEMAS.glob("*.json")) == [
        "NotificationDeadLettered",
        "WebhookEndpointDisabled",
        "WebhookEndpointRecovered",
    ]
    for name in OPERATIONAL_EVENTS:
        assert (SCHEMAS / f"{name}.json").read_text() == schema_text(name), name


def test_each_event_matches_its_documented_schema():
    # Given the platform's three events, as the sender and the alarm function put them
    bus = Bus()
    events = OperationalEvents(bus)
    failing = EndpointHealth(
        "sub-1", consecutive_failures=9, failing_since=SINCE, last_reason="provider_timeout"
    )
    assert events.endpoint_disabled(failing, NOW)
    assert events.endpoint_recovered(failing, NOW)
    letter = DeadLetterEntry(
        "n-1", "provider_unavailable", "503", "exhausted", "{}", 8, "m-1", "webhook", "sub-1"
    )
    assert events.dead_lettered(letter, NOW)
    email = DeadLetterEntry("n-2", "invalid_recipient", "no", "permanent", "{}", 1, "m-2", "email")
    assert events.dead_lettered(email, NOW)
    # Then each validates against its schema file, from the platform's own source
    for event in bus.events:
        assert event["source"] == OPERATIONS_SOURCE
        assert list(validator(str(event["detail-type"])).iter_errors(event)) == []
    disabled, recovered, webhook_letter, email_letter = (e["detail"] for e in bus.events)
    assert disabled == {
        "schema_version": 1,
        "subscription_id": "sub-1",
        "failing_since": "2026-11-23T12:00:00.000+00:00",
        "disabled_at": "2026-11-28T12:00:00.000+00:00",
        "consecutive_failures": 9,
        "last_reason": "provider_timeout",
    }
    # the bytes on the bus keep the field order they always had (schema_version first)
    assert list(email_letter) == [
        "schema_version",
        "notification_id",
        "channel",
        "reason",
        "failure_class",
        "attempts",
        "event_type",
        "subscription_id",
        "dead_lettered_at",
    ]
    assert recovered["recovered_at"] == "2026-11-28T12:00:00.000+00:00"
    assert webhook_letter["subscription_id"] == "sub-1"
    assert webhook_letter["attempts"] == 8
    assert email_letter["subscription_id"] is None  # a person's address is never in it
    assert email_letter["channel"] == "email"


def test_a_broken_event_fails_its_schema_naming_the_field():
    event = {
        "source": OPERATIONS_SOURCE,
        "detail-type": "WebhookEndpointDisabled",
        "detail": {"subscription_id": "s", "disabled_at": "x", "consecutive_failures": 0},
    }
    messages = [e.message for e in validator("WebhookEndpointDisabled").iter_errors(event)]
    assert any("failing_since" in m for m in messages)
    assert any("0 is less than the minimum of 1" in m for m in messages)


def test_a_refused_put_is_reported_not_raised():
    # Given a bus that refuses the put
    refused: list[str] = []
    events = OperationalEvents(Bus(fail=True), on_failure=refused.append)
    # When the sender reports a recovered endpoint
    ok = events.endpoint_recovered(EndpointHealth("sub-1", consecutive_failures=2), NOW)
    # Then it says so and the caller carries on (the health write already happened)
    assert ok is False
    assert refused == ["WebhookEndpointRecovered"]


@pytest.mark.parametrize("name", sorted(OPERATIONAL_EVENTS))
def test_every_field_is_described_or_self_evident(name):
    schema = json.loads((SCHEMAS / f"{name}.json").read_text())
    assert schema["properties"]["detail-type"] == {"enum": [name]}
    assert schema["description"]


def test_a_detail_out_of_its_rules_is_refused_naming_the_field():
    # Given the details' fields as the sender and the alarm function fill them
    disabled = {
        "subscription_id": "sub-1",
        "failing_since": "2026-11-23T12:00:00.000+00:00",
        "disabled_at": "2026-11-28T12:00:00.000+00:00",
        "last_reason": None,
    }
    letter = {
        "notification_id": "n-1",
        "channel": "email",
        "reason": "invalid_recipient",
        "failure_class": "permanent",
        "event_type": None,
        "subscription_id": None,
        "dead_lettered_at": "2026-11-28T12:00:00.000+00:00",
    }
    recovered = {
        "subscription_id": "sub-1",
        "failing_since": None,
        "recovered_at": "2026-11-28T12:00:00.000+00:00",
    }
    models = OPERATIONAL_EVENTS
    # When one breaks a rule its schema states (minimum), it is not built: nothing is put
    refused = []
    for model, fields in (
        ("WebhookEndpointDisabled", {**disabled, "consecutive_failures": 0}),
        ("WebhookEndpointRecovered", {**recovered, "consecutive_failures": 0}),
        ("NotificationDeadLettered", {**letter, "attempts": -1}),
    ):
        with pytest.raises(ValueError, match="greater than or equal to") as error:
            models[model](**fields)
        refused.append(str(error.value))
    assert refused == [
        "consecutive_failures: Input should be greater than or equal to 1",
        "consecutive_failures: Input should be greater than or equal to 1",
        "attempts: Input should be greater than or equal to 0",
    ]
    # Then the edges are accepted, and a field the schema does not know is refused on decode
    assert models["WebhookEndpointRecovered"](**recovered, consecutive_failures=1)
    assert models["NotificationDeadLettered"](**letter, attempts=0).model_dump()["attempts"] == 0
    with pytest.raises(msgspec.ValidationError, match="unknown field `recipient`"):
        models["NotificationDeadLettered"].model_validate(
            {**letter, "attempts": 1, "recipient": "someone@example.com"}
        )
