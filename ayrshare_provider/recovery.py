"""A recovery run over many posts, as pure functions: the plan (which to retry, which to skip and why) and the report.

The per-post decisions belong to :mod:`ayrshare_provider.posts`; the plan is a
:class:`~ayrshare_provider.recovery_plan.RecoveryPlan`. What reads and writes XCom is the DAG's
steps' (:mod:`ayrshare_provider.recovery_steps`).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from ayrshare_provider.exceptions import (
    AyrshareInvalidPostIdError,
    network_error_text,
)
from ayrshare_provider.posts import (
    Action,
    Plan,
    WaitState,
    failed_networks,
    failures_of,
    is_repost,
    network_name,
    person_request,
    plan_retry,
    retry_facts,
    retry_not_before,
    validate_post_id,
    wait_state,
)
from ayrshare_provider.recovery_plan import RecoveryPlan

# Plans that a RetryPostOperator can carry out (it waits for an in-flight retry instead of sending one).
_RETRY_PLANS = (Plan.RETRY, Plan.IN_FLIGHT)


def plan_recovery(
    records: list[dict[str, Any]],
    dry_run: bool = False,
    *,
    max_wait_hint: float | None = None,
    ask_person: bool = False,
    repost_spent: bool = False,
    records_as_of: float | None = None,
) -> RecoveryPlan:
    """
    Sort failed-post records into the recovery's paths (a :class:`RecoveryPlan`), each with its reason.

    - ``to_retry``: ids to retry, now or, for a network's wait hint within ``max_wait_hint``,
      once that wait is over (``waits`` lists those, with their moment);
    - ``retry_later``: a wait hint beyond ``max_wait_hint``: its one retry would be spent for nothing;
    - ``needs_person``: posts only a person can unblock (relink, new text, new media), each with its
      networks' errors and fixes, for a person to choose from (when ``ask_person``);
    - ``spent``: ids whose one retry is spent (code 329), for a repost (when ``repost_spent``);
    - ``skipped``: everything else, with why.

    :param records: post records, as ``AyrshareHook.get_history(status="error")`` returns them.
    :param dry_run: decide only; every post that would be acted on is listed as skipped instead.
    :param max_wait_hint: the longest wait hint, in seconds, the run waits out (None: none).
    :param ask_person: posts that need a person go to ``needs_person`` (else they are skipped).
    :param repost_spent: posts whose retry is spent go to ``spent`` (else they are skipped).
    :param records_as_of: the wall-clock moment (``time.time()``) the records show every post at
        least as of (a cached listing: its read less the cache's age). Given, the plan keeps what
        each retry decides on (:func:`~ayrshare_provider.posts.retry_facts`) under ``retry_with``,
        and :func:`retry_tasks` hands it to the retry tasks, which then retry without a read of their
        own while it is fresh (``RetryPostOperator(record=...)``).
    """
    plan = RecoveryPlan(
        dry_run=dry_run, repost_spent=repost_spent and not dry_run, records_as_of=records_as_of
    )
    decided: set[str] = set()
    now = datetime.now(UTC)  # one moment for the whole plan; a record without dates counts its wait from it
    for record in records:
        try:
            post_id = validate_post_id(record.get("id"))
        except AyrshareInvalidPostIdError as err:
            plan.skipped.append({"id": str(record.get("id")), "reason": f"unusable id: {err.message}"})
            continue
        if post_id in decided:
            continue  # history pages can overlap; one post, one decision
        decided.add(post_id)
        plan.failures[post_id] = failures_of(record)
        path, entry, reason = _path_of(record, post_id, now, max_wait_hint, ask_person, repost_spent)
        if dry_run and path in _DRY_RUN_VERBS:
            path, entry = (
                "skipped",
                {"id": post_id, "reason": f"dry run, would {_DRY_RUN_VERBS[path]}: {reason}"},
            )
        if path == "to_retry" and entry:
            plan.waits.append(entry)
        if path == "to_retry" and records_as_of is not None:
            plan.retry_with[post_id] = retry_facts(record)
        getattr(plan, path).append(post_id if path in ("to_retry", "spent") else entry)
    return plan


def retry_tasks(plan: RecoveryPlan, conn_id: str | None = None) -> list[dict[str, Any]]:
    """
    One retry task's arguments per post the plan retries: what ``RetryPostOperator.partial(...)
    .expand_kwargs()`` maps over. ``post_id``, and when the plan kept it, the post's ``record``
    and ``record_as_of``; with ``conn_id``, ``ayrshare_conn_id`` (a run over many profiles).

    :param plan: what :func:`plan_recovery` returned.
    :param conn_id: the connection of the profile whose posts these are.
    """
    profile = {"ayrshare_conn_id": conn_id} if conn_id else {}
    return [
        {
            "post_id": post_id,
            "record": plan.retry_with[post_id],
            "record_as_of": plan.records_as_of,
            **profile,
        }
        if post_id in plan.retry_with
        else {"post_id": post_id, **profile}
        for post_id in plan.to_retry
    ]


def post_tasks(plan: RecoveryPlan, post_ids: list[str]) -> list[dict[str, Any]]:
    """
    Task arguments for later steps over some of the plan's posts (a person's choice, the reposts):
    ``post_id``, with ``ayrshare_conn_id`` when the plan covers many profiles.

    :param plan: the run's plan.
    :param post_ids: the posts.
    """
    owners = profile_of(plan.profiles or [])
    return [
        {
            "post_id": post_id,
            **({"ayrshare_conn_id": owners[post_id]["conn_id"]} if post_id in owners else {}),
        }
        for post_id in post_ids
    ]


def profile_of(profiles: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Each post of a run over many profiles, with its profile (an entry of the plan's ``profiles``)."""
    return {post_id: profile for profile in profiles for post_id in profile["posts"]}


