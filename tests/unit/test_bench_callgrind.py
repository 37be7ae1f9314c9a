"""bench/callgrind.py: the probes that attribute instructions to parts of the sender
(``bench/sender_cpu.py --instructions``) pass every call through unchanged, and the counts
are read from callgrind's annotated output per probe."""

from __future__ import annotations

import importlib.util
import shutil
import sysconfig
import threading
from pathlib import Path
from types import ModuleType

import pytest

MODULE = Path(__file__).resolve().parents[2] / "bench" / "callgrind.py"


def load() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bench_callgrind", MODULE)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# Two threads' profiles as `callgrind.run` joins them (callgrind_annotate --inclusive=yes).
ANNOTATED = """Collected : 5000000
--------------------------------------------------------------------------------
Ir                      file:function
--------------------------------------------------------------------------------
4,000,000 (100.0%)  PROGRAM TOTALS
3,900,000 (97.50%)  ???:bench_p1 [/tmp/bench-callgrind-x/probe.so]
1,250,000 (31.25%)  ???:bench_p0 [/tmp/bench-callgrind-x/probe.so]
  400,000 (10.00%)  ???:bench_p0'2 [/tmp/bench-callgrind-x/probe.so]
   20,000 ( 0.50%)  ???:bench_probe [/tmp/bench-callgrind-x/probe.so]

1,000,000 (100.0%)  PROGRAM TOTALS
  700,000 (70.00%)  ???:bench_p0 [/tmp/bench-callgrind-x/probe.so]
"""


def test_each_probe_s_count_is_summed_over_threads_and_a_re_entry_is_not_counted_twice():
    callgrind = load()
    counts = callgrind.inclusive(ANNOTATED, ["moto", "sdk", "never called"])
    assert counts == {"moto": 1_950_000, "sdk": 3_900_000, "never called": 0}
    assert callgrind.collected(ANNOTATED) == 5_000_000


@pytest.mark.skipif(
    shutil.which("gcc") is None
    or not (Path("/usr/include/valgrind/callgrind.h").exists())
    or not Path(sysconfig.get_paths()["include"], "Python.h").exists(),
    reason="needs gcc, valgrind's callgrind.h and Python.h (the probe helper is built)",
)
def test_a_probed_function_returns_and_raises_as_itself_in_any_thread():
    callgrind = load()
    probes = callgrind.Probes()

    def add(a, b=0):
        return a + b

    def refuse(reason):
        raise KeyError(reason)

    probed_add = probes.probe("add", add)
    probed_refuse = probes.probe("refuse", refuse)
    assert probes.names == ["add", "refuse"]
    with callgrind.window():  # outside valgrind: no-op client requests
        assert probed_add(2, b=3) == 5
        with pytest.raises(KeyError, match="late"):
            probed_refuse("late")
        results = []
        worker = threading.Thread(target=lambda: results.append(probed_add(40, 2)))
        worker.start()
        worker.join()
    assert results == [42]
    with pytest.raises(ValueError, match="twice"):
        probes.probe("add", add)
