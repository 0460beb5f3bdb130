"""A recovery run over many posts: which to retry, which to skip and why, and the final report.

The example DAG ``ayrshare_failed_post_recovery`` is a thin shell around these three functions;
the per-post decisions themselves belong to :mod:`ayrshare_provider.posts`.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from ayrshare_provider.exceptions import AyrshareInvalidPostIdError, network_error_text
from ayrshare_provider.posts import (
    Action,
    Plan,
    WaitState,
    failed_networks,
    plan_retry,
    retry_not_before,
    validate_post_id,
    wait_state,
)
from ayrshare_provider.utils.xcom import PLAN_XCOM_KEY, SUMMARY_XCOM_KEY

# Plans that a RetryPostOperator can carry out (it waits for an in-flight retry instead of sending one).
_RETRY_PLANS = (Plan.RETRY, Plan.IN_FLIGHT)


def plan_recovery(records: list[dict[str, Any]], dry_run: bool = False) -> dict[str, Any]:
    """
    Split failed-post records into ids to retry now, posts to retry later, and posts to skip, with reasons.

    A post whose network asked to wait (Instagram's code 435) is not retried now: its one retry
    would be spent for nothing. It is listed under ``retry_later`` with the moment it may be retried.

    :param records: post records, as ``AyrshareHook.get_history(status="error")`` returns them.
    :param dry_run: decide only; every post that would be retried is listed as skipped instead.
    """
    to_retry: list[str] = []
    retry_later: list[dict[str, Any]] = []
    skipped: list[dict[str, Any]] = []
    decided: set[str] = set()
    now = datetime.now(UTC)  # one moment for the whole plan; a record without dates counts its wait from it
    for record in records:
        try:
            post_id = validate_post_id(record.get("id"))
        except AyrshareInvalidPostIdError as err:
            skipped.append({"id": str(record.get("id")), "reason": f"unusable id: {err.message}"})
            continue
        if post_id in decided:
            continue  # history pages can overlap; one post, one decision
        decided.add(post_id)
        plan, reason = plan_retry(record, now=now, seen_at=now)
        if plan is Plan.RETRY_LATER:
            not_before, _ = retry_not_before(record, seen_at=now) or (None, "")
            retry_later.append(
                {
                    "id": post_id,
                    "not_before": not_before.isoformat() if not_before else None,
                    "reason": reason,
                }
            )
        elif plan in _RETRY_PLANS and not dry_run:
            to_retry.append(post_id)
        else:
            skipped.append(
                {
                    "id": post_id,
                    "reason": f"dry run, would retry: {reason}" if plan in _RETRY_PLANS else reason,
                }
            )
    return {"to_retry": to_retry, "retry_later": retry_later, "skipped": skipped, "dry_run": dry_run}


def _network_errors(summary: dict[str, Any]) -> str:
    return (
        "; ".join(network_error_text(error) for error in failed_networks(summary)) or "no network error given"
    )


def build_report(plan: dict[str, Any], summaries: list[Any]) -> dict[str, Any]:
    """
    Put every planned post in exactly one bucket: recovered, failed again, retry later, skipped or unknown.

    :param plan: what :func:`plan_recovery` returned.
    :param summaries: the ``ayrshare_summary`` XComs of the retry tasks (any order; None for a task that pushed none).
    """
    by_id = {
        summary["id"]: summary for summary in summaries if isinstance(summary, dict) and summary.get("id")
    }
    recovered, failed_again, unknown = [], [], []
    skipped = list(plan["skipped"])
    for post_id in plan["to_retry"]:
        summary = by_id.get(post_id)
        if summary is None:
            unknown.append({"id": post_id, "reason": "the retry task ended without a summary: see its log"})
        elif summary.get("published"):
            recovered.append(
                {"id": post_id, "action": summary.get("action"), "post_url": summary.get("post_url")}
            )
        elif summary.get("action") == Action.NOT_RETRIED.value:
            reason = "not retried by its task: the post changed after the plan (see the task's log)"
            skipped.append({"id": post_id, "reason": reason})
        elif wait_state({"status": summary.get("status")}) is WaitState.WAITING:
            reason = f"not final when its task ended (status {summary.get('status')!r}): see the task's log"
            unknown.append({"id": post_id, "reason": reason})
        else:
            reason = (
                "already retried before: cannot be retried again"
                if summary.get("action") == Action.ALREADY_RETRIED.value
                else f"status {summary.get('status')!r}"
            )
            failed_again.append({"id": post_id, "reason": reason, "errors": _network_errors(summary)})
    return {
        "recovered": recovered,
        "failed_again": failed_again,
        "retry_later": plan.get("retry_later", []),
        "skipped": skipped,
        "unknown": unknown,
        "counts": {
            "recovered": len(recovered),
            "failed_again": len(failed_again),
            "retry_later": len(plan.get("retry_later", [])),
            "skipped": len(skipped),
            "unknown": len(unknown),
        },
    }


def format_report(report: dict[str, Any]) -> str:
    """The report as a plain-text table, one line per post."""
    rows = [("outcome", "post id", "details")]
    rows += [
        ("recovered", r["id"], f"{r['action']}: {r['post_url'] or 'no URL given'}")
        for r in report["recovered"]
    ]
    rows += [("failed again", r["id"], f"{r['reason']}; {r['errors']}") for r in report["failed_again"]]
    rows += [("retry later", r["id"], r["reason"]) for r in report["retry_later"]]
    rows += [("skipped", r["id"], r["reason"]) for r in report["skipped"]]
    rows += [("unknown", r["id"], r["reason"]) for r in report["unknown"]]
    widths = [max(len(row[i]) for row in rows) for i in range(2)]
    lines = [f"{a:<{widths[0]}}  {b:<{widths[1]}}  {c}" for a, b, c in rows]
    lines.insert(1, "-" * min(120, max(len(line) for line in lines)))
    counts = report["counts"]
    lines.append(
        f"{counts['recovered']} recovered, {counts['failed_again']} failed again, "
        f"{counts['retry_later']} to retry later, {counts['skipped']} skipped, {counts['unknown']} unknown"
    )
    return "\n".join(lines)


def report_run(ti: Any, plan_task_id: str, retry_task_id: str = "retry_post") -> dict[str, Any]:
    """
    A recovery run's report task: the plan and the retry tasks' summaries from XCom, logged as a table.

    :param ti: the report task's task instance.
    :param plan_task_id: the task that pushed the plan under :data:`PLAN_XCOM_KEY`.
    :param retry_task_id: the (mapped) ``RetryPostOperator`` task.
    :raises RuntimeError: when a planned post has no known outcome, so that nothing is lost silently.
    """
    plan = ti.xcom_pull(task_ids=plan_task_id, key=PLAN_XCOM_KEY)
    summaries = ti.xcom_pull(task_ids=[retry_task_id], key=SUMMARY_XCOM_KEY) or []
    result = build_report(plan, summaries)
    print(format_report(result))
    if result["unknown"]:
        raise RuntimeError(f"{len(result['unknown'])} post(s) have no known outcome: {result['unknown']}")
    return result
