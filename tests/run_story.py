"""What a DAG run on a test stack did, told for an assertion message: its tasks' states and log ends.

A full-stack run that fails or does not end in CI can then be read from CI's output alone.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from typing import TYPE_CHECKING, Any

import requests

if TYPE_CHECKING:
    from tests.stack import AirflowStack, Standalone


def task_instances(stack: AirflowStack, dag_id: str, run_id: str) -> list[dict[str, Any]]:
    """Every task instance of the run, mapped ones included (the API gives 100 a page)."""
    path, found = f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances", []
    while True:
        page = stack.api("GET", path, params={"limit": 100, "offset": len(found)})
        found += page["task_instances"]
        if not page["task_instances"] or len(found) >= page["total_entries"]:
            return found


def failed_tasks(
    stack: AirflowStack, dag_id: str, run: dict, states: tuple[str, ...] | None = ("failed",)
) -> dict[str, str]:
    """The failed tasks of a run (or all with ``states=None``), each with its state and the end of its log."""
    failed = [ti for ti in run["instances"] if states is None or ti["state"] in states]
    return {
        f"{ti['task_id']}[{ti['map_index']}] {ti['state']}": log_end(stack, dag_id, run["run_id"], ti)
        for ti in failed
    }


def log_end(stack: AirflowStack, dag_id: str, run_id: str, ti: dict) -> str:
    """The end of a task instance's log, or why there is none (a task that never started has none)."""
    path = f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{ti['task_id']}/logs/{ti['try_number']}"
    try:
        log = stack.api("GET", path, params={"map_index": ti["map_index"], "full_content": True})
    except requests.RequestException as err:
        return f"(no log: {err})"
    if not isinstance(log.get("content"), list):
        return str(log)[-1500:]
    lines = []
    for entry in log["content"][-12:]:
        errors = [
            f"{error.get('exc_type')}: {error.get('exc_value')}" for error in entry.get("error_detail") or []
        ]
        lines.append(" ".join([str(entry.get("event")), *errors]))
    return "\n".join(lines)[-1500:]


def stuck_run_story(stack: Standalone, dag_id: str, run_id: str) -> str:
    """
    What a run that did not end was doing: its unfinished and failed tasks (20 at most) with their
    log ends, and the error lines of the stack's own log (scheduler, triggerer, API server).
    """
    instances = task_instances(stack, dag_id, run_id)
    unsettled = [ti for ti in instances if ti["state"] not in ("success", "skipped", "upstream_failed")]
    counts = Counter(str(ti["state"]) for ti in instances)
    tasks = failed_tasks(stack, dag_id, {"run_id": run_id, "instances": unsettled[:20]}, states=None)
    errors = [
        line
        for log in sorted(stack.home.glob("*.log"))  # standalone's, and of the parts started beside it
        for line in log.read_text(errors="replace").splitlines()
        # An exception's own line ("...Error: database is locked"), not the "Traceback" that precedes it.
        if "ERROR" in line or "Error:" in line or "executor reports" in line.lower()
    ]
    return (
        f"task states: {dict(counts)}\n"
        + json.dumps(tasks, indent=1)
        + "\nerrors in the stack's log:\n"
        + "\n".join(errors[-40:])
    )


def wait_for_run_end(stack: Standalone, dag_id: str, run_id: str, timeout: float = 300) -> str:
    """
    The run's final state; a run that does not end in time is told, then failed (the next test starts clean).

    Meanwhile the parts of Airflow that ended are started again (:meth:`Standalone.start_ended_parts`),
    as a deployment's process supervisor does: CI met the scheduler's end on "database is locked".
    """
    started = time.monotonic()
    path = f"/dags/{dag_id}/dagRuns/{run_id}"
    while (state := stack.api("GET", path)["state"]) not in ("success", "failed"):
        if ended := stack.start_ended_parts():
            print(f"{', '.join(ended)} ended {time.monotonic() - started:.0f} s into the run: started again")
        if time.monotonic() - started > timeout:
            try:
                story = stuck_run_story(stack, dag_id, run_id)
            finally:
                stack.api("PATCH", path, json={"state": "failed"})
            raise AssertionError(f"{dag_id} run {run_id} did not end in {timeout} s\n{story}")
        time.sleep(1)
    return state
