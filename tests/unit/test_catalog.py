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
