"""An agency's recovery: many User Profiles in one run, each with its own key, budget and waits."""

from __future__ import annotations

import pytest

from ayrshare_emulator import profiles
from ayrshare_provider.agency import join_plans, profiles_to_cover
from ayrshare_provider.exceptions import AyrshareConfigError
from ayrshare_provider.recovery import build_report, format_report
from ayrshare_provider.utils.xcom import PROFILE_ERROR_XCOM_KEY
from tests.airflow_compat import airflow_version, rendered_fields, stored_xcoms
from tests.helpers import API_KEY, SECRETS, X_KEY, X_SECRET, connection_json, load_dag, seed_profile

# Distinctive Profile Keys, one per client, so that any output can be searched for them.
ACME_KEY = "PROFILEKEY-acme-4c1d9e-secret"
BLOOM_KEY = "PROFILEKEY-bloom-8a2f3b-secret"
CEDAR_KEY = "PROFILEKEY-cedar-6e5a1c-secret"
WRONG_KEY = "PROFILEKEY-wrong-0b7d2e-secret"
CLIENT_KEYS = (ACME_KEY, BLOOM_KEY, CEDAR_KEY, WRONG_KEY)
RUN = {"poll_interval": 0.2, "ask_person": False}


def _connect(monkeypatch: pytest.MonkeyPatch, emulator, conn_id: str, profile_key: str) -> None:
    monkeypatch.setenv(
        f"AIRFLOW_CONN_{conn_id.upper()}",
        connection_json(
            emulator.url, profile_key=profile_key, x_twitter_api_key=X_KEY, x_twitter_api_secret=X_SECRET
        ),
    )


def _task_instances(dag_id: str, run_id: str) -> dict[tuple[str, int], tuple[str, str | None]]:
    """Each task instance of the run: its state and its label in the grid (rendered map index)."""
    from airflow.models.taskinstance import TaskInstance
    from airflow.utils.session import create_session

    with create_session() as session:
        rows = session.query(TaskInstance).filter(
            TaskInstance.dag_id == dag_id, TaskInstance.run_id == run_id
        )
        return {(ti.task_id, ti.map_index): (str(ti.state), ti.rendered_map_index) for ti in rows}


# -- the plan and the report, without Airflow ---------------------------------------------------


def test_the_profiles_to_cover_are_connection_ids_in_order_without_repeats():
    assert profiles_to_cover(["ayrshare_b", "ayrshare_a", "ayrshare_b"]) == ["ayrshare_b", "ayrshare_a"]
    for bad in ([], "ayrshare_a", ["a b"], ["../x"], [3]):
        with pytest.raises(AyrshareConfigError, match="ayrshare_conn_ids"):
            profiles_to_cover(bad)


