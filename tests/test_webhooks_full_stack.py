"""Webhooks on the full stack: the emulator pushes to the receiver in ``airflow standalone``'s API server.

A post that fails starts one recovery run within seconds and no listing; a burst of retried
posts settles from pushed statuses without a read, and from reads only for the deliveries that
were lost; a duplicate delivery starts nothing; a forged one is refused and creates nothing.
"""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
import requests

from ayrshare_emulator.records import failed_record
from ayrshare_emulator.server import Emulator
from ayrshare_emulator.signing import signed_headers
from tests.airflow_compat import airflow_version
from tests.helpers import API_KEY, connection_json, seed_posts
from tests.run_story import wait_for_run_end
from tests.stack import Standalone

pytestmark = [
    pytest.mark.stack,
    pytest.mark.skipif(airflow_version() < (3, 3), reason="waits read pushed statuses on Airflow 3.3+"),
]
WEBHOOK_SECRET = "WEBHOOKSECRET-8d2f4b1c-secret"
WATCHER_DAG_ID = "ayrshare_recover_on_failure"
RECOVERY_DAG_ID = "ayrshare_failed_post_recovery"
GRACE = 15  # seconds a wait relies on pushes alone (the connection's webhook_grace)
LISTINGS, READS = "GET /api/history", "GET /api/post/{id}"


@pytest.fixture(scope="module")
def emulator_pushing():
    # Retries settle in 2 s. No rate limit here: what is counted is calls, not their pace.
    with Emulator(API_KEY, retry_delay=2.0, history_cache=2.0, rate_limit=0) as running:
        yield running


@pytest.fixture(scope="module")
def stack(emulator_pushing):
    conn = connection_json(
        emulator_pushing.url, history_max_age="2", webhook_secret=WEBHOOK_SECRET, webhook_grace=str(GRACE)
    )
    # The receiver is opt-in: [ayrshare] webhook_receiver.
    airflow = Standalone(
        {"AIRFLOW_CONN_AYRSHARE_DEFAULT": conn, "AIRFLOW__AYRSHARE__WEBHOOK_RECEIVER": "True"}
    )
    try:
        airflow.start()
        with pytest.MonkeyPatch.context() as patch:  # what a user runs once, with their connection
            from ayrshare_provider.hooks.ayrshare import AyrshareHook

            patch.setenv("AIRFLOW_CONN_AYRSHARE_DEFAULT", conn)
            AyrshareHook().register_webhook(f"{airflow.url}/ayrshare/webhook?conn_id=ayrshare_default")
        # The receiver records on the failed-posts asset, which exists once the watcher DAG is parsed.
        airflow.wait_for_dag(WATCHER_DAG_ID)
        yield airflow
    finally:
        airflow.stop()
        assert airflow.processes_left() == [], "airflow standalone left processes behind"


def counted(emulator: Emulator, endpoint: str) -> int:
    return emulator.state.counters()["requests"].get(endpoint, 0)


def runs(stack: Standalone, dag_id: str) -> list[dict[str, Any]]:
    return stack.api("GET", f"/dags/{dag_id}/dagRuns")["dag_runs"]


def report(stack: Standalone, dag_id: str, run_id: str) -> dict[str, Any]:
    path = f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances/report/xcomEntries/return_value"
    return stack.api("GET", path)["value"]


