"""A burst on ``airflow standalone`` (SQLite): 200 failed posts recovered with the example DAG's defaults.

Ayrshare's own clocks, unscaled: 300 requests per 5 minutes per profile, history answers cached
60 s, a retried post final 1 to 5 minutes after its PUT. A run of this size once stalled: a write
waited past SQLite's busy timeout while the burst's task runs wrote, and the triggerer, the
scheduler and the DAG processor each ended on "database is locked" (docs/production.md, "What SQLite carries").
"""

from __future__ import annotations

import time

import pytest

from ayrshare_emulator.server import Emulator
from tests.helpers import API_KEY, BURST_ON_AYRSHARES_CLOCKS, X_KEY, X_SECRET, connection_json
from tests.run_story import failed_tasks, stuck_run_story, task_instances
from tests.stack import Standalone

pytestmark = pytest.mark.stack
DAG_ID = "ayrshare_failed_post_recovery"
POSTS = BURST_ON_AYRSHARES_CLOCKS["count"]
LIMIT, WINDOW = BURST_ON_AYRSHARES_CLOCKS["rate_limit"], BURST_ON_AYRSHARES_CLOCKS["rate_window"]
SLOWEST_SETTLE = BURST_ON_AYRSHARES_CLOCKS[
    "retry_delay_max"
]  # seconds from a retry's PUT to its final status


@pytest.fixture(scope="module")
def ayrshare_with_its_clocks():
    with Emulator(API_KEY, **BURST_ON_AYRSHARES_CLOCKS) as running:
        yield running


@pytest.fixture(scope="module")
def burst(ayrshare_with_its_clocks) -> dict:
    """The recovery DAG over REST with its defaults (no person: nobody answers here), watched until it ends."""
    emulator = ayrshare_with_its_clocks
    conn = connection_json(emulator.url, x_twitter_api_key=X_KEY, x_twitter_api_secret=X_SECRET)
    stack = Standalone({"AIRFLOW_CONN_AYRSHARE_DEFAULT": conn})
    try:
        stack.start()
        stack.wait_for_dag(DAG_ID)
        stack.api("PATCH", f"/dags/{DAG_ID}", json={"is_paused": False})
        # The defaults (every failed post listed, up to 1,000), but no person asked.
        conf = {"ask_person": False}
        started = time.monotonic()
        run_id = stack.api("POST", f"/dags/{DAG_ID}/dagRuns", json={"logical_date": None, "conf": conf})[
            "dag_run_id"
        ]
        deadline = started + 3 * (POSTS / LIMIT * WINDOW + SLOWEST_SETTLE)
        while (state := stack.api("GET", f"/dags/{DAG_ID}/dagRuns/{run_id}")["state"]) not in (
            "success",
            "failed",
        ):
            assert time.monotonic() < deadline, "the burst did not end\n" + stuck_run_story(
                stack, DAG_ID, run_id
            )
            time.sleep(2)
        seconds = time.monotonic() - started
        report = stack.api(
            "GET", f"/dags/{DAG_ID}/dagRuns/{run_id}/taskInstances/report/xcomEntries/return_value"
        )["value"]
        yield {
            "state": state,
            "seconds": seconds,
            "report": report,
            "run": {"run_id": run_id, "instances": task_instances(stack, DAG_ID, run_id)},
            "stack": stack,
            "healthy": stack.healthy(),
            "log": stack.log.read_text(errors="replace"),
        }
    finally:
        stack.stop()


def test_a_burst_of_200_failed_posts_ends_with_every_post_accounted_for(burst, ayrshare_with_its_clocks):
    counters = ayrshare_with_its_clocks.state.counters()
    report, retried = burst["report"], counters["retries_applied"]
    assert burst["state"] == "success", failed_tasks(burst["stack"], DAG_ID, burst["run"])
    # Every post of the scenario has one outcome in the report; every retry was applied exactly once.
    outcomes = {
        entry["id"]: outcome
        for outcome, entries in report.items()
        if outcome in report["counts"]
        for entry in entries
    }
    assert sorted(outcomes) == sorted(ayrshare_with_its_clocks.state.posts)
    assert report["counts"]["unknown"] == 0
    assert retried and set(retried.values()) == {1}
    assert report["counts"]["recovered"] + report["counts"]["failed_again"] == len(retried)
    assert counters["rate_limited"] == 0
    calls = sum(counters["requests"].values())
    assert calls <= 1.1 * len(retried), counters["requests"]
    # The one-call floor: one call per retried post at the limit's pace, then the slowest settle.
    floor = len(retried) / LIMIT * WINDOW + SLOWEST_SETTLE
    assert burst["seconds"] <= 1.15 * floor, f"{burst['seconds']:.0f} s against a floor of {floor:.0f} s"


def test_every_part_of_airflow_outlives_the_burst(burst):
    """No scheduler, triggerer or DAG processor ended on a busy database: the stall's cause."""
    assert burst["healthy"]
    ended = [line for line in burst["log"].splitlines() if "Exception when executing" in line]
    assert ended == []
    assert "database is locked" not in burst["log"]
