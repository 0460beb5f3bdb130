"""
### Retry one failed Ayrshare post

Trigger with `{"post_id": "<Ayrshare post id>"}`. `RetryPostOperator` sends the one retry the
post is allowed (or sees that it is published or already in flight), then `PostStatusSensor`
waits in the triggerer until the post is published, and fails if it failed again.
"""

from __future__ import annotations

from airflow.providers.common.compat.sdk import DAG, Param

from ayrshare_provider.operators.ayrshare import RetryPostOperator
from ayrshare_provider.retry_policy import retry_policy_args
from ayrshare_provider.sensors.ayrshare import PostStatusSensor

with DAG(
    dag_id="ayrshare_retry_single_post",
    schedule=None,
    catchup=False,
    tags=["ayrshare", "example"],
    doc_md=__doc__,
    params={"post_id": Param(type="string", description="The Ayrshare post id to retry.")},
):
    # [START howto_operator_retry_post]
    retry = RetryPostOperator(
        task_id="retry_post",
        post_id="{{ params.post_id }}",
        wait_for_completion=False,
        retries=2,
        **retry_policy_args(),
    )
    # [END howto_operator_retry_post]
    # [START howto_sensor_post_status]
    published = PostStatusSensor(
        task_id="wait_until_published",
        post_id="{{ params.post_id }}",
        deferrable=True,
        poke_interval=15,
        timeout=1800,
    )
    # [END howto_sensor_post_status]
    retry >> published
