"""The preference page in a real browser: headless Chromium (Debian's package) driven by
Playwright opens the link of a real email the local stack rendered and sent through moto's
SES, changes a preference, saves, and the next event respects it; a forged link shows the
error page; and a mailbox provider's RFC 8058 POST over HTTP unsubscribes.

The function is served as its function URL on 127.0.0.1 (``notifyctl.local.function_urls``,
as ``notifyctl local serve`` does). One browser for the whole module. Screenshots go to
``$TEST_ARTIFACTS`` (default ``build/test-artifacts``); ``make screenshots`` writes the one in
docs/ through ``PREFERENCE_SCREENSHOT``.
"""

from __future__ import annotations

import os
import shutil
import threading
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from notifications.adapters.ledger import DynamoLedger
from notifications.adapters.preferences import DynamoPreferencesStore
from notifications.preferences import Preferences
from notifyctl.local.function_urls import serve_function_urls
from tests.observe import sent_emails, sms_messages
from tests.samples import load_event

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = Path(os.environ.get("TEST_ARTIFACTS", ROOT / "build" / "test-artifacts"))
# Flags for a headless Chromium run as root in a container, with nothing phoning home.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
]


def chromium_path() -> str | None:
    configured = os.environ.get("CHROMIUM")
    if configured:
        return configured
    return next(
        (p for p in map(shutil.which, ("chromium", "chromium-browser", "google-chrome")) if p),
        None,
    )


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    executable = chromium_path()
    sync_api = pytest.importorskip("playwright.sync_api", reason="pip install -e '.[dev]'")
    if executable is None:
        message = (
            "NO CHROMIUM: the browser tests did not run. `make test` installs Debian's chromium "
            "when run as root (make browser); elsewhere install it or set CHROMIUM=/path."
        )
        print(f"\n{'!' * 78}\n{message}\n{'!' * 78}")
        pytest.skip(message)
    with sync_api.sync_playwright() as playwright:
        # Playwright launches it with a fresh temporary profile (user data dir) each time.
        launched = playwright.chromium.launch(
            executable_path=executable, headless=True, args=CHROMIUM_ARGS
        )
        yield launched
        launched.close()


def test_a_user_changes_her_preferences_in_the_browser_and_the_next_event_respects_them(
    stack, browser
):
    # Given the preference center served on 127.0.0.1 before the sender first runs
    lock = threading.Lock()
    servers = serve_function_urls(stack, lock)
    (server,) = servers.values()
    try:
        # And Alice (email and SMS) who orders
        store = DynamoPreferencesStore(stack.physical_id("PreferencesTable"))
        store.put(Preferences(user_id="user-123", email="alice@example.com", phone="+14155550100"))
        detail = load_event("fan_out/order-placed.json")["detail"]
        with lock:
            stack.publish("OrderPlaced", detail, source="com.example.shop")
            stack.drain()
        (mail,) = sent_emails()
        # The link in the HTML body of the email moto's SES accepted
        html = mail.body("html")
        link = html.split('<a href="')[-1].split('"')[0].replace("&amp;", "&")
        assert link.startswith(server.url + "preferences?t=")

        page = browser.new_page(viewport={"width": 420, "height": 900})  # a phone's width

        # When she opens it
        response = page.goto(link)
        assert response is not None
        assert response.status == 200
        assert page.locator("html").get_attribute("lang") == "en"
        assert page.get_by_role("heading", level=1).inner_text() == "Notification preferences"
        orders = page.get_by_role("group", name="Orders")
        payments = page.get_by_role("group", name="Payments and receipts")
        assert orders.get_by_label("Email").is_checked()
        # Critical payments: shown on, but cannot be turned off
        assert payments.get_by_label("Email").is_checked()
        assert payments.get_by_label("Email").is_disabled()

        # And turns order emails off, sets quiet hours, and saves
        orders.get_by_label("Email").uncheck()
        page.get_by_label("From").fill("22:00")
        page.get_by_label("Until").fill("07:00")
        page.get_by_label("Time zone").fill("Europe/Berlin")
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        page.get_by_role("button", name="Save preferences").click()

        # Then the confirmation shows, with her choices kept
        assert page.get_by_role("status").inner_text() == "Your preferences are saved."
        assert not page.get_by_role("group", name="Orders").get_by_label("Email").is_checked()
        assert page.get_by_role("group", name="Orders").get_by_label("SMS").is_checked()
        page.screenshot(path=str(ARTIFACTS / "preference-page.png"), full_page=True)
        documented = os.environ.get("PREFERENCE_SCREENSHOT")
        if documented:
            page.screenshot(path=documented, full_page=True)
        saved = store.get("user-123")
        assert saved.opted_out_pairs == frozenset({"order:email"})
        assert saved.quiet_hours is not None
        assert saved.quiet_hours.timezone == "Europe/Berlin"

        # And the next order (outside her quiet hours: 12:05 UTC) sends the SMS, not the email
        with lock:
            stack.publish(
                "OrderPlaced", {**detail, "order_id": "order-1002"}, source="com.example.shop"
            )
            stack.drain()
        records = list(DynamoLedger(stack.physical_id("LedgerTable")).scan())
        suppressed = [r for r in records if r.get("status") == "SUPPRESSED"]
        assert [(r["channel"], r["suppressed_reason"]) for r in suppressed] == [
            ("email", "opted_out_category_channel:order:email")
        ]
        assert len(sent_emails()) == 1
        assert len(sms_messages()) == 2

        # When someone opens a forged link (the token's last characters changed)
        forged = link[:-4] + ("AAAA" if not link.endswith("AAAA") else "BBBB")
        response = page.goto(forged)
        # Then the error page says so, and nothing changed
        assert response is not None
        assert response.status in (400, 403)
        assert page.get_by_role("heading", level=1).inner_text() == "This link does not work"
        assert page.get_by_role("alert").is_visible()
        page.screenshot(path=str(ARTIFACTS / "preference-page-forged.png"))
        assert store.get("user-123") == saved

        # When a mailbox provider POSTs RFC 8058's one-click to the email's List-Unsubscribe URL
        unsubscribe = mail.message["List-Unsubscribe"].strip("<>")
        assert unsubscribe.startswith(server.url + "unsubscribe?t=")
        request = urllib.request.Request(
            unsubscribe,
            data=b"List-Unsubscribe=One-Click",
            headers={"Content-Type": "application/x-www-form-urlencoded"},
            method="POST",
        )
        with urllib.request.urlopen(request, timeout=10) as answer:
            # Then it answers 200 (order email was already off: nothing more to change)
            assert answer.status == 200
        page.close()
    finally:
        for running in servers.values():
            running.stop()
