"""
### Recover failed Ayrshare posts

Lists failed posts from Ayrshare's history, skips (with a reason) posts that are in fact
published or whose errors say a retry cannot help, lists as "retry later" (with the moment) the
posts whose network asked to wait (Instagram's code 435), retries every other one **exactly once**
with `RetryPostOperator` (one mapped, deferrable task per post), and ends with a report:
recovered, failed again (with each network's error), retry later, skipped (with reasons).

Params: `last_days` (0 = all), `limit` (1 to 1000), `platforms` (empty = all), `dry_run`,
`poll_interval` (seconds between two reads of a retried post, default 15), `batch_wait` (default
true: on Airflow 3.3+ the waits share one history listing per interval; false: each polls its post).
Connection: `ayrshare_default`. Waiting happens in the triggerer, not in worker slots, and on
Airflow 3.3+ every wait shares one history listing per interval (`batch_wait`), so a burst of
hundreds of posts costs about two calls per post: the read before the retry, and the retry.
To cap how many retry tasks call Ayrshare at once, give them a pool (README, "Recovering many posts").
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from airflow.providers.common.compat.sdk import DAG, Param, task

from ayrshare_provider.operators.ayrshare import RetryPostOperator
from ayrshare_provider.recovery import plan_recovery, report_run
from ayrshare_provider.retry_policy import retry_policy_args
from ayrshare_provider.utils.xcom import PLAN_XCOM_KEY

# Seconds between two reads of a retried post; the demo sets a short one.

with DAG(
    dag_id="ayrshare_failed_post_recovery",
    schedule=None,
    catchup=False,
    tags=["ayrshare", "example"],
    doc_md=__doc__,
    params={
        "last_days": Param(30, type="integer", minimum=0, description="Look back this many days (0: all)."),
        "limit": Param(
            100, type="integer", minimum=1, maximum=1000, description="At most this many failed posts."
        ),
        "platforms": Param([], type="array", description="Only posts to these networks (empty: all)."),
        "dry_run": Param(False, type="boolean", description="Decide and report, retry nothing."),
        "poll_interval": Param(
            15, type="number", exclusiveMinimum=0, description="Seconds between two reads of a retried post."
        ),
        "batch_wait": Param(
            True,
            type="boolean",
            description="Airflow 3.3+: the waits share one history listing per interval; off, each reads its post.",
        ),
    },
):

    @task
    def find_failed_posts(params: dict[str, Any], ti: Any = None) -> list[str]:
        """Read failed posts from history, decide retry or skip for each; return the ids to retry."""
        from ayrshare_provider.hooks.ayrshare import AyrshareHook

        records = AyrshareHook().get_history(
            status="error",
            last_days=params["last_days"],
            limit=params["limit"],
            platforms=params["platforms"] or None,
        )
        plan = plan_recovery(records, dry_run=params["dry_run"])
        print(
            f"{len(records)} failed posts: {len(plan['to_retry'])} to retry, "
            f"{len(plan['retry_later'])} to retry later, {len(plan['skipped'])} skipped"
        )
        for later in plan["retry_later"]:
            print(f"retry later {later['id']}: {later['reason']}")
        for skipped in plan["skipped"]:
            print(f"skip {skipped['id']}: {skipped['reason']}")
        ti.xcom_push(key=PLAN_XCOM_KEY, value=plan)
        return plan["to_retry"]

    retries = RetryPostOperator.partial(
        task_id="retry_post",
        deferrable=True,
        batch_wait="{{ params.batch_wait }}",
        poll_interval="{{ params.poll_interval }}",
        timeout=1800,
        # Safe to repeat: each attempt reads the post first and never sends a second retry. What no
        # attempt can fix fails at once (final errors); on Airflow 3.3+ the retry policy waits out a 429.
        retries=2,
        retry_delay=timedelta(seconds=30),
        **retry_policy_args(),
    ).expand(post_id=find_failed_posts())

    @task(trigger_rule="all_done")
    def report(ti: Any = None) -> dict[str, Any]:
        """Aggregate the retry tasks' summaries into one table; every planned post is accounted for."""
        return report_run(ti, "find_failed_posts")

    retries >> report()
