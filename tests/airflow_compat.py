"""What the tests need from Airflow's internals, on 3.x and on 2.11 alike."""

from __future__ import annotations

import json
from typing import Any

#: dag.test() logs this when it runs a deferred task's trigger in-process, on both versions.
TRIGGER_RAN_INLINE = "running trigger in line"


def dag_bag(dag_folder: str) -> Any:
    try:
        from airflow.dag_processing.dagbag import DagBag  # Airflow 3
    except ImportError:
        from airflow.models.dagbag import DagBag  # Airflow 2.11
    return DagBag(dag_folder=dag_folder)


def stored_xcoms(dag_id: str, run_id: str | None = None) -> dict[tuple[str, str, int], Any]:
    """Every XCom of a DAG (of one run), keyed by (task_id, key, map_index), values deserialized."""
    from airflow.utils.session import create_session

    try:
        from airflow.models.xcom import XComModel as Model  # Airflow 3
    except ImportError:
        from airflow.models.xcom import BaseXCom as Model  # Airflow 2.11
    with create_session() as session:
        query = session.query(Model).filter(Model.dag_id == dag_id)
        if run_id:
            query = query.filter(Model.run_id == run_id)
        rows = query.all()
        values = {(row.task_id, row.key, row.map_index): _value(Model, row) for row in rows}
    return values


def _value(model: Any, row: Any) -> Any:
    if hasattr(model, "deserialize_value") and not isinstance(row.value, (str, dict, list)):
        return model.deserialize_value(row)  # Airflow 2.11 stores bytes
    value = row.value
    if isinstance(value, str):
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value


def rendered_fields() -> list[Any]:
    from airflow.models.renderedtifields import RenderedTaskInstanceFields
    from airflow.utils.session import create_session

    with create_session() as session:
        return [row.rendered_fields for row in session.query(RenderedTaskInstanceFields)]


def airflow_version() -> tuple[int, int]:
    from airflow import __version__

    major, minor = __version__.split(".")[:2]
    return int(major), int(minor)
