"""10. One rate limit across hosts: the burst of section 4 on one host, two and four.

The one-call recovery of section 4 (1,000 failed posts on one profile, ``trust_plan``, batched
waits, 32 task slots, a fresh process per task), its task processes spread over 1, 2 or 4 "hosts":
groups of processes that share no temp folder, so no machine budget, each with a triggerer of its
own for its tasks' waits. Two ways for hosts to share the profile's limit, side by side: one
Redis (``[ayrshare] rate_budget_url``, what a Celery deployment has in its broker), and nothing
shared (``rate_budget_url = local``: each host learns the others' calls only from Ayrshare's
``x-ratelimit-count``, and then goes one call at a time). Ayrshare time-scaled ``BENCH_SCALE``
times (default 5), its limit enforced; figures in real time.

Each variant runs ``BENCH_HOSTS_REPEATS`` times (default 3), in rounds (every variant once, then
again), so that the machine's drift falls on every row alike; the table gives medians. One run
moves by minutes on its own: its last retries settle 1 to 5 minutes after their PUT, at random.

Reproduce: ``python -m bench.many_hosts`` (about 25 minutes a round), or ``make bench`` (every section).
"""

from __future__ import annotations

import math
import os
import tempfile

from bench.common import cpu_spent, spread, summarize, table
from bench.recovery_at_scale import LIMIT, POSTS, SCALE, SLOTS, SLOWEST_SETTLE, WINDOW, recover

REPEATS = int(os.environ.get("BENCH_HOSTS_REPEATS", "3"))
VARIANTS = [
    ("1 host", 1, False),
    ("2 hosts, one Redis", 2, True),
    ("4 hosts, one Redis", 4, True),
    ("2 hosts, nothing shared", 2, False),
    ("4 hosts, nothing shared", 4, False),
]


def windows_of(run: dict) -> list[int]:
    """The requests of each of the profile's rate windows in this run, as the emulator counted them."""
    return run["counters"]["windows_by_profile"].get("primary", [])


def run_line(run: dict) -> str:
    """One run: its requests per window, calls by kind, when its last task and its last wait ended, and CPU."""
    calls = ", ".join(f"{count} {kind}" for kind, count in sorted(run["counters"]["requests"].items()))
    return (
        f"{' '.join(str(n) for n in windows_of(run))} ({calls}); last PUT at "
        f"{run['last_task_seconds'] / 60:.1f} min, done at {run['seconds'] / 60:.1f} min; "
        f"CPU {run['cpu']['ours']:.0f} s ours, {run['cpu']['elsewhere']:.0f} s elsewhere"
    )


def main() -> str:
    os.environ.setdefault("AIRFLOW_HOME", tempfile.mkdtemp(prefix="bench-airflow-"))
    import airflow.sdk  # noqa: F401 - loaded once here, so that every forked task starts with it
    import requests  # noqa: F401

    import ayrshare_provider.operators.ayrshare  # noqa: F401
    from tests.redis_server import redis_server

    floor = POSTS / LIMIT * WINDOW  # one call per post at the limit's pace
    settled_floor = (math.ceil(POSTS / (LIMIT * 0.98)) - 1) * WINDOW + SLOWEST_SETTLE
    runs: dict[str, list[dict]] = {name: [] for name, _, _ in VARIANTS}
    with redis_server() as redis_url:
        for round_number in range(1, REPEATS + 1):
            for name, hosts, shared in VARIANTS:
                os.environ["AIRFLOW__AYRSHARE__RATE_BUDGET_URL"] = redis_url if shared else "local"
                print(f"  round {round_number}: {name} ...", flush=True)
                with cpu_spent() as cpu:
                    result = recover(batch_wait=True, trust_plan=True, hosts=hosts)
                result["cpu"] = cpu
                runs[name].append(result)
                print(f"  round {round_number}: {name}: {run_line(result)}", flush=True)
    one_host = summarize([run["seconds"] for run in runs["1 host"]])["median"]
    rows, against_floor = [], []
    for name, done in runs.items():
        times = summarize([run["seconds"] for run in done])
        against_floor.append(f"{name} **{times['median'] / settled_floor:.2f}**x")
        minutes = {key: value / 60 for key, value in times.items()}
        calls = [sum(run["counters"]["requests"].values()) / run["posts"] for run in done]
        rows.append(
            [
                name,
                " / ".join(f"{len(run['outcomes'])} of {run['posts']}" for run in done),
                f"{max(calls):.2f} at most",
                " / ".join(str(sum(run["counters"]["retries_applied"].values())) for run in done),
                sum(run["counters"]["rate_limited"] for run in done),
                spread(minutes, " min", 1),
                f"{times['median'] / floor:.2f}",
                f"{times['median'] / settled_floor:.2f} ({times['min'] / settled_floor:.2f} to {times['max'] / settled_floor:.2f})",
                f"{times['median'] / one_host:.2f}",
            ]
        )
    os.environ.pop("AIRFLOW__AYRSHARE__RATE_BUDGET_URL", None)
    return (
        f"## 10. One rate limit across hosts: {POSTS} failed posts on one profile, 1 vs 2 vs 4 hosts "
        f"({SLOTS} task slots in all, one call per post; median of {REPEATS} runs)\n\n"
        f"Ayrshare time-scaled {SCALE:g}x: {LIMIT} requests per {WINDOW:g} s, its limit enforced; times are "
        "real-time equivalents. A host is a group of task processes and a triggerer with a temp folder of its "
        "own (no machine budget shared). Floors: one call per post at the limit's pace, "
        f"{floor / 60:.1f} min; with the last window and settle (the last PUTs go when their window opens, "
        f"their retries are final up to 5 min later), {settled_floor / 60:.1f} min.\n\n"
        + table(
            [
                "variant",
                "posts accounted for (each run)",
                "calls per post",
                "retries applied (each run)",
                "429 answers (all runs)",
                "total time",
                "x floor",
                "x floor with the last window and settle",
                "x 1 host",
            ],
            rows,
        )
        + "\n\nMedian time against the floor with the last window and settle: "
        + "; ".join(against_floor)
        + ".\n\nRun by run: the requests in each of the profile's rate windows (the budget lets 294 through "
        "a window) and by kind, the time the last task ended (just after its PUT) and the time the run was "
        "done, and the CPU seconds the run used and the machine spent elsewhere meanwhile (real seconds):\n\n"
        + "\n".join(
            f"- {name}: " + "; ".join(f"[{run_line(run)}]" for run in done) for name, done in runs.items()
        )
        + "\n\nTargets: 0 answers 429 in every row; two and four hosts within 1.15x the one-call floor "
        "(with the last window and settle).\n"
    )


if __name__ == "__main__":
    print(main())
