"""Recovering many posts: the plan, the report, and the example DAG end to end against the emulator."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from ayrshare_emulator import scenarios
from ayrshare_provider.exceptions import AyrshareError
from ayrshare_provider.recovery import build_report, format_report, plan_recovery, posts_to_repost
from ayrshare_provider.recovery_plan import RecoveryPlan
from tests.airflow_compat import stored_xcoms
from tests.helpers import SECRETS, error_post, failed_post, load_dag, seed_posts


def test_plan_skips_published_and_hopeless_posts_with_reasons():
    records = [
        error_post("retry1"),
        error_post("live", errors=[], postIds=[{"platform": "twitter", "status": "success", "postUrl": "u"}]),
        error_post("relink", code=161, platform="facebook"),
        error_post("nope", retryAvailable=False),
        {"id": "../user", "status": "error"},
        error_post("retry1"),  # overlapping pages
    ]
    plan = plan_recovery(records)
    assert plan.to_retry == ["retry1"]
    reasons = {entry["id"]: entry["reason"] for entry in plan.skipped}
    assert reasons["live"] == "already published on every network"
    assert "161" in reasons["relink"] and "retryAvailable is false" in reasons["nope"]
    assert reasons["../user"].startswith("unusable id")


def test_the_plan_hands_each_retry_task_its_record_and_keeps_the_records_out_of_its_xcom():
    from ayrshare_provider.recovery_steps import push_plan
    from ayrshare_provider.utils.xcom import PLAN_XCOM_KEY
    from tests.context import RecordingTI

    records = [error_post("p1", mediaUrls=["https://img.test/a.png"]), error_post("relink", code=161)]
    ti = RecordingTI()
    tasks = push_plan(ti, plan_recovery(records, records_as_of=1_700_000_000.0))
    assert [task["post_id"] for task in tasks] == ["p1"]
    assert tasks[0]["record_as_of"] == 1_700_000_000.0
    assert tasks[0]["record"]["errors"] == records[0]["errors"] and "mediaUrls" not in tasks[0]["record"]
    assert "retry_with" not in ti.xcoms[PLAN_XCOM_KEY] and ti.xcoms[PLAN_XCOM_KEY]["to_retry"] == ["p1"]
    # Without the moment the records are as of, the tasks get ids only: each reads its post first.
    assert push_plan(RecordingTI(), plan_recovery(records)) == [{"post_id": "p1"}]


def test_a_dry_run_retries_nothing_and_says_what_it_would_do():
    plan = plan_recovery([error_post("p1")], dry_run=True)
    assert plan.to_retry == [] and plan.skipped[0]["reason"].startswith("dry run, would retry")


def test_report_accounts_for_every_post_exactly_once():
    plan = RecoveryPlan(to_retry=["ok", "bad", "lost", "spent"], skipped=[{"id": "s", "reason": "published"}])
    summaries = [
        {"id": "ok", "published": True, "action": "retried", "post_url": "https://x.test/1", "networks": []},
        {
            "id": "bad",
            "published": False,
            "status": "error",
            "action": "retried",
            "networks": [{"platform": "instagram", "status": "error", "code": 138, "message": "rejected"}],
        },
        {"id": "spent", "published": False, "status": "error", "action": "already_retried", "networks": []},
        None,
    ]
    report = build_report(plan, summaries)
    assert {outcome: count for outcome, count in report["counts"].items() if count} == {
        "recovered": 1,
        "failed_again": 2,
        "skipped": 1,
        "unknown": 1,
    }
    assert report["unknown"][0]["id"] == "lost"
    table = format_report(report)
    assert "instagram: code 138 rejected" in table and "already retried before" in table
    assert table.splitlines()[-1].startswith("1 recovered, 0 recovered after a wait, 0 retried, a person")
    assert table.splitlines()[-1].endswith(
        "2 failed again, 0 left by a person, 0 retry later, 1 skipped, 1 unknown"
    )


def test_the_plan_sends_each_post_down_its_path_when_waits_people_and_reposts_are_on():
    sent = datetime.now(UTC) - timedelta(hours=1)
    soon = error_post("ig-soon", platform="instagram", code=435, created=sent.isoformat())
    soon["errors"][0]["details"] = 3600 + 60  # a minute from now
    late = error_post("ig-late", platform="instagram", code=435, created=sent.isoformat())
    late["errors"][0]["details"] = 86400
    records = [
        error_post("now"),
        soon,
        late,
        error_post("relink", code=161, platform="facebook"),
        error_post("spent", code=329),
    ]
    plan = plan_recovery(records, max_wait_hint=600, ask_person=True, repost_spent=True)
    assert plan.to_retry == ["now", "ig-soon"]
    assert [wait["id"] for wait in plan.waits] == ["ig-soon"]
    assert [later["id"] for later in plan.retry_later] == ["ig-late"]
    assert plan.spent == ["spent"] and plan.skipped == []
    [person] = plan.needs_person
    assert person["id"] == "relink"
    assert person["networks"][0]["fix"] == "relink Facebook for this profile"

    off = plan_recovery(records, max_wait_hint=None)
    reasons = {entry["id"]: entry["reason"] for entry in off.skipped}
    assert "ask_person asks a person" in reasons["relink"] and "repost_spent reposts it" in reasons["spent"]
    assert off.to_retry == ["now"] and len(off.retry_later) == 2


def test_spent_and_failed_again_posts_are_reposted_and_reported_with_their_new_post():
    plan = RecoveryPlan(
        to_retry=["ok", "again", "waited"],
        spent=["spent"],
        needs_person=[
            {"id": "fixed", "networks": [{"platform": "facebook", "fix": "relink Facebook"}]},
            {"id": "left", "networks": [{"platform": "twitter", "fix": "change the text"}]},
        ],
    )
    failed = {"published": False, "status": "error", "action": "retried", "networks": []}
    summaries = [
        {"id": "ok", "published": True, "action": "retried", "post_url": "u1", "retried_at": "t1"},
        {"id": "again", **failed},
        {"id": "waited", "published": True, "action": "retried", "post_url": "u2", "waited_until": "w"},
    ]
    assert posts_to_repost(plan, summaries) == ["spent", "again"]
    reposts = [
        {
            "id": "spent",
            "repost_id": "new1",
            "published": True,
            "reposted_networks": ["facebook"],
            "post_url": "u3",
        },
        {"id": "again", "repost_id": "new2", "published": False, "status": "error", "networks": []},
    ]
    person = {"chosen": ["fixed"], "responded_by": "Ada", "timed_out": False}
    chosen = [{"id": "fixed", "published": True, "action": "retried", "post_url": "u4"}]
    report = build_report(plan, summaries, person=person, chosen_summaries=chosen, repost_summaries=reposts)
    ids = {outcome: [entry["id"] for entry in report[outcome]] for outcome in report if outcome != "counts"}
    assert ids == {
        "recovered": ["ok"],
        "recovered_after_wait": ["waited"],
        "retried_for_person": ["fixed"],
        "reposted": ["spent"],
        "failed_again": ["again"],
        "left_by_person": ["left"],
        "retry_later": [],
        "skipped": [],
        "unknown": [],
    }
    assert report["reposted"][0]["repost_id"] == "new1"
    assert "reposted as new2" in report["failed_again"][0]["reason"]
    assert report["left_by_person"][0] == {"id": "left", "by": "Ada", "fix": "X: change the text"}
    table = format_report(report)
    assert "as new post new1 to facebook: u3" in table and "chosen by Ada" in table

    timed_out = build_report(plan, summaries, person={"chosen": [], "responded_by": None})
    assert [entry["by"] for entry in timed_out["left_by_person"]] == ["nobody: no answer in time"] * 2
    assert build_report(plan, summaries)["counts"]["unknown"] == 3  # no answer, no reposts: said, not lost


def test_a_retry_that_did_not_end_or_was_not_sent_is_not_reported_as_failed_again():
    plan = plan_recovery([error_post("slow"), error_post("changed")])
    summaries = [
        {"id": "slow", "status": "pending", "published": False, "action": "retried", "networks": []},
        {"id": "changed", "status": "paused", "published": False, "action": "not_retried", "networks": []},
    ]
    report = build_report(plan, summaries)
    assert {outcome: count for outcome, count in report["counts"].items() if count} == {
        "skipped": 1,
        "unknown": 1,
    }
    assert "not final when its task ended (status 'pending')" in report["unknown"][0]["reason"]
    assert report["skipped"][0]["id"] == "changed"


def test_a_post_whose_network_asked_to_wait_is_planned_for_later_with_the_moment():
    sent = datetime.now(UTC) - timedelta(hours=1)
    waiting = error_post("ig", platform="instagram", code=435, created=sent.isoformat())
    waiting["errors"][0]["details"] = 86400
    over = error_post(
        "ig-over", platform="instagram", code=435, created=(sent - timedelta(days=2)).isoformat()
    )
    over["errors"][0]["details"] = "86400"
    plan = plan_recovery([waiting, over])
    assert plan.to_retry == ["ig-over"]  # its day is over: retried now
    [later] = plan.retry_later
    assert later["id"] == "ig" and later["not_before"] == (sent + timedelta(days=1)).isoformat()
    assert "instagram asked to wait 86400 s (code 435)" in later["reason"]
    report = build_report(plan, [{"id": "ig-over", "published": True, "action": "retried", "post_url": None}])
    assert report["counts"]["retry_later"] == 1 and report["retry_later"] == [later]
    assert "retry later  ig" in format_report(report)


@pytest.mark.long_run
@pytest.mark.dag
def test_the_recovery_dag_waits_out_short_hints_and_reposts_spent_posts_once(
    airflow_db, emulator_conn, capfd
):
    scenarios.demo(emulator_conn.state)
    # A post published on LinkedIn whose Facebook fails again after its retry: reposted to Facebook only.
    half = scenarios.add_failed(
        emulator_conn.state,
        "",
        ["linkedin", "facebook"],
        {"facebook": scenarios.TRANSIENT},
        fails_again={"facebook": scenarios.REJECTED},
        published=["linkedin"],
        text="Half out, fails again",
        age_days=1,
        mediaUrls=["https://img.example.com/a.png"],
        instagramOptions={"shareReelsFeed": False},
    )
    conf = {"poll_interval": 0.2, "max_wait_hint": 120, "ask_person": False, "repost_spent": True}
    dag = load_dag("ayrshare_failed_post_recovery")
    dag_run = dag.test(run_conf=conf)
    output = capfd.readouterr().out
    assert dag_run.state == "success"

    report = stored_xcoms(dag.dag_id, dag_run.run_id)[("report", "return_value", -1)]
    texts = {post.id: post.record["post"] for post in emulator_conn.state.posts.values()}
    outcome = {
        name: sorted(texts[entry["id"]] for entry in report[name])
        for name in report["counts"]
        if report[name]
    }
    # Whether the 30 s hint is over when its task runs depends on the order dag.test() runs mapped
    # tasks in (3.2 shuffles them): the next test waits out a hint for sure.
    outcome["recovered"] = sorted(outcome["recovered"] + outcome.pop("recovered_after_wait", []))
    assert outcome == {
        "recovered": [
            "Behind the scenes",
            "Black Friday opening hours",
            "Launch thread on X",
            "Mood board",
            "New tutorial video",
            "Our Q4 report is out",
            "Story of the hour",
            "We are hiring (half published)",
        ],
        "reposted": ["Carousel of the week", "Event reminder", "Half out, fails again", "Infographic"],
        "retry_later": ["Reel of the day"],
        "skipped": ["Needs a relink", "Published despite the error", "Same text twice"],
    }
    for waited in report["recovered_after_wait"]:
        assert datetime.fromisoformat(waited["retried_at"]) >= datetime.fromisoformat(waited["waited_until"])
    counters = emulator_conn.state.counters()
    retried = [entry["id"] for entry in report["recovered"] + report["recovered_after_wait"]]
    retried += [entry["id"] for entry in report["reposted"]]
    assert all(counters["retry_puts"].get(post_id, 0) <= 1 for post_id in retried)
    assert sum(counters["retry_puts"].values()) == 12
    # Each repost: one new post, to only the networks that did not publish, with the original's media.
    reposts = {entry["id"]: entry for entry in report["reposted"]}
    assert reposts[half.id]["networks"] == ["facebook"]
    new_post = emulator_conn.state.posts[reposts[half.id]["repost_id"]].record
    assert new_post["platforms"] == ["facebook"] and new_post["mediaUrls"] == [
        "https://img.example.com/a.png"
    ]
    assert new_post["instagramOptions"] == {"shareReelsFeed": False}
    assert sorted(counters["posts_created"].values()) == [1, 1, 1, 1]
    # The run prints the report's counts (recovered and recovered after a wait apart).
    counts = report["counts"]
    printed = f"{counts['recovered']} recovered, {counts['recovered_after_wait']} recovered after a wait"
    assert printed in output and "4 reposted" in output
    assert not any(secret in str(report) for secret in SECRETS)


@pytest.mark.long_run
@pytest.mark.dag
def test_a_short_wait_hint_is_waited_out_and_the_post_retried_once_in_the_run(airflow_db, emulator_conn):
    story = scenarios.add_failed(
        emulator_conn.state,
        "",
        ["instagram"],
        {"instagram": scenarios.INSTAGRAM_LIMIT},
        text="Story of the hour",
        age_days=0,
    )
    # Seconds from now; a retry sooner meets the limit again. Long enough to outlast the plan tasks before
    # the retry (three on one profile: about 5 s in 3.0 to 3.2's dag.test()).
    story.record["errors"][0]["details"] = 20
    conf = {"poll_interval": 0.2, "max_wait_hint": 120, "ask_person": False}
    dag = load_dag("ayrshare_failed_post_recovery")
    dag_run = dag.test(run_conf=conf)
    assert dag_run.state == "success"
    report = stored_xcoms(dag.dag_id, dag_run.run_id)[("report", "return_value", -1)]
    [waited] = report["recovered_after_wait"]
    assert waited["id"] == story.id and report["counts"]["recovered_after_wait"] == 1
    assert datetime.fromisoformat(waited["retried_at"]) >= datetime.fromisoformat(waited["waited_until"])
    assert emulator_conn.state.counters()["retry_puts"] == {story.id: 1}


@pytest.mark.dag
def test_a_repost_whose_answer_is_lost_and_a_second_run_make_one_post(airflow_db, emulator_conn):
    [spent] = seed_posts(emulator_conn, failed_post("facebook", errors=[_already_retried("facebook")]))
    emulator_conn.faults.add({"endpoint": "POST /api/post", "sequence": ["apply_then_drop"]})
    conf = {"poll_interval": 0.2, "ask_person": False, "repost_spent": True}
    dag = load_dag("ayrshare_failed_post_recovery")
    first = dag.test(run_conf=conf)
    second = dag.test(run_conf=conf)  # the original is still failed: the same repost comes back
    assert first.state == second.state == "success"
    counters = emulator_conn.state.counters()
    [key] = counters["posts_created"]
    assert key == f"airflow-repost-{spent}-facebook"
    # The lost answer: sent again in the same attempt with the same key (one replay); the second run
    # finds the repost in the provider's ledger and sends nothing.
    assert counters["posts_created"][key] == 1 and counters["idempotent_replays"][key] == 1
    assert counters["retry_puts"].get(spent) is None  # a spent retry is never sent again
    reports = [
        stored_xcoms(dag.dag_id, run.run_id)[("report", "return_value", -1)] for run in (first, second)
    ]
    new_id = reports[0]["reposted"][0]["repost_id"]
    assert [report["reposted"][0]["repost_id"] for report in reports] == [new_id] * 2
    assert reports[1]["reposted"][0]["note"] == f"reposted earlier as {new_id}"


@pytest.mark.ledger
@pytest.mark.dag
@pytest.mark.parametrize(
    "key_in_records", [False, True], ids=["records as documented", "records with their key"]
)
def test_a_post_reposted_by_an_earlier_run_is_never_reposted_once_ayrshare_forgot_its_key(
    airflow_db, emulator_conn, key_in_records
):
    """Ayrshare keeps an idempotencyKey for a time it does not document: the ledger, not the key, says "once"."""
    from ayrshare_provider import repost_ledger

    emulator_conn.state.settings.idempotency_key_in_records = key_in_records

    [spent] = seed_posts(emulator_conn, failed_post("facebook", errors=[_already_retried("facebook")]))
    conf = {"poll_interval": 0.2, "ask_person": False, "repost_spent": True}
    dag = load_dag("ayrshare_failed_post_recovery")
    first = dag.test(run_conf=conf)
    emulator_conn.state.forget_idempotency_keys()  # a day later, say
    second = dag.test(run_conf=conf)
    assert first.state == second.state == "success"
    assert sum(emulator_conn.state.counters()["posts_created"].values()) == 1  # one new post in all
    second_report = stored_xcoms(dag.dag_id, second.run_id)[("report", "return_value", -1)]
    [entry] = second_report["reposted"]
    assert entry["id"] == spent and entry["note"] == f"reposted earlier as {entry['repost_id']}"
    assert f"reposted earlier as {entry['repost_id']}" in "\n".join(second_report["table"])
    # Whether the record carries its key or not (as documented), the ledger knows the repost.
    assert ("idempotencyKey" in emulator_conn.state.posts[entry["repost_id"]].record) is key_in_records
    # The ledger, in the metadata database as a person sees it (Admin > Variables).
    from airflow.models.variable import Variable

    assert Variable.get(f"{repost_ledger.ORIGIN_PREFIX}{entry['repost_id']}", deserialize_json=True) == spent
    made = Variable.get(repost_ledger.entry_key(spent), deserialize_json=True)
    assert made["state"] == "made" and made["new_id"] == entry["repost_id"]


def _spent_post_whose_repost_was_sent(emulator: Any, seconds_ago: float) -> str:
    """A Facebook post whose retry is spent, and the ledger's "sending" entry of an attempt that died after its POST."""
    import time

    from airflow.models.variable import Variable

    from ayrshare_provider import repost_ledger

    [spent] = seed_posts(emulator, failed_post("facebook", errors=[_already_retried("facebook")]))
    sending = repost_ledger.RepostEntry(
        spent,
        "sending",
        f"airflow-repost-{spent}-facebook",
        time.time() - seconds_ago,
        conn_id="ayrshare_default",
    )
    Variable.set(repost_ledger.entry_key(spent), sending.to_value(), serialize_json=True)
    return spent


