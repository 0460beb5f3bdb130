"""The wheel's package list is complete, and the example DAGs are the package ayrshare_provider.example_dags."""

from __future__ import annotations

import tomllib
from pathlib import Path

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
    from ayrshare_provider.emulator.demo import DAG_ID, installed_example_dags

    folder = installed_example_dags()
    assert folder.resolve() == (REPO / "example_dags").resolve()
    assert (folder / f"{DAG_ID}.py").is_file()
