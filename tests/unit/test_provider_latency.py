"""The provider latency model (``ProviderLatency``, channels/latency.py)."""

from __future__ import annotations

import random
import statistics

import pytest

from notifications.channels.base import ProviderReceipt, RenderedMessage
from notifications.channels.latency import (
    LatencyInjectingProvider,
    LatencyModel,
    LatencySpecError,
    parse_latency,
)
from notifications.models import Channel, NotificationRequested
from tests.samples import welcome


def test_a_spec_gives_each_named_channel_its_model():
    assert parse_latency("email=lognormal:80:250, webhook=fixed:300") == {
        Channel.EMAIL: LatencyModel(80.0, 250.0),
        Channel.WEBHOOK: LatencyModel(300.0),
    }
    assert parse_latency("") == {}


@pytest.mark.parametrize(
    ("spec", "named"),
    [
        ("fax=fixed:10", "'fax'"),
        ("email=fixed", "'email=fixed'"),
        ("email=lognormal:250:80", "'email=lognormal:250:80'"),
        ("email=gamma:1:2", "'email=gamma:1:2'"),
        ("email=fixed:-5", "'email=fixed:-5'"),
        ("email=fixed:ten", "'email=fixed:ten'"),
        ("email=fixed:1,email=fixed:2", "'email'"),
    ],
)
def test_a_bad_spec_names_the_bad_part(spec, named):
    with pytest.raises(LatencySpecError, match=named):
        parse_latency(spec)


def test_the_lognormal_draws_have_the_given_median_and_99th_percentile():
    rng = random.Random(7)
    draws = sorted(LatencyModel(80, 250).draw(rng) for _ in range(20_000))
    assert 76 <= statistics.median(draws) <= 84
    assert 230 <= draws[int(0.99 * len(draws))] <= 270
    assert LatencyModel(300).draw(rng) == 300


class Recording:
    def __init__(self) -> None:
        self.sent: list[str] = []

    def send(self, request: NotificationRequested, message: RenderedMessage) -> ProviderReceipt:
        self.sent.append(request.notification_id)
        return ProviderReceipt(provider_message_id="m-1")


def test_the_provider_waits_the_drawn_latency_then_sends():
    waited: list[float] = []
    inner = Recording()
    provider = LatencyInjectingProvider(inner, LatencyModel(300), sleep=waited.append)
    request = welcome(1)

    receipt = provider.send(request, RenderedMessage(text="b", subject="s"))

    assert waited == [0.3]
    assert inner.sent == [request.notification_id]
    assert receipt.provider_message_id == "m-1"
