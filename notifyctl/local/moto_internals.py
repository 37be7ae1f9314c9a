"""The two places the runtime reaches into moto's in-process state.

moto (5.x) runs the Lambda behind an SQS event source mapping itself on every SendMessage
(needing Docker, ignoring `batchItemFailures`, and making failed messages visible again). The
mapping stays registered in two places: moto's Lambda backend (what the Lambda API reads) and
each queue's `lambda_event_source_mappings` (what SendMessage triggers). Clearing the latter
stops moto's invocation while `get/update_event_source_mapping` keep working.

Both work in-process (`mock_aws`) and with `ThreadedMotoServer`, which serves the same
process-global backends from a thread.
"""

from __future__ import annotations

from typing import Any

from moto.backends import get_backend


def _sqs_backend(account_id: str, region: str) -> Any:
    return get_backend("sqs")[account_id][region]


def detach_sqs_event_source_mappings(account_id: str, region: str) -> int:
    """Stop moto from invoking Lambda on SendMessage, for every queue. Returns how many."""
    detached = 0
    for queue in _sqs_backend(account_id, region).queues.values():
        mappings = getattr(queue, "lambda_event_source_mappings", None)
        if mappings:
            detached += len(mappings)
            mappings.clear()
    return detached


def next_visibility_change(account_id: str, region: str, queue_names: list[str]) -> float | None:
    """Epoch seconds at which the next in-flight or delayed message becomes visible, if any."""
    backend = _sqs_backend(account_id, region)
    wakeups: list[float] = []
    for name in queue_names:
        queue = backend.queues.get(name)
        if queue is None:
            continue
        for message in list(queue._messages):
            if not message.visible:
                wakeups.append(float(message.visible_at) / 1000)
            if message.delayed:
                wakeups.append(float(message.delayed_until) / 1000)
    return min(wakeups) if wakeups else None


def patch_event_bus_ref() -> None:
    """Make `Ref` to an AWS::Events::EventBus give its name, as in AWS.

    moto 5.2's EventBus model has no `physical_resource_id`, so `!Ref Bus` resolves to the model
    object and a rule's `EventBusName: !Ref Bus` fails to create. Idempotent.
    """
    from moto.events.models import EventBus

    if not hasattr(EventBus, "physical_resource_id"):
        EventBus.physical_resource_id = property(lambda self: self.name)  # type: ignore[attr-defined]