def _already_retried(platform: str) -> dict:
    return {
        "action": "post",
        "status": "error",
        "code": 329,
        "message": "Already retried.",
        "platform": platform,
    }


@pytest.mark.parametrize(
    ("database", "at_once"),
    [("sqlite:////tmp/airflow.db", 4), ("postgresql+psycopg2://airflow@127.0.0.1:5432/airflow", None)],
    ids=["sqlite", "postgresql"],
)
def test_on_sqlite_the_recovery_dags_run_few_tasks_at_once(database, at_once):
    """SQLite's one writer: a burst of task runs must not keep a write waiting past its busy timeout."""
    from ayrshare_provider.recovery_steps import dag_args_for

    assert dag_args_for(database).get("max_active_tasks") == at_once


def test_the_recovery_dags_users_copy_carry_the_cap_on_this_sqlite_database(airflow_db):
    from tests.airflow_compat import airflow_version

    dag_ids = ["ayrshare_failed_post_recovery"]
    if airflow_version() >= (3, 0):  # the watcher's DAG needs asset watchers
        dag_ids.append("ayrshare_recover_on_failure")
    assert {dag_id: load_dag(dag_id).max_active_tasks for dag_id in dag_ids} == dict.fromkeys(dag_ids, 4)


@pytest.mark.ledger
@pytest.mark.dag
def test_a_repost_refused_as_duplicate_content_is_sent_once_and_reported_for_a_person(
    airflow_db, emulator_conn
):
    """Code 137 (Ayrshare's own duplicate check): a 4xx answer to a write, never sent again; a person changes the text."""
    emulator_conn.state.settings.duplicate_check = (
        "any"  # the failed original counts: unchanged text meets it
    )
    [spent] = seed_posts(emulator_conn, failed_post("facebook", errors=[_already_retried("facebook")]))
    conf = {"poll_interval": 0.2, "ask_person": False, "repost_spent": True}
    dag = load_dag("ayrshare_failed_post_recovery")
    runs = [dag.test(run_conf=conf), dag.test(run_conf=conf)]
    counters = emulator_conn.state.counters()
    assert counters["requests"]["POST /api/post"] == 1  # the second run knows it was refused
    assert sum(counters["posts_created"].values()) == 0
    for run in runs:
        report = stored_xcoms(dag.dag_id, run.run_id)[("report", "return_value", -1)]
        [entry] = report["failed_again"]
        assert (
            entry["id"] == spent and "code 137" in entry["reason"] and "Duplicate content" in entry["reason"]
        )
        assert "needs a person: change the text" in entry["reason"]


