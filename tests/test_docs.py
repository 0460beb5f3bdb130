"""The README and the docs site tell what the code does: examples run, figures and names match their sources."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
DOCS = ROOT / "docs"
RESULTS = ROOT / "bench" / "RESULTS.md"
PACKAGE = ROOT / "ayrshare_provider"


def page(name: str) -> str:
    return (DOCS / name).read_text()


def test_the_readme_dag_example_builds_its_tasks():
    example = next(
        block
        for block in re.findall(r"```python\n(.*?)```", README.read_text(), re.DOTALL)
        if "with DAG(" in block
    )
    namespace: dict = {}
    exec(compile(example, "README.md", "exec"), namespace)
    retry, published = namespace["retry"], namespace["published"]
    assert retry.deferrable and published.deferrable
    assert retry.downstream_task_ids == {"post_is_published"}


@pytest.mark.any_airflow  # text against text: the same on every Airflow
def test_the_readme_is_short_and_every_link_in_it_leads_somewhere():
    text = README.read_text()
    assert len(text.splitlines()) <= 250
    for written in (text, *(doc.read_text() for doc in DOCS.glob("*.md"))):
        assert not re.findall(r"__[A-Z]+_TIME__", written)  # every time stated is a measured one
    for target in re.findall(r"\]\(([^)#]+?)(?:#[^)]*)?\)", text):
        if not target.startswith("http"):
            assert (ROOT / target).exists(), f"README links to {target}, which does not exist"


@pytest.mark.any_airflow
def test_the_docs_quote_the_benchmark_figures_as_bench_results_has_them():
    """Figures are measured once, by make bench; the docs only quote them (so the two cannot drift)."""
    results = RESULTS.read_text()
    quoted = re.findall(r"\*\*([0-9.]+x?)\*\*", page("performance.md"))
    assert quoted, "the Performance page quotes no figure"
    for figure in quoted:
        assert f"**{figure.removesuffix('x')}**" in results, f"docs quote {figure}, bench/RESULTS.md does not"
    rows = [
        line
        for line in page("many-posts.md").splitlines()
        if line.startswith(("| read, then PUT", "| read, PUT", "| one call"))
    ]
    # The burst (0.2 and 1.0), and the worker runs.
    assert len(rows) == 5 and all(row in results for row in rows)


@pytest.mark.any_airflow
def test_the_api_reference_covers_every_module_and_the_guides_include_real_code():
    api = page("api.md")
    modules = {
        ".".join(("ayrshare_provider", *path.relative_to(PACKAGE).with_suffix("").parts)).removesuffix(
            ".__init__"
        )
        for path in PACKAGE.rglob("*.py")
        if len(path.read_text().splitlines()) > 1  # a folder's one-line docstring holds no API
    }
    documented = set(re.findall(r"\.\. automodule:: (\S+)", api))
    assert modules - documented == set(), "modules missing from docs/api.md"
    includes = 0
    for doc in DOCS.glob("*.md"):
        for source, start, end in re.findall(
            r"```\{literalinclude\} (\S+)\n(?:.*\n)*?:start-after: \"(.*?)\"\n:end-before: \"(.*?)\"",
            doc.read_text(),
        ):
            code = (DOCS / source).read_text()
            assert start in code and end in code and code.index(start) < code.index(end), (doc.name, source)
            includes += 1
    assert includes >= 3  # the retry, the sensor and the watcher's trigger, from the example DAGs


@pytest.mark.any_airflow
def test_the_emulator_ids_in_the_docs_are_the_ones_it_serves():
    """The demo and every page use the emulator's default seed: the ids they show are the ones it serves."""
    import math

    from ayrshare_emulator import scenarios
    from ayrshare_emulator.state import Settings, State

    state = State(Settings("local-emulator-key", retry_delay=math.inf, rate_limit=0, history_cache=0))
    scenarios.demo(state)
    failed = {post.id for post in state.posts.values() if post.record.get("status") == "error"}
    report = re.findall(r"^[a-z ,]+?\s{2,}([A-Za-z0-9]{20})\s{2,}", page("quickstart.md"), re.MULTILINE)
    assert set(report) == failed
    example = re.search(r'"post_id": "(\w+)"', README.read_text())
    assert example and example.group(1) in failed  # the README's DAG retries a post the emulator serves
    commands = re.findall(r"python -m ayrshare_emulator[^\n]*", README.read_text() + page("emulator.md"))
    assert commands and not [command for command in commands if "--seed" in command]


@pytest.mark.any_airflow
def test_airflow_and_pip_describe_the_provider_alike():
    from ayrshare_provider import get_provider_info

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert get_provider_info()["description"] == project["description"]
