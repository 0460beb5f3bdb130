"""A recovery over many User Profiles (an agency's clients): one part per profile, joined into one plan.

Each profile is one Ayrshare connection: the API key and that profile's Profile Key, stored like
any Airflow connection (metadata DB, environment variable, secrets backend). A profile's part of
the run learns who the profile is (``GET /api/user``: title), lists its failed posts once and plans
them, with its own key and rate budget; a suspended profile is skipped with its reason. The parts
are joined into one plan whose retry tasks each carry their profile's connection id, so that each
retries, waits (one shared listing per profile) and counts calls within its own profile. Profiles
are named by title and connection id, never by key.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from ayrshare_provider.exceptions import AyrshareAuthError, AyrshareConfigError, AyrshareError
from ayrshare_provider.recovery import plan_recovery, retry_tasks
from ayrshare_provider.recovery_plan import RecoveryPlan

if TYPE_CHECKING:
    from ayrshare_provider.hooks.ayrshare import AyrshareHook

#: The context variable a profile's planning task sets: what its ``map_index_template`` shows.
PROFILE_LABEL = "ayrshare_profile"
#: Failed posts one listing returns at most (Ayrshare's largest ``limit``): a run recovers them all;
#: beyond what one run maps, posts are left for the next (:func:`join_plans`).
LISTING_LIMIT = 1000
#: What became of a profile's part of the run.
PLANNED, SKIPPED, FAILED = "planned", "skipped", "failed"
# Airflow's own rule for connection ids (letters, digits, and . _ -), so that an id cannot smuggle anything.
_CONN_ID = re.compile(r"^[\w.-]{1,200}$")  # a label "<conn id>: <post id>" fits in 250


def profiles_to_cover(conn_ids: Any) -> list[str]:
    """
    The run's connection ids, checked and without repeats (``ayrshare_conn_ids``, in its order).

    :raises AyrshareConfigError: for an empty list or an id that is not a connection id.
    """
    if not isinstance(conn_ids, list) or not conn_ids:
        raise AyrshareConfigError(
            f"ayrshare_conn_ids must be a non-empty list of connection ids, got {conn_ids!r}"
        )
    for conn_id in conn_ids:
        if not isinstance(conn_id, str) or not _CONN_ID.match(conn_id):
            raise AyrshareConfigError(f"ayrshare_conn_ids: {conn_id!r} is not a connection id")
    return list(dict.fromkeys(conn_ids))


def is_suspension(error: AyrshareError) -> bool:
    """Ayrshare refused the Profile Key because its profile is suspended (403, "suspended")."""
    return (
        isinstance(error, AyrshareAuthError)
        and error.http_status == 403
        and "suspend" in error.message.lower()
    )


def why(error: BaseException) -> str:
    """
    What the report says of a profile whose planning failed: the provider's own errors and Airflow's
    "isn't defined" in full (built from safe fields only), any other error by its type alone (its
    text could quote a value it refused).
    """
    from airflow.exceptions import AirflowNotFoundException

    if isinstance(error, (AyrshareError, AirflowNotFoundException)):
        return f"{type(error).__name__}: {error}"
    return f"{type(error).__name__}: see the task's log"


def profile_label(conn_id: str, user: dict[str, Any]) -> str:
    """How the run names a profile: ``"Acme Bakery (ayrshare_acme)"``, its title (else refId) and connection."""
    name = user.get("title") or user.get("refId")
    label = f"{name} ({conn_id})" if isinstance(name, str) and name else conn_id
    return label[:250]  # Airflow keeps a rendered map index in 250 characters


def plan_profile(
    hook: AyrshareHook, conn_id: str, params: dict[str, Any], *, ask_person: bool
) -> dict[str, Any]:
    """
    One profile's part of a recovery: who it is, then one history listing and its plan.

    Returns, as JSON for the planning task's XCom: ``conn_id``, ``label``, ``state`` (``planned``
    or ``skipped``, with a ``reason``), the ``plan`` (:meth:`RecoveryPlan.to_xcom`, without the
    records) and ``tasks``, its retry tasks' arguments, each with ``ayrshare_conn_id``.

    :param hook: the profile's hook.
    :param conn_id: its connection id.
    :param params: the run's params (``last_days``, ``platforms``, ``dry_run``, ``max_wait_hint``,
        ``repost_spent``).
    :param ask_person: posts only a person can unblock go to the person step.
    :raises AyrshareAuthError: when Ayrshare refuses the connection's keys (other than a suspension).
    """
    try:
        user = hook.get_user()
    except AyrshareAuthError as err:
        if not is_suspension(err):
            raise
        reason = f"profile suspended, skipped: {err.message}"
        return {
            "conn_id": conn_id,
            "label": conn_id,
            "state": SKIPPED,
            "reason": reason,
            "plan": None,
            "tasks": [],
        }
    as_of = hook.history_as_of()  # before the listing: what it shows is at least this fresh
    records = hook.get_history(
        status="error",
        last_days=params["last_days"],
        limit=LISTING_LIMIT,
        platforms=params["platforms"] or None,
    )
    plan = plan_recovery(
        records,
        dry_run=params["dry_run"],
        max_wait_hint=params["max_wait_hint"],
        ask_person=ask_person,
        repost_spent=params["repost_spent"],
        records_as_of=as_of,
    )
    return {
        "conn_id": conn_id,
        "label": profile_label(conn_id, user),
        "state": PLANNED,
        "listed": len(records),
        "plan": plan.to_xcom(),
        "tasks": retry_tasks(plan, conn_id),
    }


def join_plans(
    conn_ids: list[str] | None,
    parts: list[Any],
    errors: list[Any],
    *,
    dry_run: bool,
    repost_spent: bool,
    max_tasks: int | None = None,
) -> tuple[RecoveryPlan, list[dict[str, Any]]]:
    """
    One plan for the whole run from each profile's part, and every retry task's arguments.

    The plan has every profile's posts and ``profiles``: per connection, in the run's order, its
    ``label``, ``state`` (``planned``, ``skipped``, ``failed``), ``reason`` and ``posts``.

    :param conn_ids: the run's connection ids (None when choose_profiles failed: a clear error).
    :param parts: what each profile's planning task returned (None or missing for one that failed).
    :param errors: what a failed planning task pushed: ``{"conn_id", "error"}``.
    :param max_tasks: the most retry tasks one run can map (Airflow's ``[core] max_map_length``);
        the posts beyond it are left for the next run (``retry_later``, with why), taken in turns
        from each profile so that none is starved.
    """
    if conn_ids is None:  # choose_profiles failed: its log says why
        raise AyrshareConfigError("no profiles to join: choose_profiles failed (see its log)")
    by_conn = {part["conn_id"]: part for part in parts if isinstance(part, dict) and "conn_id" in part}
    why_failed = {error["conn_id"]: error["error"] for error in errors if isinstance(error, dict)}
    profiles: list[dict[str, Any]] = []
    joined = RecoveryPlan(dry_run=dry_run, repost_spent=repost_spent and not dry_run, profiles=profiles)
    tasks: list[dict[str, Any]] = []
    owner: dict[str, str] = {}  # post id -> the label of the profile that takes it
    for conn_id in conn_ids:
        part = by_conn.get(conn_id)
        if part is None:
            reason = why_failed.get(conn_id) or "its planning task failed: see its log"
            profiles.append(
                {"conn_id": conn_id, "label": conn_id, "state": FAILED, "reason": reason, "posts": []}
            )
            continue
        label, pushed = part["label"], part.get("plan")
        # A skipped profile (suspended) has no plan: nothing of it to join.
        plan = (
            RecoveryPlan()
            if pushed is None
            else RecoveryPlan.from_xcom(pushed, source=f"the plan of {conn_id!r}")
        )
        # Two connections with one Profile Key list the same posts: each post is retried once, by the first.
        taken = {post_id for key in RecoveryPlan.POST_LISTS for post_id in plan.post_ids(key)} & set(owner)
        posts: list[str] = []
        for key in RecoveryPlan.POST_LISTS:
            entries = [entry for entry in getattr(plan, key) if RecoveryPlan.entry_id(entry) not in taken]
            if key == "needs_person" and len(conn_ids) > 1:  # the person sees whose post it is
                entries = [{**entry, "profile": label} for entry in entries]
            getattr(joined, key).extend(entries)
            if key != "waits":  # a wait's post is in to_retry too
                posts += [RecoveryPlan.entry_id(entry) for entry in entries]
        owner.update({post_id: str(label) for post_id in posts})
        joined.failures.update(
            {post_id: plan.failures[post_id] for post_id in posts if post_id in plan.failures}
        )
        reason = part.get("reason", "")
        if taken:
            others = sorted({owner[post_id] for post_id in taken})
            reason = f"{len(taken)} of its posts also listed by {', '.join(others)} (the same Profile Key?): left to it"
        summary = {key: part[key] for key in ("conn_id", "label", "state") if key in part}
        profiles.append({**summary, "reason": reason, "posts": posts})
        tasks += [task for task in part.get("tasks", []) if task["post_id"] not in taken]
    if max_tasks is not None and len(tasks) > max_tasks:
        tasks = _leave_for_next_run(joined, tasks, max_tasks)
    return joined, tasks


def _leave_for_next_run(
    plan: RecoveryPlan, tasks: list[dict[str, Any]], max_tasks: int
) -> list[dict[str, Any]]:
    """Keep ``max_tasks`` retry tasks, a post from each profile in turn; the rest become ``retry_later``."""
    queues: dict[str, list[dict[str, Any]]] = {}
    for task in tasks:
        queues.setdefault(task.get("ayrshare_conn_id", ""), []).append(task)
    kept: list[dict[str, Any]] = []
    while len(kept) < max_tasks:
        for queue in queues.values():
            if queue and len(kept) < max_tasks:
                kept.append(queue.pop(0))
    left = {task["post_id"] for queue in queues.values() for task in queue}
    reason = f"not retried in this run: more posts than one run maps ([core] max_map_length {max_tasks}); the next run retries it"
    plan.to_retry = [post_id for post_id in plan.to_retry if post_id not in left]
    plan.waits = [entry for entry in plan.waits if entry["id"] not in left]
    plan.retry_later += [{"id": post_id, "reason": reason} for post_id in sorted(left)]
    return kept
