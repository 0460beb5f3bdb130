"""What every benchmark shares: an emulator in its own process, repetitions, and table output."""

from __future__ import annotations

import os
import platform
import statistics
import subprocess
import sys
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from importlib.metadata import version
from typing import TYPE_CHECKING, Any

import requests

from ayrshare_emulator.records import failed_record

if TYPE_CHECKING:
    from collections.abc import Iterator

# Tables, not log lines: Airflow's logging (and so the provider's) at ERROR, set before Airflow loads. Below
# that, thousands of direct execute() calls would each log "cannot be called outside of the Task Runner".
os.environ.setdefault("AIRFLOW__LOGGING__LOGGING_LEVEL", "ERROR")

API_KEY = "bench-api-key-0123456789"
REPEATS = int(os.environ.get("BENCH_REPEATS", "5"))


@contextmanager
def emulator(*args: str) -> Iterator[str]:
    """An emulator in a subprocess (so that its CPU is not the client's), yielding its base URL."""
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "ayrshare_emulator",
            "--port",
            "0",
            "--api-key",
            API_KEY,
            "--rate-limit",
            "0",
            *args,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        line = process.stdout.readline()
        yield line.split()[3]
    finally:
        process.terminate()
        process.wait(timeout=10)


def scaled_ayrshare(scale: float) -> tuple[str, ...]:
    """
    The emulator's arguments for Ayrshare's clocks run ``scale`` times faster: 300 requests per
    300 s per profile, history answers cached 60 s, retries final 1 to 5 minutes after they are sent.
    """
    return (
        "--rate-limit",
        "300",
        "--rate-window",
        str(300 / scale),
        "--history-cache",
        str(60 / scale),
        "--retry-delay",
        str(60 / scale),
        "--retry-delay-max",
        str(300 / scale),
    )


def control(url: str, method: str, path: str, **kwargs: Any) -> Any:
    answer = requests.request(method, f"{url}/_emulator/{path}", timeout=30, **kwargs)
    answer.raise_for_status()
    return answer.json()


def seed_failed_posts(url: str, count: int, fail_again_every: int = 0) -> list[str]:
    """``count`` posts that failed with a transient error, newest last, so that a listing of 1,000 holds them all.

    :param fail_again_every: every n-th post fails again when retried (0: none do).
    """
    posts = []
    hour_ago = datetime.now(UTC) - timedelta(hours=1)
    for index in range(count):
        platform = ("linkedin", "facebook", "instagram", "tiktok")[index % 4]
        post = failed_record(
            [platform],
            {platform: (136, "timeout")},
            text=f"post {index}",
            created=hour_ago + timedelta(seconds=index * 3),
            mediaUrls=[],
        )
        if fail_again_every and index % fail_again_every == 0:
            post["_fails_again"] = {platform: [138, "The network rejected the post."]}
        posts.append(post)
    return control(url, "POST", "posts", json={"posts": posts})["ids"]


def connection_env(url: str) -> dict[str, str]:
    import json

    return {
        "AIRFLOW_CONN_AYRSHARE_DEFAULT": json.dumps(
            {"conn_type": "ayrshare", "host": url, "password": API_KEY}
        )
    }


def summarize(values: list[float]) -> dict[str, float]:
    """Median, min and max of measured values."""
    return {"median": statistics.median(values), "min": min(values), "max": max(values)}


def spread(stats: dict[str, float], unit: str = "", digits: int = 3) -> str:
    return f"{stats['median']:.{digits}f}{unit} ({stats['min']:.{digits}f} to {stats['max']:.{digits}f})"


def table(header: list[str], rows: list[list[Any]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


@contextmanager
def cpu_spent() -> Iterator[dict[str, float]]:
    """
    The CPU seconds the block used (``ours``: this process and the children it reaped) and the ones
    the machine spent elsewhere meanwhile (``elsewhere``: another job, an orphan of an earlier test;
    a server this process started and still runs, such as Redis, counts there too): what tells a
    run on a busy machine.
    """
    import resource

    def ours() -> float:
        return sum(
            usage.ru_utime + usage.ru_stime
            for usage in (
                resource.getrusage(resource.RUSAGE_SELF),
                resource.getrusage(resource.RUSAGE_CHILDREN),
            )
        )

    def machine_busy() -> float:
        with open("/proc/stat") as stat:  # the first line: the CPU time of every core, by kind, in ticks
            user, nice, system, _idle, _iowait, irq, softirq, steal = map(int, stat.readline().split()[1:9])
        return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")

    measured: dict[str, float] = {}
    busy, own = machine_busy(), ours()
    try:
        yield measured
    finally:
        measured["ours"] = ours() - own
        measured["elsewhere"] = max(0.0, machine_busy() - busy - measured["ours"])


def machine() -> str:
    packages = ", ".join(
        f"{name} {version(name)}"
        for name in ("apache-airflow", "apache-airflow-providers-http", "aiohttp", "requests")
    )
    return f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}; {packages}"
