"""The stand-ins of the unit tests: a task instance that records XCom pushes, and a task state store.

Direct operator tests call ``execute(context)``; only ``context["ti"].xcom_push`` and
``context["task_state_store"]`` are used. DAG and full-stack tests cover the same paths with
real task instances.
"""

from __future__ import annotations

from typing import Any


class RecordingTI:
    def __init__(self) -> None:
        self.xcoms: dict[str, Any] = {}

    def xcom_push(self, key: str, value: Any) -> None:
        self.xcoms[key] = value


class StateStore(dict):
    """Airflow 3.3's ``task_state_store``, as a dict: it outlives one attempt of a task instance."""

    def set(self, key: str, value: Any) -> None:
        self[key] = value


def make_context(state_store: StateStore | None = None) -> dict[str, Any]:
    context: dict[str, Any] = {"ti": RecordingTI()}
    if state_store is not None:
        context["task_state_store"] = state_store
    return context