def test_joined_plan_keeps_each_profile_its_posts_and_notes_a_failed_one():
    def part(conn_id: str, label: str, to_retry: list[str], skipped: list[dict]) -> dict:
        plan = {
            "to_retry": to_retry,
            "waits": [],
            "retry_later": [],
            "needs_person": [],
            "spent": [],
            "skipped": skipped,
        }
        tasks = [{"post_id": post_id, "ayrshare_conn_id": conn_id} for post_id in to_retry]
        return {"conn_id": conn_id, "label": label, "state": "planned", "plan": plan, "tasks": tasks}

    parts = [
        part("ayrshare_b", "Bloom (ayrshare_b)", ["b1"], []),
        None,  # a failed planning task returns nothing
        part("ayrshare_a", "Acme (ayrshare_a)", ["a1", "a2"], [{"id": "a3", "reason": "published"}]),
    ]
    errors = [
        {"conn_id": "ayrshare_c", "error": "AyrshareAuthError: Ayrshare GET /api/user failed: HTTP 403"}
    ]
    conn_ids = ["ayrshare_a", "ayrshare_b", "ayrshare_c"]
    plan, tasks = join_plans(conn_ids, parts, errors, dry_run=False, repost_spent=False)
    assert plan.to_retry == ["a1", "a2", "b1"]
    assert [task["ayrshare_conn_id"] for task in tasks] == ["ayrshare_a", "ayrshare_a", "ayrshare_b"]
    assert [(p["conn_id"], p["state"], p["posts"]) for p in plan.profiles] == [
        ("ayrshare_a", "planned", ["a1", "a2", "a3"]),
        ("ayrshare_b", "planned", ["b1"]),
        ("ayrshare_c", "failed", []),
    ]
    assert plan.profiles[2]["reason"].startswith("AyrshareAuthError")

    summaries = [
        {"id": post_id, "published": True, "action": "retried", "post_url": f"https://x.test/{post_id}"}
        for post_id in ("a1", "b1")
    ] + [{"id": "a2", "published": False, "status": "error", "action": "retried", "networks": []}]
    report = build_report(plan, summaries)
    by_label = {profile["label"]: profile["counts"] for profile in report["profiles"]}
    assert (
        by_label["Acme (ayrshare_a)"]["recovered"] == 1 and by_label["Acme (ayrshare_a)"]["failed_again"] == 1
    )
    assert by_label["Acme (ayrshare_a)"]["skipped"] == 1 and by_label["Bloom (ayrshare_b)"]["recovered"] == 1
    table = format_report(report).splitlines()
    acme, bloom, failed = (table.index(line) for line in table if line.startswith("== "))
    assert table[acme] == "== Acme (ayrshare_a): 1 recovered, 1 failed again, 1 skipped"

    # Each group lists its own posts, and only those.
    def posts_in(lines: list[str]) -> list[str]:
        return sorted(word for line in lines for word in line.split() if word in ("a1", "a2", "a3", "b1"))

    assert posts_in(table[acme + 1 : bloom]) == ["a1", "a2", "a3"]
    assert posts_in(table[bloom + 1 : failed]) == ["b1"]
    assert table[failed].startswith("== ayrshare_c: failed: AyrshareAuthError")
    assert table[-1].startswith("2 recovered, ")


def test_two_connections_with_one_profile_key_retry_each_post_once_under_the_first():
    def part(conn_id: str) -> dict:
        plan = {"to_retry": ["p1", "p2"], "waits": [], "skipped": [{"id": "p3", "reason": "published"}]}
        tasks = [{"post_id": post_id, "ayrshare_conn_id": conn_id} for post_id in ("p1", "p2")]
        return {"conn_id": conn_id, "label": conn_id, "state": "planned", "plan": plan, "tasks": tasks}

    plan, tasks = join_plans(
        ["a", "copy_of_a"], [part("a"), part("copy_of_a")], [], dry_run=False, repost_spent=False
    )
    assert [task["ayrshare_conn_id"] for task in tasks] == ["a", "a"] and plan.to_retry == ["p1", "p2"]
    assert [len(profile["posts"]) for profile in plan.profiles] == [3, 0]
    assert plan.profiles[1]["reason"].startswith("3 of its posts also listed by a")
    with pytest.raises(AyrshareConfigError, match="choose_profiles failed"):
        join_plans(None, [], [], dry_run=False, repost_spent=False)


def test_posts_beyond_what_one_run_maps_are_left_for_the_next_run_in_turns_from_each_profile():
    def part(conn_id: str, to_retry: list[str]) -> dict:
        plan = {"to_retry": to_retry, "waits": [{"id": to_retry[-1], "reason": "hint"}], "retry_later": []}
        tasks = [{"post_id": post_id, "ayrshare_conn_id": conn_id} for post_id in to_retry]
        return {"conn_id": conn_id, "label": conn_id, "state": "planned", "plan": plan, "tasks": tasks}

    parts = [part("a", ["a1", "a2", "a3"]), part("b", ["b1"]), part("c", ["c1", "c2"])]
    plan, tasks = join_plans(["a", "b", "c"], parts, [], dry_run=False, repost_spent=False, max_tasks=4)
    assert [task["post_id"] for task in tasks] == ["a1", "b1", "c1", "a2"]
    assert plan.to_retry == ["a1", "a2", "b1", "c1"] and [w["id"] for w in plan.waits] == ["b1"]
    assert [entry["id"] for entry in plan.retry_later] == ["a3", "c2"]
    assert "max_map_length 4" in plan.retry_later[0]["reason"]
    # Nothing is lost: every post is in exactly one place, and the report counts it under its profile.
    report = build_report(plan, [])
    assert {p["conn_id"]: p["counts"]["retry_later"] for p in report["profiles"]} == {"a": 1, "b": 0, "c": 1}