_DRY_RUN_VERBS = {"to_retry": "retry", "needs_person": "ask a person", "spent": "repost"}


def _path_of(
    record: dict[str, Any],
    post_id: str,
    now: datetime,
    max_wait_hint: float | None,
    ask_person: bool,
    repost_spent: bool,
) -> tuple[str, dict[str, Any], str]:
    """Which path of the plan one post takes, its entry there (for ``to_retry``: its wait, if any), and why."""
    plan, reason = plan_retry(record, now=now, seen_at=now)
    if plan in _RETRY_PLANS:
        return "to_retry", {}, reason
    if plan is Plan.RETRY_LATER:
        not_before, _ = retry_not_before(record, seen_at=now) or (now, "")
        entry = {"id": post_id, "not_before": not_before.isoformat(), "reason": reason}
        wait = (not_before - now).total_seconds()
        path = "to_retry" if max_wait_hint is not None and wait <= max_wait_hint else "retry_later"
        return path, entry, reason
    if plan is Plan.NOT_RETRYABLE:
        if ask_person:
            return "needs_person", person_request(record, post_id), reason
        why = f"{reason}; fix it, then retry it (ask_person asks a person in the run, on Airflow 3.1+)"
        request = person_request(record, post_id)
        skipped: dict[str, Any] = {
            "id": post_id,
            "reason": why,
            "fix": _fixes(request["networks"]),
            "networks": [error["platform"] for error in request["networks"]],
        }
        return "skipped", skipped, reason
    if plan is Plan.RETRY_SPENT:
        if is_repost(record):
            return (
                "skipped",
                {"id": post_id, "reason": f"{reason}; it is itself a repost: not reposted again"},
                reason,
            )
        if repost_spent:
            return "spent", {}, reason
        return "skipped", {"id": post_id, "reason": f"{reason}; repost_spent reposts it"}, reason
    return "skipped", {"id": post_id, "reason": reason}, reason


