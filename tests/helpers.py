"""What tests share besides fixtures: distinctive credentials, a connection, the DAGs folder.

Nothing here imports Airflow at module level: conftest.py points Airflow at a throwaway home
before anything loads it.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from ayrshare_emulator.records import failed_record

# Distinctive credentials, so that a test can search any output for them.
API_KEY = "APIKEY-7f3e9c1d-secret"
PROFILE_KEY = "PROFILEKEY-2b8a4e6f-secret"
X_KEY = "XCONSUMERKEY-5d1c7a9b-secret"
X_SECRET = "XCONSUMERSECRET-9e4f2a6c-secret"
SECRETS = (API_KEY, PROFILE_KEY, X_KEY, X_SECRET)


#: Issue 32's burst: 200 bulk failed posts (seed 11) on an emulator with Ayrshare's own clocks,
#: unscaled: 300 requests per 5 minutes, history cached 60 s, retries final 1 to 5 minutes after the PUT.
BURST_ON_AYRSHARES_CLOCKS: dict[str, Any] = {
    "scenario": "bulk",
    "count": 200,
    "seed": 11,
    "retry_delay": 60.0,
    "retry_delay_max": 300.0,
    "history_cache": 60.0,
    "rate_limit": 300,
    "rate_window": 300.0,
}


def connection_json(host: str, **extra: str) -> str:
    """An Ayrshare connection in the ``AIRFLOW_CONN_*`` JSON form."""
    from airflow.models.connection import Connection

    return Connection(conn_type="ayrshare", host=host, password=API_KEY, extra=extra or None).as_json()


def declare_asset(name: str) -> None:
    """The asset as a deployed DAG declares it (a DAG file's Asset(name) is synced like this)."""
    from airflow.models.asset import AssetActive, AssetModel
    from airflow.utils.session import create_session

    with create_session() as session:
        if session.query(AssetModel).filter(AssetModel.name == name).first() is None:
            session.add(AssetModel(name=name, uri=name, group="asset"))
            session.add(AssetActive(name=name, uri=name))


def dags_folder() -> Path:
    """The test session's DAGs folder: the example DAGs users copy, and tests/dags, side by side."""
    return Path(os.environ["AIRFLOW__CORE__DAGS_FOLDER"])


def load_dag(dag_id: str) -> Any:
    """A DAG from the DAGs folder, parsed as Airflow parses it."""
    from tests.airflow_compat import dag_bag

    dag = dag_bag(str(dags_folder())).get_dag(dag_id)
    assert dag is not None, f"no DAG {dag_id!r} in {dags_folder()}"
    return dag


def failed_post(platform: str = "linkedin", **fields: Any) -> dict[str, Any]:
    """A post that failed on one network, to seed the emulator (it adds id and date); ``fields`` win."""
    return failed_record([platform], {platform: (136, "timeout")}, text="hi", **fields)


def error_post(post_id: str, platform: str = "twitter", code: int = 136, **fields: Any) -> dict[str, Any]:
    """A post that failed on one network, with an id and a fixed date (the fake's); ``fields`` win."""
    fields.setdefault("created", "2026-11-20T10:00:00Z")
    return failed_record(
        [platform], {platform: (code, "Network hiccup.")}, text="hello", post_id=post_id, **fields
    )


def seed_posts(emulator: Any, *records: dict[str, Any], profile_key: str = "") -> list[str]:
    """Put records into a running emulator through its control API; returns their ids."""
    import requests

    answer = requests.post(
        f"{emulator.url}/_emulator/posts",
        json={"profile_key": profile_key, "posts": list(records)},
        timeout=10,
    )
    answer.raise_for_status()
    return answer.json()["ids"]


def seed_profile(state: Any, title: str, key: str, posts: int, status: str = "active") -> list[str]:
    """A client's User Profile in an in-process emulator, with ``posts`` retryable failed posts; their ids."""
    from ayrshare_emulator import profiles, scenarios

    profile = profiles.add_profile(state, title, key=key, status=status)
    return [
        scenarios.add_failed(
            state,
            key,
            ["linkedin"],
            {"linkedin": scenarios.TRANSIENT},
            text=f"{title} post {number}",
            age_days=0.1,
            refId=profile.ref_id,
            profileTitle=title,
        ).id
        for number in range(posts)
    ]
