"""Recovering many posts: the plan, the report, and the example DAG end to end against the emulator."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from ayrshare_provider.emulator import scenarios
from ayrshare_provider.recovery import build_report, format_report, plan_recovery
from tests.airflow_compat import stored_xcoms
from tests.helpers import SECRETS, error_post, load_dag


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
    assert plan["to_retry"] == ["retry1"]
    reasons = {entry["id"]: entry["reason"] for entry in plan["skipped"]}
    assert reasons["live"] == "already published on every network"
    assert "161" in reasons["relink"] and "retryAvailable is false" in reasons["nope"]
    assert reasons["../user"].startswith("unusable id")


def test_a_dry_run_retries_nothing_and_says_what_it_would_do():
    plan = plan_recovery([error_post("p1")], dry_run=True)
    assert plan["to_retry"] == [] and plan["skipped"][0]["reason"].startswith("dry run, would retry")


def test_report_accounts_for_every_post_exactly_once():
    plan = {"to_retry": ["ok", "bad", "lost", "spent"], "skipped": [{"id": "s", "reason": "published"}]}
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
    assert report["counts"] == {
        "recovered": 1,
        "failed_again": 2,
        "retry_later": 0,
        "skipped": 1,
        "unknown": 1,
    }
    assert report["unknown"][0]["id"] == "lost"
    table = format_report(report)
    assert "instagram: code 138 rejected" in table and "already retried before" in table
    assert table.splitlines()[-1] == "1 recovered, 2 failed again, 0 to retry later, 1 skipped, 1 unknown"


def test_a_retry_that_did_not_end_or_was_not_sent_is_not_reported_as_failed_again():
    plan = plan_recovery([error_post("slow"), error_post("changed")])
    summaries = [
        {"id": "slow", "status": "pending", "published": False, "action": "retried", "networks": []},
        {"id": "changed", "status": "paused", "published": False, "action": "not_retried", "networks": []},
    ]
    report = build_report(plan, summaries)
    assert report["counts"] == {
        "recovered": 0,
        "failed_again": 0,
        "retry_later": 0,
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
    assert plan["to_retry"] == ["ig-over"]  # its day is over: retried now
    [later] = plan["retry_later"]
    assert later["id"] == "ig" and later["not_before"] == (sent + timedelta(days=1)).isoformat()
    assert "instagram asked to wait 86400 s (code 435)" in later["reason"]
    report = build_report(plan, [{"id": "ig-over", "published": True, "action": "retried", "post_url": None}])
    assert report["counts"]["retry_later"] == 1 and report["retry_later"] == [later]
    assert "retry later  ig" in format_report(report)


@pytest.mark.dag
def test_the_recovery_dag_recovers_the_demo_posts_with_one_retry_each(airflow_db, emulator_conn, capfd):
    scenarios.demo(emulator_conn.state)
    dag = load_dag("ayrshare_failed_post_recovery")
    dag_run = dag.test(run_conf={"poll_interval": 0.2})
    output = capfd.readouterr().out
    assert dag_run.state == "success"

    report = stored_xcoms(dag.dag_id, dag_run.run_id)[("report", "return_value", -1)]

    texts = {post.id: post.record["post"] for post in emulator_conn.state.posts.values()}
    buckets = ("recovered", "failed_again", "retry_later", "skipped")
    outcome = {bucket: sorted(texts[entry["id"]] for entry in report[bucket]) for bucket in buckets}
    assert outcome == {
        "recovered": [
            "Behind the scenes",
            "Black Friday opening hours",
            "Launch thread on X",
            "Mood board",
            "New tutorial video",
            "Our Q4 report is out",
            "We are hiring (half published)",
        ],
        "failed_again": ["Carousel of the week", "Event reminder", "Infographic"],
        "retry_later": ["Reel of the day"],
        "skipped": ["Needs a relink", "Published despite the error", "Same text twice"],
    }
    assert report["unknown"] == []
    # Exactly one retry PUT per retried post; none for the skipped ones.
    counters = emulator_conn.state.counters()
    retried_ids = [entry["id"] for entry in report["recovered"] + report["failed_again"]]
    assert {post_id: counters["retry_puts"].get(post_id) for post_id in retried_ids} == dict.fromkeys(
        retried_ids, 1
    )
    assert sum(counters["retry_puts"].values()) == 10
    assert "7 recovered, 3 failed again, 1 to retry later, 3 skipped, 0 unknown" in output
    assert not any(secret in str(report) for secret in SECRETS)
