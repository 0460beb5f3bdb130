"""10. One rate limit across hosts: the burst of section 4 on one host, two and four.

The one-call recovery of section 4 (1,000 failed posts on one profile, ``trust_plan``, batched
waits, 32 task slots, a fresh process per task), its task processes spread over 1, 2 or 4 "hosts":
groups of processes that share no temp folder, so no machine budget, each with a triggerer of its
own for its tasks' waits. Two ways for hosts to share the profile's limit, side by side: one
Redis (``[ayrshare] rate_budget_url``, what a Celery deployment has in its broker), and nothing
shared (``rate_budget_url = local``: each host learns the others' calls only from Ayrshare's
``x-ratelimit-count``, and then goes one call at a time). Ayrshare time-scaled ``BENCH_SCALE``
times (default 5), its limit enforced; figures in real time.

Reproduce: ``python -m bench.many_hosts`` (about 25 minutes), or ``make bench`` (every section).
"""

from __future__ import annotations

import math
import os
import tempfile

from bench.common import table
from bench.recovery_at_scale import LIMIT, POSTS, SCALE, SLOTS, SLOWEST_SETTLE, WINDOW, recover

VARIANTS = [
    ("1 host", 1, False),
    ("2 hosts, one Redis", 2, True),
    ("4 hosts, one Redis", 4, True),
    ("2 hosts, nothing shared", 2, False),
    ("4 hosts, nothing shared", 4, False),
]


def main() -> str:
    os.environ.setdefault("AIRFLOW_HOME", tempfile.mkdtemp(prefix="bench-airflow-"))
    import airflow.sdk  # noqa: F401 - loaded once here, so that every forked task starts with it
    import requests  # noqa: F401

    import ayrshare_provider.operators.ayrshare  # noqa: F401
    from tests.redis_server import redis_server

    floor = POSTS / LIMIT * WINDOW  # one call per post at the limit's pace
    settled_floor = (math.ceil(POSTS / (LIMIT * 0.98)) - 1) * WINDOW + SLOWEST_SETTLE
    rows, seconds = [], {}
    with redis_server() as redis_url:
        for name, hosts, shared in VARIANTS:
            os.environ["AIRFLOW__AYRSHARE__RATE_BUDGET_URL"] = redis_url if shared else "local"
            print(f"  {name} ...", flush=True)
            result = recover(batch_wait=True, trust_plan=True, hosts=hosts)
            counters = result["counters"]
            seconds[name] = result["seconds"]
            rows.append(
                [
                    name,
                    f"{len(result['outcomes'])} of {result['posts']}",
                    f"{sum(counters['requests'].values()) / result['posts']:.2f}",
                    sum(counters["retries_applied"].values()),
                    counters["rate_limited"],
                    f"{result['seconds'] / 60:.1f} min",
                    f"{result['seconds'] / floor:.2f}",
                    f"{result['seconds'] / settled_floor:.2f}",
                    f"{result['seconds'] / seconds['1 host']:.2f}",
                ]
            )
            print(f"  {name}: {rows[-1]}", flush=True)
    os.environ.pop("AIRFLOW__AYRSHARE__RATE_BUDGET_URL", None)
    return (
        f"## 10. One rate limit across hosts: {POSTS} failed posts on one profile, 1 vs 2 vs 4 hosts "
        f"({SLOTS} task slots in all, one call per post)\n\n"
        f"Ayrshare time-scaled {SCALE:g}x: {LIMIT} requests per {WINDOW:g} s, its limit enforced; times are "
        "real-time equivalents. A host is a group of task processes and a triggerer with a temp folder of its "
        "own (no machine budget shared). Floors: one call per post at the limit's pace, "
        f"{floor / 60:.1f} min; with the last window and settle (the last PUTs go when their window opens, "
        f"their retries are final up to 5 min later), {settled_floor / 60:.1f} min.\n\n"
        + table(
            [
                "variant",
                "posts accounted for",
                "calls per post",
                "retries applied",
                "429 answers",
                "total time",
                "x floor",
                "x floor with the last window and settle",
                "x 1 host",
            ],
            rows,
        )
        + "\n\nTargets: 0 answers 429 in every row; two and four hosts within 1.15x the one-call floor "
        "(with the last window and settle).\n"
    )


if __name__ == "__main__":
    print(main())
