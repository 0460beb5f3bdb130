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


# The person step alone (Airflow 3.1+), with a notifier that writes what it was given to a file.
from ayrshare_provider.recovery_steps import ASKS_PEOPLE  # noqa: E402  (after the DAGs every Airflow has)

if ASKS_PEOPLE:
    import os
    from pathlib import Path

    from airflow.sdk.bases.notifier import BaseNotifier

    from ayrshare_provider.operators.review import ReviewPostsOperator

    class FileNotifier(BaseNotifier):
        """Writes the request's subject and body where the test reads them (AYRSHARE_TEST_NOTIFIED)."""

        def notify(self, context: dict) -> None:
            task = context["task"]
            Path(os.environ["AYRSHARE_TEST_NOTIFIED"]).write_text(f"{task.subject}\n{task.body}")

    with DAG("test_ask_person", schedule=None, params={"person_timeout": 2}) as dag:
        ReviewPostsOperator(
            task_id="ask_person",
            posts=[
                {
                    "id": "relinkme",
                    "text": "Needs a relink",
                    "networks": [
                        {
                            "platform": "facebook",
                            "code": 161,
                            "message": "Facebook authorization expired.",
                            "fix": "relink Facebook for this profile",
                        }
                    ],
                    "reason": "errors need a person, not a retry",
                }
            ],
            timeout="{{ params.person_timeout }}",
            notifiers=[FileNotifier()],
        )
    globals()[dag.dag_id] = dag
