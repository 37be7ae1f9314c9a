"""Webhook isolation (issue 15): one endpoint failing or slow, what its neighbours feel.

Two figures, each for today's code path (per-endpoint health, the webhook schedule) and for the
previous one (the channel-wide breaker also on webhooks, the exponential MaxAttempts policy),
measured in the same run on the local stack with a real HTTP receiver:

1. **Healthy-endpoint delivery latency while a neighbour fails** (controlled clock, simulated
   seconds): for 300 s, every second one order for a healthy endpoint and one for an endpoint
   answering 503; latency = the healthy endpoint's POST time - its enqueue time; p50 and p99.
   The previous path opens the webhook channel's breaker after 5 failures in a row and holds
   everybody's webhooks for BreakerOpenSeconds.
2. **A batch's wall time with one slow endpoint** (real clock): one batch of ten, one endpoint
   taking ``--slow`` seconds to answer; the batch's wall time and when the other nine arrived
   (median offset from the batch's start). Sequential sends wait for the slow one; concurrent
   sends (issue 18's bounded pool, where merged) do not.

    python bench/webhook_isolation.py [--seconds 300] [--slow 2]
"""

from __future__ import annotations

import argparse
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import common

START = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
DRAIN_SECONDS = 1800  # simulated time allowed after the load for the rest to arrive


class Receiver:
    """/down/* answers 503, /slow/* sleeps ``slow`` seconds then 200, anything else 200.
    Records (path, webhook-id, clock time) of every 200."""

    def __init__(self, clock: Any, slow: float) -> None:
        self.clock = clock
        self.slow = slow
        self.ok: list[tuple[str, str, float]] = []
        self.url = ""

    @contextmanager
    def running(self) -> Iterator[Receiver]:
        state = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                self.rfile.read(int(self.headers["Content-Length"]))
                if self.path.startswith("/slow/"):
                    time.sleep(state.slow)
                status = 503 if self.path.startswith("/down/") else 200
                if status == 200:
                    state.ok.append((self.path, self.headers["webhook-id"], state.clock.now()))
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                return

        server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        thread = threading.Thread(target=server.serve_forever, args=(0.01,), daemon=True)
        thread.start()
        self.url = f"http://127.0.0.1:{server.server_address[1]}"
        try:
            yield self
        finally:
            server.shutdown()
            server.server_close()
            thread.join()


@contextmanager
def previous_path() -> Iterator[None]:
    """The sender as it was before issues 15 and 18: the breaker on every channel (webhooks
    included), no endpoint health stage, webhooks on the exponential MaxAttempts policy, the
    sends of a batch one after another."""
    from notifications import sending
    from notifications.endpoint_health import EndpointHealthStage
    from notifications.models import Channel
    from notifications.stages import BreakerStage

    build_stages, webhook_schedule = sending.build_stages, sending.webhook_schedule
    pool = sending.Sender.pool

    def old_stages(settings: Any, function_name: str | None) -> Any:
        stages, deferrer = build_stages(settings, function_name)
        kept = [s for s in stages if not isinstance(s, EndpointHealthStage)]
        for stage in kept:
            if isinstance(stage, BreakerStage):
                stage.channels = frozenset(Channel)
        return kept, deferrer

    sending.build_stages = old_stages  # type: ignore[assignment]
    sending.webhook_schedule = lambda settings: None  # type: ignore[assignment,return-value]
    sending.Sender.pool = lambda self: None  # type: ignore[method-assign]  # sequential sends
    try:
        yield
    finally:
        sending.build_stages = build_stages  # type: ignore[assignment]
        sending.webhook_schedule = webhook_schedule  # type: ignore[assignment]
        sending.Sender.pool = pool  # type: ignore[method-assign]


@contextmanager
def stack_with(clock: Any, slow: float) -> Iterator[tuple[Any, Receiver]]:
    from moto import mock_aws

    from notifications.adapters.aws import reset_clients
    from notifications.channels.webhook import (
        DynamoSubscriptionStore,
        SecretsManagerSigningKeys,
        WebhookSubscription,
    )
    from notifyctl.local.application import prepare
    from notifyctl.local.stack import deploy

    reset_clients()
    with mock_aws(), Receiver(clock, slow).running() as receiver:
        stack = deploy(
            common.TEMPLATE,
            {"WebhookAllowLoopback": "true"},
            stack_name="notifications-bench",
            clock=clock,
        )
        prepare(stack)
        keys = SecretsManagerSigningKeys("notifications/dev/webhooks/")
        store = DynamoSubscriptionStore(stack.physical_id("WebhookSubscriptionsTable"))
        for n in range(10):
            for kind in ("up", "down", "slow"):
                sub = f"{kind}-{n}"
                keys.create(sub)
                store.put(
                    WebhookSubscription(
                        sub,
                        f"{receiver.url}/{kind}/{n}",
                        ("OrderPlaced",),
                        True,
                        keys.secret_name(sub),
                    )
                )
        try:
            yield stack, receiver
        finally:
            stack.close()
    reset_clients()


