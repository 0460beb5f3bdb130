"""8. A burst of webhook deliveries while the scheduler writes: how long each waits for its answer.

A recovery run retries hundreds of posts at once, so Ayrshare pushes their final statuses within
seconds of each other, and waits 10 s for each answer (then sends again after 5 s and 30 s). The
receiver (``/ayrshare/webhook``, Airflow 3.3: every delivery is kept in the asset state store)
runs under uvicorn in its own process on a SQLite metadata DB (``airflow standalone``'s), while
another process stands in for the scheduler's writes: it holds the DB's write lock 50 ms at a
time, 20 ms apart (this bench's assumption of a busy scheduler, not a measurement of one).
``BENCH_BURST`` (default 1000, a recovery's largest run) signed success deliveries for distinct
posts (the lightest path: one state-store entry each) are sent at once from this process. Side
by side on one DB, alternating bursts: the receiver as shipped (one transaction for every
delivery that arrived while the last was written, 200 at most) and the same receiver with one
transaction per delivery. Each variant ``BENCH_REPEATS`` times.

Run alone: ``python -m bench.webhook_burst``.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from typing import Any

from bench.common import REPEATS, spread, summarize, table

BURST = int(os.environ.get("BENCH_BURST", "1000"))
SECRET = "bench-webhook-secret-0123456789"
AYRSHARE_TIMEOUT = 10.0  # seconds Ayrshare waits for an answer
VARIANTS = {"batched (as shipped, 200 at most)": 200, "one transaction per delivery": 1}


async def _send_burst(url: str, name: str) -> list[tuple[int, float]]:
    """Every delivery of the burst at once: each one's HTTP status (0: no answer in 10 s) and seconds."""
    import aiohttp

    from ayrshare_emulator.records import network_post, scheduled_payload
    from ayrshare_emulator.signing import signed_headers

    published = {"status": "success", "postIds": [network_post("linkedin", "77")]}
    bodies = [json.dumps(scheduled_payload(f"P{name}{index}", published)).encode() for index in range(BURST)]
    signed = [{"Content-Type": "application/json", **signed_headers(SECRET, body)} for body in bodies]

    async def one(session: aiohttp.ClientSession, body: bytes, headers: dict[str, str]) -> tuple[int, float]:
        started = time.monotonic()
        try:
            async with session.post(url, data=body, headers=headers) as answer:
                await answer.read()
                return answer.status, time.monotonic() - started
        except (TimeoutError, aiohttp.ClientError):
            return 0, time.monotonic() - started

    timeout = aiohttp.ClientTimeout(total=AYRSHARE_TIMEOUT)
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0), timeout=timeout) as session:
        return list(await asyncio.gather(*(one(session, *pair) for pair in zip(bodies, signed, strict=True))))


def _serve(batch: int) -> None:
    """In a child: the receiver writing ``batch`` deliveries per transaction at most, until stdin closes."""
    import threading

    import uvicorn
    from airflow import settings
    from sqlalchemy import event

    from ayrshare_provider.plugins import webhook_receiver

    webhook_receiver._BATCH = batch  # the one knob the two variants differ by
    commits = [0]
    event.listen(settings.engine, "commit", lambda _connection: commits.__setitem__(0, commits[0] + 1))
    app = webhook_receiver.create_app()
    app.get("/commits")(lambda: commits[0])
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="error"))
    threading.Thread(target=server.run, daemon=True).start()
    deadline = time.monotonic() + 60
    while not server.started:
        if time.monotonic() > deadline:
            raise SystemExit("the receiver did not start in 60 s")
        time.sleep(0.01)
    print(f"http://127.0.0.1:{server.servers[0].sockets[0].getsockname()[1]}", flush=True)
    sys.stdin.read()
    server.should_exit = True


def _write_as_the_scheduler_does(db: str) -> None:
    """In a child: take SQLite's write lock for 50 ms, 20 ms apart, until killed."""
    import sqlite3

    connection = sqlite3.connect(db, timeout=30, isolation_level=None)
    connection.execute("CREATE TABLE IF NOT EXISTS bench_scheduler (beat REAL)")
    while True:
        connection.execute("BEGIN IMMEDIATE")
        connection.execute("INSERT INTO bench_scheduler VALUES (?)", (time.time(),))
        time.sleep(0.05)
        connection.execute("COMMIT")
        time.sleep(0.02)


