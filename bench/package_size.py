"""Figure 4: zipped size of each function and of the layer after ``sam build``.

Runs ``sam build`` (the venv's ``sam``; it needs a python3.13 on PATH, which the venv
provides) into a temporary build directory, zips every artifact directory with deflate as
``sam deploy`` uploads it, checks that boto3/botocore are not bundled (the Lambda runtime
provides them), prints the sizes and deletes the build. When ``sam build`` cannot run, it says
why and measures the layer as ``pip install --platform manylinux2014_aarch64`` of
``layers/notifications/requirements.txt`` plus the package and its bytecode
(``precompile.py``, with this interpreter) instead.

The reference in the same run: the same layer with boto3 bundled (what a naive build that
lists boto3 in requirements.txt would ship).

    python bench/package_size.py [--keep]
"""

from __future__ import annotations

import argparse
import io
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path
from typing import Any

import common

GOAL_LAYER_BYTES = 5 * 1024 * 1024
PLATFORM = [
    "--platform",
    "manylinux2014_aarch64",
    "--only-binary=:all:",
    "--python-version",
    "3.13",
]


# What the Lambda python3.13 runtime already provides (boto3 and its dependency tree); a layer
# that bundles them also shadows the runtime's copies (layers come first on sys.path).
RUNTIME_SDK = {"boto3", "botocore", "s3transfer", "jmespath", "dateutil", "urllib3", "six"}


def _top_package(path: Path, directory: Path) -> str:
    parts = path.relative_to(directory).parts
    top = parts[1] if parts[0] == "python" and len(parts) > 1 else parts[0]
    return top.split("-")[0].removesuffix(".py").replace("python_dateutil", "dateutil")


def zipped_size(directory: Path, exclude: set[str] | None = None) -> tuple[int, int]:
    """(zipped bytes, unzipped bytes) of a directory, zipped in memory with deflate, leaving
    out the top-level packages in ``exclude`` (and their dist-info)."""
    buffer = io.BytesIO()
    raw = 0
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED, compresslevel=6) as archive:
        for path in sorted(directory.rglob("*")):
            if exclude and _top_package(path, directory) in exclude:
                continue
            if path.is_file():
                archive.write(path, path.relative_to(directory))
                raw += path.stat().st_size
    return len(buffer.getvalue()), raw


def bundles_boto(directory: Path) -> bool:
    return any(
        (directory / sub / name).exists()
        for sub in ("", "python")
        for name in ("boto3", "botocore")
    )


def sam_build(build_dir: Path) -> str | None:
    """Run sam build; returns None on success, else why it failed."""
    sam = shutil.which("sam", path=str(Path(sys.executable).parent)) or shutil.which("sam")
    if sam is None:
        return "no `sam` executable found"
    env = dict(os.environ)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env["SAM_CLI_TELEMETRY"] = "0"
    result = subprocess.run(
        [
            sam,
            "build",
            "--template",
            str(common.TEMPLATE),
            "--build-dir",
            str(build_dir),
            "--cache-dir",
            str(build_dir.parent / "cache"),
        ],
        cwd=build_dir.parent,  # sam keeps .aws-sam/deps under the working directory
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        return (result.stderr or result.stdout)[-1500:]
    return None


def pip_layer(
    target: Path, extra: list[str], platform: list[str] = PLATFORM, bytecode: bool = True
) -> None:
    """The layer as the Makefile builds it into ``target``: pip install of its requirements
    (for ``platform``: arm64 unless told otherwise), the notifications package, and (unless
    ``bytecode`` is false) the bytecode precompile.py writes."""
    requirements = common.ROOT / "layers" / "notifications" / "requirements.txt"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--quiet",
            *platform,
            "--target",
            str(target),
            "-r",
            str(requirements),
            *extra,
        ],
        check=True,
        capture_output=True,
    )
    shutil.copytree(
        common.ROOT / "layers" / "notifications" / "notifications",
        target / "notifications",
        ignore=shutil.ignore_patterns("__pycache__"),
    )
    if bytecode:  # the Makefile's last step: the modules the functions load (precompile.txt)
        precompile(target)


def precompile(target: Path) -> str:
    """Run layers/notifications/precompile.py on ``target``; what it printed."""
    out = subprocess.run(
        [sys.executable, str(common.ROOT / "layers" / "notifications" / "precompile.py"), target],
        check=True,
        capture_output=True,
        text=True,
    )
    return out.stdout.strip()


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keep", action="store_true", help="keep the temporary build")
    args = parser.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="bench-size-"))
    sizes: dict[str, tuple[int, int, bool]] = {}
    note = ""
    try:
        build_dir = work / "build"
        failure = sam_build(build_dir)
        if failure is None:
            for artifact in sorted(p for p in build_dir.iterdir() if p.is_dir()):
                zipped, raw = zipped_size(artifact)
                sizes[artifact.name] = (zipped, raw, bundles_boto(artifact))
                if bundles_boto(artifact):
                    zipped, raw = zipped_size(artifact, RUNTIME_SDK)
                    sizes[f"{artifact.name} without boto3/botocore & deps"] = (zipped, raw, False)
            note = "sam build (arm64, python3.13)"
        else:
            why = failure.strip()[-300:]
            note = f"sam build failed ({why}); pip --platform manylinux2014_aarch64 instead"
            layer = work / "layer" / "python"
            pip_layer(layer, [])
            zipped, raw = zipped_size(layer.parent)
            sizes["NotificationsLayer (pip)"] = (zipped, raw, bundles_boto(layer.parent))
        # The naive reference: the same layer with boto3 bundled.
        naive = work / "naive" / "python"
        pip_layer(naive, ["boto3"])
        zipped, raw = zipped_size(naive.parent)
        sizes["reference: layer + boto3 bundled"] = (zipped, raw, True)
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    layer_zipped = next((v[0] for k, v in sizes.items() if k.startswith("NotificationsLayer")), 0)
    reference = sizes["reference: layer + boto3 bundled"][0]
    rows = [
        [
            name,
            f"{z / 1024:.0f}",
            f"{r / 1024:.0f}",
            "yes" if boto else "no",
            common.ratio(z, reference),
        ]
        for name, (z, r, boto) in sizes.items()
    ]
    print(f"Figure 4: package size ({note})")
    print(
        common.table(
            rows, ["artifact", "zipped KiB", "unzipped KiB", "boto3 inside", "vs reference"]
        )
    )
    verdict = "met" if 0 < layer_zipped < GOAL_LAYER_BYTES else "NOT met"
    print(f"goal: layer under 5 MiB zipped: {verdict} ({layer_zipped / 1024 / 1024:.2f} MiB)")
    if any(boto for name, (_, _, boto) in sizes.items() if name.startswith("NotificationsLayer")):
        print(
            "  the layer bundles botocore (aws-xray-sdk, from aws-lambda-powertools[tracer], "
            "depends on it): it shadows the runtime's SDK and is most of the size"
        )
    return {name: {"zipped": z, "unzipped": r, "boto3": b} for name, (z, r, b) in sizes.items()}


if __name__ == "__main__":
    main()
