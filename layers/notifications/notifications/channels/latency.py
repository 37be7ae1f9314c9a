"""A provider latency model for local runs and benchmarks (``ProviderLatency``).

On moto a provider call takes microseconds; on AWS an SES or SNS call takes tens of
milliseconds and a customer's webhook hundreds. ``ProviderLatency`` makes each send of a channel
take a modelled time, so local throughput figures mean something. Its value, per channel,
comma separated (empty: off)::

    email=lognormal:80:250,webhook=fixed:300

- ``fixed:MS``: every send takes MS milliseconds;
- ``lognormal:P50:P99``: a log-normal draw whose median is P50 ms and 99th percentile P99 ms
  (``mu = ln P50``, ``sigma = (ln P99 - ln P50) / 2.3263``, the 99th percentile of the standard
  normal). P99 >= P50.

A channel left out takes no added time. The wait happens in the sending thread before the real
(moto) call, as a network round trip would: the sender's concurrent sends overlap their waits.
"""

from __future__ import annotations

import math
import random
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from notifications.channels.base import ChannelProvider, ProviderReceipt, RenderedMessage
from notifications.models import Channel, NotificationRequested

Z99 = 2.3263478740408408  # the standard normal's 99th percentile


class LatencySpecError(ValueError):
    """A ``ProviderLatency`` value that does not parse; the message names the bad part."""


@dataclass(frozen=True)
class LatencyModel:
    """Milliseconds per send: fixed (``p99`` None) or log-normal with median ``p50``."""

    p50: float
    p99: float | None = None

    def draw(self, rng: random.Random) -> float:
        """One send's latency in milliseconds."""
        if self.p99 is None or self.p99 == self.p50 or self.p50 == 0:
            return self.p50
        sigma = (math.log(self.p99) - math.log(self.p50)) / Z99
        return rng.lognormvariate(math.log(self.p50), sigma)

    def mean(self) -> float:
        """The expected latency (ms): ``exp(mu + sigma^2 / 2)`` for the log-normal."""
        if self.p99 is None or self.p99 == self.p50 or self.p50 == 0:
            return self.p50
        sigma = (math.log(self.p99) - math.log(self.p50)) / Z99
        return self.p50 * math.exp(sigma * sigma / 2)


def parse_latency(spec: str) -> dict[Channel, LatencyModel]:
    """``"email=lognormal:80:250,webhook=fixed:300"`` -> a model per channel; ``""`` -> {}."""
    models: dict[Channel, LatencyModel] = {}
    for part in (p.strip() for p in spec.split(",")):
        if not part:
            continue
        name, _, model = part.partition("=")
        try:
            channel = Channel(name.strip())
        except ValueError:
            known = ", ".join(c.value for c in Channel)
            raise LatencySpecError(
                f"unknown channel {name.strip()!r} in {part!r} (one of {known})"
            ) from None
        if channel in models:
            raise LatencySpecError(f"channel {channel.value!r} given twice")
        models[channel] = _model(part, model.strip())
    return models


def _model(part: str, model: str) -> LatencyModel:
    kind, _, numbers = model.partition(":")
    try:
        values = [float(v) for v in numbers.split(":")] if numbers else []
    except ValueError:
        values = []
    if any(not math.isfinite(v) or v < 0 for v in values):
        values = []
    if kind == "fixed" and len(values) == 1:
        return LatencyModel(values[0])
    if kind == "lognormal" and len(values) == 2 and values[1] >= values[0]:
        return LatencyModel(values[0], values[1])
    raise LatencySpecError(
        f"bad latency model in {part!r}: expected fixed:MS or lognormal:P50:P99 "
        "(milliseconds, P99 >= P50)"
    )


@dataclass
class LatencyInjectingProvider:
    """Waits a drawn latency, then sends through ``inner``."""

    inner: ChannelProvider
    model: LatencyModel
    rng: random.Random = field(default_factory=random.Random)
    sleep: Callable[[float], None] = time.sleep
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def send(self, request: NotificationRequested, message: RenderedMessage) -> ProviderReceipt:
        with self._lock:  # one generator shared by the sending threads
            milliseconds = self.model.draw(self.rng)
        self.sleep(milliseconds / 1000)
        return self.inner.send(request, message)


def with_latency(
    models: Mapping[Channel, LatencyModel], seed: int | None = None
) -> Callable[[Channel, ChannelProvider], ChannelProvider]:
    """A wrapper that gives each modelled channel's provider its latency."""
    rng = random.Random(seed)

    def wrap(channel: Channel, provider: ChannelProvider) -> ChannelProvider:
        model = models.get(channel)
        return provider if model is None else LatencyInjectingProvider(provider, model, rng)

    return wrap
