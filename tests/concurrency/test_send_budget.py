"""A provider send budget holds across concurrent senders: five invocations at once on the
email queue (the runtime's process mode, one DynamoDB budget counter on moto server), and
never more sends in one second than ``SesMaxSendRate`` (send_budget.py)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable

from notifications.adapters.sqs import SqsQueues
from notifications.models import Channel
from notifyctl.local.clock import ControlledClock
from notifyctl.local.stack import LocalStack
from tests.reliability.helpers import ledger_items, provider_calls, queue_depth, welcome

Deploy = Callable[..., LocalStack]


def test_sends_per_second_never_exceed_the_ses_budget_across_concurrent_senders(
    concurrent_stack: Deploy, clock: ControlledClock
) -> None:
    # Given an SES budget of 7 sends per second and 60 emails queued: five senders at once
    # take batches of ten, 50 ready to go in the first second (a 60 s sender timeout, so that
    # a slow cold start on a loaded machine leaves each batch its time to send)
    stack = concurrent_stack(SesMaxSendRate="7", SenderTimeoutSeconds="60", SendTimeoutSeconds="20")
    requests = [welcome(n, Channel.EMAIL) for n in range(60)]
    SqsQueues().enqueue(stack.queue_url("EmailQueue"), requests)

    # When the runtime runs a round each second of the controlled clock until all are sent
    rounds = 0
    while queue_depth(stack, "EmailQueue") and rounds < 40:
        stack.pump()
        clock.advance(1)
        rounds += 1

    # Then every email was sent once, and no second saw more than 7 of them (each SENT record
    # is written in the second its send started: the workers' clock is the controlled one)
    items = ledger_items(stack)
    spent = {n: i for n, i in items.items() if int(i["attempts"]) != 1}
    assert {items[r.notification_id]["status"] for r in requests} == {"SENT"}
    assert provider_calls(stack)["email"] == 60
    per_second = Counter(item["updated_at"][:19] for item in items.values())
    assert max(per_second.values()) == 7
    # and those over the budget waited without spending an attempt
    assert spent == {}
    assert sum(1 for item in items.values() if item.get("deferred_reason") == "send_budget") > 0
