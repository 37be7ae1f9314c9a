"""Compile the bytecode of the layer modules listed in precompile.txt (the Makefile runs this
at `sam build`, with the runtime's python3.13: a .pyc is only used by the Python version that
wrote it).

Lambda mounts a layer read-only at /opt, so a module shipped without its .pyc is compiled
from source at every cold start. The .pyc files written here are *unchecked* hash-based
(PEP 552): Python loads them without looking at the source's modification time, which the
layer's zip keeps only to two seconds and which would otherwise make every .pyc stale. The
name recorded for tracebacks is the module's path in Lambda, /opt/python/...

    python3.13 precompile.py PYTHON_DIR [--list precompile.txt]

Exits with 2, naming the pattern, when a pattern of the list matches no module: a package
that changed its layout must not silently lose its bytecode.
"""

from __future__ import annotations

import argparse
import importlib.util
import py_compile
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
LAMBDA_LAYER_PATH = "/opt/python"


def lines(list_file: Path) -> list[str]:
    """The lines of ``list_file`` that are not blank; ``#`` starts a comment."""
    stripped = (line.partition("#")[0].strip() for line in list_file.read_text().splitlines())
    return [line for line in stripped if line]


def patterns(list_file: Path) -> list[str]:
    """The globs of the modules to compile."""
    return [line for line in lines(list_file) if not line.startswith("!")]


def left_out(list_file: Path) -> list[str]:
    """The globs (``!`` lines) of modules a cold start may load that are left out on purpose."""
    return [line.removeprefix("!") for line in lines(list_file) if line.startswith("!")]


def selected(root: Path, globs: list[str]) -> dict[str, list[Path]]:
    """Per glob, the ``.py`` files under ``root`` it matches (sorted)."""
    return {
        glob: sorted(path for path in root.glob(glob) if path.suffix == ".py" and path.is_file())
        for glob in globs
    }


def compile_module(path: Path, root: Path) -> None:
    py_compile.compile(
        str(path),
        cfile=importlib.util.cache_from_source(str(path)),
        dfile=f"{LAMBDA_LAYER_PATH}/{path.relative_to(root).as_posix()}",
        doraise=True,
        invalidation_mode=py_compile.PycInvalidationMode.UNCHECKED_HASH,
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("python_dir", type=Path, help="the layer's python/ directory")
    parser.add_argument("--list", type=Path, default=HERE / "precompile.txt")
    args = parser.parse_args(argv)
    root = args.python_dir.resolve()
    matches = selected(root, patterns(args.list))
    empty = [glob for glob, paths in matches.items() if not paths]
    if empty:
        print(f"precompile: {empty[0]!r} ({args.list.name}) matches no module in {root}")
        return 2
    modules = sorted({path for paths in matches.values() for path in paths})
    for path in modules:
        compile_module(path, root)
    tag = sys.implementation.cache_tag
    print(f"precompile: {len(modules)} modules compiled ({tag}, unchecked hash)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
