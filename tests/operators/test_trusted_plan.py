"""One call per post: a retry task acts on the plan's fresh record without reading the post first."""

from __future__ import annotations

import json
import time

import pytest
from airflow.providers.common.compat.sdk import TaskDeferred

from ayrshare_provider.exceptions import AyrsharePostFailedError
from ayrshare_provider.operators.ayrshare import MAX_RECORD_AGE, RetryPostOperator
from ayrshare_provider.posts import retry_facts
from ayrshare_provider.utils.xcom import SUMMARY_XCOM_KEY
from tests.context import make_context
from tests.fake_ayrshare import Fault
from tests.helpers import error_post

PUT, READ = "PUT /api/post/retry", "GET /api/post"


def operator(record: dict | None, age: float | None = 1.0, **kwargs) -> RetryPostOperator:
    """A deferrable retry task given the plan's ``record``, read ``age`` seconds ago (None: no moment)."""
    defaults = {
        "task_id": "retry",
        "post_id": "p1",
        "poll_interval": 0.01,
        "timeout": 10,
        "deferrable": True,
        "record": retry_facts(record) if record else None,
        "record_as_of": None if age is None else time.time() - age,
        "hook_params": {"backoff": 0.01, "max_backoff": 0.05},
    }
    return RetryPostOperator(**{**defaults, **kwargs})


def retry_until_deferred(task: RetryPostOperator, context: dict | None = None) -> TaskDeferred:
    with pytest.raises(TaskDeferred) as deferred:
        task.execute(context or make_context())
    return deferred.value


def test_a_fresh_record_is_retried_without_a_read(ayrshare_conn):
    ayrshare_conn.add_post(error_post("p1"))
    retry_until_deferred(operator(error_post("p1")))
    assert (ayrshare_conn.calls[READ], ayrshare_conn.calls[PUT]) == (0, 1)


@pytest.mark.parametrize(
    "record",
    [
        error_post("p1"),
        error_post("p1", code=161, platform="facebook"),  # a relink: a person's
        error_post("p1", retryAvailable=False),
        error_post("p1", code=329),  # spent
        {**error_post("p1"), "status": "success", "errors": []},
        {**error_post("p1"), "status": "processing"},
        {**error_post("p1", platform="instagram", code=435), "scheduleDate": "2026-11-20T10:00:00Z"},
    ],
    ids=["retry", "relink", "not-retryable", "spent", "published", "in-flight", "wait-hint"],
)
def test_the_plan_keeps_what_the_decision_reads_and_no_more(record):
    from ayrshare_provider.posts import plan_retry

    record = {**record, "post": "the text", "mediaUrls": ["https://img.test/a.png"], "firstComment": {"c": 1}}
    if record["errors"] and record["errors"][0]["code"] == 435:
        record["errors"][0]["details"] = 86400
    facts = retry_facts(record)
    assert plan_retry(facts) == plan_retry(record)
    assert not {"post", "mediaUrls", "firstComment"} & set(facts)


@pytest.mark.parametrize(
    ("age", "changes", "why"),
    [
        (MAX_RECORD_AGE + 5, {}, "over max_record_age"),
        (None, {}, "no moment"),  # its age is unknown
        (1.0, {"max_record_age": 0}, None),  # trusting is off (recover(trust_plan=False))
        (1.0, {"post_id": "p2"}, "not this post's"),
        (1.0, {"max_record_age": "{{ wrong }}"}, None),
    ],
    ids=["old", "no-moment", "off", "another-post", "bad-setting"],
)
def test_an_old_missing_or_unusable_record_is_read_first(ayrshare_conn, age, changes, why, caplog, capsys):
    ayrshare_conn.add_post(error_post("p1"))
    ayrshare_conn.add_post(error_post("p2"))
    task = operator(error_post("p1"), age=age, **changes)
    if changes.get("max_record_age") == "{{ wrong }}":
        from ayrshare_provider.exceptions import AyrshareConfigError

        with pytest.raises(AyrshareConfigError, match="max_record_age must be a number of seconds"):
            task.execute(make_context())
        assert ayrshare_conn.calls[PUT] == 0
        return
    retry_until_deferred(task)
    assert (ayrshare_conn.calls[READ], ayrshare_conn.calls[PUT]) == (1, 1)
    if why:  # said in the task's log (Airflow 3 logs through structlog to stdout, 2.11 through logging)
        assert why in caplog.text + capsys.readouterr().out


