"""The README's DAG example is real code: it parses and builds the tasks it shows."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

README = Path(__file__).resolve().parent.parent / "README.md"


def python_blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", README.read_text(), re.DOTALL)


def test_the_readme_dag_example_builds_its_tasks():
    example = next(block for block in python_blocks() if "with DAG(" in block)
    namespace: dict = {}
    exec(compile(example, "README.md", "exec"), namespace)
    retry, published = namespace["retry"], namespace["published"]
    assert retry.deferrable and published.deferrable
    assert retry.downstream_task_ids == {"post_is_published"}


RESULTS = README.parent / "bench" / "RESULTS.md"


@pytest.mark.any_airflow  # text against text: the same on every Airflow
def test_the_readme_quotes_the_benchmark_figures_as_bench_results_has_them():
    """Figures are measured once, by make bench; the README only quotes them (so the two cannot drift)."""
    readme, results = README.read_text(), RESULTS.read_text()
    performance = readme[readme.index("## Performance") : readme.index("## Example DAGs")]
    quoted = re.findall(r"\*\*([0-9.]+x?)\*\*", performance)
    assert quoted, "the Performance section quotes no figure"
    for figure in quoted:
        assert f"**{figure.removesuffix('x')}**" in results, (
            f"README quotes {figure}, bench/RESULTS.md does not say it"
        )
    burst = readme[readme.index("## Recovering many posts") : readme.index("## Reliability and security")]
    rows = [
        line
        for line in burst.splitlines()
        if line.startswith(("| read, then PUT", "| read, PUT", "| one call"))
    ]
    # The burst (0.2 and 1.0), and the worker runs.
    assert len(rows) == 5 and all(row in results for row in rows)
