"""4. Calls per recovered post, and a 600-post recovery against the rate limit.

``RetryPostOperator`` instances (sync wait) recover posts on 16 worker threads, as 16 worker
slots would, against the emulator. The minimum for a retried post is 3 calls: the read before
the retry, the PUT, one read of the final status. The rate limit is Ayrshare's 300 requests per
300 s window, time-scaled 100 times (300 per 3 s).
"""

from __future__ import annotations

import os
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor

from common import connection_env, control, emulator, table

POSTS = int(os.environ.get("BENCH_RECOVERY_POSTS", "600"))
WORKERS = 16
LIMIT, WINDOW = 300, 3.0
SETTLE, POLL = 0.5, 0.3


def recover(post_ids: list[str]) -> list[str]:
    from ayrshare_provider.operators.ayrshare import RetryPostOperator
    from ayrshare_provider.posts import Action
    from tests.context import make_context

    def one(post_id: str) -> str:
        task = RetryPostOperator(task_id="retry", post_id=post_id, deferrable=False, poll_interval=POLL, timeout=600,
                                 hook_params={"max_backoff": WINDOW})
        try:
            return task.execute(make_context())["action"]
        except Exception as err:  # noqa: BLE001 - a post that fails again is an outcome here
            return type(err).__name__

    with ThreadPoolExecutor(WORKERS) as pool:
        return list(pool.map(one, post_ids)) or [Action.RETRIED.value]


def main() -> str:
    args = ("--scenario", "bulk", "--count", str(POSTS * 2), "--retry-delay", str(SETTLE),
            "--rate-limit", str(LIMIT), "--rate-window", str(WINDOW))
    with emulator(*args) as url:
        os.environ.setdefault("AIRFLOW_HOME", tempfile.mkdtemp(prefix="bench-airflow-"))
        os.environ.update(connection_env(url))
        records = [entry["record"] for entry in control(url, "GET", "posts")["posts"]]
        post_ids = [r["id"] for r in records if r["errors"] and r["errors"][0]["code"] == 136
                    and "twitter" not in r["platforms"]][:POSTS]
        control(url, "POST", "reset-counters")
        started = time.perf_counter()
        outcomes = recover(post_ids)
        elapsed = time.perf_counter() - started
        counters = control(url, "GET", "counters")
    calls = sum(counters["requests"].values())
    per_post = calls / len(post_ids)
    floor = calls / LIMIT * WINDOW  # the time the limit alone needs for these calls
    rows = [
        ["posts recovered", f"{outcomes.count('retried')} of {len(post_ids)}"],
        ["calls per recovered post (pre-read + PUT + polls)", f"{per_post:.2f} (minimum 3; polls every {POLL} s, a retry settles after {SETTLE} s)"],
        ["retry PUTs", sum(counters["retry_puts"].values())],
        ["429 answers", counters["rate_limited"]],
        ["total time", f"{elapsed:.1f} s"],
        [f"floor set by the limit ({LIMIT} per {WINDOW:g} s) for {calls} calls", f"{floor:.1f} s (ratio {elapsed / floor:.2f})"],
    ]
    return (
        f"## 4. Calls per recovered post; {len(post_ids)} posts against the rate limit ({WORKERS} workers)\n\n"
        + table(["figure", "value"], rows) + "\n"
    )


if __name__ == "__main__":
    print(main())
