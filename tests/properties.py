"""Property tests' settings: fixed in `make test`, fresh and longer in `make soak`.

`tests/conftest.py` loads the Hypothesis profile named by ``HYPOTHESIS_PROFILE``:

- ``ci`` (the default, what `make test` and CI run): ``derandomize=True``, so every run draws
  the same examples and a red build is never luck;
- ``soak`` (`make soak`, not in CI): fresh random examples from the seed `make soak` prints
  (``--hypothesis-seed``), and ``examples(n)`` runs ``SOAK_EXAMPLES_FACTOR`` (10) times as
  many. A failure prints that seed; `make soak SOAK_SEED=<seed>` replays it.

Property tests leave ``derandomize`` to the profile and size themselves with ``examples(n)``.
"""

from __future__ import annotations

import os

from hypothesis import settings

PROFILES = ("ci", "soak")
settings.register_profile("ci", derandomize=True, database=None, deadline=None)
settings.register_profile("soak", derandomize=False, database=None, deadline=None, print_blob=True)


def load_profile() -> str:
    name = os.environ.get("HYPOTHESIS_PROFILE", "ci")
    if name not in PROFILES:
        raise RuntimeError(f"HYPOTHESIS_PROFILE={name!r}: use one of {', '.join(PROFILES)}")
    settings.load_profile(name)
    return name


def examples(n: int) -> int:
    """``n`` examples in make test; ``SOAK_EXAMPLES_FACTOR`` times as many in make soak."""
    if os.environ.get("HYPOTHESIS_PROFILE", "ci") != "soak":
        return n
    return n * int(os.environ.get("SOAK_EXAMPLES_FACTOR", "10"))
