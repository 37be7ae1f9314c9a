"""The whole application on the local stack: events published to the bus, drained to the end."""

import os
import re
import subprocess
import sys
import threading
import time
from pathlib import Path

import boto3
import pytest

from notifications.adapters.ledger import DynamoLedger
from notifyctl.demo import original_events, run_demo
from tests.conftest import START
from tests.integration.test_sender_backoff import all_messages, subscribe_alerts
from tests.observe import sent_emails

ROOT = Path(__file__).resolve().parents[2]
NOTIFYCTL = [sys.executable, "-m", "notifyctl"]


def ledger(stack):
    return list(DynamoLedger(stack.physical_id("LedgerTable")).scan())


def test_the_original_events_are_all_delivered(stack):
    # Given healthy providers, When Alice registers, then orders and pays
    registered, *purchases = original_events(START)
    stack.publish(*registered, source="com.example.shop")
    stack.drain()  # her registration stores her address before the order arrives
    for event_type, detail in purchases:
        stack.publish(event_type, detail, source="com.example.shop")
    stack.drain()

    # Then SES holds her welcome, order confirmation and receipt, and the ledger says SENT
    assert sorted(e.subject for e in sent_emails()) == [
        "Order #order-1001 confirmed",
        "Payment received for order #order-1001",
        "Welcome to MyApp, Alice!",
    ]
    assert all(e.destinations == ("alice@example.com",) for e in sent_emails())
    assert [r["status"] for r in ledger(stack)] == ["SENT"] * 3


def test_a_failing_provider_dead_letters_everything_after_max_attempts(deploy_stack):
    # Given a provider that always fails
    stack = deploy_stack(FailureRate=1)
    inbox = subscribe_alerts(stack)
    registered, *purchases = original_events(START)
    stack.publish(*registered, source="com.example.shop")
    stack.drain()
    for event_type, detail in purchases:
        stack.publish(event_type, detail, source="com.example.shop")

    # When the pipeline drains
    stack.drain()

    # Then every notification is DEAD_LETTERED after exactly MaxAttempts attempts, nothing was
    # sent, the alarm function recorded each, and admins were alerted
    records = ledger(stack)
    assert len(records) == 3
    assert {r["status"] for r in records} == {"DEAD_LETTERED"}
    assert [r["attempts"] for r in records] == [3, 3, 3]
    assert all(len(r["errors"]) == 3 for r in records)
    assert sent_emails() == []
    alerts = all_messages(stack, inbox)
    assert 1 <= len(alerts) <= 3  # one per alarm batch
    assert sum(int(re.search(r"(\d+) notification", a["Body"]).group(1)) for a in alerts) == 3


def test_a_few_hundred_notifications_at_failure_rate_0_3_lose_nothing(moto_account, clock):
    # Given the demo's scenario on a controlled clock (60 events, 165 notifications: the
    # 2,000-notification chaos run is in make soak)
    result = run_demo(ROOT / "template.yaml", events=60, failure_rate=0.3, seed=11, clock=clock)

    # Then at quiescence every notification is SENT or DEAD_LETTERED, none in flight
    figures = result.dashboard
    assert figures.settled > 150
    assert figures.in_flight == 0
    assert figures.delivered + figures.dead_lettered == figures.settled
    assert figures.dead_lettered > 0  # 0.3 ** 3 of a few hundred
    # And the providers accepted exactly as many as the ledger calls SENT: no duplicate sends
    assert sum(result.provider_deliveries.values()) == figures.delivered
    assert result.webhook_rejected == 0
    # And the malformed event is among the recent failures with its reason
    assert any(f.reason == "invalid_event" for f in figures.recent_failures)


def env_for_subprocess():
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_ENDPOINT")}
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT / "layers" / "notifications"), str(ROOT)])
    return env


def test_server_mode_serves_the_stack_over_http():
    # Given `notifyctl local serve` on a free port
    process = subprocess.Popen(
        [*NOTIFYCTL, "local", "serve", "--port", "0"],
        cwd=ROOT,
        env=env_for_subprocess(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        endpoint = None
        for line in process.stdout:
            match = re.search(r"Endpoint: (http://127\.0\.0\.1:\d+)", line)
            if match:
                endpoint = match.group(1)
                break
        assert endpoint, "serve never printed its endpoint"
        printed: list[str] = []  # what serve prints from here on, read as it comes
        threading.Thread(target=lambda: printed.extend(process.stdout), daemon=True).start()
        session = boto3.Session(
            aws_access_key_id="testing", aws_secret_access_key="testing", region_name="us-east-1"
        )
        events = session.client("events", endpoint_url=endpoint)
        cloudformation = session.client("cloudformation", endpoint_url=endpoint)
        dynamodb = session.resource("dynamodb", endpoint_url=endpoint)

        # When a boto3 client publishes Alice's registration over HTTP
        entries = [
            {
                "Source": "com.example.shop",
                "DetailType": "UserRegistered",
                "Detail": '{"user_id": "user-9", "email": "zoe@example.com", "name": "Zoé",'
                ' "registered_at": "2026-11-28T12:00:00Z"}',
                "EventBusName": "notifications-dev",
            }
        ]
        assert events.put_events(Entries=entries)["FailedEntryCount"] == 0

        # Then the ledger, read over HTTP, shows the welcome email SENT (bounded wait: the
        # runtime polls in the background)
        outputs = {
            o["OutputKey"]: o["OutputValue"]
            for o in cloudformation.describe_stacks(StackName="notifications-local")["Stacks"][0][
                "Outputs"
            ]
        }
        table = dynamodb.Table(outputs["LedgerTableName"])
        statuses = []
        for _ in range(150):
            statuses = [i["status"] for i in table.scan()["Items"]]
            if statuses == ["SENT"] and any("email: 1 sent" in line for line in printed):
                break
            time.sleep(0.2)
        assert statuses == ["SENT"]
        # And serve logged the delivery: one line per channel and round
        assert any(re.search(r"^\d\d:\d\d:\d\d email: 1 sent$", line) for line in printed), printed
    finally:
        process.terminate()
        process.wait(timeout=20)


@pytest.mark.slow
@pytest.mark.parametrize(
    "mode",
    [pytest.param(["--in-process"], marks=pytest.mark.soak), []],  # process: what make demo runs
    ids=["in-process", "process"],
)
def test_the_demo_command_exits_0_and_prints_the_dashboard(mode):
    completed = subprocess.run(
        [*NOTIFYCTL, "local", "demo", "--events", "20", *mode],
        cwd=ROOT,
        env=env_for_subprocess(),
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr[-2000:]
    for heading in (
        "Notification Dashboard",
        "Delivered:",
        "Success rate:",
        "By Channel",
        "Recent Failures",
    ):
        assert heading in completed.stdout