@pytest.mark.ledger
@pytest.mark.dag
def test_a_repost_whose_answer_never_came_long_ago_is_not_sent_again_but_left_to_a_person(
    airflow_db, emulator_conn
):
    """An attempt died between its POST and the answer, an hour ago: the key may be forgotten, the post may exist."""
    from ayrshare_provider import repost_ledger

    spent = _spent_post_whose_repost_was_sent(emulator_conn, seconds_ago=3600)
    dag = load_dag("ayrshare_failed_post_recovery")
    run = dag.test(run_conf={"poll_interval": 0.2, "ask_person": False, "repost_spent": True})
    assert emulator_conn.state.counters()["requests"].get("POST /api/post") is None
    report = stored_xcoms(dag.dag_id, run.run_id)[("report", "return_value", -1)]
    [entry] = report["failed_again"]
    assert "its answer never came, so it may exist" in entry["reason"]
    assert f"delete the Airflow Variable '{repost_ledger.entry_key(spent)}'" in entry["reason"]


@pytest.mark.ledger
@pytest.mark.dag
def test_a_refused_resend_of_a_repost_is_left_to_a_person_not_written_down_as_refused(
    airflow_db, emulator_conn
):
    """An earlier attempt sent the repost and died; the resend (same key) is refused: the first may exist."""
    from airflow.models.variable import Variable

    from ayrshare_provider import repost_ledger

    emulator_conn.state.settings.duplicate_check = "any"  # the failed original counts: the resend meets 137
    spent = _spent_post_whose_repost_was_sent(emulator_conn, seconds_ago=30)
    dag = load_dag("ayrshare_failed_post_recovery")
    run = dag.test(run_conf={"poll_interval": 0.2, "ask_person": False, "repost_spent": True})
    assert emulator_conn.state.counters()["requests"]["POST /api/post"] == 1  # the resend, refused, once
    report = stored_xcoms(dag.dag_id, run.run_id)[("report", "return_value", -1)]
    [entry] = report["failed_again"]
    assert "sent again and refused" in entry["reason"] and "so the first may exist" in entry["reason"]
    kept = Variable.get(repost_ledger.entry_key(spent), deserialize_json=True)
    assert kept["state"] == "sending"  # never "refused": a later run asks a person again, sends nothing


