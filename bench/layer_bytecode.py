"""Figure 3b: what the layer's bytecode saves each cold start (layers/notifications/precompile.py).

In Lambda a layer is mounted read-only at /opt: a module shipped without its ``.pyc`` is
compiled from source at every cold start. ``bench/cold_start.py`` imports the layer from the
repository, whose ``__pycache__`` the development runs filled, so its figures assume
bytecode. This benchmark builds the layer as `sam build` does, for this machine's platform
(the arm64 build's msgspec cannot load here): ``pip install --target`` of
``layers/notifications/requirements.txt``, the ``notifications`` package, the runtime's SDK
dropped. Then each cold start row of ``bench/cold_start.py`` runs on that layer twice,
``PYTHONDONTWRITEBYTECODE=1`` as on a read-only /opt: sources only (the layer before
precompile.py) and with the bytecode precompile.py writes. The reference is the same run's
``import boto3`` + one client (the runtime's own SDK: its bytecode is this venv's).

Measured in CPU time (median of ``--runs``, interleaved) and, with ``--instructions``, in
instructions (valgrind callgrind, once per row: the count does not move with the machine's
load, CPU time on a shared machine does).

    python bench/layer_bytecode.py [--runs 7] [--instructions] [--keep]
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import cold_start
import common
import package_size


def build_layer(target: Path) -> None:
    """The layer for this machine: the build's pip install (host platform), our package, the
    runtime's SDK dropped (the Makefile's PROVIDED_BY_RUNTIME). No bytecode."""
    package_size.pip_layer(
        target, ["--only-binary=:all:", "--no-compile"], platform=[], bytecode=False
    )
    for name in package_size.RUNTIME_SDK:
        shutil.rmtree(target / name, ignore_errors=True)
    (target / "six.py").unlink(missing_ok=True)


def on_layer(row: str | None, layer: Path | None) -> tuple[str, str, dict[str, str], list[str]]:
    """``cold_start.command(row)`` with the layer at ``layer`` instead of the repository's,
    and no bytecode written (/opt is read-only)."""
    code, cwd, env, args = cold_start.command(row)
    if layer is not None:
        env = {**env, "PYTHONPATH": str(layer), "PYTHONDONTWRITEBYTECODE": "1"}
    return code, cwd, env, args


def cpu_seconds(row: str | None, layer: Path | None) -> float:
    code, cwd, env, args = on_layer(row, layer)
    out = subprocess.run(
        [sys.executable, "-c", cold_start.LAMBDA_PRELUDE + code, *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    return float(out.stdout.split()[-1])


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--runs", type=int, default=7, help="CPU time: median of RUNS")
    parser.add_argument(
        "--instructions", action="store_true", help="also count instructions (valgrind; slow)"
    )
    parser.add_argument("--keep", action="store_true", help="keep the built layers")
    args = parser.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="bench-bytecode-"))
    sources, compiled = work / "sources" / "python", work / "compiled" / "python"
    rows = [*cold_start.FUNCTIONS, *cold_start.VARIANTS]
    layers = {"sources only": sources, "precompiled": compiled}
    runs: list[tuple[str | None, str, Path | None]] = [(None, "reference", None)]
    runs += [(row, name, layer) for row in rows for name, layer in layers.items()]
    counts: dict[tuple[str | None, str], int] = {}
    cpu: dict[tuple[str | None, str], list[float]] = {}
    try:
        build_layer(sources)
        shutil.copytree(sources, compiled)
        compiled_note = package_size.precompile(compiled)
        for _ in range(args.runs):
            for row, name, layer in runs:
                cpu.setdefault((row, name), []).append(cpu_seconds(row, layer))
        if args.instructions:
            for row, name, layer in runs:
                code, cwd, env, extra = on_layer(row, layer)
                counts[row, name] = cold_start.count_instructions(code, cwd, env, extra)
            counts[None, "bare"] = cold_start.instructions(cold_start.BARE)
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)

    def cell(row: str | None, name: str) -> str:
        parts = []
        if cpu:
            median = statistics.median(cpu[row, name])
            base = statistics.median(cpu[None, "reference"])
            parts.append(f"{1000 * median:,.0f} ms ({common.ratio(median, base)})")
        if counts:
            own = counts[row, name] - counts[None, "bare"]
            base_count = counts[None, "reference"] - counts[None, "bare"]
            parts.append(f"{own / 1e6:,.0f} M ({common.ratio(own, base_count)})")
        return ", ".join(parts)

    table = [["boto3 + 1 client", cell(None, "reference"), "", ""]]
    for row in rows:
        saved = []
        if cpu:
            medians = [statistics.median(cpu[row, name]) for name in layers]
            saved.append(f"{1000 * (medians[0] - medians[1]):,.0f} ms")
        if counts:
            saved.append(
                f"{(counts[row, 'sources only'] - counts[row, 'precompiled']) / 1e6:,.0f} M"
            )
        table.append([row, cell(row, "sources only"), cell(row, "precompiled"), ", ".join(saved)])
    measures = [f"CPU ms, median of {args.runs}"] if cpu else []
    if counts:
        measures.append(
            f"M instructions less the bare interpreter's ({counts[None, 'bare'] / 1e6:,.0f} M)"
        )
    print(
        "Figure 3b: cold start on the layer as built (this platform), /opt read-only: "
        f"{' and '.join(measures)}; (x) against import boto3 + 1 client; {compiled_note}"
    )
    print(common.table(table, ["cold start", "sources only", "precompiled", "saved"]))
    return {
        f"{row} {name}": statistics.median(cpu[row, name]) if cpu else counts[row, name]
        for row in rows
        for name in layers
    }


if __name__ == "__main__":
    main()