def _network_errors(summary: dict[str, Any]) -> str:
    return (
        "; ".join(network_error_text(error) for error in failed_networks(summary)) or "no network error given"
    )


def posts_to_repost(plan: RecoveryPlan, summaries: list[Any]) -> list[str]:
    """
    The posts a recovery reposts: those whose retry was spent before the run, and those whose
    retry in this run failed again (or met "already retried"). Call it only when reposting is on.

    :param plan: what :func:`plan_recovery` returned (with ``repost_spent``).
    :param summaries: the retry tasks' ``ayrshare_summary`` XComs.
    """
    failed = [
        summary["id"]
        for summary in _by_id(summaries).values()
        if summary.get("action") in _RETRY_ACTIONS
        and not summary.get("published")
        and wait_state({"status": summary.get("status")}) is WaitState.FAILED
    ]
    return list(dict.fromkeys([*plan.spent, *failed]))


_RETRY_ACTIONS = (Action.RETRIED.value, Action.ALREADY_RETRIED.value, Action.IN_FLIGHT.value)

#: the report's outcomes, in the order the table lists them, with their labels.
OUTCOMES = {
    "recovered": "recovered",
    "recovered_after_wait": "recovered after a wait",
    "retried_for_person": "retried, a person chose it",
    "reposted": "reposted",
    "failed_again": "failed again",
    "left_by_person": "left by a person",
    "retry_later": "retry later",
    "skipped": "skipped",
    "unknown": "unknown",
}


def _by_id(summaries: list[Any]) -> dict[str, dict[str, Any]]:
    return {
        summary["id"]: summary for summary in summaries if isinstance(summary, dict) and summary.get("id")
    }


def build_report(
    plan: RecoveryPlan,
    summaries: list[Any],
    *,
    person: dict[str, Any] | None = None,
    chosen_summaries: list[Any] | None = None,
    repost_summaries: list[Any] | None = None,
) -> dict[str, Any]:
    """
    Put every planned post in exactly one outcome of :data:`OUTCOMES`, with its details.

    :param plan: what :func:`plan_recovery` returned.
    :param summaries: the ``ayrshare_summary`` XComs of the retry tasks (any order; None for a task that pushed none).
    :param person: what the person step returned (``ReviewPostsOperator``), None when it did not answer.
    :param chosen_summaries: the summaries of the retries a person chose.
    :param repost_summaries: the summaries of the reposts (``RepostOperator``).
    """
    report: dict[str, list[dict[str, Any]]] = {outcome: [] for outcome in OUTCOMES}
    reposts = _by_id(repost_summaries or [])
    retried = _by_id(summaries)
    for post_id in plan.to_retry:
        outcome, entry = _retry_outcome(post_id, retried.get(post_id), reposts, plan.repost_spent)
        report[outcome].append(entry)
    for post_id in plan.spent:
        repost = reposts.get(post_id)
        if repost is None:
            report["unknown"].append({"id": post_id, "reason": "the repost task ended without a summary"})
        else:
            outcome, entry = _repost_outcome(post_id, repost)
            report[outcome].append(entry)
    chosen = _by_id(chosen_summaries or [])
    for request in plan.needs_person:
        outcome, entry = _person_outcome(request, person, chosen)
        report[outcome].append(entry)
    report["retry_later"] = list(plan.retry_later)
    report["skipped"] += plan.skipped
    counts = {outcome: len(report[outcome]) for outcome in OUTCOMES}
    if plan.profiles is None:
        return {**report, "counts": counts}
    return {**report, "counts": counts, "profiles": _by_profile(plan.profiles, report)}


def _by_profile(
    profiles: list[dict[str, Any]], report: dict[str, list[dict[str, Any]]]
) -> list[dict[str, Any]]:
    """Each profile of a run over many: what became of it, and its posts' counts; each entry learns its ``profile``."""
    owners = profile_of(profiles)
    grouped = []
    for profile in profiles:
        counts = {outcome: 0 for outcome in OUTCOMES}
        for outcome in OUTCOMES:
            for entry in report[outcome]:
                if owners.get(entry["id"], {}).get("conn_id") == profile["conn_id"]:
                    entry["profile"] = profile["label"]
                    counts[outcome] += 1
        grouped.append(
            {key: profile[key] for key in ("conn_id", "label", "state", "reason")} | {"counts": counts}
        )
    return grouped


