"""Exactly-once retries and nothing lost, under the faults the emulator injects.

Each test prints a ``FIGURES`` line (``-s`` shows it); docs/reliability.md quotes them.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from datetime import timedelta

import pytest
import requests
from airflow.providers.common.compat.sdk import AirflowFailException, TaskDeferred

from ayrshare_emulator.scenarios import TRANSIENT, add_failed
from ayrshare_provider.exceptions import AyrshareAuthError, AyrshareServerError, AyrshareWaitTimeoutError
from ayrshare_provider.hooks.ayrshare import AyrshareHook
from ayrshare_provider.operators.ayrshare import RetryPostOperator
from ayrshare_provider.operators.task_mixin import run_here
from ayrshare_provider.recovery import plan_recovery
from ayrshare_provider.retry_policy import ayrshare_retry_policy
from ayrshare_provider.triggers.post_status import PostStatusTrigger
from tests.airflow_compat import stored_xcoms
from tests.context import make_context
from tests.helpers import API_KEY, X_KEY, X_SECRET, connection_json, load_dag

FAST = {"backoff": 0.05, "max_backoff": 0.3}


def figures(name: str, **values: object) -> None:
    print(f"\nFIGURES {name}: {json.dumps(values, sort_keys=True)}")


def one_failed_post(emulator) -> str:
    return add_failed(
        emulator.state, "", ["linkedin"], {"linkedin": TRANSIENT}, text="recover me", age_days=1
    ).id


def operator(post_id: str, **kwargs) -> RetryPostOperator:
    return RetryPostOperator(
        **{
            "task_id": "retry",
            "post_id": post_id,
            "poll_interval": 0.1,
            "timeout": 30,
            "deferrable": False,
            "hook_params": FAST,
            **kwargs,
        }
    )


first_event = run_here  # the trigger, run in this process until its one event


# -- the soak ---------------------------------------------------------------------------------


@pytest.mark.dag
@pytest.mark.soak
def test_soak_recovery_dag_under_faults_retries_each_post_exactly_once(airflow_db, emulator, monkeypatch):
    """
    Then a second run under the same faults once Ayrshare forgot every idempotencyKey (how long it
    keeps one is not documented): still one new post per spent post, none lost.
    """
    from ayrshare_emulator import scenarios

    scenarios.bulk(emulator.state, count=60)
    emulator.state.settings.retry_delay = (
        1.0  # Ayrshare processes a retry like a scheduled post: not instantly
    )
    emulator.state.settings.rate_limit = (
        0  # 429s come from the injected bursts here; the window has its own test
    )
    expected = plan_recovery([emulator.state.view(post) for post in emulator.state.posts.values()])
    fails_again = {post.id for post in emulator.state.posts.values() if post.retry_failures}
    for rule in [
        {"endpoint": "PUT /api/post/retry", "kind": "apply_then_drop", "probability": 0.1},
        {
            "endpoint": "POST /api/post",
            "kind": "apply_then_drop",
            "probability": 0.2,
        },  # a repost's lost answer
        {"endpoint": "*", "kind": "error_html", "status": 502, "probability": 0.1},
        {"endpoint": "*", "kind": "unavailable", "probability": 0.1},
        {"endpoint": "*", "kind": "drop", "probability": 0.05},
        {
            "endpoint": "*",
            "kind": "latency",
            "seconds": 1.2,
            "probability": 0.03,
        },  # past the 1 s client timeout
        {"endpoint": "*", "kind": "rate_limit", "probability": 0.02, "count": 3},
    ]:
        emulator.faults.add(rule)
    # Tuned through the connection extra: a short client timeout, quick backoff.
    monkeypatch.setenv(
        "AIRFLOW_CONN_AYRSHARE_DEFAULT",
        connection_json(
            emulator.url,
            x_twitter_api_key=X_KEY,
            x_twitter_api_secret=X_SECRET,
            timeout="1",
            backoff="0.05",
            max_backoff="0.3",
            max_attempts="8",
        ),
    )

    dag = load_dag("ayrshare_failed_post_recovery")
    for task_id in ("retry_post", "repost_post"):
        task = dag.get_task(task_id)
        task.partial_kwargs["retry_delay"] = timedelta(seconds=1)  # the DAG waits 30 s
        if "retry_policy" in task.partial_kwargs:  # Airflow 3.3+: after a 429 the DAG waits 5 minutes
            task.partial_kwargs["retry_policy"] = ayrshare_retry_policy(rate_limit_delay=timedelta(seconds=1))
    originals = set(emulator.state.posts)
    started = time.monotonic()
    conf = {"last_days": 0, "poll_interval": 0.2, "ask_person": False, "repost_spent": True}
    dag_run = dag.test(run_conf=conf)
    assert dag_run.state == "success"
    # The second run, once Ayrshare forgot its keys.
    emulator.state.forget_idempotency_keys()
    again = dag.test(run_conf=conf)
    assert again.state == "success"
    second = stored_xcoms("ayrshare_failed_post_recovery", again.run_id)[("report", "return_value", -1)]
    assert second["unknown"] == [] and second["failed_again"] == []
    # Every spent post is known as reposted earlier, from the provider's ledger: never posted again.
    assert {entry["id"] for entry in second["reposted"]} == fails_again
    assert all(entry["note"].startswith("reposted earlier as ") for entry in second["reposted"])
    elapsed = time.monotonic() - started

    report = stored_xcoms("ayrshare_failed_post_recovery", dag_run.run_id)[("report", "return_value", -1)]
    counters = emulator.state.counters()

    accounted = [
        entry["id"]
        for bucket in ("recovered", "reposted", "failed_again", "skipped", "unknown")
        for entry in report[bucket]
    ]
    assert sorted(accounted) == sorted(originals)  # every post, once
    assert report["unknown"] == [] and report["failed_again"] == []
    # Each post that failed again was reposted, at most once, though answers to POST /api/post were lost.
    assert {entry["id"] for entry in report["reposted"]} == fails_again
    platform = {post_id: emulator.state.posts[post_id].record["platforms"][0] for post_id in fails_again}
    assert counters["posts_created"] == {
        f"airflow-repost-{post_id}-{platform[post_id]}": 1 for post_id in fails_again
    }
    assert len(emulator.state.posts) == len(originals) + len(fails_again)
    assert {entry["id"] for entry in report["skipped"]} == {entry["id"] for entry in expected.skipped}
    retried = expected.to_retry
    # Exactly one retry applied per retryable post, none for the others.
    assert {post_id: counters["retries_applied"].get(post_id) for post_id in retried} == dict.fromkeys(
        retried, 1
    )
    assert set(counters["retry_puts"]) == set(retried)
    # Any PUT beyond the first was one Ayrshare refused with 329: sent only after an answer was lost.
    refused = counters["retries_refused"]
    assert {p: counters["retry_puts"][p] for p in retried} == {p: 1 + refused.get(p, 0) for p in retried}
    injected = sum(count for key, count in emulator.faults.injected.items())
    figures(
        "soak (and a second run after Ayrshare forgot its keys)",
        posts=len(originals),
        retryable=len(retried),
        requests=sum(counters["requests"].values()),
        faults_injected=injected,
        faults_by_kind=_by_kind(emulator.faults.injected),
        retry_puts=sum(counters["retry_puts"].values()),
        retries_applied=sum(counters["retries_applied"].values()),
        puts_refused_329=sum(refused.values()),
        airflow_task_retries=_task_retries(dag_run),
        recovered=len(report["recovered"]),
        reposted=len(report["reposted"]),
        posts_created=sum(counters["posts_created"].values()),
        repost_answers_replayed=sum(counters["idempotent_replays"].values()),
        failed_again=len(report["failed_again"]),
        skipped=len(report["skipped"]),
        lost=len(report["unknown"]),
        seconds=round(elapsed, 1),
    )


def _task_retries(dag_run) -> int:
    return sum(max(0, ti.try_number - 1) for ti in dag_run.get_task_instances())


def _by_kind(injected: dict[str, int]) -> dict[str, int]:
    kinds: dict[str, int] = {}
    for key, count in injected.items():
        kind = key.rsplit(" ", 1)[1]
        kinds[kind] = kinds.get(kind, 0) + count
    return kinds


# -- lost answers and task retries ------------------------------------------------------------


def test_lost_response_the_task_retry_waits_and_reports_the_true_status(emulator_conn):
    emulator_conn.state.settings.retry_delay = 3.0  # still in flight when the next attempt reads it
    post_id = one_failed_post(emulator_conn)
    # The retry is applied, its answer lost, and the post cannot be read right then either.
    emulator_conn.faults.add({"endpoint": "PUT /api/post/retry", "sequence": ["apply_then_drop"]})
    emulator_conn.faults.add({"endpoint": "GET /api/post/{id}", "sequence": ["ok"] + ["unavailable"] * 5})
    with pytest.raises(AyrshareServerError, match="unknown"):
        operator(post_id).execute(make_context())
    summary = operator(post_id).execute(make_context())  # Airflow's next attempt
    assert summary["status"] == "success" and summary["action"] == "in_flight"
    counters = emulator_conn.state.counters()
    assert counters["retry_puts"] == {post_id: 1} and counters["retries_applied"] == {post_id: 1}
    figures("lost_response", retry_puts=counters["retry_puts"][post_id], attempts=2, final=summary["status"])


def test_crash_mid_wait_the_task_retry_resumes_waiting_without_a_second_put(emulator_conn, tmp_path):
    emulator_conn.state.settings.retry_delay = 3.0
    post_id = one_failed_post(emulator_conn)
    script = textwrap.dedent(f"""
        from ayrshare_provider.operators.ayrshare import RetryPostOperator
        from tests.context import make_context
        RetryPostOperator(task_id="retry", post_id={post_id!r}, poll_interval=0.1, deferrable=False).execute(make_context())
    """)
    worker = subprocess.Popen([sys.executable, "-c", script], env=os.environ.copy(), cwd=os.getcwd())
    try:
        deadline = time.monotonic() + 60
        while emulator_conn.state.counters()["retries_applied"].get(post_id) != 1:
            assert time.monotonic() < deadline and worker.poll() is None, (
                "the first attempt never sent its retry"
            )
            time.sleep(0.05)
        time.sleep(0.3)  # now it is waiting
        worker.send_signal(signal.SIGKILL)  # the worker dies mid-wait
        worker.wait(timeout=10)
    finally:
        worker.kill()
    summary = operator(post_id).execute(make_context())
    assert summary["status"] == "success" and summary["action"] == "in_flight"
    assert emulator_conn.state.counters()["retry_puts"] == {post_id: 1}
    figures("crash_mid_wait_sync", retry_puts=1, final=summary["status"])


def test_deferred_task_lost_its_trigger_the_task_retry_defers_again_without_a_put(emulator_conn):
    emulator_conn.state.settings.retry_delay = 3.0  # still in flight when the next attempt reads it
    post_id = one_failed_post(emulator_conn)
    with pytest.raises(TaskDeferred):
        operator(post_id, deferrable=True).execute(make_context())  # its triggerer then died
    with pytest.raises(TaskDeferred) as deferred:
        operator(post_id, deferrable=True).execute(make_context())  # Airflow's next attempt
    task = operator(post_id, deferrable=True)
    summary = task.execute_complete(make_context(), first_event(deferred.value.trigger))
    assert summary["status"] == "success" and summary["action"] == "in_flight"
    assert emulator_conn.state.counters()["retry_puts"] == {post_id: 1}
    figures("crash_mid_wait_deferrable", retry_puts=1, final=summary["status"])


def test_triggerer_restart_a_rebuilt_trigger_completes_within_the_same_deadline(emulator_conn):
    emulator_conn.state.settings.retry_delay = 1.0
    post_id = one_failed_post(emulator_conn)
    AyrshareHook(**FAST).retry_post(post_id)
    original = PostStatusTrigger(
        post_id, "ayrshare_default", end_time=time.time() + 20, poll_interval=0.1, hook_params=FAST
    )

    async def run_until_cancelled() -> None:
        task = asyncio.ensure_future(anext(original.run()))
        await asyncio.sleep(0.35)  # a few polls, then the triggerer stops
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(run_until_cancelled())
    polls_before = emulator_conn.state.counters()["requests"]["GET /api/post/{id}"]
    classpath, kwargs = original.serialize()
    rebuilt = PostStatusTrigger(**kwargs)
    assert rebuilt.end_time == original.end_time
    event = first_event(rebuilt)
    assert event["status"] == "success"
    figures("triggerer_restart", polls_before_restart=polls_before, final=event["status"], deadline_kept=True)


@pytest.mark.parametrize("deferrable", [False, True], ids=["sync", "deferrable"])
def test_a_post_that_never_finishes_times_out_clearly(emulator_conn, deferrable):
    [post_id] = requests.post(
        f"{emulator_conn.url}/_emulator/posts",
        json={"posts": [{"status": "processing", "platforms": ["x"]}]},
        timeout=10,
    ).json()["ids"]
    task = operator(post_id, deferrable=deferrable, timeout=0.5)
    started = time.monotonic()

    def run_to_the_end() -> None:
        try:
            task.execute(make_context())
        except TaskDeferred as deferred:  # the triggerer's part, then the resumed task
            task.execute_complete(make_context(), first_event(deferred.trigger))

    with pytest.raises(AyrshareWaitTimeoutError, match="deadline"):
        run_to_the_end()
    elapsed = time.monotonic() - started
    assert elapsed < 5
    figures(
        f"never_finishes_{'deferrable' if deferrable else 'sync'}",
        timeout=0.5,
        seconds_to_error=round(elapsed, 2),
    )


# -- auth and rate limits ---------------------------------------------------------------------


@pytest.mark.parametrize("status", [401, 403])
def test_auth_failures_fail_fast_and_are_never_retried(fake, monkeypatch, status):
    from tests.fake_ayrshare import Fault

    monkeypatch.setenv("AIRFLOW_CONN_AYRSHARE_DEFAULT", connection_json(fake.url))
    fake.fail_next(
        "GET /api/post", Fault(status, json.dumps({"status": "error", "code": 102, "message": "not allowed"}))
    )
    with pytest.raises(AyrshareAuthError, match=f"HTTP {status}") as caught:
        operator("p1").execute(make_context())
    assert isinstance(caught.value, AirflowFailException)  # Airflow does not retry the task either
    assert fake.calls["GET /api/post"] == 1 and fake.calls["PUT /api/post/retry"] == 0


def test_the_hook_slows_down_before_the_rate_limit_where_a_bare_client_hits_it():
    from ayrshare_emulator.server import Emulator

    calls, window = 60, 1.0
    with Emulator(API_KEY, rate_limit=20, rate_window=window) as emulator:
        with requests.Session() as bare:
            bare.headers["Authorization"] = f"Bearer {API_KEY}"
            bare_429 = sum(
                bare.get(f"{emulator.url}/api/user", timeout=10).status_code == 429 for _ in range(calls)
            )
        time.sleep(window)
        emulator.state.reset_counters()
        os.environ["AIRFLOW_CONN_AYRSHARE_RATE"] = connection_json(emulator.url)
        try:
            hook = AyrshareHook("ayrshare_rate", backoff=0.05, max_backoff=window)
            started = time.monotonic()
            for _ in range(calls):
                hook.get_user()
            elapsed = time.monotonic() - started
        finally:
            del os.environ["AIRFLOW_CONN_AYRSHARE_RATE"]
        hook_429 = emulator.state.counters()["rate_limited"]
    assert bare_429 > 0 and hook_429 == 0
    figures(
        "rate_limit",
        calls=calls,
        limit_per_window=20,
        window_s=window,
        bare_client_429s=bare_429,
        hook_429s=hook_429,
        hook_seconds=round(elapsed, 1),
    )
