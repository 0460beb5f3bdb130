"""The two distributions: the provider's package list is complete, its example DAGs are the package
ayrshare_provider.example_dags, and neither imports the other (the emulator is Ayrshare's stand-in,
the provider its client)."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

pytestmark = pytest.mark.any_airflow  # the same on every Airflow: CI runs it once, on 3.3

REPO = Path(__file__).resolve().parent.parent
SETUPTOOLS = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]


def test_every_package_directory_is_listed_for_the_wheel():
    """pyproject.toml lists the packages (the example DAGs are mapped, not found): a new one must be added."""
    found = {
        ".".join(init.parent.relative_to(REPO).parts)
        for init in (REPO / "ayrshare_provider").rglob("__init__.py")
    }
    assert set(SETUPTOOLS["packages"]) == found | {"ayrshare_provider.example_dags"}
    assert SETUPTOOLS["package-dir"] == {"ayrshare_provider.example_dags": "example_dags"}


def test_the_installed_example_dags_are_the_repositorys_folder():
    """The editable install maps ayrshare_provider.example_dags to example_dags/, which the demo defaults to."""
    import runpy

    demo = runpy.run_path(str(REPO / ".ci" / "demo.py"))  # dev tooling, in neither wheel
    DAG_ID = demo["DAG_ID"]
    folder = demo["installed_example_dags"]()
    assert folder.resolve() == (REPO / "example_dags").resolve()
    assert (folder / f"{DAG_ID}.py").is_file()


def test_the_provider_and_the_emulator_never_import_each_other():
    import ast

    def imported(folder: Path) -> set[str]:
        names = set()
        for path in folder.rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text())):
                if isinstance(node, ast.Import):
                    names |= {alias.name.split(".")[0] for alias in node.names}
                elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                    names.add(node.module.split(".")[0])
        return names

    emulator = REPO / "ayrshare-emulator" / "ayrshare_emulator"
    assert "ayrshare_emulator" not in imported(REPO / "ayrshare_provider") | imported(REPO / "example_dags")
    assert not {"ayrshare_provider", "airflow"} & imported(emulator)
    emulator_project = tomllib.loads((REPO / "ayrshare-emulator" / "pyproject.toml").read_text())["project"]
    assert not any("airflow" in requirement for requirement in emulator_project["dependencies"])