def _retry_outcome(
    post_id: str, summary: dict[str, Any] | None, reposts: dict[str, dict[str, Any]], repost_spent: bool
) -> tuple[str, dict[str, Any]]:
    """Where a post the run retried ends: recovered (after a wait), reposted, failed again..."""
    if summary is None:
        return "unknown", {"id": post_id, "reason": "the retry task ended without a summary: see its log"}
    if summary.get("published"):
        entry = {
            "id": post_id,
            "action": summary.get("action"),
            "post_url": summary.get("post_url"),
            "retried_at": summary.get("retried_at"),
        }
        if summary.get("waited_until"):
            return "recovered_after_wait", {**entry, "waited_until": summary["waited_until"]}
        return "recovered", entry
    if summary.get("action") == Action.NOT_RETRIED.value:
        reason = "not retried by its task: the post changed after the plan (see the task's log)"
        return "skipped", {"id": post_id, "reason": reason}
    if wait_state({"status": summary.get("status")}) is WaitState.WAITING:
        reason = f"not final when its task ended (status {summary.get('status')!r}): see the task's log"
        return "unknown", {"id": post_id, "reason": reason}
    if post_id in reposts:
        return _repost_outcome(post_id, reposts[post_id])
    if repost_spent:
        return "unknown", {
            "id": post_id,
            "reason": "its retry is spent; the repost task ended without a summary",
        }
    reason = (
        "already retried before: cannot be retried again"
        if summary.get("action") == Action.ALREADY_RETRIED.value
        else f"status {summary.get('status')!r}"
    )
    return "failed_again", {"id": post_id, "reason": reason, "errors": _network_errors(summary)}


