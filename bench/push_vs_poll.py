"""6. Failed posts found by push or by poll: time from a failure to its recovery run, and Ayrshare calls per post.

Two ``airflow standalone`` stacks, one after the other, each with its own emulator, run the
example DAG ``ayrshare_recover_on_failure``: one polls (the watcher lists failed posts every
60 s, Ayrshare's cache time, and batched waits list too), one is pushed to (the connection has a
webhook secret and the emulator delivers its scheduled-action webhook to the stack's
``/ayrshare/webhook``; the watcher is the 10-minute safety net). Ayrshare's clocks are not
scaled here: history cached 60 s, retries final 4 s after the PUT. ``BENCH_FAILURES`` (default 5)
posts fail one at a time, each while processing (a scheduled post), at a moment unrelated to the
watcher's turn; each is waited on until its run ends. Calls are counted by the emulator from the
watcher's first look to the last run's end.
"""

from __future__ import annotations

import json
import os
import statistics
import time
from typing import Any

import requests

from bench.common import API_KEY, control, emulator, table

FAILURES = int(os.environ.get("BENCH_FAILURES", "5"))
WATCHER_DAG_ID = "ayrshare_recover_on_failure"
WEBHOOK_SECRET = "bench-webhook-secret-0123456789"
PROCESSING = 1.0  # seconds a failing scheduled post is processed before it fails


def runs(stack: Any) -> list[dict[str, Any]]:
    return stack.api("GET", f"/dags/{WATCHER_DAG_ID}/dagRuns", params={"limit": 100})["dag_runs"]


def fail_one(url: str, index: int) -> float:
    """A scheduled post that fails while processing; the monotonic moment it fails."""
    post = {
        "post": f"fails {index}",
        "platforms": ["linkedin"],
        "status": "error",
        "errors": [
            {"action": "post", "status": "error", "code": 136, "message": "timeout", "platform": "linkedin"}
        ],
        "postIds": [],
        "_processes_in": PROCESSING,
    }
    control(url, "POST", "posts", json={"posts": [post]})
    return time.monotonic() + PROCESSING


def recover_each(stack: Any, url: str) -> list[dict[str, float]]:
    """Fail posts one at a time; for each, seconds from the failure to its run's start and end."""
    timings = []
    for index in range(FAILURES):
        # Unrelated to the watcher's 60 s turn: 7 s more each time, after the previous run ended.
        time.sleep(5 + 7 * index % 60)
        known = {run["dag_run_id"] for run in runs(stack)}
        failed_at = fail_one(url, index)
        while not (new := [run for run in runs(stack) if run["dag_run_id"] not in known]):
            time.sleep(0.2)
        started = time.monotonic() - failed_at
        run_id = new[0]["dag_run_id"]
        while stack.api("GET", f"/dags/{WATCHER_DAG_ID}/dagRuns/{run_id}")["state"] not in (
            "success",
            "failed",
        ):
            time.sleep(0.5)
        timings.append({"start": started, "end": time.monotonic() - failed_at})
    return timings


def measure(push: bool) -> tuple[list[dict[str, float]], dict[str, Any]]:
    from tests.stack import Standalone

    with emulator("--history-cache", "60", "--retry-delay", "4") as url:
        extra = {"webhook_secret": WEBHOOK_SECRET} if push else {}
        conn = {"conn_type": "ayrshare", "host": url, "password": API_KEY, "extra": extra}
        stack = Standalone(
            {"AIRFLOW_CONN_AYRSHARE_DEFAULT": json.dumps(conn), "AIRFLOW__AYRSHARE__WEBHOOK_RECEIVER": "True"}
        )
        try:
            stack.start()
            if push:  # what register_webhook() sends
                requests.post(
                    f"{url}/api/hook/webhook",
                    json={
                        "action": "scheduled",
                        "url": f"{stack.url}/ayrshare/webhook",
                        "secret": WEBHOOK_SECRET,
                    },
                    headers={"Authorization": f"Bearer {API_KEY}"},
                    timeout=10,
                ).raise_for_status()
            stack.wait_for_dag(WATCHER_DAG_ID)
            stack.api("PATCH", f"/dags/{WATCHER_DAG_ID}", json={"is_paused": False})
            while control(url, "GET", "counters")["requests"].get("GET /api/history", 0) < 1:
                time.sleep(0.5)  # the watcher's first look: what failed before it is old news
            control(url, "POST", "reset-counters")
            timings = recover_each(stack, url)
            return timings, control(url, "GET", "counters")
        finally:
            stack.stop()


def main() -> str:
    rows, results = [], {}
    for name, push in (("poll (watcher every 60 s)", False), ("push (scheduled-action webhook)", True)):
        timings, counters = measure(push)
        calls = counters["requests"]
        listings, reads = calls.get("GET /api/history", 0), calls.get("GET /api/post/{id}", 0)
        puts = sum(counters["retry_puts"].values())
        results[name] = {
            "start": statistics.mean(t["start"] for t in timings),
            "calls": sum(calls.values()) / FAILURES,
        }
        rows.append(
            [
                name,
                f"{len(counters['retry_puts'])} of {FAILURES}",
                f"{statistics.mean(t['start'] for t in timings):.1f} s ({min(t['start'] for t in timings):.1f} to "
                f"{max(t['start'] for t in timings):.1f})",
                f"{statistics.mean(t['end'] for t in timings):.1f} s",
                f"{listings / FAILURES:.1f}",
                f"{reads / FAILURES:.1f}",
                f"{puts / FAILURES:.1f}",
                f"{sum(calls.values()) / FAILURES:.1f}",
                counters.get("webhooks", {}).get("delivered", 0),
            ]
        )
    poll, push = results["poll (watcher every 60 s)"], results["push (scheduled-action webhook)"]
    return (
        f"## 6. Failed posts found by push or by poll ({FAILURES} failures, one at a time, airflow standalone)\n\n"
        "The example DAG `ayrshare_recover_on_failure` on Airflow 3.3; Ayrshare's clocks not scaled (history "
        "cached 60 s, a retry final 4 s after its PUT). Calls per failed post count every Ayrshare call from the "
        "watcher's first look to the last run's end, the watcher's own listings included.\n\n"
        + table(
            [
                "variant",
                "posts retried",
                "failure to run start, mean (min to max)",
                "failure to run end, mean",
                "listings per post",
                "post reads per post",
                "retry PUTs per post",
                "Ayrshare calls per post",
                "webhooks delivered",
            ],
            rows,
        )
        + f"\n\nTime to start, push / poll: **{push['start'] / poll['start']:.2f}**; Ayrshare calls per failed "
        f"post, push / poll: **{push['calls'] / poll['calls']:.2f}**. Idle, the watcher lists 1,440 times a day "
        "when polling and 144 as the push's safety net (its interval, not measured here).\n"
    )


if __name__ == "__main__":
    print(main())
