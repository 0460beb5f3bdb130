"""DAGs the DAG tests run: one failed post recovered by RetryPostOperator, then checked by PostStatusSensor."""

from __future__ import annotations

from airflow.providers.common.compat.sdk import DAG  # airflow.sdk on Airflow 3, airflow.models on 2.11

from ayrshare_provider.operators.ayrshare import RetryPostOperator
from ayrshare_provider.sensors.ayrshare import PostStatusSensor

for mode, deferrable in (("sync", False), ("deferrable", True)):
    with DAG(f"test_recover_one_{mode}", schedule=None, params={"post_id": "p1"}) as dag:
        retry = RetryPostOperator(
            task_id="retry_post",
            post_id="{{ params.post_id }}",
            deferrable=deferrable,
            poll_interval=0.2,
            timeout=60,
        )
        check = PostStatusSensor(
            task_id="post_is_published",
            post_id="{{ params.post_id }}",
            deferrable=deferrable,
            poke_interval=0.2,
            timeout=60,
        )
        retry >> check
    globals()[dag.dag_id] = dag