def _repost_outcome(post_id: str, repost: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """Where a reposted post ends: reposted (published), or failed again with the new post's errors."""
    if repost.get("action") == Action.ALREADY_PUBLISHED.value:
        return "recovered", {"id": post_id, "action": "already_published", "post_url": repost.get("post_url")}
    new_id = repost.get("repost_id")
    if repost.get("not_reposted"):  # refused (code 137...), or a lost answer too old to resend: a person's
        reason = f"its retry is spent, and it was not reposted: {repost['not_reposted']}"
        return "failed_again", {
            "id": post_id,
            "reason": f"{reason}; needs a person: {repost.get('fix')}",
            "errors": _network_errors(repost),
        }
    if not new_id:
        reason = "its retry is spent, and it was not reposted (the repost task's log says why)"
        return "failed_again", {"id": post_id, "reason": reason, "errors": _network_errors(repost)}
    earlier = repost.get("action") == Action.REPOSTED_EARLIER.value  # by an earlier run: not posted again
    said = f"reposted earlier as {new_id}" if earlier else f"reposted as {new_id}"
    if repost.get("published"):
        entry = {
            "id": post_id,
            "repost_id": new_id,
            "networks": repost.get("reposted_networks") or [],
            "post_url": repost.get("post_url"),
        }
        return "reposted", {**entry, "note": said} if earlier else entry
    reason = f"its retry spent, {said}, which ended with status {repost.get('status')!r}"
    return "failed_again", {"id": post_id, "reason": reason, "errors": _network_errors(repost)}


def _person_outcome(
    request: dict[str, Any], person: dict[str, Any] | None, chosen: dict[str, dict[str, Any]]
) -> tuple[str, dict[str, Any]]:
    """Where a post that needed a person ends: retried as they chose, left by them, or unknown."""
    post_id = request["id"]
    fixes = _fixes(request.get("networks", []))
    if not isinstance(person, dict):
        return "unknown", {"id": post_id, "reason": "the person step ended without an answer: see its log"}
    by = person.get("responded_by") or "nobody: no answer in time"
    if post_id not in (person.get("chosen") or []):
        return "left_by_person", {"id": post_id, "by": by, "fix": fixes}
    summary = chosen.get(post_id)
    if summary is None:
        return "unknown", {"id": post_id, "reason": f"chosen by {by}; its retry ended without a summary"}
    if summary.get("published"):
        entry = {
            "id": post_id,
            "by": by,
            "post_url": summary.get("post_url"),
            "retried_at": summary.get("retried_at"),
        }
        return "retried_for_person", entry
    reason = f"chosen by {by}, retried, ended with status {summary.get('status')!r}"
    return "failed_again", {"id": post_id, "reason": reason, "errors": _network_errors(summary)}


def _fixes(errors: list[dict[str, Any]]) -> str:
    """What a person does about each network's error: ``"Instagram: relink the account; ..."``."""
    return "; ".join(f"{network_name(error['platform'])}: {error['fix']}" for error in errors)


def outcome_details(outcome: str, entry: dict[str, Any]) -> str:
    """One table cell: what happened to the post, and where it is now."""
    url = entry.get("post_url") or "no URL given"
    if outcome == "recovered":
        return f"{entry.get('action')}: {url}"
    if outcome == "recovered_after_wait":
        return f"waited until {entry['waited_until']}, retried at {entry.get('retried_at')}: {url}"
    if outcome == "retried_for_person":
        return f"chosen by {entry['by']}, retried at {entry.get('retried_at')}: {url}"
    if outcome == "reposted":
        if entry.get("note"):  # an earlier run made it: "reposted earlier as <new id>"
            return f"{entry['note']} (not posted again): {url}"
        return f"as new post {entry['repost_id']} to {', '.join(entry['networks'])}: {url}"
    if outcome == "failed_again":
        return f"{entry['reason']}; {entry['errors']}"
    if outcome == "left_by_person":
        return f"by {entry['by']}; to fix: {entry['fix']}"
    return str(entry["reason"])


def counted_text(counts: dict[str, int], every: bool = True) -> str:
    """``"3 recovered, 1 failed again"``: every outcome, or only those that happened."""
    parts = [
        f"{counts.get(outcome, 0)} {label}"
        for outcome, label in OUTCOMES.items()
        if every or counts.get(outcome)
    ]
    return ", ".join(parts) or "no failed posts"


def format_report(report: dict[str, Any]) -> str:
    """
    The report as a plain-text table, one line per post, then the counts. A run over many
    profiles groups the lines by profile, each group under a line with its counts (or why it was
    skipped or failed).
    """
    header = ("outcome", "post id", "details")
    rows = [
        (label, entry["id"], outcome_details(outcome, entry), entry.get("profile"))
        for outcome, label in OUTCOMES.items()
        for entry in report.get(outcome, [])
    ]
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(2)]

    def line(outcome: str, post_id: str, details: str) -> str:
        return f"{outcome:<{widths[0]}}  {post_id:<{widths[1]}}  {details}"

    profiles = report.get("profiles")
    if profiles is None:
        body = [line(*row[:3]) for row in rows]
    else:
        body = []
        for profile in profiles:
            said = counted_text(profile["counts"], every=False)
            if profile["state"] != "planned":
                said = f"{profile['state']}: {profile['reason']}"
            body.append(f"== {profile['label']}: {said}")
            body += [line(*row[:3]) for row in rows if row[3] == profile["label"]]
        unowned = [line(*row[:3]) for row in rows if row[3] is None]
        body += ["== (no profile)", *unowned] if unowned else []  # never dropped from the table
    lines = [line(*header), *body]
    lines.insert(1, "-" * min(120, max(len(text) for text in lines)))
    lines.append(counted_text(report["counts"]))
    return "\n".join(lines)
