"""The event catalog: schemas generated from the models, kept in events/schemas/ and in the
template's schema registry, validating the sample events and rejecting broken ones."""

import json
from pathlib import Path

import jsonschema
import pytest
import yaml

from notifications.catalog import CATALOG, CatalogError, json_schema, schema_text, validate_detail
from notifications.fanout import InvalidEvent, parse_event
from tests.samples import EVENTS, load_event

ROOT = Path(__file__).resolve().parents[2]
SCHEMAS = EVENTS / "schemas"
SAMPLES = {
    "UserRegistered": "fan_out/user-registered.json",
    "OrderPlaced": "fan_out/order-placed.json",
    "PaymentReceived": "fan_out/payment-received.json",
}


class _Loader(yaml.SafeLoader):
    """template.yaml with its intrinsic tags read as plain values."""


_Loader.add_multi_constructor("!", lambda loader, suffix, node: None)


def validator(event_type):
    schema = json.loads((SCHEMAS / f"{event_type}.json").read_text())
    jsonschema.Draft4Validator.check_schema(schema)
    return jsonschema.Draft4Validator(schema)


def test_the_schema_files_are_what_the_models_generate():
    # Regenerate with: python -c "from notifyctl.producer import write_schemas; write_schemas()"
    assert sorted(p.stem for p in SCHEMAS.glob("*.json")) == sorted(CATALOG)
    for entry in CATALOG.values():
        assert (SCHEMAS / f"{entry.name}.json").read_text() == schema_text(entry), entry.name


def test_the_templates_registry_holds_the_same_schemas():
    template = yaml.load((ROOT / "template.yaml").read_text(), Loader=_Loader)
    schemas = {
        props["SchemaName"]: props
        for resource in template["Resources"].values()
        if resource["Type"] == "AWS::EventSchemas::Schema"
        for props in [resource["Properties"]]
    }
    assert sorted(schemas) == sorted(CATALOG)
    for name, props in schemas.items():
        assert props["Type"] == "JSONSchemaDraft4"
        assert json.loads(props["Content"]) == json.loads((SCHEMAS / f"{name}.json").read_text())


@pytest.mark.parametrize(("event_type", "sample"), SAMPLES.items())
def test_the_schemas_validate_the_sample_events(event_type, sample):
    assert list(validator(event_type).iter_errors(load_event(sample))) == []


@pytest.mark.parametrize(("event_type", "sample"), SAMPLES.items())
def test_the_schemas_validate_the_put_events_samples_and_catalog_examples(event_type, sample):
    (entry,) = load_event(sample.replace("fan_out/", "put-events/"))
    event = {"source": entry["Source"], "detail-type": entry["DetailType"]}
    event["detail"] = json.loads(entry["Detail"])
    assert list(validator(event_type).iter_errors(event)) == []
    example = {**event, "detail": dict(CATALOG[event_type].example)}
    assert list(validator(event_type).iter_errors(example)) == []


def errors(event_type, event):
    return sorted(
        ".".join(str(p) for p in e.absolute_path) for e in validator(event_type).iter_errors(event)
    )


def test_the_schema_rejects_a_broken_event_naming_the_field():
    # The invalid sample lacks user_id
    broken = load_event("fan_out/order-placed-invalid.json")
    messages = [e.message for e in validator("OrderPlaced").iter_errors(broken)]
    assert messages == ["'user_id' is a required property"]
    # And other breakages: a bad currency, an unknown field, another type, a bad key, version
    event = load_event("fan_out/order-placed.json")
    event["detail"]["total"]["currency"] = "euro"
    assert errors("OrderPlaced", event) == ["detail.total.currency"]
    event = load_event("fan_out/order-placed.json")
    event["detail"]["coupon"] = "X"
    assert errors("OrderPlaced", event) == ["detail"]
    event = load_event("fan_out/order-placed.json") | {"detail-type": "PaymentReceived"}
    assert errors("OrderPlaced", event) == ["detail-type"]
    for bad in ("", "k" * 256):
        event = load_event("fan_out/order-placed.json")
        event["detail"]["idempotency_key"] = bad
        assert errors("OrderPlaced", event) == ["detail.idempotency_key"]
    event = load_event("fan_out/order-placed.json")
    event["detail"]["schema_version"] = 2
    assert errors("OrderPlaced", event) == ["detail.schema_version"]