def order(subscription_id: str, n: int, at: datetime) -> Any:
    from notifications.models import Channel, NotificationRequested, notification_id

    event_id = f"bench-{n}"
    return NotificationRequested(
        notification_id=notification_id(
            event_id, Channel.WEBHOOK, subscription_id, "order-webhook"
        ),
        channel=Channel.WEBHOOK,
        recipient=subscription_id,
        template_id="order-webhook",
        category="orders",
        data={"order_id": f"o-{n}", "total": {"amount": "19.99", "currency": "EUR"}},
        event_id=event_id,
        event_type="OrderPlaced",
        correlation_id=event_id,
        occurred_at=at,
        requested_at=at,
    )


def latency_while_neighbour_fails(seconds: int) -> dict[str, float]:
    from notifications.adapters.sqs import SqsQueues
    from notifyctl.local.clock import ControlledClock

    with ControlledClock(start=START) as clock, stack_with(clock, 0.0) as (stack, receiver):
        queue = stack.queue_url("WebhookQueue")
        enqueued: dict[str, float] = {}
        for second in range(seconds):
            now = datetime.fromtimestamp(clock.now(), tz=UTC)
            healthy, failing = order("up-0", second, now), order("down-0", second, now)
            SqsQueues().enqueue(queue, [healthy, failing])
            enqueued[healthy.notification_id] = clock.now()
            while stack.pump():
                pass
            clock.advance(1)
        deadline = clock.now() + DRAIN_SECONDS
        while len(receiver.ok) < seconds and clock.now() < deadline:
            while stack.pump():
                pass
            clock.advance(5)
        latencies = [at - enqueued[wid] for _, wid, at in receiver.ok if wid in enqueued]
        # Not delivered within the drain: counted as infinitely late, not left out.
        latencies += [float("inf")] * (seconds - len(latencies))
        return {
            "delivered": float(len(receiver.ok)),
            "p50": common.percentile(latencies, 50),
            "p99": common.percentile(latencies, 99),
        }


def batch_with_slow_endpoint(slow: float) -> dict[str, float]:
    from notifications.adapters.sqs import SqsQueues
    from notifyctl.local.clock import RealClock

    clock = RealClock()
    with stack_with(clock, slow) as (stack, receiver):
        queue = stack.queue_url("WebhookQueue")
        now = datetime.now(UTC)
        batch = [order("slow-0", 0, now)] + [order(f"up-{n}", n, now) for n in range(1, 10)]
        # Warm up: the sender, and each endpoint's subscription and secret reads (cached)
        SqsQueues().enqueue(queue, [order(r.recipient, 100 + i, now) for i, r in enumerate(batch)])
        while stack.pump():
            pass
        receiver.ok.clear()
        SqsQueues().enqueue(queue, batch)
        started = clock.now()
        while stack.pump():
            pass
        wall = clock.now() - started
        others = [at - started for path, _, at in receiver.ok if not path.startswith("/slow/")]
        return {
            "wall": wall,
            "others_p50": common.percentile(others, 50),
            "delivered": float(len(receiver.ok)),
        }


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--seconds", type=int, default=300, help="simulated seconds of load")
    parser.add_argument("--slow", type=float, default=2.0, help="the slow endpoint's answer (s)")
    args = parser.parse_args(argv)

    with common.quiet_stdout():
        now_latency = latency_while_neighbour_fails(args.seconds)
        with previous_path():
            old_latency = latency_while_neighbour_fails(args.seconds)
        now_batch = batch_with_slow_endpoint(args.slow)
        with previous_path():
            old_batch = batch_with_slow_endpoint(args.slow)

    print("webhook isolation: healthy endpoint latency while a neighbour answers 503")
    print(
        f"({args.seconds} simulated s, one order per second to each; clock seconds; "
        f"not delivered {DRAIN_SECONDS} s after the load counts as inf)"
    )
    rows = [
        [name, f"{r['delivered']:.0f}", f"{r['p50']:.1f}", f"{r['p99']:.1f}"]
        for name, r in (("previous (channel breaker)", old_latency), ("per-endpoint", now_latency))
    ]
    print(common.table(rows, ["path", "delivered", "p50 s", "p99 s"]))
    print(f"\nbatch of ten with one endpoint answering in {args.slow:g} s (wall seconds)")
    rows = [
        [
            name,
            f"{r['wall']:.2f}",
            f"{r['others_p50']:.2f}",
            common.ratio(r["wall"], old_batch["wall"]),
        ]
        for name, r in (("previous", old_batch), ("today", now_batch))
    ]
    print(common.table(rows, ["path", "batch wall s", "other nine p50 s", "wall vs previous"]))
    return {
        "latency": {"previous": old_latency, "today": now_latency},
        "slow_batch": {"previous": old_batch, "today": now_batch},
    }


if __name__ == "__main__":
    main()
