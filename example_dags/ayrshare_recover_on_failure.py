"""
### Recover posts as they fail (Airflow 3 asset watchers)

Nobody triggers this DAG: it is scheduled on the asset `ayrshare_failed_posts`, which an
`AssetWatcher` updates whenever `FailedPostsTrigger` (in the triggerer) sees posts that failed
since it last looked (`GET /api/history?status=error`, once a minute by default, the time
Ayrshare caches that answer). Each run reads the posts its events name, decides per post as the
recovery DAG does (skips with reasons, "retry later" for Instagram's wait hints), retries each
retryable post **exactly once** with `RetryPostOperator`, and ends with the same report.

Connection: `ayrshare_default`. A post that failed before the watcher first looked is not
reported: `ayrshare_failed_post_recovery` is for those. Requires Airflow 3.0+ (on 2.11 this file
defines no DAG and says so).
"""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

from airflow.providers.common.compat.sdk import DAG, task

from ayrshare_provider.operators.ayrshare import RetryPostOperator
from ayrshare_provider.recovery import plan_recovery, report_run
from ayrshare_provider.retry_policy import retry_policy_args
from ayrshare_provider.utils.xcom import PLAN_XCOM_KEY

try:
    from airflow.sdk import Asset, AssetWatcher
except ImportError:  # Airflow 2.11: no asset watchers
    AssetWatcher = None

if AssetWatcher is None:
    logging.getLogger(__name__).warning(
        "ayrshare_recover_on_failure needs Airflow 3.0+ (asset watchers); not defined on this Airflow. "
        "Schedule ayrshare_failed_post_recovery instead."
    )
else:
    from ayrshare_provider.triggers.ayrshare import FailedPostsTrigger

    failed_posts = Asset(
        "ayrshare_failed_posts",
        watchers=[
            AssetWatcher(name="ayrshare_failed_posts_watcher", trigger=FailedPostsTrigger("ayrshare_default"))
        ],
    )

    with DAG(
        dag_id="ayrshare_recover_on_failure",
        schedule=[failed_posts],
        catchup=False,
        tags=["ayrshare", "example"],
        doc_md=__doc__,
    ):

        @task
        def plan_failed_posts(triggering_asset_events: Any = None, ti: Any = None) -> list[str]:
            """Read each post the watcher's events name, decide retry or skip; return the ids to retry."""
            from ayrshare_provider.hooks.ayrshare import AyrshareHook

            post_ids = list(
                dict.fromkeys(
                    post["id"]
                    for events in (triggering_asset_events or {}).values()
                    for event in events
                    for post in (event.extra or {}).get("payload", {}).get("posts", [])
                )
            )
            hook = AyrshareHook()
            plan = plan_recovery([hook.get_post(post_id) for post_id in post_ids])
            print(
                f"{len(post_ids)} newly failed posts: {len(plan['to_retry'])} to retry, "
                f"{len(plan['retry_later'])} to retry later, {len(plan['skipped'])} skipped"
            )
            ti.xcom_push(key=PLAN_XCOM_KEY, value=plan)
            return plan["to_retry"]

        retries = RetryPostOperator.partial(
            task_id="retry_post",
            deferrable=True,
            batch_wait=True,
            timeout=1800,
            retries=2,
            retry_delay=timedelta(seconds=30),
            **retry_policy_args(),
        ).expand(post_id=plan_failed_posts())

        @task(trigger_rule="all_done")
        def report(ti: Any = None) -> dict[str, Any]:
            """Every post of the run with its outcome, as the recovery DAG reports it."""
            return report_run(ti, "plan_failed_posts")

        retries >> report()