def test_every_type_accepts_an_idempotency_key_of_1_to_255_characters():
    for name, sample in SAMPLES.items():
        detail = load_event(sample)["detail"]
        for key in ("k", "k" * 255):
            assert validate_detail(name, detail | {"idempotency_key": key}).idempotency_key == key
        for key in ("", "k" * 256):
            with pytest.raises(CatalogError) as caught:
                validate_detail(name, detail | {"idempotency_key": key})
            assert caught.value.reason == "invalid_event"
            assert "detail.idempotency_key" in caught.value.message


def test_an_unknown_version_of_a_routed_type_is_an_unknown_event_type():
    event = load_event("fan_out/order-placed.json")
    event["detail"]["schema_version"] = 2
    with pytest.raises(InvalidEvent) as caught:
        parse_event(event)
    assert caught.value.reason == "unknown_event_type"
    assert "OrderPlaced schema_version 2" in caught.value.message
    event["detail"]["schema_version"] = 1
    assert parse_event(event)[1].schema_version == 1


def test_a_source_outside_the_accepted_ones_is_an_unknown_source():
    event = load_event("fan_out/order-placed.json") | {"source": "com.evil"}
    with pytest.raises(InvalidEvent) as caught:
        parse_event(event, frozenset({"com.example.shop"}))
    assert caught.value.reason == "unknown_source"
    assert parse_event(event | {"source": "com.example.shop"}, frozenset({"com.example.shop"}))


def test_the_schema_is_the_whole_event_with_the_type_fixed():
    schema = json_schema(CATALOG["UserRegistered"])
    assert schema["$schema"] == "http://json-schema.org/draft-04/schema#"
    assert schema["properties"]["detail-type"] == {"type": "string", "enum": ["UserRegistered"]}
    assert schema["x-version"] == 1


# -- the models' rules (msgspec structs since issue 18; the rules and texts are pydantic's) ----


def order(**changes):
    return load_event("fan_out/order-placed.json")["detail"] | changes


def rejected(event_type, detail):
    with pytest.raises(CatalogError) as caught:
        validate_detail(event_type, detail)
    assert caught.value.reason == "invalid_event"
    return caught.value.message


@pytest.mark.parametrize(
    ("detail", "message"),
    [
        (order(order_id="   "), "detail.order_id: String should have at least 1 character"),
        (order(order_id="o" * 129), "detail.order_id: String should have at most 128 characters"),
        (order(user_id=7), "detail.user_id: Input should be a valid string"),
        (
            order(total={"amount": "42.50", "currency": "eur"}),
            "detail.total.currency: String should match pattern '^[A-Z]{3}$'",
        ),
        (
            order(total={"amount": "42.50", "currency": "EURO"}),
            "detail.total.currency: String should match pattern '^[A-Z]{3}$'",
        ),
        (
            order(total={"amount": "-0.01", "currency": "EUR"}),
            "detail.total.amount: Input should be greater than or equal to 0",
        ),
        (
            order(total={"amount": "1.23456", "currency": "EUR"}),
            "detail.total.amount: Decimal input should have no more than 4 decimal places",
        ),
        (
            order(total={"amount": "1234567890123456.789", "currency": "EUR"}),
            "detail.total.amount: Decimal input should have no more than 18 digits in total",
        ),
        (
            order(total={"amount": "123456789012345", "currency": "EUR"}),
            "detail.total.amount: Decimal input should have no more than 14 digits before the "
            "decimal point",
        ),
        (
            order(total={"amount": "NaN", "currency": "EUR"}),
            "detail.total.amount: Input should be a finite number",
        ),
        (
            order(total={"amount": "ten", "currency": "EUR"}),
            "detail.total.amount: Input should be a valid decimal",
        ),
        (
            order(total={"amount": "1", "currency": "EUR", "rate": 1}),
            "detail.total.rate: Extra inputs are not permitted",
        ),
        (order(total="42.50 EUR"), "detail.total: Input should be an object"),
        (
            order(placed_at="2026-11-28T12:05:00"),
            "detail.placed_at: Input should have timezone info",
        ),
        (order(placed_at="yesterday"), "detail.placed_at: Input should be a valid datetime"),
        (order(item_count=0), "detail.item_count: Input should be greater than or equal to 1"),
        (
            order(item_count=10_001),
            "detail.item_count: Input should be less than or equal to 10000",
        ),
        (order(item_count=2.5), "detail.item_count: Input should be a valid integer"),
        (order(coupon="X"), "detail.coupon: Extra inputs are not permitted"),
    ],
)
def test_a_broken_order_is_rejected_naming_the_field_and_the_rule(detail, message):
    assert rejected("OrderPlaced", detail) == message


