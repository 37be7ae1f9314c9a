"""The typed publish client: PutEvents calls of at most ten entries and 256 KB, only failed
entries resent, one result per event in order."""

import json

import pytest
from botocore.exceptions import ClientError

from notifications.models import OrderPlaced
from notifications.publishing import Publisher, chunks, entry_size
from tests.samples import load_event


class RecordingBus:
    """PutEvents as EventBridge answers it: an entry per entry sent, failing the entries
    whose detail holds a key listed in ``fail`` (``{key: [code per call...]}``)."""

    def __init__(self, fail=None):
        self.calls = []
        self.fail = {k: list(v) for k, v in (fail or {}).items()}

    def put_events(self, *, Entries):
        self.calls.append(Entries)
        answers = []
        for entry in Entries:
            key = json.loads(entry["Detail"]).get("idempotency_key")
            codes = self.fail.get(key)
            if codes:
                answers.append({"ErrorCode": codes.pop(0), "ErrorMessage": "no"})
            else:
                answers.append({"EventId": f"id-{len(self.calls)}-{len(answers)}"})
        failed = sum("ErrorCode" in a for a in answers)
        return {"FailedEntryCount": failed, "Entries": answers}


def order(key, **extra):
    detail = load_event("fan_out/order-placed.json")["detail"] | extra
    return OrderPlaced.model_validate(detail | {"idempotency_key": key})


def publisher(bus):
    return Publisher("notifications-dev", "com.example.shop", events=bus, sleep=lambda s: None)


def test_25_events_go_in_three_calls_of_at_most_ten():
    bus = RecordingBus()
    results = publisher(bus).publish_many([order(f"k-{i}") for i in range(25)])
    assert [len(call) for call in bus.calls] == [10, 10, 5]
    assert [r.idempotency_key for r in results] == [f"k-{i}" for i in range(25)]
    assert all(r.ok and r.tries == 1 for r in results)


def test_a_request_never_exceeds_256_kb():
    # Given entries of 100 KB (today's types stay under 10 KB: every string field is capped
    # at 4096 characters, so the size rule binds only for larger future types)
    entries = [{"Source": "s", "DetailType": "T", "Detail": "x" * 100_000} for _ in range(5)]
    groups = chunks(entries)
    assert groups == [[0, 1], [2, 3], [4]]
    assert all(sum(entry_size(entries[i]) for i in g) <= 256 * 1024 for g in groups)
    # And eleven small ones still split at ten
    assert [len(g) for g in chunks([{"Detail": "x"}] * 11)] == [10, 1]


def test_only_failed_entries_are_resent():
    # Given EventBridge throttling the second entry once and failing the third twice
    bus = RecordingBus(fail={"k-1": ["ThrottlingException"], "k-2": ["InternalFailure"] * 2})
    results = publisher(bus).publish_many([order(f"k-{i}") for i in range(4)])
    keys = [[json.loads(e["Detail"])["idempotency_key"] for e in call] for call in bus.calls]
    assert keys == [["k-0", "k-1", "k-2", "k-3"], ["k-1", "k-2"], ["k-2"]]
    assert [r.tries for r in results] == [1, 2, 3, 1]
    assert all(r.ok for r in results)


def test_a_permanent_entry_error_is_not_resent_and_reported():
    bus = RecordingBus(fail={"k-0": ["MalformedDetail"]})
    first, second = publisher(bus).publish_many([order("k-0"), order("k-1")])
    assert len(bus.calls) == 1
    assert (first.ok, first.error_code, first.tries) == (False, "MalformedDetail", 1)
    assert second.ok


def test_an_entry_still_failing_after_the_tries_is_reported_with_its_last_error():
    bus = RecordingBus(fail={"k-0": ["ThrottlingException"] * 5})
    (result,) = publisher(bus).publish_many([order("k-0")])
    assert len(bus.calls) == 3
    assert (result.ok, result.error_code, result.tries) == (False, "ThrottlingException", 3)


def test_a_refused_request_fails_each_of_its_entries():
    class Refusing:
        def put_events(self, *, Entries):
            raise ClientError({"Error": {"Code": "AccessDeniedException", "Message": "no"}}, "Put")

    results = publisher(Refusing()).publish_many([order("a"), order("b")])
    assert [(r.ok, r.error_code) for r in results] == [(False, "AccessDeniedException")] * 2


def test_publish_sets_the_key_and_the_catalog_type():
    bus = RecordingBus()
    result = publisher(bus).publish(order(None), idempotency_key="order-1001-placed")
    ((entry,),) = bus.calls
    assert entry["DetailType"] == "OrderPlaced"
    assert entry["Source"] == "com.example.shop"
    assert entry["EventBusName"] == "notifications-dev"
    detail = json.loads(entry["Detail"])
    assert detail["idempotency_key"] == "order-1001-placed"
    assert detail["schema_version"] == 1
    assert result.ok
    assert result.idempotency_key == "order-1001-placed"
    with pytest.raises(ValueError, match="idempotency_key"):
        publisher(bus).publish(order(None), idempotency_key="")


def test_entry_size_follows_the_put_events_rule():
    entry = {"Source": "ab", "DetailType": "cd", "Detail": '{"x":"é"}', "Resources": ["r1"]}
    assert entry_size(entry) == 2 + 2 + 10 + 2
    assert entry_size(entry | {"Time": "2026-11-28T12:00:00Z"}) == 16 + 14
    assert chunks([{"Detail": "x" * 200_000}] * 3) == [[0], [1], [2]]
