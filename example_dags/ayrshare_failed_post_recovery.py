"""
### Recover failed Ayrshare posts

Lists failed posts from Ayrshare's history and takes each one as far as it can go, in this run:

- **retried**, exactly once, with `RetryPostOperator` (one mapped, deferrable task per post);
  a post whose network asked to wait (Instagram's code 435, a Retry-After) is retried when that
  wait is over, deferred in the triggerer meanwhile, if the wait is within `max_wait_hint`;
- **a person is asked** (Airflow 3.1+, `ask_person`): posts only a person can unblock (a network to
  relink, duplicate text, refused media, `retryAvailable: false`) go to one human-in-the-loop
  request (Browse > Required Actions) listing each post's errors and what to fix; the posts the
  person picks are retried, the others are reported as left by them; no answer within
  `person_timeout` retries none;
- **reposted** (`repost_spent`, off by default): a post whose one retry is spent becomes one new
  post to only the networks that did not publish it (an idempotencyKey makes it exactly once);
- **reported**: the `report` task's XCom holds the outcome table (recovered, recovered after a
  wait, retried for a person, reposted, failed again, left by a person, retry later, skipped), and
  its digest goes to the notifiers of `digest_notifiers()`: by e-mail (`SmtpNotifier`) when the
  environment variable `AYRSHARE_DIGEST_EMAIL` names the addresses, on Slack (`SlackNotifier`)
  when `AYRSHARE_DIGEST_SLACK_CONN_ID` names a Slack API connection.

Many profiles (an agency's clients): `ayrshare_conn_ids` lists one Ayrshare connection per User
Profile (default `["ayrshare_default"]`). Each profile is planned by its own `find_failed_posts`
task (labelled with its title), retried with its own key, rate budget and shared waits, all
profiles side by side; a suspended profile is skipped with its reason, one whose keys Ayrshare
refuses fails its own task (and the run, at the report) while the others recover. The report
groups outcomes by profile. See the docs, "Many profiles (agencies)".

Params (what to recover, and how far to go): `ayrshare_conn_ids`, `last_days` (0 = all),
`platforms` (empty = all), `dry_run`, `max_wait_hint` (seconds, default 93600 = 26 h),
`ask_person` (default true), `person_timeout` (seconds, default 86400), `repost_spent` (default
false). Each profile's failed posts are listed once, up to 1,000 (Ayrshare's most). How the steps
work (`poll_interval`, 15 s between two reads of a retried post; `trust_plan`, `end_from_trigger`,
`batch_wait`) are arguments of `recover()` in this file, not params. To cap how many retry tasks
call Ayrshare at once, give them a pool (the docs, "Recovering many posts").
"""

from __future__ import annotations

from typing import Any

from airflow.providers.common.compat.sdk import DAG, Param, get_current_context, task

from ayrshare_provider.recovery_steps import (
    ASKS_PEOPLE,
    push_plan,
    recover,
    recovery_dag_args,
    recovery_params,
)


def digest_notifiers() -> list[Any]:
    """
    Who hears of each run: its digest by e-mail to ``AYRSHARE_DIGEST_EMAIL`` (comma-separated, through
    the ``smtp_default`` connection) and in Slack through ``AYRSHARE_DIGEST_SLACK_CONN_ID`` (channel
    ``AYRSHARE_DIGEST_SLACK_CHANNEL``). Read where the DAG file is parsed (the dag-processor's
    environment). Any other Airflow notifier takes the digest the same way.
    """
    import os

    from ayrshare_provider.digest import DIGEST_EMAIL_HTML, DIGEST_MARKDOWN, DIGEST_SUBJECT

    notifiers: list[Any] = []
    if emails := os.environ.get("AYRSHARE_DIGEST_EMAIL"):
        from airflow.providers.smtp.notifications.smtp import SmtpNotifier

        notifiers.append(
            SmtpNotifier(
                to=[email.strip() for email in emails.split(",") if email.strip()],
                subject=DIGEST_SUBJECT,
                html_content=DIGEST_EMAIL_HTML,
            )
        )
    if slack_conn_id := os.environ.get("AYRSHARE_DIGEST_SLACK_CONN_ID"):
        from airflow.providers.slack.notifications.slack import SlackNotifier

        channel = os.environ.get("AYRSHARE_DIGEST_SLACK_CHANNEL", "#social")
        notifiers.append(SlackNotifier(slack_conn_id=slack_conn_id, text=DIGEST_MARKDOWN, channel=channel))
    return notifiers


