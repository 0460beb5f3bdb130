"""The house drawn from the code (docs/architecture.md): every import goes down or across a layer, none in a circle."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

pytestmark = pytest.mark.any_airflow  # the same on every Airflow: CI runs it once, on 3.3

PACKAGE = Path(__file__).resolve().parent.parent / "ayrshare_provider"

#: Bottom to top, by module name (the longest matching prefix decides). A module may import its
#: own layer and those below, never one above.
LAYERS: dict[str, int] = {
    # 0: what a record, an error, a connection's fields, an asset's name, a delivery mean; Airflow's versions
    "exceptions": 0,
    "posts": 0,
    "assets": 0,
    "connection_form": 0,
    "rate_budget": 0,
    "metrics": 0,
    "webhook_delivery": 0,
    "version_compat": 0,
    "retry_policy": 0,
    "repost_ledger": 0,
    "utils": 0,
    "": 0,  # the package's __init__: provider registration only
    # 1: the hook, the one owner of HTTP
    "hooks": 1,
    # 2: waits in the triggerer, and the extra link they and the tasks store
    "triggers": 2,
    "links": 2,
    # 3: tasks
    "operators": 3,
    "sensors": 3,
    # 4: the recovery library, built from tasks
    "recovery": 4,
    "recovery_plan": 4,
    "agency": 4,
    "recovery_steps": 4,
    "digest": 4,
    "run_stats": 4,
    # 5: the webhook receiver, in Airflow's API server
    "plugins": 5,
}


def _name(path: Path) -> str:
    parts = path.relative_to(PACKAGE).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _prefix(module: str) -> str | None:
    """The key of :data:`LAYERS` that places ``module``: the longest prefix that matches, or None."""
    candidates = [prefix for prefix in LAYERS if module == prefix or module.startswith(f"{prefix}.")]
    return max(candidates, key=len) if candidates else None


def _layer(module: str) -> int:
    return LAYERS[_prefix(module) or ""]


def _imports() -> dict[str, set[str]]:
    """Each module of the package, with the modules of the package it imports (each name of an import resolved)."""
    modules = {_name(path): path for path in PACKAGE.rglob("*.py")}

    def own(name: str) -> str | None:
        short = name.removeprefix("ayrshare_provider").lstrip(".")
        return short if name.startswith("ayrshare_provider") and short in modules else None

    found: dict[str, set[str]] = {}
    for module, path in modules.items():
        targets = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module:
                for alias in node.names:  # a module imported by name, else the module imported from
                    target = own(f"{node.module}.{alias.name}") or own(node.module)
                    targets |= {target} if target is not None else set()
            elif isinstance(node, ast.Import):
                targets |= {target for alias in node.names if (target := own(alias.name)) is not None}
        found[module] = targets - {module}
    return found


def test_every_module_has_a_layer():
    modules = _imports()
    assert [module for module in modules if module and _prefix(module) in (None, "")] == []
    assert set(modules) >= {"hooks.ayrshare", "triggers.post_status", "recovery", "version_compat"}
    # Every name of a multi-name import counts: the receiver imports three modules in one line.
    assert {"assets", "version_compat", "webhook_delivery"} <= modules["plugins.webhook_receiver"]


def test_no_import_runs_back_up_a_layer():
    upward = [
        f"{module} (layer {_layer(module)}) imports {target} (layer {_layer(target)})"
        for module, targets in _imports().items()
        for target in targets
        if _layer(target) > _layer(module)
    ]
    assert upward == []


def test_no_import_goes_in_a_circle():
    imports, done, circles = _imports(), set(), []

    def visit(module: str, path: list[str]) -> None:
        for target in sorted(imports[module]):
            if target in path:
                circles.append(" -> ".join([*path[path.index(target) :], target]))
            elif target not in done:
                visit(target, [*path, target])
        done.add(module)

    for module in sorted(imports):
        visit(module, [module])
    assert circles == []
