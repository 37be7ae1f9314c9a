"""Operators' dead-letter management through notifyctl, against the local stack."""

import json

import pytest
from typer.testing import CliRunner

from notifications.adapters.ledger import DynamoLedger
from notifications.channels.email import SesEmailProvider
from notifications.errors import RetryableError
from notifyctl.cli import app
from tests.observe import sent_emails
from tests.samples import load_event, welcome

runner = CliRunner()


def notifyctl(*args):
    return runner.invoke(app, ["--stack-name", "notifications-local", *args])


@pytest.fixture
def stack(deploy_stack):
    # A breaker that never opens, so the outage below dead-letters instead of pausing email.
    return deploy_stack(BreakerFailureThreshold=1000)


@pytest.fixture
def dead_letters(stack, monkeypatch):
    """Three welcome emails dead-lettered by an SES outage that has since ended."""

    def timeout(self, request, message):
        raise RetryableError("provider_timeout", "SES did not answer")

    with monkeypatch.context() as outage:
        outage.setattr(SesEmailProvider, "send", timeout)
        from notifications.adapters.sqs import SqsQueues

        SqsQueues().enqueue(stack.queue_url("EmailQueue"), [welcome(n) for n in range(3)])
        stack.drain()
    ledger = DynamoLedger(stack.physical_id("LedgerTable"))
    assert {r["status"] for r in ledger.scan()} == {"DEAD_LETTERED"}
    assert sent_emails() == []
    return [welcome(n).notification_id for n in range(3)]


def test_list_and_show_a_dead_letter(stack, dead_letters):
    listed = notifyctl("dlq", "list", "--channel", "email", "--json")
    assert listed.exit_code == 0, listed.output
    records = json.loads(listed.output)
    assert sorted(r["notification_id"] for r in records) == sorted(dead_letters)
    assert {r["dead_letter_reason"] for r in records} == {"provider_timeout"}
    assert json.loads(notifyctl("dlq", "list", "--reason", "other", "--json").output) == []

    shown = notifyctl("dlq", "show", dead_letters[0])
    record = json.loads(shown.output)
    assert record["attempts"] == 3
    assert [e["reason"] for e in record["errors"]] == ["provider_timeout"] * 3
    assert json.loads(record["payload"])["notification_id"] == dead_letters[0]


def test_redrive_with_a_healthy_provider_delivers_exactly_once(stack, dead_letters):
    # When the operator redrives every dead letter (twice, by mistake)
    first = notifyctl("dlq", "redrive", "--all")
    second = notifyctl("dlq", "redrive", *dead_letters)
    stack.drain()

    # Then each notification is delivered once, with the same id, and the record says so
    assert first.exit_code == 0, first.output
    assert "3 of 3 redriven" in first.output
    assert second.exit_code == 1  # nothing left to redrive
    assert sorted(e.destinations[0] for e in sent_emails()) == [
        f"user{n}@example.com" for n in range(3)
    ]
    ledger = DynamoLedger(stack.physical_id("LedgerTable"))
    for notification_id in dead_letters:
        record = ledger.get(notification_id)
        assert record["status"] == "SENT"
        assert record["redrive_count"] == 1
        assert record["attempts"] == 1  # a fresh budget, not the old three
        assert [a["action"] for a in record["audit"]] == ["redrive"]


def test_purge_needs_yes_and_keeps_an_audit_entry(stack, dead_letters):
    refused = notifyctl("dlq", "purge", dead_letters[0])
    assert refused.exit_code == 2
    assert "--yes" in refused.output

    purged = notifyctl("dlq", "purge", dead_letters[0], "--yes")
    assert "1 of 1 purged" in purged.output
    record = DynamoLedger(stack.physical_id("LedgerTable")).get(dead_letters[0])
    assert record["status"] == "PURGED"
    assert "payload" not in record
    assert record["audit"][0]["action"] == "purge"
    remaining = json.loads(notifyctl("dlq", "list", "--json").output)
    assert len(remaining) == 2


def test_events_dlq_list_replay_and_purge(stack, clock):
    # Given a rejected event in EventsDLQ
    stack.function("FanOutFunction").invoke(load_event("fan_out/order-placed-invalid.json"))
    stack.function("FanOutFunction").invoke(load_event("fan_out/order-placed-invalid.json"))

    listed = json.loads(notifyctl("events-dlq", "list", "--json").output)
    assert [(e["event_type"], e["reason"]) for e in listed] == [
        ("OrderPlaced", "invalid_event")
    ] * 2
    assert "detail.user_id" in listed[0]["error"]
    clock.advance(0.01)  # moto shows a released message only once time has moved past it

    # When one is replayed, it goes back on the bus (and, still invalid, is rejected again)
    replayed = notifyctl("events-dlq", "replay", listed[0]["message_id"])
    assert "1 of 1 replayed" in replayed.output
    stack.drain()
    clock.advance(0.01)
    assert len(json.loads(notifyctl("events-dlq", "list", "--json").output)) == 2
    clock.advance(0.01)

    # When all are purged, the queue is empty and the ledger keeps an audit record of each
    assert notifyctl("events-dlq", "purge", "--all").exit_code == 2
    purged = notifyctl("events-dlq", "purge", "--all", "--yes")
    assert "2 event(s) purged" in purged.output
    assert json.loads(notifyctl("events-dlq", "list", "--json").output) == []
    audits = [
        r for r in DynamoLedger(stack.physical_id("LedgerTable")).scan() if r.get("kind") == "event"
    ]
    assert len(audits) == 2
