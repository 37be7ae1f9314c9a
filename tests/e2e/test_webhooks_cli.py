"""Webhook subscriptions managed with notifyctl, delivered by the local stack, verified by the
`standardwebhooks` package (a library this project did not write)."""

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError
from typer.testing import CliRunner

from notifications.adapters.preferences import DynamoPreferencesStore
from notifications.preferences import Preferences
from notifyctl.cli import app
from tests.samples import load_event


@pytest.fixture
def receiver():
    deliveries = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):
            body = self.rfile.read(int(self.headers["Content-Length"]))
            deliveries.append(({k.lower(): v for k, v in self.headers.items()}, body))
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/hooks", deliveries
    server.shutdown()


def notifyctl(*args):
    result = CliRunner().invoke(app, ["--stack-name", "notifications-local", *args])
    assert result.exit_code == 0, result.output
    return result.output


def verifies(secret, delivery):
    headers, body = delivery
    try:
        Webhook(secret).verify(body, headers)
    except WebhookVerificationError:
        return False
    return True


def test_add_deliver_rotate_finish_remove(deploy_stack, receiver, clock):
    url, deliveries = receiver
    stack = deploy_stack(WebhookAllowLoopback="true")
    DynamoPreferencesStore(stack.physical_id("PreferencesTable")).put(
        Preferences(user_id="user-123", email="alice@example.com")
    )
    fan_out = stack.function("FanOutFunction")

    # Given a subscription added with the CLI
    output = notifyctl("webhooks", "add", url, "--event-type", "OrderPlaced", "--id", "erp")
    old_secret = output.split("signing secret (shown once): ")[1].split()[0]
    assert old_secret.startswith("whsec_")
    listed = json.loads(notifyctl("webhooks", "list", "--json"))
    assert [(s["subscription_id"], s["event_types"]) for s in listed] == [("erp", ["OrderPlaced"])]

    # When an order is placed, Then the receiver gets a delivery signed with that secret
    fan_out.invoke(load_event("fan_out/order-placed.json"))
    stack.drain()
    assert len(deliveries) == 1
    assert verifies(old_secret, deliveries[0])
    assert json.loads(deliveries[0][1])["data"]["order_id"] == "order-1001"

    # When the secret is rotated, Then the next delivery verifies with the old and the new one
    new_secret = notifyctl("webhooks", "rotate-secret", "erp").split("(shown once): ")[1].split()[0]
    clock.advance(120)  # past the sender's 60 s secret cache
    event = load_event("fan_out/order-placed.json") | {"id": "second-order-event"}
    fan_out.invoke(event)
    stack.drain()
    assert len(deliveries) == 2
    assert verifies(old_secret, deliveries[1])
    assert verifies(new_secret, deliveries[1])

    # When the rotation is finished, Then only the new secret verifies
    notifyctl("webhooks", "rotate-secret", "erp", "--finish")
    clock.advance(120)
    fan_out.invoke(load_event("fan_out/order-placed.json") | {"id": "third-order-event"})
    stack.drain()
    assert verifies(new_secret, deliveries[2])
    assert not verifies(old_secret, deliveries[2])

    # When removed, Then it is gone
    notifyctl("webhooks", "remove", "erp")
    assert json.loads(notifyctl("webhooks", "list", "--json")) == []


def test_add_refuses_plain_http_to_other_hosts(stack):
    result = CliRunner().invoke(
        app,
        [
            "--stack-name",
            "notifications-local",
            "webhooks",
            "add",
            "http://example.com/h",
            "--event-type",
            "OrderPlaced",
        ],
    )
    assert result.exit_code == 2
    assert "https://" in result.output
