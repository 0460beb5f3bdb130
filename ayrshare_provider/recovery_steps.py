"""The steps of a recovery run after its plan, as Airflow tasks; both recovery DAGs are built from them.

A plan task (returning :func:`push_plan`: each retry task's arguments, with the whole plan in
XCom) feeds, each on its own:

- ``retry_post``: one ``RetryPostOperator`` per post to retry, acting on the plan's record
  (``trust_plan``), waiting out wait hints (deferred), ended in the triggerer (``end_from_trigger``);
- ``ask_person``, ``route_chosen`` then ``retry_chosen_post`` (Airflow 3.1+): one human-in-the-loop
  request for the posts a person must fix, then a retry of each post they chose, with its profile;
- ``choose_reposts`` then ``repost_post``: when ``repost_spent``, one ``RepostOperator`` per post
  whose retry is spent (before the run, or in it);
- ``report``: every post with its outcome, in the task's XCom and log, and the run's digest
  (:mod:`ayrshare_provider.digest`) for the notifiers given to :func:`recover`, and its counts
  (:mod:`ayrshare_provider.run_stats`) for the recoveries page.

The steps own the plan's XCom: :func:`push_plan` writes it, :func:`pull_plan` reads it back as a
:class:`~ayrshare_provider.recovery_plan.RecoveryPlan`; planning and the report stay pure
(:mod:`ayrshare_provider.recovery`).
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from airflow.providers.common.compat.sdk import Param, task

from ayrshare_provider.digest import Digest, build_digest, failed_digest
from ayrshare_provider.exceptions import AyrshareError, AyrshareProfilesFailedError
from ayrshare_provider.operators.ayrshare import MAX_RECORD_AGE, RetryPostOperator
from ayrshare_provider.operators.repost import RepostOperator
from ayrshare_provider.recovery import build_report, format_report, post_tasks, posts_to_repost, retry_tasks
from ayrshare_provider.recovery_plan import RecoveryPlan
from ayrshare_provider.retry_policy import retry_policy_args
from ayrshare_provider.run_stats import RUN_STATS_XCOM_KEY, run_stats
from ayrshare_provider.utils.xcom import (
    NEEDS_PERSON_XCOM_KEY,
    PERSON_ANSWER_XCOM_KEY,
    PLAN_XCOM_KEY,
    SUMMARY_XCOM_KEY,
)
from ayrshare_provider.version_compat import hitl_operator

#: Whether this Airflow can ask a person in the run (human-in-the-loop, 3.1+); before, those posts
#: are skipped with their reason.
ASKS_PEOPLE = hitl_operator() is not None

#: Task runs of one recovery run at a time on a SQLite metadata database. SQLite has one writer
#: and a 5 s busy timeout, and Airflow's scheduler, triggerer and DAG processor end on a write that
#: waits longer. On 2 cores, 16 task runs at once (Airflow's default) made writes wait up to 4.7 s;
#: 4 at once, 0.72 s, with every retry sent about as fast (bench 9). Deferred waits do not count:
#: every post still waits at once.
SQLITE_TASKS_AT_ONCE = 4


def recovery_dag_args() -> dict[str, Any]:
    """
    The DAG arguments both recovery DAGs take: on SQLite, :data:`SQLITE_TASKS_AT_ONCE` task runs at once.

    Airflow 3 parses DAG files in a process that hides the metadata database's URL (it reads
    ``airflow-db-not-allowed:///``), so there this sees SQLite only in ``dag.test()``; on
    ``airflow standalone`` the deployment sets ``[core] max_active_tasks_per_dag`` (docs: production).
    """
    from airflow.providers.common.compat.sdk import conf

    return dag_args_for(conf.get("database", "sql_alchemy_conn", fallback=""))


def dag_args_for(sql_alchemy_conn: str) -> dict[str, Any]:
    """:func:`recovery_dag_args` for a metadata database URL."""
    return {"max_active_tasks": SQLITE_TASKS_AT_ONCE} if sql_alchemy_conn.startswith("sqlite") else {}


def recovery_params() -> dict[str, Param]:
    """
    The DAG params the steps read (a DAG adds its own, such as what to list): what a user decides.
    How the steps work (:func:`recover`'s keyword arguments) is code, not a param.
    """
    return {
        "max_wait_hint": Param(
            93600,
            type="number",
            minimum=0,
            description="Wait out a network's wait hint up to this many seconds, then retry in the same run "
            "(default 26 h, Instagram's day and some); a longer hint stays 'retry later'.",
        ),
        "ask_person": Param(
            True,
            type="boolean",
            description="Airflow 3.1+: ask a person, in Airflow, which blocked posts (relink, duplicate, "
            "media) to retry once fixed. Off, or older Airflow: those are skipped with their reason.",
        ),
        "person_timeout": Param(
            86400,
            type="number",
            exclusiveMinimum=0,
            description="Seconds to wait for the person's answer; then nothing is retried.",
        ),
        "repost_spent": Param(
            False,
            type="boolean",
            description="Repost, once, each post whose one retry is spent, to only the networks that "
            "did not publish it (an idempotencyKey makes it exactly once).",
        ),
    }


def _safe_to_repeat() -> dict[str, Any]:
    # Each attempt of these tasks reads the post first and never sends a second retry or post; what
    # no attempt can fix fails at once (final errors); on Airflow 3.3+ a 429 waits for the next window.
    return {"retries": 2, "retry_delay": timedelta(seconds=30), **retry_policy_args()}


def _run_setting(name: str, default: Any) -> str:
    """The Jinja expression of a :func:`recover` setting: the code's value, unless the run's conf sets ``name``."""
    return f"(dag_run.conf or {{}}).get({name!r}, {default!r})"


def _waits(poll_interval: float, batch_wait: bool, end_from_trigger: bool) -> dict[str, Any]:
    return {
        "deferrable": True,
        "batch_wait": "{{ " + _run_setting("batch_wait", batch_wait) + " }}",
        "poll_interval": "{{ " + _run_setting("poll_interval", poll_interval) + " }}",
        "end_from_trigger": "{{ " + _run_setting("end_from_trigger", end_from_trigger) + " }}",
        "timeout": 1800,
    }


# A mapped step's label in the grid: whose post (the profile's connection id, never its key) and which.
_LABEL = "{{ task.ayrshare_conn_id }}: {{ task.post_id }}"


def recover(
    plan: Any,
    plan_task_id: str,
    *,
    poll_interval: float = 15.0,
    trust_plan: bool = True,
    end_from_trigger: bool = True,
    batch_wait: bool = True,
    notifiers: list[Any] | None = None,
) -> None:
    """
    Add the recovery's steps after ``plan`` to the DAG being defined.

    The keyword arguments say how the steps work, not what to recover: they are not DAG params. A
    run's conf may still set each one by its name (the benchmarks compare them on one DAG).

    :param plan: the plan task's output, an ``XComArg``: each retry task's arguments (``push_plan``
        returned them and pushed the rest).
    :param plan_task_id: its task id, where the report reads the whole plan.
    :param poll_interval: seconds between two reads of a retried post.
    :param trust_plan: retry each post from the record the plan just listed, without reading it
        again (one call per post) while that record is under 20 minutes old; off, each task reads first.
    :param end_from_trigger: a post that publishes ends its task in the triggerer (one worker run
        per post); off, the task resumes on a worker to end.
    :param batch_wait: on Airflow 3.3+, the waits share one history listing per profile and
        interval; off, each reads its own post.
    :param notifiers: Airflow notifiers (``SlackNotifier``, ``SmtpNotifier``...) called once the
        report task ends, whether it succeeds or fails; each takes the run's digest through
        :data:`~ayrshare_provider.digest.DIGEST_MARKDOWN`, ``DIGEST_TEXT`` or ``DIGEST_EMAIL_HTML``
        and ``DIGEST_SUBJECT`` in its templated fields.
    """
    waits = _waits(poll_interval, batch_wait, end_from_trigger)
    retries = RetryPostOperator.partial(
        task_id="retry_post",
        map_index_template=_LABEL,
        max_wait_hint="{{ params.max_wait_hint }}",
        # true, True or "true" (a conf's JSON, a form's text) trust the plan's record; anything else reads first
        max_record_age=(
            f"{{{{ {MAX_RECORD_AGE:g} if ({_run_setting('trust_plan', trust_plan)} | string | lower) == 'true'"
            " else 0 }}"
        ),
        **waits,
        **_safe_to_repeat(),
    ).expand_kwargs(plan)
    steps: list[Any] = [retries]

    person_task_id = chosen_task_id = None
    if ASKS_PEOPLE:
        from ayrshare_provider.operators.review import ReviewPostsOperator

        ask = ReviewPostsOperator(
            task_id="ask_person",
            posts=plan[NEEDS_PERSON_XCOM_KEY],
            timeout="{{ params.person_timeout }}",
            # A failed request (the API server busy) is asked again rather than leaving its posts unknown.
            retries=1,
            retry_delay=timedelta(seconds=30),
        )

        @task
        def route_chosen(chosen: Any, ti: Any = None) -> list[dict[str, Any]]:
            """Each post the person chose, with its profile's connection (a run can cover many)."""
            return post_tasks(pull_plan(ti, plan_task_id), chosen)

        chosen = RetryPostOperator.partial(
            task_id="retry_chosen_post",
            map_index_template=_LABEL,
            check_retryable=False,
            **waits,
            **_safe_to_repeat(),
        ).expand_kwargs(route_chosen(ask.output))
        person_task_id, chosen_task_id = ask.task_id, "retry_chosen_post"
        steps.append(chosen)

    @task(trigger_rule="all_done")
    def choose_reposts(params: Any = None, ti: Any = None) -> list[dict[str, Any]]:
        """When ``repost_spent``: the posts whose retry was spent before the run or failed in it."""
        pushed = ti.xcom_pull(task_ids=plan_task_id, key=PLAN_XCOM_KEY)
        if not params["repost_spent"] or pushed is None:  # no plan: the report says why
            return []
        whole_plan = RecoveryPlan.from_xcom(pushed)
        summaries = ti.xcom_pull(task_ids=["retry_post"], key=SUMMARY_XCOM_KEY) or []
        return post_tasks(whole_plan, posts_to_repost(whole_plan, summaries))

    to_repost = choose_reposts()
    retries >> to_repost
    steps.append(
        RepostOperator.partial(
            task_id="repost_post", map_index_template=_LABEL, **waits, **_safe_to_repeat()
        ).expand_kwargs(to_repost)
    )

    callbacks: dict[str, Any] = (
        {"on_success_callback": notifiers, "on_failure_callback": notifiers} if notifiers else {}
    )

    @task(trigger_rule="all_done", **callbacks)
    def report(ti: Any = None) -> dict[str, Any]:  # the report's table shows in this task's XCom
        """Every planned post with its outcome, as a table in this task's XCom and log."""
        return report_run(
            ti,
            plan_task_id,
            person_task_id=person_task_id,
            chosen_task_id=chosen_task_id,
            repost_task_id="repost_post",
        )

    steps >> report()


def push_plan(ti: Any, plan: RecoveryPlan, tasks: list[dict[str, Any]] | None = None) -> list[dict[str, Any]]:
    """
    A plan task's last step: push the plan for the later steps, and return one retry task's arguments per post.

    The plan goes under :data:`PLAN_XCOM_KEY` (the report reads it), its ``needs_person`` under
    :data:`NEEDS_PERSON_XCOM_KEY` (the person step reads it). The return value is
    :func:`~ayrshare_provider.recovery.retry_tasks` (Airflow maps tasks over return values only).

    :param ti: the plan task's task instance.
    :param plan: what :func:`~ayrshare_provider.recovery.plan_recovery` returned, or a run's joined
        plan (:func:`~ayrshare_provider.agency.join_plans`).
    :param tasks: the retry tasks' arguments, when already made (a joined plan); else from the plan.
    """
    # Each record travels once, in the return value; the plan in XCom keeps the decisions.
    ti.xcom_push(key=PLAN_XCOM_KEY, value=plan.to_xcom())
    ti.xcom_push(key=NEEDS_PERSON_XCOM_KEY, value=plan.needs_person)
    return retry_tasks(plan) if tasks is None else tasks


def pull_plan(ti: Any, plan_task_id: str) -> RecoveryPlan:
    """
    The run's plan, as its plan task pushed it.

    :raises AyrshareError: when there is none: the plan task ended before pushing it.
    """
    value = ti.xcom_pull(task_ids=plan_task_id, key=PLAN_XCOM_KEY)
    if value is None:
        raise AyrshareError(f"no recovery plan: {plan_task_id!r} ended before pushing one (see its log)")
    return RecoveryPlan.from_xcom(value, source=f"the plan XCom of {plan_task_id!r}")


def report_run(
    ti: Any,
    plan_task_id: str,
    retry_task_id: str = "retry_post",
    person_task_id: str | None = None,
    chosen_task_id: str | None = None,
    repost_task_id: str | None = None,
) -> dict[str, Any]:
    """
    A recovery run's report task: the plan and every step's outcome from XCom, logged as a table.

    Returns the report with its ``table`` (one string per line), so that the task's XCom in the
    Airflow UI shows it without opening a log.

    :param ti: the report task's task instance.
    :param plan_task_id: the task that pushed the plan under :data:`PLAN_XCOM_KEY`.
    :param retry_task_id: the (mapped) ``RetryPostOperator`` task.
    :param person_task_id: the ``ReviewPostsOperator`` task, if the run asks a person.
    :param chosen_task_id: the (mapped) retries of the posts the person chose.
    :param repost_task_id: the (mapped) ``RepostOperator`` task, if the run reposts.
    :raises RuntimeError: when a planned post has no known outcome, so that nothing is lost silently.
    :raises AyrshareProfilesFailedError: in a run over many profiles, when some could not be planned
        (after pushing the report of the others).
    """
    try:
        plan = pull_plan(ti, plan_task_id)
    except AyrshareError as err:  # the notifiers still tell people, with why
        _push_digest(ti, failed_digest(f"{ti.dag_id} {ti.run_id}", str(err)))
        raise

    def summaries(task_id: str | None) -> list[Any]:
        return list(ti.xcom_pull(task_ids=[task_id], key=SUMMARY_XCOM_KEY) or []) if task_id else []

    retried, chosen, reposted = summaries(retry_task_id), summaries(chosen_task_id), summaries(repost_task_id)
    result = build_report(
        plan,
        retried,
        person=ti.xcom_pull(task_ids=person_task_id, key=PERSON_ANSWER_XCOM_KEY) if person_task_id else None,
        chosen_summaries=chosen,
        repost_summaries=reposted,
    )
    table = format_report(result)
    print(table)
    # Before any raise below: the notifiers and the recoveries page tell failures too.
    networks = _networks_by_post(retried + chosen + reposted, plan)
    _push_digest(ti, build_digest(result, networks, run=f"{ti.dag_id} {ti.run_id}"))
    ti.xcom_push(key=RUN_STATS_XCOM_KEY, value=run_stats(result, plan, networks))
    if result["unknown"]:
        raise RuntimeError(f"{len(result['unknown'])} post(s) have no known outcome: {result['unknown']}")
    failed = [profile for profile in result.get("profiles", []) if profile["state"] == "failed"]
    if failed:
        # The others' outcomes stay in XCom; the run fails, so that someone fixes these profiles.
        ti.xcom_push(key="return_value", value={**result, "table": table.splitlines()})
        raise AyrshareProfilesFailedError(
            f"{len(failed)} of {len(result['profiles'])} profiles not recovered: "
            + "; ".join(f"{profile['label']}: {profile['reason']}" for profile in failed)
        )
    return {**result, "table": table.splitlines()}


def _push_digest(ti: Any, digest: Digest) -> None:
    for key, value in digest.xcoms().items():
        ti.xcom_push(key=key, value=value)


def _networks_by_post(summaries: list[Any], plan: RecoveryPlan) -> dict[str, list[str]]:
    """Each post's networks, from what the tasks and the plan saw of it."""
    seen: dict[str, set[str]] = {}
    entries = [s for s in summaries if isinstance(s, dict)] + list(plan.needs_person) + list(plan.skipped)
    for entry in entries:
        # A summary's or a request's networks are results ({"platform": ...}); a skipped entry's are names.
        found = entry.get("networks") or []
        platforms = {str(n.get("platform") if isinstance(n, dict) else n) for n in found} - {"None", ""}
        if entry.get("id") and platforms:
            seen.setdefault(entry["id"], set()).update(platforms)
    # A post no task read (retry later, skipped): the networks it had failed on, as planned.
    for post_id, failures in plan.failures.items():
        if post_id not in seen and failures:
            seen[post_id] = {str(failure["platform"]) for failure in failures}
    return {post_id: sorted(platforms) for post_id, platforms in seen.items()}