def test_a_failure_pushed_by_webhook_starts_one_run_within_seconds_without_a_listing(stack, emulator_pushing):
    emulator = emulator_pushing
    stack.api("PATCH", f"/dags/{WATCHER_DAG_ID}", json={"is_paused": False})
    # The watcher looks once (what failed before it is old news), then every 10 minutes: the safety net.
    deadline = time.monotonic() + 120
    while counted(emulator, LISTINGS) < 1:
        assert time.monotonic() < deadline, "the watcher never took its first look"
        time.sleep(0.5)
    time.sleep(3)
    listings, reads = counted(emulator, LISTINGS), counted(emulator, READS)

    # A scheduled post fails while processing; Ayrshare pushes it, twice (a duplicate delivery).
    emulator.faults.add({"endpoint": "WEBHOOK scheduled", "sequence": ["deliver_twice"]})
    [post_id] = seed_posts(
        emulator,
        {**failed_record(["linkedin"], {"linkedin": (136, "timeout")}, text="fails now"), "_processes_in": 1},
    )
    while emulator.state.posts[post_id].record["status"] != "error":
        time.sleep(0.05)
    failed_at = time.monotonic()
    while not (found := runs(stack, WATCHER_DAG_ID)):
        assert time.monotonic() - failed_at < 60, "no run started for the pushed failure"
        time.sleep(0.2)
    started_within = time.monotonic() - failed_at
    print(f"pushed failure: run started {started_within:.1f} s after the post failed")

    assert started_within < 10
    [run] = found
    assert run["run_type"] == "asset_triggered"
    assert wait_for_run_end(stack, WATCHER_DAG_ID, run["dag_run_id"]) == "success"
    assert [entry["id"] for entry in report(stack, WATCHER_DAG_ID, run["dag_run_id"])["recovered"]] == [
        post_id
    ]
    assert emulator.state.counters()["retry_puts"] == {post_id: 1}
    assert counted(emulator, LISTINGS) == listings  # started by the push, not by a listing
    assert counted(emulator, READS) == reads + 1  # the plan reads the post; its wait settled on the push
    webhooks = emulator.state.counters()["webhooks"]
    # The copy was taken as a delivery taken before: answered 2xx, so Ayrshare sends it no more.
    # (The failure twice, then the retried post's success.)
    assert webhooks["duplicated"] == 1 and webhooks["delivered"] == 3 and "refused" not in webhooks
    time.sleep(6)  # no retries of the copy come (they would after 5 s)
    assert len(runs(stack, WATCHER_DAG_ID)) == 1
    assert emulator.state.counters()["webhooks"]["attempts"] == 3


def burst(emulator: Emulator, count: int, name: str) -> list[str]:
    records = [
        failed_record(["linkedin"], {"linkedin": (136, "timeout")}, text=f"{name} {index}")
        for index in range(count)
    ]
    return seed_posts(emulator, *records)


def recover(stack: Standalone) -> tuple[str, float]:
    conf = {"last_days": 0, "poll_interval": 1, "ask_person": False}
    started = time.monotonic()
    run_id = stack.api("POST", f"/dags/{RECOVERY_DAG_ID}/dagRuns", json={"logical_date": None, "conf": conf})[
        "dag_run_id"
    ]
    # About 80 s; 300 s keeps a failing CI short.
    state = wait_for_run_end(stack, RECOVERY_DAG_ID, run_id)
    assert state == "success"
    return run_id, time.monotonic() - started