def test_one_profiles_429_burst_holds_only_that_profiles_calls(emulator, monkeypatch):
    import threading
    import time

    import requests

    from ayrshare_provider.hooks.ayrshare import AyrshareHook

    emulator.state.settings.rate_limit, emulator.state.settings.rate_window = 5, 3.0
    seed_profile(emulator.state, "Acme Bakery", ACME_KEY, posts=0)
    seed_profile(emulator.state, "Bloom Florist", BLOOM_KEY, posts=0)
    _connect(monkeypatch, emulator, "ayrshare_acme", ACME_KEY)
    _connect(monkeypatch, emulator, "ayrshare_bloom", BLOOM_KEY)
    # Another app spends Bloom's window: Airflow's next calls with Bloom's key meet 429s.
    for _ in range(5):
        requests.get(
            f"{emulator.url}/api/user",
            headers={"Authorization": f"Bearer {API_KEY}", "Profile-Key": BLOOM_KEY},
            timeout=10,
        )
    done: dict[str, float] = {}

    def calls(conn_id: str, count: int) -> None:
        hook = AyrshareHook(conn_id, backoff=0.05, max_backoff=5)
        for _ in range(count):
            hook.get_user()
        done[conn_id] = time.monotonic()

    threads = [
        threading.Thread(target=calls, args=args) for args in (("ayrshare_bloom", 3), ("ayrshare_acme", 4))
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    counters = emulator.state.counters()
    # Bloom met the burst and waited for its window; Acme's calls went through meanwhile, none refused.
    assert set(counters["rate_limited_by_profile"]) == {"Bloom Florist"}
    assert counters["requests_by_profile"]["Acme Bakery"] == 4
    assert done["ayrshare_acme"] < done["ayrshare_bloom"]


# -- the recovery DAG over many profiles ---------------------------------------------------------


@pytest.mark.long_run
@pytest.mark.dag
def test_two_profiles_recover_side_by_side_a_wrong_key_fails_only_its_profile_and_a_suspended_one_is_skipped(
    airflow_db, emulator, monkeypatch, capfd
):
    acme = seed_profile(emulator.state, "Acme Bakery", ACME_KEY, posts=3)
    bloom = seed_profile(emulator.state, "Bloom Florist", BLOOM_KEY, posts=2)
    seed_profile(emulator.state, "Cedar Gym", CEDAR_KEY, posts=2, status=profiles.SUSPENDED)
    for conn_id, key in (
        ("ayrshare_acme", ACME_KEY),
        ("ayrshare_bloom", BLOOM_KEY),
        ("ayrshare_cedar", CEDAR_KEY),
        ("ayrshare_dune", WRONG_KEY),  # a key Ayrshare does not know
    ):
        _connect(monkeypatch, emulator, conn_id, key)
    # ... and a connection nobody made (a typo in the list).
    conn_ids = ["ayrshare_acme", "ayrshare_bloom", "ayrshare_cedar", "ayrshare_dune", "ayrshare_nobody"]
    dag = load_dag("ayrshare_failed_post_recovery")
    dag_run = dag.test(run_conf={**RUN, "ayrshare_conn_ids": conn_ids})
    output = capfd.readouterr().out

    # Every post of the two working profiles recovered, each once, with its own profile's key.
    counters = emulator.state.counters()
    assert counters["retries_applied"] == {post_id: 1 for post_id in acme + bloom}
    assert {post.id for post in emulator.state.posts.values() if post.record["status"] == "success"} == set(
        acme + bloom
    )
    # The wrong key failed its own planning task, with AyrshareAuthError; the run fails at the report.
    instances = _task_instances(dag.dag_id, dag_run.run_id)
    states = {key: state for key, (state, _) in instances.items()}
    stored = stored_xcoms(dag.dag_id, dag_run.run_id)
    assert states[("find_failed_posts", 3)] == "failed"
    assert stored[("find_failed_posts", PROFILE_ERROR_XCOM_KEY, 3)]["error"].startswith(
        "AyrshareAuthError: Ayrshare GET /api/user failed, HTTP 403"
    )
    assert [states[("find_failed_posts", index)] for index in range(3)] == ["success"] * 3
    assert states[("report", -1)] == "failed" and dag_run.state == "failed"
    assert states[("find_failed_posts", 4)] == "failed"
    assert "AyrshareProfilesFailedError" in output and "2 of 5 profiles not recovered" in output

    report = stored[("report", "return_value", -1)]
    grouped = {profile["conn_id"]: profile for profile in report["profiles"]}
    assert grouped["ayrshare_acme"]["label"] == "Acme Bakery (ayrshare_acme)"
    assert grouped["ayrshare_acme"]["counts"]["recovered"] == 3
    assert grouped["ayrshare_bloom"]["counts"]["recovered"] == 2
    assert (
        grouped["ayrshare_cedar"]["state"] == "skipped" and "suspended" in grouped["ayrshare_cedar"]["reason"]
    )
    assert grouped["ayrshare_dune"]["state"] == "failed"
    assert "AyrshareAuthError" in grouped["ayrshare_dune"]["reason"]
    assert (
        grouped["ayrshare_nobody"]["state"] == "failed"
        and "ayrshare_nobody" in grouped["ayrshare_nobody"]["reason"]
    )
    assert "== Acme Bakery (ayrshare_acme): 3 recovered" in report["table"]
    assert {entry["profile"] for entry in report["recovered"]} == {
        "Acme Bakery (ayrshare_acme)",
        "Bloom Florist (ayrshare_bloom)",
    }

    # The grid names each profile's tasks by title and connection, each retry by connection and post.
    labels = {key: label for key, (_, label) in instances.items() if key[1] >= 0}
    assert [labels[("find_failed_posts", index)] for index in range(3)] == [
        "Acme Bakery (ayrshare_acme)",
        "Bloom Florist (ayrshare_bloom)",
        "ayrshare_cedar",
    ]
    retry_labels = sorted(label for (task, _), label in labels.items() if task == "retry_post")
    assert retry_labels == sorted(
        [f"ayrshare_acme: {p}" for p in acme] + [f"ayrshare_bloom: {p}" for p in bloom]
    )

    # No key in any output, XCom, rendered field or label of the run.
    everything = "\n".join(
        [output, *map(str, stored.values()), *map(str, rendered_fields()), *map(str, labels.values())]
    )
    if airflow_version() == (
        3,
        0,
    ):  # 3.0 logs each mask request it relays, value included (Airflow's own line)
        everything = "\n".join(line for line in everything.splitlines() if "MaskSecret(" not in line)
    assert [secret for secret in (*CLIENT_KEYS, *SECRETS, API_KEY) if secret in everything] == []


@pytest.mark.dag
@pytest.mark.scale
def test_twenty_profiles_are_each_recovered_within_their_own_rate_limit(
    airflow_db, emulator, monkeypatch, capfd
):
    # 30 calls a minute per profile: each profile's part takes about 12, the run about 240. Budgets
    # shared between profiles would hold calls for minutes ("Holding the call ..."); per profile, none waits.
    emulator.state.settings.rate_limit, emulator.state.settings.rate_window = 30, 60.0
    made = profiles.agency(emulator.state, 20, 3)
    for number, profile in enumerate(made, start=1):
        _connect(monkeypatch, emulator, f"ayrshare_client_{number:02d}", profile.key)
    conn_ids = [f"ayrshare_client_{number:02d}" for number in range(1, 21)]
    dag = load_dag("ayrshare_failed_post_recovery")
    dag_run = dag.test(run_conf={**RUN, "ayrshare_conn_ids": conn_ids})
    assert dag_run.state == "success"
    assert "Holding the call" not in capfd.readouterr().out

    report = stored_xcoms(dag.dag_id, dag_run.run_id)[("report", "return_value", -1)]
    assert [profile["counts"]["recovered"] for profile in report["profiles"]] == [3] * 20
    assert [profile["label"] for profile in report["profiles"]] == [
        f"Client {number:02d} (ayrshare_client_{number:02d})" for number in range(1, 21)
    ]
    counters = emulator.state.counters()
    assert sum(counters["retries_applied"].values()) == 60 and set(counters["retries_applied"].values()) == {
        1
    }
    assert counters["rate_limited"] == 0
    # Every call was made as one of the twenty profiles, each with its own key: none as another, none as the Primary.
    assert sorted(counters["requests_by_profile"]) == sorted(profile.title for profile in made)
    assert (
        sum(counters["requests_by_profile"].values()) > 30
        and max(counters["requests_by_profile"].values()) <= 30
    )
