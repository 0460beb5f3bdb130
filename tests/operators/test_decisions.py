"""RetryPostOperator decides, acts, then reports once: wait hints that end, and a failed task that logs no stray error."""

from __future__ import annotations

import time

import pytest
from airflow.providers.common.compat.sdk import TaskDeferred

from ayrshare_provider.exceptions import AyrshareAuthError, AyrshareInvalidPostIdError
from ayrshare_provider.operators.ayrshare import RetryPostOperator
from ayrshare_provider.utils.xcom import POST_URL_XCOM_KEY, SUMMARY_XCOM_KEY
from tests.context import make_context
from tests.helpers import connection_json, error_post

HOOK = {"backoff": 0.01, "max_backoff": 0.05, "max_attempts": 2}


def undated_throttled_post(fake, wait: float) -> None:
    """Instagram's 435 with a wait, on a record that has neither ``scheduleDate`` nor ``created``."""
    record = error_post("p1", platform="instagram", code=435)
    record.pop("created", None)
    record["errors"][0]["details"] = wait
    fake.add_post(record, outcome="success", pending_reads=0)


def operator(**kwargs) -> RetryPostOperator:
    defaults = {
        "task_id": "retry",
        "post_id": "p1",
        "poll_interval": 0.05,
        "timeout": 30,
        "hook_params": HOOK,
    }
    return RetryPostOperator(**{**defaults, **kwargs})


def test_a_wait_hint_without_dates_counts_from_the_first_read_across_the_deferral(ayrshare_conn):
    undated_throttled_post(ayrshare_conn, wait=0.5)
    task, context = operator(deferrable=True), make_context()
    with pytest.raises(TaskDeferred) as deferred:
        task.execute(context)
    assert deferred.value.method_name == "execute_after_wait_hint" and ayrshare_conn.retry_puts["p1"] == 0
    time.sleep(0.6)  # what the TimeDeltaTrigger waits in the triggerer
    # Resumed, the task reads the post again: counted from now, the wait would start over for ever.
    with pytest.raises(TaskDeferred) as waiting:
        task.execute_after_wait_hint(context, None, **(deferred.value.kwargs or {}))
    assert waiting.value.method_name == "execute_complete" and ayrshare_conn.retry_puts["p1"] == 1


def test_without_deferral_the_same_wait_ends_too_and_the_one_retry_is_sent(ayrshare_conn):
    import signal

    def never_ended(signum: int, frame: object) -> None:
        raise AssertionError("the wait never ended")

    undated_throttled_post(ayrshare_conn, wait=0.5)
    previous = signal.signal(
        signal.SIGALRM, never_ended
    )  # the main thread: Airflow 2.11 runs execute() only there
    signal.alarm(20)
    try:
        outcome = operator(deferrable=False).execute(make_context())
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)
    assert outcome["status"] == "success" and ayrshare_conn.retry_puts["p1"] == 1


@pytest.mark.parametrize(
    ("post_id", "connection", "error"),
    [(" bad/id", None, AyrshareInvalidPostIdError), ("p1", {"password": "wrong"}, AyrshareAuthError)],
)
def test_a_task_that_fails_before_any_summary_still_leaves_the_link_its_key(
    ayrshare_conn, monkeypatch, post_id, connection, error
):
    """The extra link is read when every try ends: without the key, Airflow logs "XCom not found" after the real error."""
    if connection:
        monkeypatch.setenv(
            "AIRFLOW_CONN_AYRSHARE_DEFAULT", connection_json(ayrshare_conn.url).replace("APIKEY", "WRONG")
        )
    context = make_context()
    with pytest.raises(error):
        operator(post_id=post_id).execute(context)
    assert context["ti"].xcoms == {POST_URL_XCOM_KEY: ""}


def test_a_pasted_id_with_spaces_around_it_is_read_as_the_id(ayrshare_conn):
    ayrshare_conn.add_post({**error_post("p1"), "status": "success"})
    context = make_context()
    assert operator(post_id="  p1\n").execute(context)["action"] == "already_published"
    assert context["ti"].xcoms[SUMMARY_XCOM_KEY]["id"] == "p1"