def test_a_later_attempt_always_reads_first(ayrshare_conn):
    ayrshare_conn.add_post(error_post("p1"))
    context = make_context()
    context["ti"].try_number = 2
    retry_until_deferred(operator(error_post("p1")), context)
    assert (ayrshare_conn.calls[READ], ayrshare_conn.calls[PUT]) == (1, 1)


def test_a_record_that_calls_for_no_retry_is_read_first(ayrshare_conn):
    published = {**error_post("p1"), "status": "success", "errors": []}
    ayrshare_conn.add_post(published)
    summary = operator(published).execute(make_context())
    assert summary["action"] == "already_published"
    assert (ayrshare_conn.calls[READ], ayrshare_conn.calls[PUT]) == (1, 0)


def test_a_post_retried_meanwhile_and_failed_ends_as_without_the_plan(ayrshare_conn):
    """The plan's record still says "error", but another run retried the post since: 329, read, fail."""
    ayrshare_conn.add_post(error_post("p1"))
    ayrshare_conn.mark_retried("p1")
    with pytest.raises(AyrsharePostFailedError, match="already retried.*status 'error'") as trusted:
        operator(error_post("p1")).execute(make_context())
    assert (ayrshare_conn.calls[READ], ayrshare_conn.calls[PUT]) == (1, 1)  # the read after the 329 only
    with pytest.raises(AyrsharePostFailedError) as reading:
        operator(None).execute(make_context())
    assert str(trusted.value) == str(reading.value)


def test_a_post_retried_meanwhile_and_in_flight_is_waited_for(ayrshare_conn):
    ayrshare_conn.add_post(error_post("p1"))
    ayrshare_conn.fail_next(
        PUT,
        Fault(400, json.dumps({"status": "error", "code": 329, "message": "already retried"}), apply=True),
    )
    context = make_context()
    deferred = retry_until_deferred(operator(error_post("p1")), context)
    assert deferred.trigger.action == "already_retried"
    assert context["ti"].xcoms[SUMMARY_XCOM_KEY]["action"] == "already_retried"
    assert ayrshare_conn.calls[PUT] == 1


def test_a_wait_hint_in_the_record_is_waited_out_then_read(emulator_conn):
    """The plan's record decides the wait too; after it, the post is read again before its one retry."""
    from ayrshare_provider.hooks.ayrshare import AyrshareHook
    from tests.operators.test_wait_hint import puts, seed_throttled

    post_id = seed_throttled(emulator_conn, wait=30)
    planned = AyrshareHook().get_post(post_id)  # as the plan read it
    reads_before = emulator_conn.state.counters()["requests"].get("GET /api/post/{id}", 0)
    task = operator(planned, post_id=post_id, max_wait_hint=60)
    context = make_context()
    deferred = retry_until_deferred(task, context)
    assert deferred.method_name == "execute_after_wait_hint"
    assert emulator_conn.state.counters()["requests"].get("GET /api/post/{id}", 0) == reads_before
    with pytest.raises(TaskDeferred):  # resumed (the hint still runs): it reads the post, then waits on
        task.execute_after_wait_hint(context)
    assert emulator_conn.state.counters()["requests"].get("GET /api/post/{id}", 0) == reads_before + 1
    assert puts(emulator_conn, post_id) == 0


@pytest.mark.parametrize("poll_interval", [0, -1, "0"])
def test_a_poll_interval_of_no_time_is_a_config_error_before_any_call(ayrshare_conn, poll_interval):
    """A run's conf can set poll_interval (no Param checks it there): 0 would read the post back to back."""
    from ayrshare_provider.exceptions import AyrshareConfigError

    ayrshare_conn.add_post(error_post("p1"))
    task = operator(error_post("p1"), poll_interval=poll_interval)
    with pytest.raises(AyrshareConfigError, match="poll_interval must be above 0 seconds"):
        task.execute(make_context())
    assert ayrshare_conn.calls[READ] == ayrshare_conn.calls[PUT] == 0
