"""Bad input: a clear error, nothing lost, the batch carries on.

Hypothesis mutates valid EventBridge events of every type (missing and extra fields, wrong
types, huge strings, odd Unicode, invalid timestamps and currencies) and hands them to the real
fan-out function; it then builds sender batches mixing malformed SQS bodies with good ones.
One stack serves every example of a test; each example looks only at what it added.
"""

from __future__ import annotations

import copy
import json
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from notifications.models import Channel
from tests.properties import examples
from tests.reliability.helpers import (
    drain_messages,
    enqueue,
    ledger_items,
    sends_per_recipient,
    set_mapping,
    welcome,
)
from tests.samples import load_event

EVENT_FILES = {
    "UserRegistered": "fan_out/user-registered.json",
    "OrderPlaced": "fan_out/order-placed.json",
    "PaymentReceived": "fan_out/payment-received.json",
}
REQUIRED = {
    "UserRegistered": ["user_id", "email", "name", "registered_at"],
    "OrderPlaced": ["order_id", "user_id", "total", "placed_at"],
    "PaymentReceived": ["payment_id", "order_id", "user_id", "amount", "received_at"],
}
STRINGS = {
    "UserRegistered": ["user_id", "email", "name"],
    "OrderPlaced": ["order_id", "user_id"],
    "PaymentReceived": ["payment_id", "order_id", "user_id"],
}
TIMESTAMP = {
    "UserRegistered": "registered_at",
    "OrderPlaced": "placed_at",
    "PaymentReceived": "received_at",
}
MONEY = {"OrderPlaced": "total", "PaymentReceived": "amount"}
ENVELOPE_REQUIRED = ["id", "detail-type", "source", "time", "detail"]

ODD_UNICODE = st.text(
    alphabet=st.characters(
        codec="utf-8",
        categories=("Lu", "Ll", "Lo", "Mn", "Sm", "So", "Zs", "Cf", "Cc", "Cs", "Co"),
        exclude_characters="\x00",
    ),
    min_size=1,
    max_size=40,
)
NOT_A_SCALAR = st.one_of(
    st.lists(st.integers(), max_size=3),
    st.dictionaries(st.text(max_size=5), st.integers(), max_size=2),
)
BAD_TIMESTAMPS = st.sampled_from(
    ["2026-13-45T00:00:00Z", "yesterday", "2026-11-28T12:00:00", "", "2026-11-28 25:61", "T"]
)
BAD_CURRENCIES = st.one_of(
    st.sampled_from(["eur", "EURO", "", "€", "E1R", "US D", "12"]),
    ODD_UNICODE.filter(lambda s: not (len(s) == 3 and s.isascii() and s.isupper() and s.isalpha())),
)


@st.composite
def hostile_events(draw: st.DrawFn) -> tuple[dict[str, Any], str | None, bool]:
    """(event, the field a rejection must name, whether it must be rejected)."""
    event_type = draw(st.sampled_from(sorted(EVENT_FILES)))
    event = load_event(EVENT_FILES[event_type])
    event["id"] = f"fuzz-{draw(st.uuids())}"
    detail = event["detail"]
    kind = draw(
        st.sampled_from(
            [
                "missing",
                "extra",
                "wrong_type",
                "huge",
                "unicode",
                "timestamp",
                "currency",
                "envelope_missing",
                "unknown_type",
                "detail_not_object",
            ]
        )
    )
    if kind == "missing":
        name = draw(st.sampled_from(REQUIRED[event_type]))
        del detail[name]
        return event, f"detail.{name}", True
    if kind == "extra":
        name = draw(st.from_regex(r"\A[a-z_]{1,20}\Z")).strip() or "x"
        if name in detail:
            name = f"extra_{name}"
        detail[name] = draw(st.one_of(st.integers(), ODD_UNICODE, st.none()))
        return event, f"detail.{name}", True
    if kind == "wrong_type":
        name = draw(st.sampled_from(REQUIRED[event_type]))
        detail[name] = draw(NOT_A_SCALAR) if name not in MONEY.values() else draw(st.integers())
        return event, f"detail.{name}", True
    if kind == "huge":
        name = draw(st.sampled_from(STRINGS[event_type]))
        detail[name] = draw(st.sampled_from(["x", "é", "\U0001f600", "<script>"])) * draw(
            st.integers(min_value=5_000, max_value=60_000)
        )
        return event, f"detail.{name}", True
    if kind == "unicode":
        # Valid or not depending on the field's rules: must never crash, and a rejection
        # must name the field.
        name = draw(st.sampled_from(STRINGS[event_type]))
        detail[name] = draw(ODD_UNICODE)
        return event, f"detail.{name}", False
    if kind == "timestamp":
        name = TIMESTAMP[event_type]
        detail[name] = draw(BAD_TIMESTAMPS)
        return event, f"detail.{name}", True
    if kind == "currency":
        if event_type not in MONEY:
            event["time"] = draw(BAD_TIMESTAMPS)
            return event, "time", True
        detail[MONEY[event_type]]["currency"] = draw(BAD_CURRENCIES)
        return event, f"detail.{MONEY[event_type]}.currency", True
    if kind == "envelope_missing":
        name = draw(st.sampled_from(ENVELOPE_REQUIRED))
        del event[name]
        return event, name, True
    if kind == "unknown_type":
        event["detail-type"] = draw(ODD_UNICODE.filter(lambda s: s.strip() not in EVENT_FILES))
        return event, "detail-type", True
    event["detail"] = draw(st.one_of(st.text(max_size=20), st.integers(), st.lists(st.none())))
    return event, "detail", True


