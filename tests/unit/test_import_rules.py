"""The dependency rules of docs/architecture.md, read from the import statements themselves
(every ``import`` anywhere in a module, functions' bodies and ``TYPE_CHECKING`` blocks
included)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
LAYER = ROOT / "layers" / "notifications" / "notifications"
FUNCTIONS = ROOT / "functions"
LOCAL_RUNTIME = ROOT / "notifyctl" / "local"
# Adapters: the adapters package, and the channel providers (adapters to SES, SNS, HTTP).
ADAPTER_DIRS = (LAYER / "adapters", LAYER / "channels")
AWS_SDK = ("boto3", "botocore")  # runtime imports; mypy_boto3_* stubs are types only


def imports(path: Path) -> set[str]:
    """Every module ``path`` imports (``from a.b import c`` gives ``a.b`` and ``a.b.c``)."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                names.add("." * node.level + (node.module or ""))
                continue
            module = node.module or ""
            names.add(module)
            names.update(f"{module}.{alias.name}" for alias in node.names)
    return names


def top(name: str) -> str:
    return name.split(".")[0]


def layer_modules() -> list[Path]:
    return sorted(LAYER.rglob("*.py"))


def is_adapter(path: Path) -> bool:
    return any(directory in path.parents for directory in ADAPTER_DIRS)


def test_the_rules_see_every_layer_module_and_handler():
    # Guards the globs below: an empty list would make every rule pass.
    assert len(layer_modules()) >= 40
    assert len(list(FUNCTIONS.glob("*/app.py"))) >= 5
    assert (LAYER / "adapters" / "aws.py") in layer_modules()


@pytest.mark.parametrize("path", layer_modules(), ids=lambda p: str(p.relative_to(LAYER)))
def test_only_adapters_import_boto3_or_botocore(path):
    sdk = {name for name in imports(path) if top(name) in AWS_SDK}
    if not is_adapter(path):
        assert sdk == set(), f"{path.relative_to(ROOT)} imports {sorted(sdk)}"


@pytest.mark.parametrize("path", layer_modules(), ids=lambda p: str(p.relative_to(LAYER)))
def test_the_layer_never_imports_notifyctl_or_a_handler(path):
    found = {name for name in imports(path) if top(name) in ("notifyctl", "functions", "app")}
    assert found == set(), f"{path.relative_to(ROOT)} imports {sorted(found)}"


@pytest.mark.parametrize("path", sorted(FUNCTIONS.glob("*/app.py")), ids=lambda p: p.parent.name)
def test_handlers_never_import_each_other_and_reach_the_layer_only(path):
    allowed_tops = {"notifications", "aws_lambda_powertools", "typing", "datetime", "__future__"}
    found = {top(name) for name in imports(path) if not name.startswith(".")}
    relative = {name for name in imports(path) if name.startswith(".")}
    assert relative == set()
    assert found <= allowed_tops, f"{path} imports {sorted(found - allowed_tops)}"
    # and each is a plain handler(event, context)
    tree = ast.parse(path.read_text())
    handler = next(n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == "handler")
    assert [a.arg for a in handler.args.args] == ["event", "context"]


@pytest.mark.parametrize(
    "path", sorted(LOCAL_RUNTIME.rglob("*.py")), ids=lambda p: str(p.relative_to(LOCAL_RUNTIME))
)
def test_the_local_runtime_reaches_functions_only_through_their_handler(path):
    # It loads a function's module from the template's Handler and calls handler(event,
    # context) (functions.py); it never imports a function or the layer's wiring.
    names = imports(path)
    assert {n for n in names if top(n) in ("functions", "app")} == set()
    layer = {n for n in names if top(n) == "notifications"}
    assert layer <= {"notifications.adapters.aws", "notifications.adapters.aws.reset_clients"}
