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
  wait, retried for a person, reposted, failed again, left by a person, retry later, skipped).

Params: `last_days` (0 = all), `limit` (1 to 1000), `platforms` (empty = all), `dry_run`,
`max_wait_hint` (seconds, default 93600 = 26 h), `ask_person` (default true), `person_timeout`
(seconds, default 86400), `repost_spent` (default false), `poll_interval` (seconds between two
reads of a retried post, default 15), `batch_wait` (default true: on Airflow 3.3+ the waits share
one history listing per interval). Connection: `ayrshare_default`. To cap how many retry tasks
call Ayrshare at once, give them a pool (README, "Recovering many posts").
"""

from __future__ import annotations

from typing import Any

from airflow.providers.common.compat.sdk import DAG, Param, task

from ayrshare_provider.recovery import plan_recovery, push_plan
from ayrshare_provider.recovery_steps import ASKS_PEOPLE, recover, recovery_params

with DAG(
    dag_id="ayrshare_failed_post_recovery",
    schedule=None,
    catchup=False,
    max_active_runs=1,  # a run can wait a day (a hint, a person): the next must not retry the same posts
    tags=["ayrshare", "example"],
    doc_md=__doc__,
    params={
        "last_days": Param(30, type="integer", minimum=0, description="Look back this many days (0: all)."),
        "limit": Param(
            100, type="integer", minimum=1, maximum=1000, description="At most this many failed posts."
        ),
        "platforms": Param([], type="array", description="Only posts to these networks (empty: all)."),
        "dry_run": Param(False, type="boolean", description="Decide and report, retry nothing."),
        **recovery_params(),
    },
):

    @task
    def find_failed_posts(params: dict[str, Any], ti: Any = None) -> list[dict[str, Any]]:
        """Read failed posts from history and sort them into the recovery's paths, with reasons."""
        from ayrshare_provider.hooks.ayrshare import AyrshareHook

        hook = AyrshareHook()
        as_of = hook.history_as_of()  # before the listing: what it shows is at least this fresh
        records = hook.get_history(
            status="error",
            last_days=params["last_days"],
            limit=params["limit"],
            platforms=params["platforms"] or None,
        )
        plan = plan_recovery(
            records,
            dry_run=params["dry_run"],
            max_wait_hint=params["max_wait_hint"],
            ask_person=params["ask_person"] and ASKS_PEOPLE,
            repost_spent=params["repost_spent"],
            records_as_of=as_of,
        )
        print(
            f"{len(records)} failed posts: {len(plan['to_retry'])} to retry "
            f"({len(plan['waits'])} after a wait), {len(plan['needs_person'])} for a person, "
            f"{len(plan['spent'])} to repost, {len(plan['retry_later'])} to retry later, "
            f"{len(plan['skipped'])} skipped"
        )
        for entry in plan["waits"] + plan["retry_later"] + plan["skipped"]:
            print(f"{entry['id']}: {entry['reason']}")
        return push_plan(ti, plan)

    recover(find_failed_posts(), "find_failed_posts")
