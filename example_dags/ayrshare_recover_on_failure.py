"""
### Recover posts as they fail (Airflow 3 asset watchers)

Nobody triggers this DAG: it is scheduled on the asset `ayrshare_failed_posts`, which an
`AssetWatcher` updates whenever `FailedPostsTrigger` (in the triggerer) sees posts that failed
since it last looked (`GET /api/history?status=error`, once a minute by default, the time
Ayrshare caches that answer). Each run reads the posts its events name, decides per post as the
recovery DAG does, with the same steps and params: retries each retryable post **exactly once**
(after its network's wait hint, within `max_wait_hint`), asks a person about the posts only a
person can unblock (Airflow 3.1+), reposts spent ones when `repost_spent`, and reports them all.

With a webhook secret in the connection and Ayrshare's scheduled-action webhook registered, the
webhook receiver reports failures on the same asset within seconds and the watcher lists only
every 10 minutes, as a safety net (docs: Webhooks); each failed post starts one run either way.

Connection: `ayrshare_default`. A post that failed before the watcher first looked is not
reported: `ayrshare_failed_post_recovery` is for those. Requires Airflow 3.0+ (on 2.11 this file
defines no DAG and says so).
"""

from __future__ import annotations

import logging
import time
from typing import Any

from airflow.providers.common.compat.sdk import DAG, task

from ayrshare_provider.recovery import plan_recovery
from ayrshare_provider.recovery_steps import (
    ASKS_PEOPLE,
    push_plan,
    recover,
    recovery_dag_args,
    recovery_params,
)
from ayrshare_provider.version_compat import asset_watcher_classes

watchers = asset_watcher_classes()  # None on Airflow 2.11: no asset watchers
if watchers is None:
    logging.getLogger(__name__).warning(
        "ayrshare_recover_on_failure needs Airflow 3.0+ (asset watchers); not defined on this Airflow. "
        "Schedule ayrshare_failed_post_recovery instead."
    )
else:
    Asset, AssetWatcher = watchers
    from ayrshare_provider.assets import failed_posts_asset_name
    from ayrshare_provider.triggers.failed_posts import FailedPostsTrigger

    # Also where Airflow's webhook receiver reports the failures Ayrshare pushes (docs: Webhooks).
    # [START howto_trigger_failed_posts]
    failed_posts = Asset(
        failed_posts_asset_name("ayrshare_default"),  # "ayrshare_failed_posts"
        watchers=[
            AssetWatcher(name="ayrshare_failed_posts_watcher", trigger=FailedPostsTrigger("ayrshare_default"))
        ],
    )
    # [END howto_trigger_failed_posts]

    with DAG(
        dag_id="ayrshare_recover_on_failure",
        schedule=[failed_posts],
        catchup=False,
        tags=["ayrshare", "example"],
        doc_md=__doc__,
        params=recovery_params(),
        **recovery_dag_args(),  # on SQLite (where the DAG file can see it), few task runs at once
    ):

        @task
        def plan_failed_posts(
            params: dict[str, Any], triggering_asset_events: Any = None, ti: Any = None
        ) -> list[dict[str, Any]]:
            """Read each post the watcher's events name, and sort them into the recovery's paths."""
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
            read_at = time.time()  # each post is read fresh, not from a cache
            plan = plan_recovery(
                [hook.get_post(post_id) for post_id in post_ids],
                records_as_of=read_at,
                max_wait_hint=params["max_wait_hint"],
                ask_person=params["ask_person"] and ASKS_PEOPLE,
                repost_spent=params["repost_spent"],
            )
            print(f"{len(post_ids)} newly failed posts: {plan.describe()}")
            return push_plan(ti, plan)

        recover(plan_failed_posts(), "plan_failed_posts")
