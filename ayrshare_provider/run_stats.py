"""What a recovery run counted, as data: the recoveries page draws it, the digest says it in words.

The report task pushes it as XCom (:data:`RUN_STATS_XCOM_KEY`), so that the page reads every run's
counts through Airflow's REST API alone, with the reader's own permissions, and never Ayrshare.
Counts, post ids and what a person must fix: never a key or a post's text.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from typing import TYPE_CHECKING, Any

from ayrshare_provider.recovery import OUTCOMES, outcome_details

if TYPE_CHECKING:
    from ayrshare_provider.recovery_plan import RecoveryPlan

RUN_STATS_XCOM_KEY = "ayrshare_run_stats"
#: Bumped when a key changes meaning; the page reads the versions it knows.
STATS_VERSION = 1
# The outcomes whose posts wait on a person's fix.
_FOR_A_PERSON = ("left_by_person", "failed_again")
#: The posts a person must fix, listed per run at most (the report's XCom lists all): an XCom the
#: page reads once per run stays small.
MOST_LISTED = 100


def run_stats(report: dict[str, Any], plan: RecoveryPlan, networks: dict[str, list[str]]) -> dict[str, Any]:
    """
    A run's counts: per outcome, per network, per profile, per failure code, and who needs a person.

    :param report: what :func:`~ayrshare_provider.recovery.build_report` returned.
    :param plan: the run's plan (its ``failures`` and, over many profiles, each one's posts).
    :param networks: each post's networks, by post id; a post not in it counts under ``other``.
    """
    profiles = [
        {
            "label": profile["label"],
            "state": profile["state"],
            "reason": profile["reason"],
            "outcomes": profile["counts"],
            "codes": _codes(plan, _posts_of(plan, profile["conn_id"])),
        }
        for profile in report.get("profiles", [])
    ]
    for_a_person = needs_a_person(report)
    return {
        "version": STATS_VERSION,
        "outcomes": {outcome: report["counts"].get(outcome, 0) for outcome in OUTCOMES},
        "networks": outcomes_per_network(report, networks),
        "profiles": profiles,
        "codes": _codes(plan, list(plan.failures)),
        "needs_person": for_a_person[:MOST_LISTED],
        "needs_person_total": len(for_a_person),
    }


def outcomes_per_network(report: dict[str, Any], networks: dict[str, list[str]]) -> dict[str, dict[str, int]]:
    """``{"twitter": {"recovered": 2, "failed_again": 1}}``: each network a post of each outcome was on."""
    by_network: dict[str, Counter[str]] = defaultdict(Counter)
    for outcome in OUTCOMES:
        for entry in report.get(outcome, []):
            for network in networks.get(entry["id"]) or ["other"]:
                by_network[network][outcome] += 1
    return {network: dict(counted) for network, counted in sorted(by_network.items())}


def needs_a_person(report: dict[str, Any]) -> list[dict[str, str]]:
    """The posts a person must act on: left by one, failed again, or skipped with a fix only a person can make."""
    found = [
        {"id": entry["id"], "outcome": outcome, "what": outcome_details(outcome, entry)}
        for outcome in _FOR_A_PERSON
        for entry in report.get(outcome, [])
    ]
    found += [
        {"id": entry["id"], "outcome": "skipped", "what": f"skipped; to fix: {entry['fix']}"}
        for entry in report.get("skipped", [])
        if entry.get("fix")  # the run did not ask a person
    ]
    return found


def _posts_of(plan: RecoveryPlan, conn_id: str) -> list[str]:
    for profile in plan.profiles or []:
        if profile.get("conn_id") == conn_id:
            return list(profile.get("posts") or [])
    return []


def _codes(plan: RecoveryPlan, post_ids: list[str]) -> dict[str, int]:
    """How many posts failed with each code (a post counts once per code), most frequent first."""
    counted = Counter(
        str(code)
        for post_id in post_ids
        for code in {failure["code"] for failure in plan.failures.get(post_id, [])}
        if code is not None
    )
    return dict(counted.most_common())
