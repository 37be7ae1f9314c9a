"""`notifyctl local demo`: the whole pipeline on embedded moto, with a dashboard at the end.

It deploys template.yaml into moto, seeds users (contact points, a push endpoint, a webhook
subscription served on 127.0.0.1), publishes the original spec's events for Alice, then
synthetic domain events while the provider fails at ``failure_rate``, drains the pipeline
and prints the notification dashboard.
"""

from __future__ import annotations

import json
import random
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from notifications.adapters.aws import reset_clients
from notifications.adapters.preferences import DynamoPreferencesStore
from notifications.channels.webhook import (
    DynamoSubscriptionStore,
    SecretsManagerSigningKeys,
    WebhookSubscription,
)
from notifications.preferences import Preferences
from notifyctl.dashboard import Dashboard, collect
from notifyctl.local.application import prepare
from notifyctl.local.clock import Clock
from notifyctl.local.stack import Isolation, LocalStack, deploy
from notifyctl.target import LOCAL_STACK_NAME, StackTarget
from notifyctl.webhook_receiver import WebhookReceiver

SOURCE = "com.example.shop"
PROGRESS_INTERVAL = 0.25  # seconds between queue-depth reads for the progress bar
PUT_EVENTS_BATCH = 10  # PutEvents takes at most ten entries
ALICE = "user-123"


@dataclass
class DemoResult:
    dashboard: Dashboard
    published: int
    provider_deliveries: dict[str, int]
    webhook_rejected: int
    seconds: float
    # Alice's signed preference-center link, as `notifyctl preferences link` prints it.
    preference_link: str | None = None


def seed_users(
    stack: LocalStack, receiver: WebhookReceiver, rng: random.Random, count: int
) -> list[str]:
    """Alice with every contact point, ``count`` synthetic users with a random mix, and one
    webhook subscriber for orders and payments."""
    sns = stack.clients.sns
    app_arn = sns.create_platform_application(
        Name="shop-app", Platform="GCM", Attributes={"PlatformCredential": "local-demo"}
    )["PlatformApplicationArn"]

    def endpoint(user_id: str) -> str:
        return str(
            sns.create_platform_endpoint(PlatformApplicationArn=app_arn, Token=f"token-{user_id}")[
                "EndpointArn"
            ]
        )

    store = DynamoPreferencesStore(stack.physical_id("PreferencesTable"))
    store.put(
        Preferences(
            user_id=ALICE,
            email="alice@example.com",
            phone="+14155550100",
            push_endpoints=(endpoint(ALICE),),
        )
    )
    users = [ALICE]
    for n in range(1, count + 1):
        user_id = f"user-{n:04d}"
        store.put(
            Preferences(
                user_id=user_id,
                email=f"customer{n}@example.com",
                phone=f"+1415555{n:04d}" if rng.random() < 0.5 else None,
                push_endpoints=(endpoint(user_id),) if rng.random() < 0.3 else (),
                locale=rng.choice(["en", "en", "de", "de-CH"]),
            )
        )
        users.append(user_id)

    environment = stack.function("SenderFunction").environment
    keys = SecretsManagerSigningKeys(environment["WEBHOOK_SECRET_PREFIX"])
    receiver.secrets["erp"] = keys.create("erp-sync")
    DynamoSubscriptionStore(stack.physical_id("WebhookSubscriptionsTable")).put(
        WebhookSubscription(
            subscription_id="erp-sync",
            url=receiver.url("erp"),
            event_types=("OrderPlaced", "PaymentReceived"),
            secret_id=keys.secret_name("erp-sync"),
        )
    )
    return users


def original_events(now: datetime) -> list[tuple[str, dict[str, Any]]]:
    """The original spec's scenario: Alice registers, orders and pays."""
    return [
        (
            "UserRegistered",
            {
                "user_id": ALICE,
                "email": "alice@example.com",
                "name": "Alice",
                "registered_at": now.isoformat(),
            },
        ),
        (
            "OrderPlaced",
            {
                "order_id": "order-1001",
                "user_id": ALICE,
                "total": {"amount": "42.50", "currency": "EUR"},
                "item_count": 2,
                "placed_at": now.isoformat(),
            },
        ),
        (
            "PaymentReceived",
            {
                "payment_id": "pay-9001",
                "order_id": "order-1001",
                "user_id": ALICE,
                "amount": {"amount": "42.50", "currency": "EUR"},
                "received_at": now.isoformat(),
            },
        ),
    ]


def synthetic_event(
    n: int, users: list[str], rng: random.Random, now: datetime
) -> tuple[str, dict[str, Any]]:
    kind = rng.choices(["UserRegistered", "OrderPlaced", "PaymentReceived"], weights=[2, 5, 3])[0]
    at = (now - timedelta(seconds=rng.randint(0, 5))).isoformat()
    if kind == "UserRegistered":
        return kind, {
            "user_id": f"new-{n:05d}",
            "email": f"new{n}@example.com",
            "name": rng.choice(["Bob", "Chloé", "Dmitri", "Eve", "Farah", "Gustav"]),
            "registered_at": at,
        }
    amount = {
        "amount": f"{rng.randint(5, 500)}.{rng.randint(0, 99):02d}",
        "currency": rng.choice(["EUR", "USD", "CHF"]),
    }
    user = rng.choice(users)
    if kind == "OrderPlaced":
        return kind, {
            "order_id": f"order-{n:05d}",
            "user_id": user,
            "total": amount,
            "item_count": rng.randint(1, 5),
            "placed_at": at,
        }
    return kind, {
        "payment_id": f"pay-{n:05d}",
        "order_id": f"order-{n:05d}",
        "user_id": user,
        "amount": amount,
        "received_at": at,
    }


