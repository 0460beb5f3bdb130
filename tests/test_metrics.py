"""Metrics through Airflow's Stats: a real recovery run sends them to a StatsD server on 127.0.0.1."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from ayrshare_emulator.server import Emulator
from ayrshare_provider.metrics import Metric
from tests.helpers import API_KEY, SECRETS, X_KEY, X_SECRET, connection_json
from tests.statsd_listener import StatsdListener

REPO = Path(__file__).resolve().parent.parent
PREFIX = "airflow.ayrshare."
# The recovery, in a process of its own: Airflow sets its metrics backend up once per process.
RUN = """
import json
from tests.airflow_compat import stored_xcoms
from tests.helpers import load_dag
dag = load_dag("ayrshare_failed_post_recovery")
# No wait for a network's hint (max_wait_hint 0): the demo's post with a half-minute hint is left to retry later.
run = dag.test(run_conf={"poll_interval": 0.2, "max_wait_hint": 0, "ask_person": False, "repost_spent": True})
print("REPORT " + json.dumps(stored_xcoms(dag.dag_id, run.run_id)[("report", "return_value", -1)]["counts"]))
"""


def by_name(counts: Counter[str]) -> Counter[str]:
    """The counts per metric, whatever their tags."""
    total: Counter[str] = Counter()
    for name, value in counts.items():
        total[name.split(",", 1)[0].removeprefix(PREFIX)] += value
    return total


@pytest.mark.long_run
def test_a_recovery_of_the_demo_counts_what_the_emulator_saw(airflow_db):
    with Emulator(API_KEY, scenario="demo", retry_delay=0.2) as emulator, StatsdListener() as statsd:
        emulator.faults.add(
            {"endpoint": "GET /api/history", "sequence": ["rate_limit"]}
        )  # one 429, read again
        env = {
            **os.environ,
            "AIRFLOW_CONN_AYRSHARE_DEFAULT": connection_json(
                emulator.url, x_twitter_api_key=X_KEY, x_twitter_api_secret=X_SECRET
            ),
            "AIRFLOW__METRICS__STATSD_ON": "True",
            "AIRFLOW__METRICS__STATSD_HOST": "127.0.0.1",
            "AIRFLOW__METRICS__STATSD_PORT": str(statsd.port),
            "AIRFLOW__METRICS__STATSD_PREFIX": "airflow",
            "AIRFLOW__METRICS__STATSD_INFLUXDB_ENABLED": "True",  # tags in the name, as a tag-aware backend takes them
        }
        ran = subprocess.run(
            [sys.executable, "-c", RUN], env=env, cwd=REPO, capture_output=True, text=True, timeout=900
        )
        assert ran.returncode == 0, ran.stderr[-3000:]
        seen = emulator.state.counters()
        retried = {post_id for post_id, applied in seen["retries_applied"].items() if applied}
        scripted_to_fail = {post.id for post in emulator.state.posts.values() if post.retry_failures}
        counts = statsd.counts(PREFIX)
    report = json.loads(next(line for line in ran.stdout.splitlines() if line.startswith("REPORT "))[7:])
    metric = by_name(counts)
    assert report["recovered"] > 0 and report["reposted"] > 0

    assert metric[Metric.API_CALLS.value] == sum(seen["requests"].values())
    assert metric[Metric.API_RATE_LIMITED.value] == 1  # the scripted 429 (the emulator's limit met none)
    assert seen["rate_limited"] == 0
    assert metric[Metric.RETRY_SENT.value] == sum(seen["retry_puts"].values()) > 0
    # Every retry the run sent ended: published, or failed again where the emulator scripted it to.
    assert metric[Metric.RETRY_FAILED_AGAIN.value] == len(retried & scripted_to_fail) > 0
    assert metric[Metric.RETRY_RECOVERED.value] == len(retried - scripted_to_fail) > 0
    assert metric[Metric.REPOST_CREATED.value] == seen["requests"].get("POST /api/post", 0) > 0
    # Tagged by profile (the connection id) and, for a post's outcome, its networks; never a secret.
    assert f"{PREFIX}{Metric.API_CALLS.value},profile=ayrshare_default" in counts
    assert any(
        name.startswith(f"{PREFIX}{Metric.RETRY_RECOVERED.value},") and "network=" in name for name in counts
    )
    assert not [name for name in counts for secret in SECRETS if secret in name]
