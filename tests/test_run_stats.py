"""A run's counts for the recoveries page: per outcome, network, profile and failure code, from real post records."""

from __future__ import annotations

import math

import pytest

from ayrshare_emulator import scenarios
from ayrshare_emulator.state import Settings, State
from ayrshare_provider.agency import join_plans
from ayrshare_provider.recovery import OUTCOMES, build_report, plan_recovery
from ayrshare_provider.run_stats import run_stats

pytestmark = pytest.mark.any_airflow  # pure: the same on every Airflow


def records(profile: str, failures: list[tuple[list[str], dict]], state: State | None = None) -> list[dict]:
    """Failed posts as Ayrshare's history lists them (one emulator state per account: its ids are unique)."""
    state = state or State(Settings("key", retry_delay=math.inf, rate_limit=0, history_cache=0))
    for index, (networks, errors) in enumerate(failures):
        scenarios.add_failed(state, profile, networks, errors, text=f"{profile} post {index}", age_days=0)
    return [post.record for post in state.history(profile)]


def test_the_plan_keeps_each_posts_failures_and_the_stats_count_each_code_once_per_post():
    found = records(
        "",
        [
            (["twitter"], {"twitter": scenarios.TRANSIENT}),
            (["twitter", "linkedin"], {"twitter": scenarios.TRANSIENT, "linkedin": scenarios.TRANSIENT}),
            (["facebook"], {"facebook": scenarios.FACEBOOK_RELINK}),
        ],
    )
    plan = plan_recovery(found)
    codes = sorted(sorted(failure["code"] for failure in failures) for failures in plan.failures.values())
    assert codes == [[136], [136, 136], [161]]
    report = build_report(plan, [])
    stats = run_stats(report, plan, {record["id"]: record["platforms"] for record in found})
    assert stats["codes"] == {"136": 2, "161": 1}  # 136 once for the two-network post
    assert stats["outcomes"] == {outcome: report["counts"][outcome] for outcome in OUTCOMES}
    assert stats["profiles"] == []  # one profile, no agency: nothing per profile
    assert set(stats["networks"]) == {"twitter", "linkedin", "facebook"}
    # The relink only a person can make: skipped, with its fix, never the post's text.
    [person] = stats["needs_person"]
    assert person["outcome"] == "skipped" and "relink" in person["what"].lower()
    assert "post 2" not in str(stats)


def test_over_many_profiles_each_profile_counts_its_own_codes():
    parts = []
    account = State(Settings("key", retry_delay=math.inf, rate_limit=0, history_cache=0))
    for conn_id, errors in (("bloom", scenarios.TRANSIENT), ("acme", scenarios.DUPLICATE)):
        plan = plan_recovery(records(conn_id, [(["twitter"], {"twitter": errors})], account))
        part = {"conn_id": conn_id, "label": conn_id.title(), "state": "planned", "plan": plan.to_xcom()}
        parts.append(part)
    joined, _ = join_plans(["bloom", "acme"], parts, [], dry_run=False, repost_spent=False)
    stats = run_stats(build_report(joined, []), joined, {})
    assert [(profile["label"], profile["codes"]) for profile in stats["profiles"]] == [
        ("Bloom", {"136": 1}),
        ("Acme", {"110": 1}),
    ]
    assert stats["codes"] == {"136": 1, "110": 1}


def test_the_posts_for_a_person_are_listed_up_to_a_hundred_and_counted_all():
    plan = plan_recovery([])
    left = [{"id": f"p{index}", "by": "Ana", "fix": "X: change the text"} for index in range(150)]
    report = {**build_report(plan, []), "left_by_person": left}
    stats = run_stats(report, plan, {})
    assert len(stats["needs_person"]) == 100 and stats["needs_person_total"] == 150
