"""The recovery DAG on a production-shaped Airflow of two hosts, with workers and a triggerer SIGKILLed mid-run.

PostgreSQL, CeleryExecutor on Redis, two hosts of one worker and one triggerer each, sharing no
temp folder (tests/production_stack.py), the emulator beside them with 300 failed posts on one
profile, Ayrshare's rate limit enforced, and about one call in five answered with a fault. The
hosts share one rate budget through the Celery broker's Redis (``[ayrshare] rate_budget_url``
unset). While the run goes on, another application spends half a window of the same profile, a
worker of each host is killed whole with retry tasks running (and started again, as a supervisor
would), and a triggerer holding deferred waits is killed. Prints a ``FIGURES`` line (``-s``);
docs/reliability.md quotes it. ``make production`` runs this module alone.
"""

from __future__ import annotations

import json
import threading
import time
from typing import TYPE_CHECKING, Any

import pytest

from ayrshare_emulator.server import Emulator
from ayrshare_provider.recovery import plan_recovery
from tests.helpers import API_KEY, X_KEY, X_SECRET, connection_json
from tests.production_stack import ProductionStack, missing_parts

if TYPE_CHECKING:
    from collections.abc import Callable

pytestmark = pytest.mark.production
DAG_ID = "ayrshare_failed_post_recovery"
POSTS = 300
RUN_TIMEOUT = 1800  # seconds
FINAL_STATES = {"success", "failed", "skipped", "upstream_failed", "removed"}
# About one call in five meets a fault; the kinds a deployment meets from an API.
FAULTS = [
    {"endpoint": "PUT /api/post/retry", "kind": "apply_then_drop", "probability": 0.05},
    {"endpoint": "*", "kind": "error_html", "status": 502, "probability": 0.05},
    {"endpoint": "*", "kind": "unavailable", "probability": 0.05},
    {"endpoint": "*", "kind": "drop", "probability": 0.04},
    {"endpoint": "*", "kind": "latency", "seconds": 2.5, "probability": 0.02},  # past the 2 s client timeout
    {"endpoint": "*", "kind": "rate_limit", "probability": 0.01, "count": 3},
]


@pytest.fixture(scope="module")
def emulator_for_production():
    """300 failed posts; Ayrshare's clock scaled 15x: a 20 s rate window, 2 s history cache, retries final in 10-40 s."""
    with Emulator(
        API_KEY,
        scenario="bulk",
        count=POSTS,
        retry_delay=10.0,
        retry_delay_max=40.0,
        history_cache=2.0,
        rate_limit=300,
        rate_window=20.0,
    ) as running:
        yield running


@pytest.fixture(scope="module")
def production(emulator_for_production):
    if missing := missing_parts():
        pytest.skip(f"the production stack needs {', '.join(missing)} (.ci/run installs them)")
    env = {
        "AIRFLOW_CONN_AYRSHARE_DEFAULT": connection_json(
            emulator_for_production.url,
            x_twitter_api_key=X_KEY,
            x_twitter_api_secret=X_SECRET,
            history_max_age="2",
            timeout="2",
            backoff="0.2",
            max_backoff="2",
            max_attempts="8",
        ),
    }
    stack = ProductionStack(env)
    try:
        yield stack.start()
    finally:
        stack.stop()
        assert stack.processes_left() == [], "the production stack left processes behind"


def task_instances(stack: ProductionStack, run_id: str) -> list[dict[str, Any]]:
    """Every task instance of the run (the API pages at 100)."""
    found: list[dict[str, Any]] = []
    while True:
        page = stack.api(
            "GET",
            f"/dags/{DAG_ID}/dagRuns/{run_id}/taskInstances",
            params={"limit": 100, "offset": len(found)},
        )["task_instances"]
        found += page
        if len(page) < 100:
            return found


class OtherApplication(threading.Thread):
    """Another client of the same profile: ``calls`` requests at once, counted by the server, unseen by Airflow."""

    def __init__(self, emulator: Emulator, calls: int) -> None:
        super().__init__(daemon=True)
        self.emulator, self.calls, self.refused = emulator, calls, 0

    def run(self) -> None:
        for _ in range(self.calls):
            allowed, _ = self.emulator.state.take_rate_slot(
                ""
            )  # the Primary Profile, as the DAG's connection
            self.refused += not allowed


def wait_for(what: str, probe: Callable[[], Any], timeout: float) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if found := probe():
            return found
        time.sleep(1)
    raise AssertionError(f"not seen in {timeout} s: {what}")