@pytest.mark.parametrize("dropped_every", [0, 5], ids=["every webhook arrives", "20% dropped"])
def test_a_burst_of_retried_posts_settles_on_pushes_and_reads_only_the_lost_ones(
    stack, emulator_pushing, dropped_every
):
    emulator = emulator_pushing
    stack.api("PATCH", f"/dags/{RECOVERY_DAG_ID}", json={"is_paused": False})
    ids = burst(emulator, 100, f"burst{dropped_every}")
    if dropped_every:
        kinds = ["drop_delivery" if index % dropped_every == 0 else "ok" for index in range(100)]
        emulator.faults.add({"endpoint": "WEBHOOK scheduled", "sequence": kinds})
    before = emulator.state.counters()
    dropped_before = before["webhooks"].get("dropped", 0)

    run_id, seconds = recover(stack)

    after = emulator.state.counters()
    reads = after["requests"].get(READS, 0) - before["requests"].get(READS, 0)
    listings = after["requests"].get(LISTINGS, 0) - before["requests"].get(LISTINGS, 0)
    dropped = after["webhooks"].get("dropped", 0) - dropped_before
    print(
        f"burst of 100, 1 in {dropped_every or 'none'} dropped: {seconds:.0f} s, {reads} reads, {listings} listings"
    )
    recovered = {entry["id"] for entry in report(stack, RECOVERY_DAG_ID, run_id)["recovered"]}
    assert set(ids) <= recovered
    assert all(after["retry_puts"][post_id] == 1 for post_id in ids)
    assert listings == 1  # the plan's; no wait listed
    assert dropped == (100 // dropped_every if dropped_every else 0)
    if reads != dropped:
        print("read:", [post_id for post_id in after["post_reads"] if post_id in ids])
    assert reads == dropped  # each wait whose delivery was lost read its post once, after the grace


def test_forged_deliveries_are_refused_and_create_nothing(stack, emulator_pushing):
    url = f"{stack.url}/ayrshare/webhook"
    body = json.dumps({"action": "scheduled", "status": "error", "id": "Pforged", "errors": []}).encode()
    events_before = stack.api("GET", "/assets/events", params={"limit": 100})["total_entries"]

    answers = [
        requests.post(url, data=body, timeout=10),
        requests.post(url, data=body, headers=signed_headers("not-the-secret", body), timeout=10),
        requests.post(
            url,
            data=body,
            headers=signed_headers("not-the-secret", body, encoding="base64", second_secret="nor-this"),
            timeout=10,
        ),
        requests.post(url, data=b"x" * 1_000_000, headers=signed_headers(WEBHOOK_SECRET, b"x"), timeout=10),
        requests.post(url, data=b"[]", headers=signed_headers(WEBHOOK_SECRET, b"[]"), timeout=10),
        requests.get(url, timeout=10),
    ]

    assert [answer.status_code for answer in answers] == [401, 401, 401, 413, 422, 405]
    assert stack.api("GET", "/assets/events", params={"limit": 100})["total_entries"] == events_before
    assert not any(WEBHOOK_SECRET in log.read_text(errors="replace") for log in stack.home.glob("*.log"))


def test_genuine_deliveries_are_taken_however_ayrshare_signs_and_resends_them(stack, emulator_pushing):
    """
    Over real HTTP to the API server: a base64 and a hex digest, a redelivery (answered 2xx, one
    asset event), a two-hour-old timestamp with a valid signature, a rotation's V2 signature.
    """
    url = f"{stack.url}/ayrshare/webhook"

    def failure(post_id: str) -> bytes:
        return json.dumps({"action": "scheduled", "status": "error", "id": post_id, "errors": []}).encode()

    def events_of(post_id: str) -> int:
        found = stack.api("GET", "/assets/events", params={"limit": 100, "order_by": "-timestamp"})
        return sum(
            1 for event in found["asset_events"] if (event.get("extra") or {}).get("post_id") == post_id
        )

    cases = {
        "Pbase64": signed_headers(WEBHOOK_SECRET, failure("Pbase64"), encoding="base64"),
        "Phex": signed_headers(WEBHOOK_SECRET, failure("Phex")),
        "Ptwohoursold": signed_headers(WEBHOOK_SECRET, failure("Ptwohoursold"), time.time() - 7200),
        "Protated": signed_headers("the-previous-secret", failure("Protated"), second_secret=WEBHOOK_SECRET),
    }
    for post_id, headers in cases.items():
        answer = requests.post(url, data=failure(post_id), headers=headers, timeout=10)
        assert answer.status_code == 200, (post_id, answer.text)
    again = requests.post(url, data=failure("Phex"), headers=cases["Phex"], timeout=10)
    assert again.status_code == 200 and again.json()["outcome"] == "taken before: nothing recorded"
    assert {post_id: events_of(post_id) for post_id in cases} == dict.fromkeys(cases, 1)
