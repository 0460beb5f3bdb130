"""RetryPostOperator: every status branch, exactly one retry PUT, against a real HTTP server."""

from __future__ import annotations

import json

import pytest
from airflow.providers.common.compat.sdk import TaskDeferred

from ayrshare_provider.exceptions import (
    AyrshareAuthError,
    AyrshareNotFoundError,
    AyrshareNotRetryableError,
    AyrsharePostFailedError,
    AyrshareServerError,
    AyrshareWaitTimeoutError,
)
from ayrshare_provider.operators.ayrshare import RetryPostOperator
from ayrshare_provider.operators.task_mixin import run_here
from ayrshare_provider.triggers.post_status import PostStatusTrigger
from ayrshare_provider.utils.xcom import POST_URL_XCOM_KEY, SUMMARY_XCOM_KEY
from tests.context import make_context
from tests.fake_ayrshare import PASS, Fault
from tests.helpers import API_KEY, SECRETS, connection_json, error_post

PUT = "PUT /api/post/retry"


def operator(**kwargs) -> RetryPostOperator:
    defaults = {
        "task_id": "retry",
        "post_id": "p1",
        "poll_interval": 0.01,
        "timeout": 10,
        "deferrable": False,
        "hook_params": {"backoff": 0.01, "max_backoff": 0.05},
    }
    return RetryPostOperator(**{**defaults, **kwargs})


def test_a_failed_post_is_retried_once_and_waited_for(ayrshare_conn):
    ayrshare_conn.add_post(error_post("p1"), outcome="success", pending_reads=2)
    context = make_context()
    summary = operator().execute(context)
    assert ayrshare_conn.retry_puts["p1"] == 1
    assert summary["status"] == "success" and summary["retried"] is True and summary["action"] == "retried"
    assert summary["networks"][0]["post_url"] == "https://twitter.example.com/posts/99"
    assert context["ti"].xcoms[POST_URL_XCOM_KEY] == "https://twitter.example.com/posts/99"
    assert not any(secret in json.dumps(summary) for secret in SECRETS)


def test_a_published_post_is_returned_without_a_retry(ayrshare_conn):
    ayrshare_conn.add_post({**error_post("p1"), "status": "success", "errors": []})
    summary = operator().execute(make_context())
    assert summary["action"] == "already_published" and summary["retried"] is False
    assert ayrshare_conn.calls[PUT] == 0


@pytest.mark.parametrize("status", ["pending", "processing"])
def test_a_retry_in_flight_is_waited_for_not_sent_again(ayrshare_conn, status):
    ayrshare_conn.add_post({**error_post("p1"), "status": status})
    ayrshare_conn.mark_retried("p1")  # an earlier attempt of this task sent it
    summary = operator().execute(make_context())
    assert summary["status"] == "success" and summary["action"] == "in_flight"
    assert ayrshare_conn.calls[PUT] == 0


@pytest.mark.parametrize("status", ["paused", "awaiting approval", "deleted", "mystery"])
def test_any_other_status_fails_naming_post_and_status(ayrshare_conn, status):
    ayrshare_conn.add_post({**error_post("p1"), "status": status})
    with pytest.raises(AyrshareNotRetryableError, match=f"'p1'.*{status}"):
        operator().execute(make_context())
    assert ayrshare_conn.calls[PUT] == 0


def test_a_post_whose_errors_rule_out_a_retry_is_refused_unless_forced(ayrshare_conn):
    ayrshare_conn.add_post(error_post("p1", retryAvailable=False))
    with pytest.raises(AyrshareNotRetryableError, match="retryAvailable is false"):
        operator().execute(make_context())
    assert ayrshare_conn.calls[PUT] == 0
    assert operator(check_retryable=False).execute(make_context())["status"] == "success"
    assert ayrshare_conn.retry_puts["p1"] == 1


def test_a_post_that_fails_again_raises_with_the_networks_errors(ayrshare_conn):
    ayrshare_conn.add_post(error_post("p1"), outcome="error")
    context = make_context()
    with pytest.raises(
        AyrsharePostFailedError, match=r"twitter: code 272 X authorization failed.*X consumer key"
    ) as caught:
        operator().execute(context)
    assert caught.value.errors == [{"platform": "twitter", "code": 272, "message": "X authorization failed."}]
    assert context["ti"].xcoms[SUMMARY_XCOM_KEY]["status"] == "error"  # the report still sees it
    assert ayrshare_conn.retry_puts["p1"] == 1


def test_already_retried_and_in_flight_is_waited_for(ayrshare_conn):
    ayrshare_conn.add_post(error_post("p1"))
    # The first PUT is applied but its answer is 329, as when another run retried it first.
    ayrshare_conn.fail_next(
        PUT,
        Fault(400, json.dumps({"status": "error", "code": 329, "message": "already retried"}), apply=True),
    )
    summary = operator().execute(make_context())
    assert summary["action"] == "already_retried" and summary["status"] == "success"
    assert ayrshare_conn.calls[PUT] == 1


def test_already_retried_and_failed_again_fails_clearly(ayrshare_conn):
    ayrshare_conn.add_post(error_post("p1"))
    ayrshare_conn.mark_retried("p1")
    with pytest.raises(
        AyrsharePostFailedError, match="already retried.*status 'error'.*cannot be retried again"
    ):
        operator().execute(make_context())
    assert ayrshare_conn.calls[PUT] == 1