def test_recovery_survives_a_killed_worker_and_a_killed_triggerer(production, emulator_for_production):
    stack, emulator = production, emulator_for_production
    expected = plan_recovery([emulator.state.view(post) for post in emulator.state.posts.values()])
    fails_again = {post.id for post in emulator.state.posts.values() if post.retry_failures}
    for rule in FAULTS:
        emulator.faults.add(rule)

    stack.wait_for_dag(DAG_ID)
    stack.api("PATCH", f"/dags/{DAG_ID}", json={"is_paused": False})
    started = time.monotonic()
    run_id = stack.api(
        "POST",
        f"/dags/{DAG_ID}/dagRuns",
        json={
            "logical_date": None,
            "conf": {"last_days": 0, "poll_interval": 2, "ask_person": False},
        },
    )["dag_run_id"]

    def retry_tasks() -> list[dict[str, Any]]:
        return [ti for ti in task_instances(stack, run_id) if ti["task_id"] == "retry_post"]

    def running_on(worker: str) -> list[dict[str, Any]]:
        return [ti for ti in retry_tasks() if ti["state"] == "running" and ti["hostname"] == worker]

    # Once retries go out, another application spends half a window of the same profile: calls the
    # budget never saw, which only the server's count tells.
    wait_for("a retry task running", lambda: any(ti["state"] != "scheduled" for ti in retry_tasks()), 600)
    other_app = OtherApplication(emulator, calls=150)
    other_app.start()

    # A worker of each host dies with retry tasks running on it: its pool and their task processes
    # with it; each is started again, as a supervisor would.
    running_on_a = wait_for(
        "two retry tasks running on worker-a", lambda: len(r := running_on("worker-a")) >= 2 and r, 600
    )
    killed_worker = stack.kill("worker-a")
    stack.restart("worker-a")
    running_on_b = wait_for("a retry task running on worker-b", lambda: running_on("worker-b"), 600)
    killed_worker_b = stack.kill("worker-b")
    stack.restart("worker-b")

    # A triggerer dies holding deferred waits; the other must take them over.
    def waits_held_by(name: str) -> list[dict[str, Any]]:
        jobs = stack.api("GET", "/jobs", params={"job_type": "TriggererJob", "limit": 100})["jobs"]
        ids = {job["id"] for job in jobs if job["hostname"] == name}
        return [
            ti
            for ti in retry_tasks()
            if ti["state"] == "deferred" and ti["trigger"] and ti["trigger"]["triggerer_id"] in ids
        ]

    held_by_a = wait_for(
        "five deferred waits held by triggerer-a",
        lambda: len(held := waits_held_by("triggerer-a")) >= 5 and held,
        timeout=600,
    )
    killed_triggerer = stack.kill("triggerer-a")
    killed_at = time.monotonic()
    orphans = {ti["map_index"] for ti in held_by_a}

    def orphans_picked_up() -> bool:
        """Each wait triggerer-a held is now held by triggerer-b, or its task has moved on."""
        on_b = {ti["map_index"] for ti in waits_held_by("triggerer-b")}
        moved_on = {ti["map_index"] for ti in retry_tasks() if ti["state"] != "deferred"}
        return orphans <= on_b | moved_on

    wait_for("triggerer-b taking over the waits of triggerer-a", orphans_picked_up, timeout=300)
    takeover_seconds = time.monotonic() - killed_at

    state = wait_for(
        "the run's end",
        lambda: (
            (s := stack.api("GET", f"/dags/{DAG_ID}/dagRuns/{run_id}")["state"]) in ("success", "failed")
            and s
        ),
        timeout=RUN_TIMEOUT,
    )
    elapsed = time.monotonic() - started
    instances = task_instances(stack, run_id)
    assert state == "success"
    assert [ti for ti in instances if ti["state"] not in FINAL_STATES] == []  # no task left running or queued
    assert not stack.alive("triggerer-a")
    other_app.join()

    report = stack.api(
        "GET", f"/dags/{DAG_ID}/dagRuns/{run_id}/taskInstances/report/xcomEntries/return_value"
    )["value"]
    accounted = [
        entry["id"]
        for bucket in ("recovered", "failed_again", "retry_later", "skipped", "unknown")
        for entry in report[bucket]
    ]
    assert sorted(accounted) == sorted(emulator.state.posts)  # every post in the report, once
    assert report["unknown"] == []
    assert {entry["id"] for entry in report["failed_again"]} == fails_again
    retried = expected.to_retry
    counters = emulator.state.counters()
    # Exactly one applied retry per retryable post, none for the others; a PUT beyond the first
    # is one Ayrshare refused (329), sent only after the answer to the first was lost.
    assert {post_id: counters["retries_applied"].get(post_id) for post_id in retried} == dict.fromkeys(
        retried, 1
    )
    assert set(counters["retry_puts"]) == set(retried)
    refused = counters["retries_refused"]
    assert {p: counters["retry_puts"][p] for p in retried} == {p: 1 + refused.get(p, 0) for p in retried}

    # One budget across both hosts, in the broker's Redis: no answer 429 but those the other
    # application's own calls met.
    import redis

    budgets = redis.Redis(host="127.0.0.1", port=stack.redis_port).keys("airflow-provider-ayrshare:budget:*")
    assert budgets, "the hosts did not share their rate budget in the Celery broker's Redis"
    assert counters["rate_limited"] == other_app.refused

    retry_instances = [ti for ti in instances if ti["task_id"] == "retry_post"]
    print(
        "\nFIGURES production: "
        + json.dumps(
            {
                "posts": POSTS,
                "retryable": len(retried),
                "requests": sum(counters["requests"].values()),
                "faults_injected": sum(emulator.faults.injected.values()),
                "answers_429": counters["rate_limited"],
                "other_app": {"calls": other_app.calls, "refused": other_app.refused},
                "killed": {
                    "worker-a": {"processes": len(killed_worker), "retry_tasks_running": len(running_on_a)},
                    "worker-b": {"processes": len(killed_worker_b), "retry_tasks_running": len(running_on_b)},
                    "triggerer-a": {
                        "processes": len(killed_triggerer),
                        "waits_held": len(held_by_a),
                        "seconds_until_taken_over": round(takeover_seconds),
                    },
                },
                "retry_puts": sum(counters["retry_puts"].values()),
                "retries_applied": sum(counters["retries_applied"].values()),
                "puts_refused_329": sum(refused.values()),
                "task_attempts_beyond_first": sum(ti["try_number"] - 1 for ti in retry_instances),
                "recovered": len(report["recovered"]),
                "failed_again": len(report["failed_again"]),
                "skipped": len(report["skipped"]),
                "lost": len(report["unknown"]),
                "seconds": round(elapsed),
            },
            sort_keys=True,
        )
    )
