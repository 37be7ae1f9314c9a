"""Instruction counts of one part of a process, under valgrind's callgrind.

CPU time on the shared benchmark machine moves with its load (docs/performance.md section 3);
the number of instructions a piece of code executes does not. This module lets a benchmark
count only a window of its run (``window``: the process runs uninstrumented until then, so
the set-up costs nothing but valgrind's base slowdown) and attribute parts of it to named
probes (``probe``: a Python callable run through a small C function ``bench_p<i>``, whose
inclusive cost callgrind reports; one profile per thread, summed, since the sender sends in
a thread pool and an inclusive cost taken from one shared counter would include whatever
the other threads ran meanwhile).

The C helper is compiled on first use with ``gcc`` against ``valgrind/callgrind.h``
(Debian: ``valgrind``). Outside valgrind the client requests are no-ops.
"""

from __future__ import annotations

import ctypes
import functools
import re
import subprocess
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

PROBES = 16  # C functions bench_p0 .. bench_p15; a probe's name maps to one of them

_SOURCE = """
#include <Python.h>
#include <valgrind/callgrind.h>
void bench_window_open(void) { CALLGRIND_START_INSTRUMENTATION; }
void bench_window_close(void) { CALLGRIND_STOP_INSTRUMENTATION; }
typedef PyObject *(*probe)(PyObject *, PyObject *, PyObject *);
"""
_SOURCE += "".join(
    f"__attribute__((noinline)) PyObject *bench_p{i}(PyObject *f, PyObject *args, "
    "PyObject *kwargs) "
    '{ PyObject *r = PyObject_Call(f, args, kwargs); __asm__ volatile(""); return r; }\n'
    for i in range(PROBES)
)
_SOURCE += "static probe probes[] = {" + ", ".join(f"bench_p{i}" for i in range(PROBES)) + "};"
_SOURCE += """
/* Called by ctypes: libffi's call into it confuses callgrind's call tracking (counted as a
   jump), so the probe proper is one real C call further. */
PyObject *bench_probe(int i, PyObject *f, PyObject *args, PyObject *kwargs) {
    PyObject *r = probes[i](f, args, kwargs);
    __asm__ volatile("");
    return r;
}
"""


@functools.cache
def _library() -> ctypes.PyDLL:
    """The helper, built in a temporary directory removed at exit. A ``PyDLL``: the probes
    call back into Python with the interpreter's C API, holding the GIL (a ctypes callback
    would go through libffi's closure trampolines, which callgrind cannot name)."""
    import atexit
    import shutil
    import sysconfig

    directory = Path(tempfile.mkdtemp(prefix="bench-callgrind-"))
    atexit.register(shutil.rmtree, directory, ignore_errors=True)
    (directory / "probe.c").write_text(_SOURCE)
    # -O0: every bench_p<i> keeps its own frame (no tail call), so its inclusive cost is
    # exactly what ran inside it
    include = sysconfig.get_paths()["include"]
    subprocess.run(
        ["gcc", "-O0", "-shared", "-fPIC", f"-I{include}", "-o", "probe.so", "probe.c"],
        cwd=directory,
        check=True,
        capture_output=True,
    )
    library = ctypes.PyDLL(str(directory / "probe.so"))
    entry = library.bench_probe
    entry.argtypes = [ctypes.c_int, ctypes.py_object, ctypes.py_object, ctypes.py_object]
    entry.restype = ctypes.py_object
    return library


class Probes:
    """Named probes, each a ``bench_p<i>`` C function; ``names[i]`` is the probe's name."""

    def __init__(self) -> None:
        self.names: list[str] = []

    def probe(self, name: str, function: Callable[..., Any]) -> Callable[..., Any]:
        """``function`` run inside ``bench_p<i>`` (its result or exception passed through)."""
        if name in self.names:
            raise ValueError(f"probe {name} twice")
        if len(self.names) == PROBES:
            raise ValueError(f"at most {PROBES} probes")
        entry, index = _library().bench_probe, len(self.names)
        self.names.append(name)

        @functools.wraps(function)
        def probed(*args: Any, **kwargs: Any) -> Any:
            return entry(index, function, args, kwargs)

        return probed

    def patch(self, name: str, owner: Any, attribute: str) -> None:
        """Replace ``owner.attribute`` by its probed self for the rest of the process."""
        setattr(owner, attribute, self.probe(name, getattr(owner, attribute)))


@contextmanager
def window() -> Iterator[None]:
    """Instrument, and so count, from here to the end of the block, in every thread (what
    runs uninstrumented is not counted; collection itself stays on: toggling it would act
    on the calling thread only)."""
    library = _library()
    library.bench_window_open()
    try:
        yield
    finally:
        library.bench_window_close()


def run(
    command: list[str], cwd: Path | None = None, env: dict[str, str] | None = None
) -> tuple[str, str]:
    """``command`` under callgrind, counting only its ``window``: its standard output, and
    the annotated inclusive profile of every thread (``callgrind_annotate --inclusive=yes``,
    one file per thread: a probe's inclusive count is the difference of its thread's
    counter, where one shared counter would add the other threads' work) with the collected
    total first."""
    with tempfile.TemporaryDirectory(prefix="bench-callgrind-out-") as out:
        target = Path(out) / "callgrind.out"
        done = subprocess.run(
            [
                "valgrind",
                "--tool=callgrind",
                "--instr-atstart=no",
                "--separate-threads=yes",
                f"--callgrind-out-file={target}",
                *command,
            ],
            cwd=cwd,
            env=env,
            capture_output=True,
            text=True,
            check=False,
        )
        counted = re.search(r"Collected : (\d+)", done.stderr)
        if done.returncode != 0 or counted is None:
            raise RuntimeError(f"callgrind run failed:\n{done.stdout[-1500:]}{done.stderr[-6000:]}")
        annotated = [
            subprocess.run(
                ["callgrind_annotate", "--inclusive=yes", "--threshold=100", str(part)],
                capture_output=True,
                text=True,
                check=False,  # a thread that ran nothing while counted has an empty file
            ).stdout
            for part in sorted(Path(out).glob("callgrind.out*"))
        ]
        return done.stdout, f"Collected : {counted.group(1)}\n" + "\n".join(annotated)


def inclusive(annotated: str, names: list[str]) -> dict[str, int]:
    """Each probe's inclusive instructions from ``run``'s output (0 when never called)."""
    found = dict.fromkeys(names, 0)
    for line in annotated.splitlines():
        match = re.match(r"\s*([\d,]+)\s.*\bbench_p(\d+) \[", line)  # not p3'2 (re-entered)
        if match and int(match.group(2)) < len(names):
            found[names[int(match.group(2))]] += int(match.group(1).replace(",", ""))
    return found


def collected(annotated: str) -> int:
    match = re.match(r"Collected : (\d+)", annotated)
    if match is None:
        raise ValueError("not the output of callgrind.run")
    return int(match.group(1))