with DAG(
    dag_id="ayrshare_failed_post_recovery",
    schedule=None,
    catchup=False,
    max_active_runs=1,  # a run can wait a day (a hint, a person): the next must not retry the same posts
    **recovery_dag_args(),  # on SQLite (where the DAG file can see it), few task runs at once
    tags=["ayrshare", "example"],
    doc_md=__doc__,
    params={
        "ayrshare_conn_ids": Param(
            ["ayrshare_default"],
            type="array",
            items={"type": "string", "pattern": r"^[\w.-]+$"},
            minItems=1,
            description="The Ayrshare connections to recover, one per User Profile (their keys stay in "
            "the connections).",
        ),
        "last_days": Param(30, type="integer", minimum=0, description="Look back this many days (0: all)."),
        "platforms": Param([], type="array", description="Only posts to these networks (empty: all)."),
        "dry_run": Param(False, type="boolean", description="Decide and report, retry nothing."),
        **recovery_params(),
    },
):

    @task
    def choose_profiles(params: dict[str, Any]) -> list[str]:
        """The connections to recover, checked (one per User Profile)."""
        from ayrshare_provider.agency import profiles_to_cover

        return profiles_to_cover(params["ayrshare_conn_ids"])

    @task(map_index_template="{{ ayrshare_profile }}", multiple_outputs=False)  # one XCom per profile
    def find_failed_posts(ayrshare_conn_id: str, params: dict[str, Any], ti: Any = None) -> dict[str, Any]:
        """One profile: who it is, its failed posts (one history listing), sorted into the recovery's paths."""
        from ayrshare_provider.agency import PROFILE_LABEL, plan_profile, why
        from ayrshare_provider.hooks.ayrshare import AyrshareHook
        from ayrshare_provider.recovery_plan import RecoveryPlan
        from ayrshare_provider.utils.xcom import PROFILE_ERROR_XCOM_KEY

        context = get_current_context()
        context[PROFILE_LABEL] = ayrshare_conn_id  # type: ignore[literal-required]  # the grid's label
        ask = params["ask_person"] and ASKS_PEOPLE
        try:
            part = plan_profile(AyrshareHook(ayrshare_conn_id), ayrshare_conn_id, params, ask_person=ask)
        except Exception as err:  # a refused key, a missing connection: the report names it; the others go on
            ti.xcom_push(key=PROFILE_ERROR_XCOM_KEY, value={"conn_id": ayrshare_conn_id, "error": why(err)})
            raise
        context[PROFILE_LABEL] = part["label"]  # type: ignore[literal-required]
        if part["plan"] is None:
            print(f"{part['label']}: {part['reason']}")
            return part
        plan = RecoveryPlan.from_xcom(part["plan"])
        print(f"{part['label']}: {part['listed']} failed posts: {plan.describe()}")
        for entry in plan.waits + plan.retry_later + plan.skipped:
            print(f"{entry['id']}: {entry['reason']}")
        return part

    @task(trigger_rule="all_done")
    def join_plans(
        conn_ids: list[str], parts: Any, params: dict[str, Any], ti: Any = None
    ) -> list[dict[str, Any]]:
        """Every profile's plan as one (a failed profile noted with why), and every retry task's arguments."""
        from airflow.configuration import conf

        from ayrshare_provider.agency import join_plans as join
        from ayrshare_provider.utils.xcom import PROFILE_ERROR_XCOM_KEY

        errors = ti.xcom_pull(task_ids="find_failed_posts", key=PROFILE_ERROR_XCOM_KEY)
        plan, tasks = join(
            conn_ids,
            list(parts or []),
            [errors] if isinstance(errors, dict) else list(errors or []),  # one mapped task: a lazy sequence
            dry_run=params["dry_run"],
            repost_spent=params["repost_spent"],
            max_tasks=conf.getint("core", "max_map_length"),
        )
        return push_plan(ti, plan, tasks)

    conn_ids = choose_profiles()
    recover(
        join_plans(conn_ids, find_failed_posts.expand(ayrshare_conn_id=conn_ids)),
        "join_plans",
        # How the steps work: code, not params (these are the defaults).
        poll_interval=15,
        trust_plan=True,
        end_from_trigger=True,
        batch_wait=True,
        notifiers=digest_notifiers(),
    )
