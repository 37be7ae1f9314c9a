"""bench/run.py: `make bench` exits non-zero when a benchmark crashes, and 0 when each one ran
(a figure that misses its goal is still a figure)."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

RUNNER = Path(__file__).resolve().parents[2] / "bench" / "run.py"


def load_runner() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bench_run", RUNNER)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def figure_that_misses_its_goal() -> dict[str, float]:
    print("requests per notification: 9.9 (goal <= 3)")
    return {"per_notification": 9.9}


def figure_that_crashes() -> None:
    raise RuntimeError("moto refused the deploy")


def test_a_crashing_benchmark_makes_the_run_exit_1_after_the_others_ran(capsys):
    # Given three benchmarks, the middle one crashing
    runner = load_runner()
    ran = []
    steps = [
        ("first", lambda: ran.append("first")),
        ("broken", figure_that_crashes),
        ("last", lambda: ran.append("last")),
    ]

    # When the runner runs them
    status = runner.main([], steps=steps)

    # Then it exits 1, the others still ran, and the output names the crash and why
    assert status == 1
    assert ran == ["first", "last"]
    captured = capsys.readouterr()
    assert "broken: could not run: RuntimeError: moto refused the deploy" in captured.out
    assert "benchmarks that crashed: broken" in captured.err


def test_a_figure_that_misses_its_goal_still_exits_0(capsys):
    # Given benchmarks that all run, one printing a figure far from its goal
    runner = load_runner()
    steps = [("requests", figure_that_misses_its_goal), ("other", lambda: None)]

    # When the runner runs them
    status = runner.main([], steps=steps)

    # Then the exit status is 0 and the figure was printed
    assert status == 0
    captured = capsys.readouterr()
    assert "requests per notification: 9.9 (goal <= 3)" in captured.out
    assert captured.err == ""
