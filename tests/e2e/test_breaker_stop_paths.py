"""The circuit breaker's two ways of stopping a channel's polling, each on its own, and the
breaker check leaving alone a mapping an operator disabled by hand (circuit_breaker.py)."""

from __future__ import annotations

from notifications.channels.sms import SnsSmsProvider
from notifications.circuit_breaker import BreakerCheck, CheckResult
from notifications.errors import RetryableError
from notifications.models import Channel
from notifications.stages import BreakerStage
from tests.e2e.test_policy_circuit_breaker import mapping_state
from tests.reliability.helpers import enqueue, set_mapping, welcome

# Non-default: two failures open the breaker, for two minutes.
BREAKER = {"BreakerFailureThreshold": 2, "BreakerOpenSeconds": 120}


def sms_provider_down(monkeypatch) -> None:
    def send(self, request, message):
        raise RetryableError("provider_unavailable", "SNS SMS is down")

    monkeypatch.setattr(SnsSmsProvider, "send", send)


def test_the_sender_that_opens_the_breaker_stops_polling_by_itself(deploy_stack, monkeypatch):
    # Given an SMS provider that is down, and a breaker check that does nothing
    stack = deploy_stack(**BREAKER)
    sms_provider_down(monkeypatch)
    checks = []
    monkeypatch.setattr(BreakerCheck, "run", lambda self, now: checks.append(now) or CheckResult())
    enqueue(stack, [welcome(n, Channel.SMS) for n in range(3)])

    # When the sender takes the batch: the second failure opens the breaker
    stack.pump()

    # Then the sender itself switched the SMS queue's polling off; email polling is untouched
    assert mapping_state(stack, "SmsQueue") == "Disabled"
    assert mapping_state(stack, "EmailQueue") == "Enabled"
    # And no breaker check ran meanwhile (no time passed for its schedule)
    assert checks == []


def test_the_breaker_check_stops_and_resumes_polling_a_sender_failed_to_stop(
    deploy_stack, clock, monkeypatch
):
    # Given an SMS provider that is down, and a sender that opens the breaker but fails to
    # switch polling off (its UpdateEventSourceMapping call never happens)
    stack = deploy_stack(**BREAKER)
    sms_provider_down(monkeypatch)
    monkeypatch.setattr(BreakerStage, "_stop_polling", lambda self, channel, queue_arn, until: None)
    enqueue(stack, [welcome(n, Channel.SMS) for n in range(3)])
    stack.pump()
    assert mapping_state(stack, "SmsQueue") == "Enabled"
    check = stack.function("BreakerCheckFunction")

    # When the breaker check runs while the breaker is open
    first = check.invoke({})

    # Then it switches the SMS queue's polling off
    assert first.ok, first.error
    assert first.result == {"enabled": [], "disabled": ["sms"]}
    assert mapping_state(stack, "SmsQueue") == "Disabled"

    # When it runs again after the 120 s open period (half-open)
    clock.advance(122)
    second = check.invoke({})

    # Then it switches polling back on for the trial
    assert second.ok, second.error
    assert second.result == {"enabled": ["sms"], "disabled": []}
    assert mapping_state(stack, "SmsQueue") == "Enabled"


def test_the_breaker_check_leaves_a_mapping_an_operator_disabled_alone(stack, clock):
    # Given an operator who switched the SMS queue's polling off by hand, breaker closed
    set_mapping(stack, "SenderFunction", "SmsQueue", enabled=False)
    check = stack.function("BreakerCheckFunction")

    # When the breaker check runs, now and minutes later
    results = [check.invoke({})]
    clock.advance(600)
    results.append(check.invoke({}))

    # Then it changed nothing: polling stays off until the operator turns it on
    assert [r.result for r in results] == [{"enabled": [], "disabled": []}] * 2
    assert mapping_state(stack, "SmsQueue") == "Disabled"
    assert mapping_state(stack, "EmailQueue") == "Enabled"
