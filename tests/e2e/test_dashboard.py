"""The dashboard's figures against a run whose truth is known."""

import json

import pytest
from typer.testing import CliRunner

from notifications.adapters.sqs import SqsQueues
from notifications.channels.email import SesEmailProvider
from notifications.errors import RetryableError
from notifyctl.cli import app
from notifyctl.dashboard import compute, percentile
from tests.samples import welcome

SENT, DEAD, RETRIED = 6, 2, 3  # N sent first time, M dead-lettered, K sent on the second try


@pytest.fixture
def known_run(deploy_stack, monkeypatch):
    stack = deploy_stack(BreakerFailureThreshold=1000)
    real_send = SesEmailProvider.send
    failures: dict[str, int] = {}

    def flaky(self, request, message):
        n = int(request.recipient.removeprefix("user").split("@")[0])
        failures[request.recipient] = failures.get(request.recipient, 0) + 1
        if n >= SENT + RETRIED or (n >= SENT and failures[request.recipient] == 1):
            raise RetryableError("provider_timeout", "SES did not answer")
        return real_send(self, request, message)

    monkeypatch.setattr(SesEmailProvider, "send", flaky)
    total = SENT + RETRIED + DEAD
    SqsQueues().enqueue(stack.queue_url("EmailQueue"), [welcome(n) for n in range(total)])
    stack.drain()
    return stack


def test_dashboard_json_matches_the_known_run(known_run):
    result = CliRunner().invoke(app, ["--stack-name", "notifications-local", "dashboard", "--json"])
    assert result.exit_code == 0, result.output
    figures = json.loads(result.output)

    total = SENT + RETRIED + DEAD
    assert figures["settled"] == 11
    assert figures["delivered"] == 9
    assert figures["dead_lettered"] == 2
    assert figures["in_dlq"] == DEAD
    assert figures["in_flight"] == 0
    assert figures["queued"] == 0
    assert figures["success_rate"] == pytest.approx(9 / 11)
    # retries: one for each of K, MaxAttempts - 1 = 2 for each of M
    assert figures["avg_retries"] == pytest.approx((RETRIED * 1 + DEAD * 2) / total)
    (email,) = figures["by_channel"]
    assert (email["channel"], email["settled"], email["delivered"], email["dead_lettered"]) == (
        "email",
        total,
        SENT + RETRIED,
        DEAD,
    )
    assert figures["dead_letters_by_reason"] == {"provider_timeout": DEAD}
    # And the CloudWatch metrics the functions emitted (EMF) agree with the ledger
    metrics = figures["metrics"]
    assert metrics["Sent"] == {"email": SENT + RETRIED}
    assert metrics["DeadLettered"] == {"email": DEAD}
    assert metrics["Retried"] == {"email": RETRIED + DEAD * 2}
    assert {f["subject"] for f in figures["recent_failures"]} == {
        "u***@example.com"
    }  # masked, never the address


def test_dashboard_table_shows_the_original_layout(known_run):
    result = CliRunner().invoke(app, ["--stack-name", "notifications-local", "dashboard"])
    assert result.exit_code == 0, result.output
    for label in (
        "Delivered:",
        "Dead-lettered:",
        "Settled:",
        "Success rate:",
        "In DLQ:",
        "Avg retries:",
        "By Channel",
        "Dead-lettered by Reason",
    ):
        assert label in result.output
    assert "81.8%" in result.output  # 9 of 11
    assert "Total Sent" not in result.output
    assert "Suppressed by Reason" not in result.output  # nothing suppressed: no empty table


def test_percentiles_and_since_window():
    records = [
        {
            "notification_id": str(i),
            "status": "SENT",
            "channel": "sms",
            "attempts": 1,
            "latency_ms": ms,
            "updated_at": f"2026-11-28T12:00:{i:02d}.000+00:00",
        }
        for i, ms in enumerate([100, 200, 300, 400, 1000])
    ]
    figures = compute(records)
    (sms,) = figures.by_channel
    assert sms.latency_ms == {"p50": 300.0, "p95": 1000.0, "p99": 1000.0}
    assert percentile([], 50) is None
    from datetime import UTC, datetime

    recent = compute(records, since=datetime(2026, 11, 28, 12, 0, 3, tzinfo=UTC))
    assert recent.settled == 2


def test_notifications_waiting_in_their_queues_are_counted_as_queued(stack):
    # Given three requests enqueued and not yet received by the sender (no ledger record yet)
    SqsQueues().enqueue(stack.queue_url("EmailQueue"), [welcome(n) for n in range(3)])

    # When the dashboard is asked
    result = CliRunner().invoke(app, ["--stack-name", "notifications-local", "dashboard", "--json"])

    # Then they show as queued, not as in flight or settled
    assert result.exit_code == 0, result.output
    figures = json.loads(result.output)
    assert (figures["queued"], figures["in_flight"], figures["settled"]) == (3, 0, 0)


def test_retrying_notifications_show_their_next_attempt_soonest_first():
    # Given two notifications retrying (a webhook endpoint on its schedule, an email) and one
    # kept while its webhook endpoint is disabled
    records = [
        {
            "notification_id": "n-hook",
            "status": "RETRYING",
            "channel": "webhook",
            "recipient_masked": "sub-erp",
            "attempts": 3,
            "last_reason": "provider_unavailable",
            "next_attempt_at": "2026-11-28T12:30:00.000+00:00",
        },
        {
            "notification_id": "n-mail",
            "status": "RETRYING",
            "channel": "email",
            "recipient_masked": "a***@example.com",
            "attempts": 1,
            "last_reason": "provider_timeout",
            "next_attempt_at": "2026-11-28T12:00:01.000+00:00",
        },
        {"notification_id": "n-kept", "status": "ENDPOINT_DISABLED", "channel": "webhook"},
    ]
    # When the dashboard is computed
    figures = compute(records)
    # Then it lists them by next attempt, and counts the kept one
    assert [(r.ident, r.next_attempt_at, r.attempts) for r in figures.retrying] == [
        ("n-mail", "2026-11-28T12:00:01.000+00:00", 1),
        ("n-hook", "2026-11-28T12:30:00.000+00:00", 3),
    ]
    assert figures.retrying[1].subject == "sub-erp"
    assert figures.kept == 1
    assert figures.in_flight == 2