def publish_batch(stack: LocalStack, events: list[tuple[str, dict[str, Any]]]) -> None:
    """PutEvents with up to ten entries, as a producer would."""
    response = stack.clients.events.put_events(
        Entries=[
            {
                "Source": SOURCE,
                "DetailType": event_type,
                "Detail": json.dumps(detail),
                "EventBusName": stack.bus_name,
            }
            for event_type, detail in events
        ]
    )
    if response.get("FailedEntryCount"):
        raise RuntimeError(f"EventBridge refused events: {response['Entries']}")


def provider_deliveries(stack: LocalStack, receiver: WebhookReceiver) -> dict[str, int]:
    """What each provider in moto accepted: SES emails, SNS SMS and push, webhook receipts."""
    from moto.backends import get_backend

    account, region = stack.account_id, stack.clients.region
    sns = get_backend("sns")[account][region]
    return {
        "email": len(get_backend("ses")[account][region].sent_messages),
        "sms": len(sns.sms_messages),
        "push": sum(len(e.messages) for e in sns.platform_endpoints.values()),
        "webhook": len(receiver.accepted),
    }


def delivery_progress(
    stack: LocalStack, on_progress: Callable[[str, int, int | None], None]
) -> Callable[[int], None]:
    """``on_round`` for the drain: messages handled so far, out of those handled plus those
    still in the queues (read every ``PROGRESS_INTERVAL``, and on a round that handled
    nothing), so the bar fills only as the queues empty, and is full when they are."""
    total, read_at, last_done = 0, 0.0, -1

    def on_round(done: int) -> None:
        nonlocal total, read_at, last_done
        now = time.monotonic()
        if now - read_at >= PROGRESS_INTERVAL or done == last_done:
            depths = stack.queue_depths()
            total = done + sum(d.visible + d.in_flight + d.delayed for d in depths)
            read_at = now
        total, last_done = max(total, done), done
        on_progress("delivering", done, total)

    return on_round


def run_demo(
    template: Path,
    events: int,
    failure_rate: float,
    seed: int,
    clock: Clock,
    users: int = 40,
    max_attempts: int | None = None,
    on_progress: Callable[[str, int, int | None], None] | None = None,
    isolation: Isolation = "in-process",
    provider_latency: str = "",
) -> DemoResult:
    """Runs inside an active moto (``mock_aws``); returns the figures the dashboard shows."""
    rng = random.Random(seed)
    reset_clients()
    started = clock.now()
    parameters = {"FailureRate": str(failure_rate), "WebhookAllowLoopback": "true"}
    if provider_latency:
        parameters["ProviderLatency"] = provider_latency
    if max_attempts is not None:
        parameters["MaxAttempts"] = str(max_attempts)
    with WebhookReceiver().running() as receiver:
        # Worker processes (isolation="process") stop when this process exits.
        stack = deploy(
            template, parameters, stack_name=LOCAL_STACK_NAME, clock=clock, isolation=isolation
        )
        prepare(stack)
        population = seed_users(stack, receiver, rng, users)
        now = datetime.fromtimestamp(clock.now(), UTC)
        batch = original_events(now) + [
            synthetic_event(n, population, rng, now) for n in range(1, events + 1)
        ]
        # Alice's registration first, so her address is on file before her order arrives.
        stack.publish(*batch[0], source=SOURCE)
        stack.drain(max_rounds=1_000)
        for start in range(1, len(batch), PUT_EVENTS_BATCH):
            publish_batch(stack, batch[start : start + PUT_EVENTS_BATCH])
            if on_progress:
                on_progress("publishing", min(start + PUT_EVENTS_BATCH, len(batch)), len(batch))
        # One malformed event: an order without its user. It ends in EventsDLQ with its reason.
        stack.publish(
            "OrderPlaced",
            {
                "order_id": f"order-bad-{uuid.UUID(int=rng.getrandbits(128)).hex[:8]}",
                "total": {"amount": "10.00", "currency": "EUR"},
                "placed_at": now.isoformat(),
            },
            source=SOURCE,
        )
        published = len(batch) + 1
        stack.drain(
            max_rounds=1_000_000,
            on_round=delivery_progress(stack, on_progress) if on_progress else None,
        )
        deliveries = provider_deliveries(stack, receiver)
        target = StackTarget(stack.stack_name, region=stack.clients.region)
        dashboard = collect(target)
        from notifyctl.preference_center_links import link, links_for

        return DemoResult(
            dashboard=dashboard,
            published=published,
            provider_deliveries=deliveries,
            webhook_rejected=receiver.rejected,
            seconds=clock.now() - started,
            preference_link=link(links_for(target), ALICE, "order", unsubscribe=False),
        )
