"""9. A burst on ``airflow standalone`` (SQLite): 16 recovery task runs at once against 4.

The recovery DAG over 200 failed posts (``--scenario bulk --count 200 --seed 11``, its defaults
with ``ask_person`` off and every post listed), Ayrshare's clocks unscaled (300 requests per
5 minutes, history cached 60 s, retries final 1 to 5 minutes after the PUT), on two
``airflow standalone`` stacks one after the other. They differ in one line of the DAG: its
``max_active_tasks``, 16 (Airflow's default per DAG) or 4 (the cap for SQLite: the recovery DAGs
set it themselves on 2.11 and in ``dag.test()``, and the docs tell Airflow 3's standalone users to set
it). Measured from the API server's access log: how long its
writes (the Execution API the task runs call: start, heartbeats, XComs, deferral) took, which is
how long they waited for SQLite's one write lock; past 5 s (SQLite's busy timeout) Airflow's
scheduler, triggerer and DAG processor end on "database is locked". Also the time until every
retry was sent and deferred, the run's time, calls per post and 429 answers.
"""

from __future__ import annotations

import re
import shutil
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.common import table

DAG_ID = "ayrshare_failed_post_recovery"
POSTS = 200  # BURST_ON_AYRSHARES_CLOCKS (tests/helpers.py): 200 bulk posts, seed 11
REPO = Path(__file__).resolve().parent.parent
# An access log line: "... request finished ... duration_us=439618 ... method=POST path=/execution/..."
_WRITE = re.compile(r"duration_us=(\d+)\b.*\bmethod=(?:POST|PUT|PATCH) path=/execution/")


def dags_folder(tasks_at_once: int) -> Path:
    """The example DAG with ``max_active_tasks`` set to ``tasks_at_once``, in a folder of its own."""
    folder = Path(tempfile.mkdtemp(prefix="bench-sqlite-burst-dags-"))
    source = (REPO / "example_dags" / f"{DAG_ID}.py").read_text()
    marker = "**recovery_dag_args(),"
    assert marker in source, "the example DAG no longer takes recovery_dag_args()"
    (folder / f"{DAG_ID}.py").write_text(source.replace(marker, f"max_active_tasks={tasks_at_once},"))
    return folder


def write_seconds(log: str) -> list[float]:
    """
    How long each Execution API write took, from the API server's access log lines; all but the
    first, which also loads the Execution API in a fresh API server (5.6 and 7.5 s, whatever the burst).
    """
    found = []
    for line in log.splitlines():
        if "request finished" in line and (match := _WRITE.search(line)):
            found.append(int(match.group(1)) / 1e6)
    return found[1:]


def burst(tasks_at_once: int) -> dict[str, Any]:
    from ayrshare_emulator.server import Emulator
    from tests.helpers import API_KEY, BURST_ON_AYRSHARES_CLOCKS, X_KEY, X_SECRET, connection_json
    from tests.run_story import task_instances
    from tests.stack import Standalone

    with Emulator(API_KEY, **BURST_ON_AYRSHARES_CLOCKS) as ayrshare:
        conn = connection_json(ayrshare.url, x_twitter_api_key=X_KEY, x_twitter_api_secret=X_SECRET)
        stack = Standalone({"AIRFLOW_CONN_AYRSHARE_DEFAULT": conn})
        folder = dags_folder(tasks_at_once)
        stack.env["AIRFLOW__CORE__DAGS_FOLDER"] = str(folder)
        stack.env["AIRFLOW__LOGGING__LOGGING_LEVEL"] = (
            "INFO"  # the API server's access lines (bench.common: ERROR)
        )
        try:
            stack.start()
            stack.wait_for_dag(DAG_ID)
            stack.api("PATCH", f"/dags/{DAG_ID}", json={"is_paused": False})
            started = time.monotonic()
            conf = {"ask_person": False}
            run_id = stack.api("POST", f"/dags/{DAG_ID}/dagRuns", json={"logical_date": None, "conf": conf})[
                "dag_run_id"
            ]
            all_deferred = None
            while (state := stack.api("GET", f"/dags/{DAG_ID}/dagRuns/{run_id}")["state"]) not in (
                "success",
                "failed",
            ):
                if time.monotonic() - started > 1500:
                    state = "did not end in 1,500 s"
                    break
                if all_deferred is None:
                    retries = [
                        ti for ti in task_instances(stack, DAG_ID, run_id) if ti["task_id"] == "retry_post"
                    ]
                    waiting = [
                        ti for ti in retries if ti["state"] in (None, "scheduled", "queued", "running")
                    ]
                    if len(retries) > 1 and not waiting:
                        all_deferred = time.monotonic() - started
                time.sleep(3)
            seconds = time.monotonic() - started
            log = stack.log.read_text(errors="replace")
            healthy = stack.healthy()
        finally:
            stack.stop()
            shutil.rmtree(folder, ignore_errors=True)
        counters = ayrshare.state.counters()
    writes = sorted(write_seconds(log))
    retried = sum(counters["retries_applied"].values())
    return {
        "state": state,
        "seconds": seconds,
        "all_deferred": all_deferred,
        "writes": writes,
        "locked": log.count("database is locked"),
        "healthy": healthy,
        "calls_per_post": sum(counters["requests"].values()) / max(1, retried),
        "rate_limited": counters["rate_limited"],
        "retried": retried,
    }


