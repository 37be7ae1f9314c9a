"""The layer's bytecode (layers/notifications/precompile.py, run by the layer's Makefile at
`sam build`): what it compiles is loaded without its source, a list pattern that matches
nothing stops the build, and every layer module a cold start loads is on the list."""

from __future__ import annotations

import importlib.metadata
import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path
from types import ModuleType

from packaging.requirements import Requirement

from tests.unit.test_cold_start_imports import FUNCTIONS, run_in_function

ROOT = Path(__file__).resolve().parents[2]
LAYER = ROOT / "layers" / "notifications"


def precompile() -> ModuleType:
    spec = importlib.util.spec_from_file_location("precompile", LAYER / "precompile.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def run_precompile(python_dir: Path, list_file: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(LAYER / "precompile.py"), str(python_dir), "--list", str(list_file)],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )


def test_a_precompiled_module_is_loaded_from_its_bytecode_without_its_source(tmp_path):
    # Given a layer directory holding the notifications package, compiled by precompile.py
    python_dir = tmp_path / "python"
    shutil.copytree(
        LAYER / "notifications",
        python_dir / "notifications",
        ignore=shutil.ignore_patterns("__pycache__"),
    )
    (tmp_path / "list.txt").write_text("# ours\nnotifications/**/*.py\n")
    sources = list((python_dir / "notifications").rglob("*.py"))
    result = run_precompile(python_dir, tmp_path / "list.txt")
    assert result.returncode == 0, result.stderr
    assert result.stdout == (
        f"precompile: {len(sources)} modules compiled "
        f"({sys.implementation.cache_tag}, unchecked hash)\n"
    )
    # Then every module has a .pyc marked hash-based and unchecked (PEP 552 flags = 0b01)
    cached = [Path(importlib.util.cache_from_source(str(source))) for source in sources]
    assert [path for path in cached if not path.exists()] == []
    assert {int.from_bytes(path.read_bytes()[4:8], "little") for path in cached} == {1}
    # And when a module's source no longer matches (a new modification time, other bytes),
    # a read-only interpreter still loads the module from its .pyc: the source is not read
    (python_dir / "notifications" / "kinds.py").write_text("raise RuntimeError('source read')\n")
    out = subprocess.run(
        [sys.executable, "-c", "import notifications.kinds as k; print(k.Channel.EMAIL.value)"],
        env={**os.environ, "PYTHONPATH": str(python_dir), "PYTHONDONTWRITEBYTECODE": "1"},
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=False,
    )
    assert (out.returncode, out.stdout) == (0, "email\n"), out.stderr


def test_a_pattern_that_matches_no_module_stops_the_build(tmp_path):
    # Given a list whose second pattern names a package the layer does not hold
    (tmp_path / "python" / "notifications").mkdir(parents=True)
    (tmp_path / "python" / "notifications" / "__init__.py").write_text("")
    (tmp_path / "list.txt").write_text("notifications/*.py\nsimplejson/*.py\n")
    # When precompile.py runs
    result = run_precompile(tmp_path / "python", tmp_path / "list.txt")
    # Then it fails with one line naming the pattern, and compiles nothing
    assert result.returncode == 2
    assert result.stdout == (
        f"precompile: 'simplejson/*.py' (list.txt) matches no module in {tmp_path / 'python'}\n"
    )
    assert list(tmp_path.rglob("*.pyc")) == []


def provided_by_runtime() -> set[str]:
    """The top-level packages the layer's Makefile drops because the Lambda runtime provides
    them (its ``PROVIDED_BY_RUNTIME``)."""
    match = re.search(
        r"^PROVIDED_BY_RUNTIME := (.+)$", (LAYER / "Makefile").read_text(), re.MULTILINE
    )
    assert match is not None
    return {name.removesuffix(".py") for name in match.group(1).split()}


def layer_distributions() -> set[str]:
    """The distributions requirements.txt installs: its lines and what they require (extras
    included)."""
    pending = [
        Requirement(line)
        for line in (LAYER / "requirements.txt").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    names: set[str] = set()
    while pending:
        requirement = pending.pop()
        name = re.sub(r"[-_.]+", "-", requirement.name).lower()
        if name in names:
            continue
        names.add(name)
        for spec in importlib.metadata.requires(requirement.name) or []:
            requires = Requirement(spec)
            extras = requirement.extras or {""}
            if requires.marker is None or any(
                requires.marker.evaluate({"extra": extra}) for extra in extras
            ):
                pending.append(requires)
    return names


def layer_path(module_file: str, site_packages: Path, layer_top_levels: set[str]) -> str | None:
    """``module_file`` relative to the layer's python/ directory, or None when it is not
    a layer module (the standard library, the runtime's SDK, this venv's own packages)."""
    path = Path(module_file)
    if path.is_relative_to(LAYER / "notifications"):
        return path.relative_to(LAYER).as_posix()
    if path.is_relative_to(site_packages) and path.suffix == ".py":
        relative = path.relative_to(site_packages)
        if relative.parts[0].removesuffix(".py") in layer_top_levels:
            return relative.as_posix()
    return None


FIRST_USE = """
from datetime import UTC, datetime
from notifications.models import Channel, NotificationRequested
from notifications.registry import validate_recipient
at = datetime(2026, 12, 1, tzinfo=UTC)
request = NotificationRequested(
    notification_id="00000000-0000-4000-8000-000000000001", channel=Channel.EMAIL,
    recipient="alice@example.com", template_id="welcome", category="account",
    data={"name": "Alice", "user_id": "user-1"}, event_id="evt-1", event_type="UserRegistered",
    correlation_id="evt-1", occurred_at=at, requested_at=at,
)
validate_recipient(request.channel, request.recipient)
app.sender.providers[Channel.EMAIL].build_message(request, app.sender.renderer.render(request))
validate_recipient(Channel.SMS, "+14155550100")
"""
PRINT_FILES = (
    "\nimport json, sys\n"
    "print(json.dumps(sorted(f for m in list(sys.modules.values()) "
    "if (f := getattr(m, '__file__', None)))))\n"
)


def test_every_layer_module_a_cold_start_loads_has_its_bytecode_listed():
    # Given the modules each function loads: at import (every function), on the sender's
    # first email and SMS, and with TraceAwsCalls=true (Powertools' Tracer, the X-Ray SDK)
    runs = [(function, "import app\n", {}) for function in FUNCTIONS]
    runs += [
        ("sender", "import app\n" + FIRST_USE, {"PREFERENCE_LINK_SECRET_ARN": ""}),
        ("sender", "import app\n", {"POWERTOOLS_TRACE_DISABLED": "false"}),
    ]
    site_packages = Path(sysconfig.get_paths()["purelib"])
    # the layer's packages: what requirements.txt installs, less what the Makefile drops
    shipped = layer_distributions()
    top_levels = {
        top
        for top, distributions in importlib.metadata.packages_distributions().items()
        if any(re.sub(r"[-_.]+", "-", d).lower() in shipped for d in distributions)
    } - provided_by_runtime()
    loaded: set[str] = set()
    for function, code, overrides in runs:
        lines = run_in_function(function, code + PRINT_FILES, **overrides)
        for module_file in json.loads(lines[-1]):
            relative = layer_path(module_file, site_packages, top_levels)
            if relative is not None:
                loaded.add(relative)
    # When the list's patterns are matched against the same packages
    tool = precompile()

    def matched(globs: list[str]) -> set[str]:
        return {
            path.relative_to(root).as_posix()
            for root in (LAYER, site_packages)
            for paths in tool.selected(root, globs).values()
            for path in paths
        }

    listed = matched(tool.patterns(LAYER / "precompile.txt"))
    left_out = matched(tool.left_out(LAYER / "precompile.txt"))
    # Then every layer module loaded is compiled at build time (the check sees the layer's
    # packages: our own, Powertools, the template engine) or left out by name: the region
    # metadata of the SMS number check
    assert {"notifications/sending.py", "aws_lambda_powertools/logging/logger.py"} <= loaded
    assert "jinja2/environment.py" in loaded
    assert sorted(loaded - listed - left_out) == []
    assert sorted(loaded & left_out) == ["phonenumbers/data/region_US.py"]
