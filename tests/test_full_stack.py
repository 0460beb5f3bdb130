"""The full stack: a real scheduler, DAG processor, triggerer and API server, with the emulator beside it."""

from __future__ import annotations

import time

import pytest

from ayrshare_provider.emulator.server import Emulator
from tests.conftest import API_KEY, X_KEY, X_SECRET, connection_json
from tests.stack import Standalone

pytestmark = pytest.mark.stack
DAG_ID = "ayrshare_failed_post_recovery"


@pytest.fixture(scope="module")
def emulator_for_stack():
    # Retries settle after 4 s, so that the retry tasks are seen waiting (deferred) in the triggerer.
    with Emulator(API_KEY, scenario="demo", retry_delay=4.0) as running:
        yield running


@pytest.fixture(scope="module")
def stack(emulator_for_stack):
    env = {
        "AIRFLOW_CONN_AYRSHARE_DEFAULT": connection_json(
            emulator_for_stack.url, x_twitter_api_key=X_KEY, x_twitter_api_secret=X_SECRET
        ),
        "AYRSHARE_POLL_INTERVAL": "1",
    }
    airflow = Standalone(env)
    try:
        yield airflow.start()
    finally:
        airflow.stop()
        assert airflow.processes_left() == [], "airflow standalone left processes behind"


def test_recovery_dag_on_a_real_scheduler_defers_to_the_triggerer(stack, emulator_for_stack):
    stack.wait_for_dag(DAG_ID)
    stack.api("PATCH", f"/dags/{DAG_ID}", json={"is_paused": False})
    run = stack.api("POST", f"/dags/{DAG_ID}/dagRuns", json={"logical_date": None, "conf": {"last_days": 0, "limit": 100}})
    run_id = run["dag_run_id"]

    seen: set[str] = set()
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        instances = stack.api("GET", f"/dags/{DAG_ID}/dagRuns/{run_id}/taskInstances", params={"limit": 100})
        seen |= {ti["state"] for ti in instances["task_instances"] if ti["task_id"] == "retry_post" and ti["state"]}
        state = stack.api("GET", f"/dags/{DAG_ID}/dagRuns/{run_id}")["state"]
        if state in ("success", "failed"):
            break
        time.sleep(0.5)
    assert state == "success", (state, seen)
    assert "deferred" in seen  # the triggerer did the waiting, not a worker slot

    report = stack.api("GET", f"/dags/{DAG_ID}/dagRuns/{run_id}/taskInstances/report/xcomEntries/return_value")["value"]
    assert report["counts"] == {"recovered": 7, "failed_again": 3, "skipped": 3, "unknown": 0}
    counters = emulator_for_stack.state.counters()
    retried = [entry["id"] for entry in report["recovered"] + report["failed_again"]]
    assert {post_id: counters["retry_puts"].get(post_id) for post_id in retried} == dict.fromkeys(retried, 1)
    assert sum(counters["retry_puts"].values()) == 10

    one = next(ti for ti in instances["task_instances"] if ti["task_id"] == "retry_post" and ti["state"] == "success")
    log = str(stack.api("GET", f"/dags/{DAG_ID}/dagRuns/{run_id}/taskInstances/retry_post/logs/1",
                        params={"map_index": one["map_index"], "full_content": True}))
    assert "Pausing task as DEFERRED" in log  # the worker let go of the slot while the triggerer polled
