"""The one stand-in of the unit tests: a task instance that records XCom pushes.

Direct operator tests call ``execute(context)``; only ``context["ti"].xcom_push`` is used.
DAG tests (tests/test_dags.py) cover the same paths with real task instances.
"""

from __future__ import annotations

from typing import Any


class RecordingTI:
    def __init__(self) -> None:
        self.xcoms: dict[str, Any] = {}

    def xcom_push(self, key: str, value: Any) -> None:
        self.xcoms[key] = value


def make_context() -> dict[str, Any]:
    return {"ti": RecordingTI()}
