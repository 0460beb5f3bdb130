"""7. An agency: 20 User Profiles x 50 failed posts, recovered side by side, against 1 profile x 50.

Ayrshare is time-scaled ``BENCH_SCALE`` times (default 2 here, 5 in section 4): 300 requests per
300 s per profile, history answers with ``limit`` > 25 cached 60 s, retries final 1 to 5 minutes
after they are sent; figures are given back in real time. Scaling multiplies this machine's own
costs too: the 1,000 retry tasks' process starts take about 12 s of real time on 2 cores, which
count 60 s of Ayrshare's time at 5x and 24 s at 2x (on Ayrshare itself, unscaled, 12 s). 2x keeps
them close to what they cost against Ayrshare, and the whole bench under 75 minutes. Every profile
is its own connection (its Profile Key), as ``ayrshare_conn_ids`` gives them to the example DAG.

The recovery runs the DAG path's classes as the DAG runs them: one planning task per profile
(``plan_profile``: who it is, one history listing, the plan), the plans joined (``join_plans``),
then one ``RetryPostOperator(deferrable=True)`` per post, 32 at a time, each in a process forked
for it, with the profile's connection, and every deferred wait in one triggerer process (Airflow
3.3's ``SharedStreamManager``: one listing per profile and interval). Three variants, one run:

- 1 profile x 50 posts: the yardstick;
- 20 profiles x 50 posts, side by side (``ayrshare_conn_ids`` with 20 connections);
- the same 20 profiles one after another: what an agency did before, one DAG run per connection.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import statistics
import tempfile
import time
from collections import Counter
from typing import Any

from bench.common import API_KEY, control, emulator, scaled_ayrshare, summarize, table
from bench.recovery_at_scale import triggerer

SCALE = float(os.environ.get("BENCH_SCALE", "2"))  # why not 5: the module docstring
PROFILES = int(os.environ.get("BENCH_PROFILES", "20"))
POSTS = int(os.environ.get("BENCH_PROFILE_POSTS", "50"))
SLOTS = 32
REPEATS = int(os.environ.get("BENCH_PROFILE_REPEATS", "3"))
LIMIT, WINDOW = 300, 300.0  # Ayrshare's, per profile, in real seconds
POLL = 15.0  # RetryPostOperator's default poll_interval
TIMEOUT = 3600.0
HOOK = {"backoff": 1.0 / SCALE, "max_backoff": 60.0 / SCALE, "history_max_age": 60.0 / SCALE}
PARAMS = {
    "last_days": 0,
    "platforms": [],
    "dry_run": False,
    "max_wait_hint": 0,
    "repost_spent": False,
}


def conn_id_of(number: int) -> str:
    return f"ayrshare_client_{number:02d}"


def plan_one(conn_id: str) -> dict[str, Any]:
    """One profile's planning task (the DAG's ``find_failed_posts``, mapped per profile)."""
    from ayrshare_provider.agency import plan_profile
    from ayrshare_provider.hooks.ayrshare import AyrshareHook

    return plan_profile(AyrshareHook(conn_id, **HOOK), conn_id, PARAMS, ask_person=False)


def run_task(kwargs: dict[str, Any]) -> tuple[str, str, Any]:
    """One mapped retry task, in its own process: ``(post_id, "deferred" | "done" | "error", payload)``."""
    from airflow.providers.common.compat.sdk import TaskDeferred

    from ayrshare_provider.exceptions import AyrshareError
    from ayrshare_provider.operators.ayrshare import MAX_RECORD_AGE, RetryPostOperator
    from tests.context import make_context

    task = RetryPostOperator(
        task_id="retry_post",
        deferrable=True,
        batch_wait=True,  # the DAG's default: one listing per profile and interval
        poll_interval=POLL / SCALE,
        timeout=TIMEOUT,
        max_record_age=MAX_RECORD_AGE / SCALE,
        hook_params=HOOK,
        **kwargs,
    )
    try:
        return kwargs["post_id"], "done", task.execute(make_context())
    except TaskDeferred as deferred:
        return kwargs["post_id"], "deferred", deferred.trigger.serialize()[1]
    except AyrshareError as err:
        return kwargs["post_id"], "error", type(err).__name__


def recovered(post_id: str, kind: str, payload: Any) -> bool:
    """Whether the task ended with its post published (resumed with the trigger's event, as on a worker)."""
    from ayrshare_provider.exceptions import AyrshareError
    from ayrshare_provider.operators.ayrshare import RetryPostOperator
    from tests.context import make_context

    if kind == "error":
        return False
    if kind == "done":
        return bool(payload["published"])
    try:
        summary = RetryPostOperator(task_id="retry_post", post_id=post_id).execute_complete(
            make_context(), payload
        )
    except AyrshareError:
        return False
    return bool(summary["published"])


def recover(conn_ids: list[str], slots: Any) -> dict[str, Any]:
    """One recovery run over ``conn_ids``: plans side by side, then every retry; returns what it did."""
    from ayrshare_provider.agency import join_plans

    fork = multiprocessing.get_context("fork")
    inbox, outbox = fork.Queue(), fork.Queue()
    waits = fork.Process(target=triggerer, args=(inbox, outbox))  # section 4's: every wait in one loop
    waits.start()
    started = time.time()
    parts = slots.map(plan_one, conn_ids)
    _, tasks = join_plans(conn_ids, parts, [], dry_run=False, repost_spent=False)
    outcomes: dict[str, bool] = {}
    deferred = 0
    for post_id, kind, payload in slots.imap_unordered(run_task, tasks):
        if kind == "deferred":
            inbox.put((post_id, payload))
            deferred += 1
        else:
            outcomes[post_id] = recovered(post_id, kind, payload)
    inbox.put(None)
    for _ in range(deferred):
        post_id, payload, _ = outbox.get(timeout=TIMEOUT)
        outcomes[post_id] = recovered(post_id, "deferred", payload)
    waits.join(timeout=60)
    return {"posts": len(tasks), "recovered": sum(outcomes.values()), "seconds": time.time() - started}


def variant(profiles: int, one_after_another: bool) -> dict[str, Any]:
    with emulator(*scaled_ayrshare(SCALE)) as url:
        made = control(url, "POST", "profiles", json={"agency": profiles, "failed_posts": POSTS})["profiles"]
        conn_ids = [conn_id_of(number) for number in range(1, profiles + 1)]
        for conn_id, profile in zip(conn_ids, made, strict=True):
            os.environ[f"AIRFLOW_CONN_{conn_id.upper()}"] = json.dumps(
                {
                    "conn_type": "ayrshare",
                    "host": url,
                    "password": API_KEY,
                    "extra": {"profile_key": profile["key"]},
                }
            )
        control(url, "POST", "reset-counters")
        runs = [[conn_id] for conn_id in conn_ids] if one_after_another else [conn_ids]
        fork = multiprocessing.get_context("fork")
        results = []
        with fork.Pool(SLOTS, maxtasksperchild=1) as slots:
            for run in runs:
                results.append(recover(run, slots))
        counters = control(url, "GET", "counters")
    return {
        "posts": sum(result["posts"] for result in results),
        "recovered": sum(result["recovered"] for result in results),
        "seconds": sum(result["seconds"] for result in results) * SCALE,
        "calls": sum(counters["requests"].values()),
        "puts": sum(counters["retries_applied"].values()),
        "rate_limited": counters["rate_limited_by_profile"],
        "profiles_with_calls": len(counters["requests_by_profile"]),
    }


def main() -> str:
    os.environ.setdefault("AIRFLOW_HOME", tempfile.mkdtemp(prefix="bench-airflow-"))
    # Loaded once here, so that every forked task starts with them, as a task forked by Airflow's task
    # runner starts with the Task SDK's supervisor loaded: what each variant's tasks cost is then their
    # own work (about 5 ms each), not Python's imports (about 140 ms of CPU in a bare process, mostly
    # the http provider's aiohttp), which would scale with posts and not with anything Ayrshare does.
    import airflow.sdk
    import airflow.sdk.execution_time.supervisor  # noqa: F401
    import requests  # noqa: F401

    import ayrshare_provider.agency
    import ayrshare_provider.hooks.ayrshare
    import ayrshare_provider.operators.ayrshare
    import ayrshare_provider.triggers.post_status  # noqa: F401

    variants = [
        (f"1 profile x {POSTS} posts", 1, False),
        (f"{PROFILES} profiles x {POSTS}, side by side", PROFILES, False),
        (f"{PROFILES} profiles x {POSTS}, one after another", PROFILES, True),
    ]
    rows, figures = [], {}
    for name, profiles, one_after_another in variants:
        # The two short variants run REPEATS times (their medians are compared: a run's end
        # waits for the history cache, 0 to 60 s); one after another is 20 runs in itself, run once.
        runs = []
        for _ in range(1 if one_after_another else REPEATS):
            print(f"  {name} ...", flush=True)
            runs.append(variant(profiles, one_after_another))
            print(
                f"  {name}: {runs[-1]['recovered']} recovered, {runs[-1]['seconds'] / 60:.1f} min", flush=True
            )
        result = {**runs[-1], "times": summarize([run["seconds"] for run in runs])}
        result["seconds"] = result["times"]["median"]
        result["calls"] = statistics.median(run["calls"] for run in runs)
        result["rate_limited"] = sum((Counter(run["rate_limited"]) for run in runs), Counter())  # every run's
        result["recovered"] = min(run["recovered"] for run in runs)
        figures[name] = result
        rows.append(
            [
                name,
                f"{result['recovered']} of {result['posts']}"
                + (f" (each of {len(runs)} runs)" if len(runs) > 1 else ""),
                result["puts"],
                f"{result['calls'] / result['posts']:.2f}",
                sum(result["rate_limited"].values()),
                f"{result['seconds'] / 60:.1f} min"
                + (
                    f" ({result['times']['min'] / 60:.1f} to {result['times']['max'] / 60:.1f})"
                    if len(runs) > 1
                    else ""
                ),
            ]
        )
    one, side, serial = (figures[name] for name, _, _ in variants)
    for row, result in zip(rows, (one, side, serial), strict=True):
        row.append(f"{result['seconds'] / one['seconds']:.2f}")
    return (
        f"## 7. An agency: {PROFILES} profiles x {POSTS} failed posts ({SLOTS} task slots, one triggerer; "
        f"median of {REPEATS} runs, one after another: 1 run)\n\n"
        f"Ayrshare time-scaled {SCALE:g}x: {LIMIT} requests per {WINDOW:g} s per profile, history cached 60 s, "
        "retries final 1 to 5 min after they are sent; times are real-time equivalents. Each profile is its own "
        "connection (Profile Key); each run plans per profile (who it is, one listing), then retries every "
        "post with its profile's connection, deferred, and waits in one triggerer (one listing per profile and "
        "interval).\n\n"
        + table(
            [
                "variant",
                "posts recovered",
                "retries applied",
                "calls per post",
                "429 answers (all profiles)",
                "total time",
                "x 1 profile",
            ],
            rows,
        )
        + f"\n\n{PROFILES} profiles side by side / 1 profile, total time: **{side['seconds'] / one['seconds']:.2f}**x; "
        f"one after another: **{serial['seconds'] / one['seconds']:.2f}**x. Side by side / one after another: "
        f"**{side['seconds'] / serial['seconds']:.2f}**. "
        "Targets: side by side <= 1.3x one profile, 0 answers 429 on every profile, calls per post no worse "
        "than one profile's.\n"
    )


if __name__ == "__main__":
    print(main())