def test_every_bad_field_is_named_at_once_and_no_value_is_quoted():
    # Given an order broken in five places, one of them inside its total
    detail = order(order_id="", coupon="SECRET-COUPON", placed_at="2026-11-28T12:05:00")
    detail["total"] = {"amount": "-5", "currency": "eur"}
    del detail["user_id"]
    # Then the report names each, in field order, the unknown field last
    assert rejected("OrderPlaced", detail) == (
        "detail.order_id: String should have at least 1 character; "
        "detail.user_id: Field required; "
        "detail.total.amount: Input should be greater than or equal to 0; "
        "detail.total.currency: String should match pattern '^[A-Z]{3}$'; "
        "detail.placed_at: Input should have timezone info; "
        "detail.coupon: Extra inputs are not permitted"
    )


def test_a_user_registered_event_caps_its_strings():
    detail = load_event("fan_out/user-registered.json")["detail"]
    assert rejected("UserRegistered", detail | {"locale": "l" * 4097}) == (
        "detail.locale: String should have at most 4096 characters"
    )
    assert validate_detail("UserRegistered", detail | {"locale": "l" * 4096}).data()["locale"] == (
        "l" * 4096
    )
    assert rejected("UserRegistered", detail | {"email": "a@"}) == (
        "detail.email: String should have at least 3 characters"
    )
    assert rejected("UserRegistered", detail | {"name": "n" * 257}) == (
        "detail.name: String should have at most 256 characters"
    )


def test_identifiers_are_stripped_and_json_is_read_leniently():
    # Given an order with padded ids, a count as a string, a Unix time and a JSON number amount
    detail = order(order_id="  order-1001 ", user_id=" " + "u" * 128 + " ", item_count="3")
    detail |= {"placed_at": 1764331500, "total": {"amount": 42.5, "currency": "EUR"}}
    # When it is validated
    event = validate_detail("OrderPlaced", detail)
    # Then the ids lost their whitespace (and a 128-character id fits once stripped), the
    # count is a number, the time is UTC, and the templates see the amount as a string
    assert event.data() == {
        "order_id": "order-1001",
        "user_id": "u" * 128,
        "total": {"amount": "42.5", "currency": "EUR"},
        "placed_at": "2025-11-28T12:05:00Z",
        "item_count": 3,
    }
    # And an amount with trailing zeros past the fourth place, and one of 18 digits, are fine
    for amount in ("1.23450000", "12345678901234.5678"):
        total = {"amount": amount, "currency": "EUR"}
        assert validate_detail("OrderPlaced", order(total=total)).data()["total"] == total


def test_an_event_built_in_code_is_checked_read_and_frozen():
    from notifications.models import OrderPlaced

    event = OrderPlaced(
        order_id=" order-1 ",
        user_id="user-1",
        total={"amount": "9.90", "currency": "CHF"},
        placed_at="2026-11-28T12:05:00+01:00",
    )
    assert event.order_id == "order-1"
    assert event.data()["total"] == {"amount": "9.90", "currency": "CHF"}
    assert event.data()["placed_at"] == "2026-11-28T12:05:00+01:00"
    with pytest.raises(AttributeError):
        event.order_id = "other"  # type: ignore[misc]
    with pytest.raises(ValueError, match="order_id: String should have at least 1 character"):
        OrderPlaced(
            order_id=" ",
            user_id="user-1",
            total={"amount": "1", "currency": "CHF"},
            placed_at="2026-11-28T12:05:00Z",
        )


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (
            lambda e: e.update({"detail-type": "  "}),
            "detail-type: String should have at least 1 character",
        ),
        (lambda e: e.update(time="2026-11-28T12:05:00"), "time: Input should have timezone info"),
        (lambda e: e.update(detail=[]), "detail: Input should be an object"),
        (lambda e: e.pop("source"), "source: Field required"),
    ],
)
def test_a_broken_envelope_is_malformed_naming_the_field(mutate, message):
    event = load_event("fan_out/order-placed.json")
    mutate(event)
    with pytest.raises(InvalidEvent) as caught:
        parse_event(event)
    assert (caught.value.reason, caught.value.message) == ("malformed_envelope", message)


def test_an_envelope_ignores_eventbridges_other_fields_and_strips_its_ids():
    event = load_event("fan_out/order-placed.json") | {"source": " com.example.shop ", "x": 1}
    envelope, _ = parse_event(event, frozenset({"com.example.shop"}))
    assert (envelope.source, envelope.detail_type) == ("com.example.shop", "OrderPlaced")
