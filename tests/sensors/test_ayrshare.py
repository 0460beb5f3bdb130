"""PostStatusSensor in poke and deferrable mode, against a real HTTP server."""

from __future__ import annotations

import pytest
from airflow.providers.common.compat.sdk import TaskDeferred

from ayrshare_provider.exceptions import AyrshareAuthError, AyrsharePostFailedError
from ayrshare_provider.sensors.ayrshare import PostStatusSensor
from ayrshare_provider.triggers.post_status import PostStatusTrigger
from tests.context import make_context
from tests.fake_ayrshare import Fault
from tests.helpers import API_KEY, connection_json, error_post


def sensor(**kwargs) -> PostStatusSensor:
    defaults = {
        "task_id": "wait",
        "post_id": "p1",
        "poke_interval": 0.01,
        "timeout": 5,
        "deferrable": False,
        "hook_params": {"backoff": 0.01, "max_backoff": 0.05},
    }
    return PostStatusSensor(**{**defaults, **kwargs})


@pytest.mark.parametrize("status", ["pending", "processing", "paused", "awaiting approval", "unheard-of"])
def test_non_final_statuses_keep_the_sensor_waiting(ayrshare_conn, status):
    ayrshare_conn.add_post({**error_post("p1"), "status": status})
    assert sensor().poke(make_context()).is_done is False


def test_a_published_post_succeeds_with_its_summary(ayrshare_conn):
    ayrshare_conn.add_post(
        {
            **error_post("p1"),
            "status": "success",
            "errors": [],
            "postIds": [{"platform": "twitter", "status": "success", "postUrl": "https://x.test/1"}],
        }
    )
    result = sensor().poke(make_context())
    assert result.is_done and result.xcom_value["post_url"] == "https://x.test/1"


def test_a_failed_post_fails_the_sensor_with_its_networks(ayrshare_conn):
    ayrshare_conn.add_post(error_post("p1", code=161, platform="facebook"))
    with pytest.raises(AyrsharePostFailedError, match="facebook: code 161.*relink Facebook"):
        sensor().poke(make_context())


def test_a_transient_error_is_one_more_poke_but_a_bad_key_fails(ayrshare_conn, monkeypatch):
    ayrshare_conn.add_post({**error_post("p1"), "status": "pending"})
    ayrshare_conn.fail_next("GET /api/post", *[Fault(503, "{}")] * 5)
    assert sensor().poke(make_context()).is_done is False
    monkeypatch.setenv(
        "AIRFLOW_CONN_AYRSHARE_DEFAULT", connection_json(ayrshare_conn.url).replace(API_KEY, "bad-key-789")
    )
    with pytest.raises(AyrshareAuthError):
        sensor().poke(make_context())


def test_poke_mode_waits_until_the_retry_lands(ayrshare_conn):
    ayrshare_conn.add_post(error_post("p1"), pending_reads=3)
    ayrshare_conn.posts["p1"]["status"] = "pending"
    ayrshare_conn.mark_retried("p1")
    assert sensor().execute(make_context())["status"] == "success"
    assert ayrshare_conn.calls["GET /api/post"] == 4  # three pending reads, then success


def test_deferrable_checks_once_then_defers_only_if_needed(ayrshare_conn):
    ayrshare_conn.add_post({**error_post("p1"), "status": "success", "errors": []})
    assert sensor(deferrable=True).execute(make_context())["status"] == "success"
    ayrshare_conn.add_post({**error_post("p2"), "status": "pending"})
    with pytest.raises(TaskDeferred) as deferred:
        sensor(deferrable=True, post_id="p2", timeout=60).execute(make_context())
    assert isinstance(deferred.value.trigger, PostStatusTrigger)


def test_execute_complete_turns_events_into_results():
    task = sensor()
    summary = {"id": "p1", "status": "success", "networks": []}
    assert task.execute_complete(make_context(), {"status": "success", "summary": summary}) == summary
    failed = {
        "id": "p1",
        "status": "error",
        "networks": [
            {"platform": "twitter", "status": "error", "code": 272, "message": "X auth", "post_url": None}
        ],
    }
    with pytest.raises(AyrsharePostFailedError, match="twitter: code 272"):
        task.execute_complete(make_context(), {"status": "failed", "summary": failed})
