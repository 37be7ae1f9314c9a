"""Load: the drain's memory stays bounded as the volume grows five-fold.

The 10,000-notification run takes 10 to 15 minutes on moto, too long for `make test`, so this
test measures the growth on 40 and 200 notifications (after 10 that warm every function up,
so cold-start imports do not count); `python -m tests.reliability.load_run
2000 10000` runs the full sizes (docs/reliability.md lists the figures).
"""

import pytest

from tests.reliability.load_run import run_sizes

WARM_UP, SMALL, LARGE = 10, 40, 200


@pytest.mark.soak  # tracemalloc over 300 notifications: make soak, not make test
def test_memory_stays_bounded_when_the_volume_grows_five_fold(stack, record_property):
    # Given the stack, warmed up (cold starts import a lot once)
    # When 40 and then 200 notifications drain through it under tracemalloc
    _, small, large = run_sizes(stack, [WARM_UP, SMALL, LARGE])

    # Then everything was sent
    assert large.sent == WARM_UP + SMALL + LARGE
    # And the largest working set of any one invocation did not grow with the volume: it is
    # bounded by the batch size (10), not by the queue
    ratio = large.invocation_peak_bytes / small.invocation_peak_bytes
    for f in (small, large):
        for name in ("notifications", "process_peak_bytes", "invocation_peak_bytes", "seconds"):
            record_property(f"load_{f.notifications}_{name}", getattr(f, name))
    record_property("load_invocation_peak_ratio", round(ratio, 2))
    print(f"\nload: {small}\nload: {large}\ninvocation peak ratio {ratio:.2f}")
    assert ratio < 2.0, (small, large)
    # And the whole process's peak during the drain (moto's stores included) grew less than the
    # volume did
    assert large.process_peak_bytes < 5 * small.process_peak_bytes
