"""`make package-check`: the provider's wheel ships the package and the example DAGs, no emulator, no demo,
and no development tool in its metadata.

Usage: python .ci/check_wheel.py dist/airflow_provider_ayrshare-*.whl
"""

from __future__ import annotations

import re
import sys
import zipfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
# Never a dependency of the installed provider, under any extra: the `dev` dependency group's tools.
DEV_ONLY = {"celery", "apache-airflow-providers-celery", "psycopg2-binary", "asyncpg", "playwright"}
DEV_ONLY |= {"ruff", "mypy", "pytest", "pytest-httpserver", "build", "twine", "social-post-api"}
PACKAGED = "ayrshare_provider/example_dags/"  # where pyproject.toml maps the top-level example_dags/


def main(wheel: str) -> int:
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        metadata = next(name for name in names if name.endswith(".dist-info/METADATA"))
        lines = archive.read(metadata).decode().splitlines()
    problems = []
    shipped = sorted(Path(name).name for name in names if name.startswith(PACKAGED))
    expected = {path.name for path in (REPO / "example_dags").glob("*.py")}
    problems += [f"the wheel lacks {PACKAGED}{name}" for name in sorted(expected - set(shipped))]
    problems += [f"the wheel has a top-level {name}" for name in names if name.startswith("example_dags/")]
    # pyproject.toml lists the packages: one left out of the list is missing here.
    sources = {path.relative_to(REPO).as_posix() for path in (REPO / "ayrshare_provider").rglob("*.py")}
    problems += [f"the wheel lacks {name}" for name in sorted(sources - names)]
    # The emulator is its own distribution, the demo dev tooling: neither ships with the provider.
    problems += [f"the wheel has {name}" for name in sorted(names) if "emulator" in name or "demo" in name]
    extras = [line.split(":", 1)[1].strip() for line in lines if line.startswith("Provides-Extra:")]
    if extras != ["emulator", "redis"]:
        problems.append(f"extras are {extras}, not emulator and redis")
    for line in lines:
        if line.startswith("Requires-Dist:"):
            requirement = line.split(":", 1)[1].strip()
            name = re.split(r"[\s\[<>=!~;(]", requirement, maxsplit=1)[0].lower().replace("_", "-")
            if name in DEV_ONLY:
                problems.append(f"the metadata requires {requirement}")
    for problem in problems:
        print(f"check_wheel: {problem}", file=sys.stderr)
    if not problems:
        print(f"the wheel ships {PACKAGED}{{{','.join(shipped)}}}; its extras are emulator and redis")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:]))
