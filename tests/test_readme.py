"""The README's DAG example is real code: it parses and builds the tasks it shows."""

from __future__ import annotations

import re
from pathlib import Path

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