def measure() -> dict[str, list[dict[str, Any]]]:
    """Each variant's bursts: every delivery's (status, seconds), and the transactions the burst took."""
    import requests

    home = tempfile.mkdtemp(prefix="bench-webhook-burst-")
    env = {
        **os.environ,
        "AIRFLOW_HOME": home,
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__LOGGING__LOGGING_LEVEL": "ERROR",
        "AIRFLOW_CONN_AYRSHARE_DEFAULT": json.dumps(
            {"conn_type": "ayrshare", "host": "http://127.0.0.1:9", "extra": {"webhook_secret": SECRET}}
        ),
    }
    me = [sys.executable, "-m", "bench.webhook_burst"]
    subprocess.run(
        [sys.executable, "-m", "airflow", "db", "migrate"], env=env, check=True, capture_output=True
    )
    subprocess.run([*me, "--declare-asset"], env=env, check=True)
    children = [
        subprocess.Popen(
            [*me, "--serve", str(batch)], env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
        )
        for batch in VARIANTS.values()
    ]
    scheduler = subprocess.Popen([*me, "--scheduler", f"{home}/airflow.db"], env=env)
    try:
        urls = [child.stdout.readline().strip() for child in children]  # type: ignore[union-attr]
        results: dict[str, list[dict[str, Any]]] = {variant: [] for variant in VARIANTS}
        for repeat in range(REPEATS):
            for index, (variant, url) in enumerate(zip(VARIANTS, urls, strict=True)):
                before = requests.get(f"{url}/commits", timeout=30).json()
                answers = asyncio.run(_send_burst(f"{url}/webhook", f"r{repeat}v{index}n"))
                # A delivery the sender gave up on is still written: the next burst starts after it.
                settled, commits = -1, before
                while commits != settled:
                    settled = commits
                    time.sleep(1)
                    commits = requests.get(f"{url}/commits", timeout=30).json()
                results[variant].append({"answers": answers, "commits": commits - before})
        return results
    finally:
        scheduler.kill()
        scheduler.wait()
        for child in children:
            try:
                child.communicate(timeout=30)  # closes its stdin: it stops
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait()
        shutil.rmtree(home, ignore_errors=True)


def main() -> str:
    results = measure()
    rows, slowest = [], {}
    for variant, runs in results.items():
        latencies = [[seconds for _, seconds in run["answers"]] for run in runs]
        late = [
            sum(1 for status, took in run["answers"] if status != 200 or took > AYRSHARE_TIMEOUT)
            for run in runs
        ]
        slowest[variant] = summarize([max(run) for run in latencies])
        rows.append(
            [
                variant,
                spread(summarize([sorted(run)[len(run) // 2] for run in latencies]), " s", 2),
                spread(summarize([sorted(run)[int(len(run) * 0.95)] for run in latencies]), " s", 2),
                spread(slowest[variant], " s", 2),
                spread(summarize([float(count) for count in late]), "", 0),
                spread(summarize([float(run["commits"]) for run in runs]), "", 0),
            ]
        )
    batched, one_by_one = (slowest[variant]["median"] for variant in VARIANTS)
    return (
        f"## 8. A burst of {BURST} webhook deliveries at once while the scheduler writes (SQLite, Airflow 3.3)\n\n"
        "`python -m bench.webhook_burst`. The receiver in its own process; a stand-in scheduler holds SQLite's "
        "write lock 50 ms at a time, 20 ms apart. Each delivery's wait for its answer, as Ayrshare sees it (it "
        f"gives up after {AYRSHARE_TIMEOUT:.0f} s and sends again); {REPEATS} bursts per variant, alternating.\n\n"
        + table(
            [
                "variant",
                "median answer",
                "95th percentile",
                "slowest answer",
                "not answered 200 in 10 s",
                "transactions",
            ],
            rows,
        )
        + f"\n\nSlowest answer, batched / one by one: **{batched / one_by_one:.2f}**.\n"
    )


if __name__ == "__main__":
    if sys.argv[1:2] == ["--serve"]:
        _serve(int(sys.argv[2]))
    elif sys.argv[1:2] == ["--scheduler"]:
        _write_as_the_scheduler_does(sys.argv[2])
    elif sys.argv[1:2] == ["--declare-asset"]:  # the failed-posts asset, as the watcher DAG declares it
        from ayrshare_provider.assets import failed_posts_asset_name
        from tests.helpers import declare_asset

        declare_asset(failed_posts_asset_name("ayrshare_default"))
    else:
        print(main())