def new_dead_letters(stack, logical_id: str) -> list[dict[str, Any]]:
    messages = drain_messages(stack, logical_id)
    for message in messages:  # consumed: the next example sees only its own
        stack.clients.sqs.delete_message(
            QueueUrl=stack.queue_url(logical_id), ReceiptHandle=message["ReceiptHandle"]
        )
    return messages


def test_the_fan_out_survives_hostile_events_and_names_the_field(stack):
    fan_out = stack.function("FanOutFunction")
    seen: dict[str, int] = {}

    @settings(
        max_examples=examples(60),
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    @given(case=hostile_events())
    def check(case: tuple[dict[str, Any], str | None, bool]) -> None:
        event, field, must_reject = case
        # When the fan-out function gets the event
        invocation = fan_out.invoke(copy.deepcopy(event))

        # Then it never fails with an uncaught exception
        assert invocation.ok, invocation.error
        rejected = new_dead_letters(stack, "EventsDLQ")
        if invocation.result["rejected_reason"] is None:
            assert not must_reject, f"accepted an invalid event ({field})"
            assert rejected == []
            seen["accepted"] = seen.get("accepted", 0) + 1
            return
        # And a rejection is one EventsDLQ message: the event, a reason, an error naming the field
        (message,) = rejected
        attributes = {k: v["StringValue"] for k, v in message["MessageAttributes"].items()}
        assert attributes["reason"] == invocation.result["rejected_reason"]
        assert attributes["reason"] in {"malformed_envelope", "unknown_event_type", "invalid_event"}
        assert field in attributes["error"], (field, attributes["error"])
        assert json.loads(message["Body"]) == json.loads(json.dumps(event, default=str))
        seen[attributes["reason"]] = seen.get(attributes["reason"], 0) + 1

    check()
    # The fuzzing reached every kind of rejection
    assert {"malformed_envelope", "unknown_event_type", "invalid_event"} <= set(seen), seen


MALFORMED_BODIES = st.one_of(
    st.just("{not json"),
    st.text(max_size=50).filter(lambda s: not s.strip().startswith(("{", "[")) or True),
    st.just("[]"),
    st.just("null"),
    st.builds(
        lambda n: welcome(n).model_dump_json().replace('"channel":"email"', '"channel":"pigeon"'),
        st.integers(min_value=10_000, max_value=10_999),
    ),
    st.builds(
        lambda n, drop: json.dumps(
            {k: v for k, v in json.loads(welcome(n).model_dump_json()).items() if k != drop}
        ),
        st.integers(min_value=11_000, max_value=11_999),
        st.sampled_from(["notification_id", "recipient", "template_id", "event_id", "occurred_at"]),
    ),
    st.builds(
        lambda n, size: (
            welcome(n)
            .model_dump_json()
            .replace(
                f'"recipient":"user{n}@example.com"', '"recipient":"' + "a" * size + '@example.com"'
            )
        ),
        st.integers(min_value=12_000, max_value=12_999),
        st.integers(min_value=3_000, max_value=200_000),
    ),
)


def test_malformed_sqs_bodies_are_dead_lettered_once_and_the_batch_carries_on(stack):
    # Given the alarm function paused, so that NotificationsDLQ can be read as the sender left it
    set_mapping(stack, "DlqAlarmFunction", "NotificationsDLQ", enabled=False)
    url = stack.queue_url("EmailQueue")
    counter = iter(range(1_000_000))

    @settings(
        max_examples=examples(12),
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    @given(bad=st.lists(MALFORMED_BODIES, min_size=1, max_size=5), good=st.integers(1, 5))
    def check(bad: list[str], good: int) -> None:
        # Given one batch of malformed bodies and good requests on the email queue
        requests = [welcome(100 + next(counter)) for _ in range(good)]
        for body in bad:
            stack.clients.sqs.send_message(QueueUrl=url, MessageBody=body)
        enqueue(stack, requests)

        # When the sender handles the batch, once
        assert stack.pump() == len(bad) + good

        # Then every malformed body is in the DLQ after one attempt, with its reason
        dead = new_dead_letters(stack, "NotificationsDLQ")
        assert sorted(m["Body"] for m in dead) == sorted(bad)
        for message in dead:
            attributes = {k: v["StringValue"] for k, v in message["MessageAttributes"].items()}
            assert attributes["reason"] == "malformed_message"
            assert attributes["attempts"] == "1"
            assert attributes["failure_class"] == "permanent"
            assert attributes["error"]
        # And every good request in the same batch was delivered, once
        items = ledger_items(stack)
        assert all(items[r.notification_id]["status"] == "SENT" for r in requests)
        sends = sends_per_recipient(stack)
        assert all(sends[r.recipient] == 1 for r in requests)

    check()


def test_a_mixed_channel_batch_with_unreachable_recipients_carries_on(stack):
    # Given SMS requests with numbers no carrier can reach, among good ones
    set_mapping(stack, "DlqAlarmFunction", "NotificationsDLQ", enabled=False)
    good = [welcome(n, Channel.SMS) for n in range(3)]
    bad = [
        welcome(900, Channel.SMS).model_copy(update={"recipient": r})
        for r in ("+1", "0044 20 7946 0958", "+99999999999999999", "+1415555\u0661234")
    ]
    enqueue(stack, good + bad)

    # When the sender handles the batch
    stack.pump()

    # Then each bad one is dead-lettered as invalid_recipient after one attempt; the good sent
    dead = new_dead_letters(stack, "NotificationsDLQ")
    assert sorted(m["MessageAttributes"]["reason"]["StringValue"] for m in dead) == [
        "invalid_recipient"
    ] * len(bad)
    assert set(sends_per_recipient(stack).values()) == {1}
    assert set(sends_per_recipient(stack)) == {r.recipient for r in good}
