"""The stand-ins of the unit tests: a task instance that records XCom pushes, and a task state store.

Direct operator tests call ``execute(context)``; only ``context["ti"]``'s XComs (its own) and
``context["task_state_store"]`` are used. DAG and full-stack tests cover the same paths with
real task instances.
"""

from __future__ import annotations

from typing import Any


class RecordingTI:
    """One try of a task instance: its XComs start empty, as a new try's do."""

    task_id = "task"
    map_index = -1
    try_number = 1  # a test sets 2 for a later attempt

    def __init__(self) -> None:
        self.xcoms: dict[str, Any] = {}

    def xcom_push(self, key: str, value: Any) -> None:
        self.xcoms[key] = value

    def xcom_pull(self, task_ids: str, key: str, map_indexes: int) -> Any:
        assert (task_ids, map_indexes) == (self.task_id, self.map_index), "only its own XComs"
        return self.xcoms.get(key)


class StateStore(dict):
    """Airflow 3.3's ``task_state_store``, as a dict: it outlives one attempt of a task instance."""

    def set(self, key: str, value: Any) -> None:
        self[key] = value


def make_context(state_store: StateStore | None = None) -> dict[str, Any]:
    context: dict[str, Any] = {"ti": RecordingTI()}
    if state_store is not None:
        context["task_state_store"] = state_store
    return context