def test_a_lost_retry_answer_is_not_followed_by_a_second_put(ayrshare_conn):
    ayrshare_conn.add_post(error_post("p1"))
    ayrshare_conn.fail_next(
        PUT, Fault(502, "<html><title>502</title></html>", content_type="text/html", apply=True)
    )
    summary = operator().execute(make_context())
    assert summary["status"] == "success" and summary["retried"] is True
    assert ayrshare_conn.calls[PUT] == 1


def test_a_retry_that_surely_did_not_land_is_sent_again_and_applied_once(ayrshare_conn):
    ayrshare_conn.add_post(error_post("p1"))
    ayrshare_conn.fail_next(PUT, Fault(503, json.dumps({"status": "error", "code": 503, "message": "down"})))
    assert operator().execute(make_context())["status"] == "success"
    assert ayrshare_conn.calls[PUT] == 2 and ayrshare_conn.retry_puts["p1"] == 1


def test_an_unconfirmed_retry_fails_the_attempt_and_the_next_attempt_only_waits(ayrshare_conn):
    ayrshare_conn.add_post(error_post("p1"))
    ayrshare_conn.fail_next(PUT, Fault(502, "<html>gone</html>", content_type="text/html", apply=True))
    ayrshare_conn.fail_next("GET /api/post", PASS, *[Fault(503, "{}")] * 5)  # the first read is the pre-check
    with pytest.raises(AyrshareServerError, match="unknown"):
        operator().execute(make_context())
    summary = operator().execute(make_context())  # Airflow's task retry
    assert summary["status"] == "success" and summary["action"] == "in_flight"
    assert ayrshare_conn.calls[PUT] == 1


def test_waiting_past_the_timeout_fails_clearly(ayrshare_conn):
    ayrshare_conn.add_post(error_post("p1"), pending_reads=10_000)
    with pytest.raises(AyrshareWaitTimeoutError, match="not final by the deadline"):
        operator(timeout=0.3, poll_interval=0.05).execute(make_context())


def test_without_waiting_the_summary_says_pending(ayrshare_conn):
    ayrshare_conn.add_post(error_post("p1"))
    summary = operator(wait_for_completion=False).execute(make_context())
    assert summary["status"] == "pending" and summary["retried"] is True
    assert ayrshare_conn.calls["GET /api/post"] == 1


def test_unknown_post_and_bad_key_fail_before_any_retry(ayrshare_conn, monkeypatch):
    with pytest.raises(AyrshareNotFoundError):
        operator(post_id="ghost").execute(make_context())
    monkeypatch.setenv(
        "AIRFLOW_CONN_AYRSHARE_DEFAULT", connection_json(ayrshare_conn.url).replace(API_KEY, "bad-key-456")
    )
    with pytest.raises(AyrshareAuthError):
        operator().execute(make_context())
    assert ayrshare_conn.calls[PUT] == 0


def test_deferrable_defers_after_the_retry_and_completes_from_the_event(ayrshare_conn):
    ayrshare_conn.add_post(error_post("p1"))
    task = operator(deferrable=True, profile_key="PROFILE-FOR-TRIGGER-77")
    with pytest.raises(TaskDeferred) as deferred:
        task.execute(make_context())
    trigger = deferred.value.trigger
    assert isinstance(trigger, PostStatusTrigger) and deferred.value.method_name == "execute_complete"
    assert ayrshare_conn.retry_puts["p1"] == 1

    event = run_here(trigger)
    assert "PROFILE-FOR-TRIGGER-77" not in json.dumps(event)
    summary = task.execute_complete(make_context(), event)
    assert summary["status"] == "success" and summary["action"] == "retried"


def test_template_fields_and_no_io_at_construction():
    task = RetryPostOperator(task_id="t", post_id="{{ params.post_id }}", profile_key="never-rendered")
    assert set(task.template_fields) == {
        "post_id",
        "ayrshare_conn_id",
        "poll_interval",
        "timeout",
        "wait_for_completion",
        "check_retryable",
        "batch_wait",
        "max_wait_hint",
        "max_record_age",
        "end_from_trigger",
    }
    assert "hook" not in task.__dict__  # built only when executed


def test_a_task_retry_after_its_retry_failed_again_reports_it_without_a_second_put(ayrshare_conn):
    from tests.context import StateStore

    ayrshare_conn.add_post(error_post("p1"), outcome="error", pending_reads=0)
    store = StateStore()
    with pytest.raises(TaskDeferred):
        operator(deferrable=True).execute(make_context(store))
    assert operator().hook.get_post("p1")["status"] == "error"  # the retry settled: failed again
    # Airflow schedules another attempt (a worker lost, a scheduler race): it must not PUT again.
    with pytest.raises(AyrsharePostFailedError, match="earlier attempt of this task.*272"):
        operator(deferrable=True).execute(make_context(store))
    assert ayrshare_conn.calls[PUT] == 1


def test_an_attempt_that_may_have_sent_the_put_lets_the_next_one_ask_again(ayrshare_conn):
    from tests.context import StateStore

    store = StateStore({"ayrshare_retry": {"post_id": "p1", "state": "sending"}})
    ayrshare_conn.add_post(error_post("p1"))
    assert operator().execute(make_context(store))["status"] == "success"
    assert ayrshare_conn.calls[PUT] == 1 and store["ayrshare_retry"]["state"] == "sent"