def _quantile(values: list[float], share: float) -> float:
    return values[min(len(values) - 1, int(len(values) * share))] if values else float("nan")


def main() -> str:
    results = {}
    for at_once in (16, 4):
        results[at_once] = burst(at_once)
        found = results[at_once]
        print(  # each variant as it ends: a run takes minutes
            f"{at_once} at once: {found['state']}, {len(found['writes'])} writes, "
            f"slowest {max(found['writes'], default=float('nan')):.2f} s, {found['seconds']:.0f} s",
            flush=True,
        )
    rows = []
    for at_once, result in results.items():
        writes = result["writes"]
        rows.append(
            [
                f"{at_once} at once" + (" (Airflow's default)" if at_once == 16 else " (the cap for SQLite)"),
                result["state"],
                len(writes),
                f"{statistics.median(writes):.2f} / {_quantile(writes, 0.9):.2f} / {_quantile(writes, 0.99):.2f}",
                f"{max(writes):.2f}",
                sum(1 for took in writes if took > 2.0),
                result["locked"],
                "yes" if result["healthy"] else "no",
                f"{result['all_deferred']:.0f} s" if result["all_deferred"] else "never",
                f"{result['seconds']:.0f} s",
                f"{result['calls_per_post']:.2f}",
                result["rate_limited"],
            ]
        )
    slow, capped = results[16]["writes"], results[4]["writes"]
    return (
        f"## 9. A burst of {POSTS} failed posts on airflow standalone (SQLite): 16 task runs at once against 4\n\n"
        "Ayrshare's clocks unscaled (300 requests per 5 minutes, history cached 60 s, retries final 1 to "
        "5 minutes after the PUT); the recovery DAG with its defaults, `ask_person` off, every post listed. "
        "Writes: the API server's Execution API writes, in seconds, but the first (it also loads the "
        "Execution API); their wait for SQLite's one write lock is most of it, and past 5 s a write fails "
        'with "database is locked". Reproduce: `python -m bench.sqlite_burst` (about 16 minutes).\n\n'
        + table(
            [
                "variant",
                "run",
                "writes",
                "write s: median / p90 / p99",
                "slowest write s",
                "writes over 2 s",
                "'database is locked'",
                "every component alive",
                "every retry sent and deferred",
                "run time",
                "calls per retried post",
                "429 answers",
            ],
            rows,
        )
        + f"\n4 at once / 16 at once: median write **{statistics.median(capped) / statistics.median(slow):.2f}**, "
        f"99th percentile **{_quantile(capped, 0.99) / _quantile(slow, 0.99):.2f}**, slowest "
        f"**{max(capped) / max(slow):.2f}**; run time {results[4]['seconds'] / results[16]['seconds']:.2f}.\n"
    )


if __name__ == "__main__":
    print(main())