@pytest.mark.ledger
@pytest.mark.dag
def test_a_ledger_entry_a_person_garbled_is_a_clear_error_never_a_second_repost(airflow_db, emulator_conn):
    from airflow.models.variable import Variable

    from ayrshare_provider import repost_ledger

    [spent] = seed_posts(emulator_conn, failed_post("facebook", errors=[_already_retried("facebook")]))
    Variable.set(repost_ledger.entry_key(spent), "made it, I think")  # not JSON
    dag = load_dag("ayrshare_failed_post_recovery")
    run = dag.test(run_conf={"poll_interval": 0.2, "ask_person": False, "repost_spent": True})
    assert emulator_conn.state.counters()["requests"].get("POST /api/post") is None
    assert run.state == "failed"  # the report names the post whose repost task failed


def test_the_plan_crosses_xcom_as_json_without_its_records_and_a_non_plan_is_a_typed_error():
    import json

    plan = plan_recovery(
        [error_post("p1"), error_post("spent", code=329)], repost_spent=True, records_as_of=5.0
    )
    value = json.loads(json.dumps(plan.to_xcom()))  # what XCom stores
    assert "retry_with" not in value and "profiles" not in value
    again = RecoveryPlan.from_xcom(value)
    assert again.to_retry == ["p1"] and again.spent == ["spent"] and again.repost_spent is True
    assert again.records_as_of == 5.0 and again.retry_with == {}
    # A plan pushed by 0.2 (a dict of the same keys, with its extra ones) is read the same way.
    assert RecoveryPlan.from_xcom({**value, "retry_with": {}, "unknown": 1}).to_retry == ["p1"]
    with pytest.raises(AyrshareError, match="holds no recovery plan"):
        RecoveryPlan.from_xcom("not a plan")
    with pytest.raises(AyrshareError, match="to_retry not lists"):
        RecoveryPlan.from_xcom({"to_retry": "p1"})
