"""A post that publishes ends its task in the triggerer, with the XComs a resumed task would push."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from airflow.providers.common.compat.sdk import TaskDeferred
from airflow.triggers.base import TaskSuccessEvent

from ayrshare_provider.exceptions import AyrsharePostFailedError
from ayrshare_provider.operators.ayrshare import RetryPostOperator
from ayrshare_provider.operators.repost import RepostOperator
from ayrshare_provider.sensors.ayrshare import PostStatusSensor
from ayrshare_provider.triggers.ayrshare import PostStatusTrigger
from tests.context import make_context
from tests.helpers import error_post

TRIGGER_ID = 7  # what the triggerer sets on each trigger it runs; dag.test() and run_here() set none


def first_event(trigger: PostStatusTrigger) -> Any:
    async def run() -> Any:
        events = trigger.run()
        try:
            return await anext(events)
        finally:
            await events.aclose()

    return asyncio.run(run())


def deferred_trigger(task: Any) -> PostStatusTrigger:
    with pytest.raises(TaskDeferred) as deferred:
        task.execute(make_context())
    return deferred.value.trigger


def retry_task(**kwargs: Any) -> RetryPostOperator:
    return RetryPostOperator(
        task_id="retry",
        post_id="p1",
        deferrable=True,
        poll_interval=0.01,
        timeout=10,
        hook_params={"backoff": 0.01, "max_backoff": 0.05},
        **kwargs,
    )


def resumed_xcoms(task: Any, trigger: PostStatusTrigger) -> dict[str, Any]:
    """What the task pushes when the same wait's plain event resumes it (return value included)."""
    plain = PostStatusTrigger(**{**trigger.serialize()[1], "end_from_trigger": False})
    context = make_context()
    result = task.execute_complete(context, first_event(plain).payload)
    return {**context["ti"].xcoms, "return_value": result}


def test_a_published_post_ends_the_task_with_the_xcoms_of_a_resumed_one(ayrshare_conn):
    ayrshare_conn.add_post(error_post("p1"), outcome="success", pending_reads=1)
    task = retry_task(profile_key="PROFILE-NEVER-IN-XCOM-31")
    trigger = deferred_trigger(task)
    assert trigger.end_from_trigger
    trigger.trigger_id = TRIGGER_ID
    ended = first_event(trigger)
    assert isinstance(ended, TaskSuccessEvent)
    assert ended.xcoms["ayrshare_post_url"] == "https://twitter.example.com/posts/99"
    assert ended.xcoms["ayrshare_summary"]["status"] == "success"
    assert ended.xcoms["ayrshare_summary"]["retried_at"]  # what the task knew travels with it
    assert ended.xcoms == resumed_xcoms(task, trigger)
    assert "PROFILE-NEVER-IN-XCOM-31" not in repr(ended.xcoms)


def test_a_post_that_fails_again_resumes_the_task_which_raises_as_always(ayrshare_conn):
    ayrshare_conn.add_post(error_post("p1"), outcome="error", pending_reads=1)
    task = retry_task()
    trigger = deferred_trigger(task)
    trigger.trigger_id = TRIGGER_ID
    event = first_event(trigger)
    assert not isinstance(event, TaskSuccessEvent) and event.payload["status"] == "failed"
    with pytest.raises(AyrsharePostFailedError, match="272"):
        task.execute_complete(make_context(), event.payload)


def test_without_a_triggerer_the_task_resumes_as_dag_test_needs(ayrshare_conn):
    """dag.test() runs the trigger in its own process and resumes with the payload: no XComs there."""
    ayrshare_conn.add_post(error_post("p1"), outcome="success", pending_reads=1)
    event = first_event(deferred_trigger(retry_task()))
    assert not isinstance(event, TaskSuccessEvent) and event.payload["status"] == "success"


@pytest.mark.parametrize(
    ("kwargs", "ends", "return_value"),
    [
        ({"end_from_trigger": False}, False, False),
        ({"end_from_trigger": "{{ params.x }}"}, None, None),  # unrendered: a clear error
        ({"outlets": ["ayrshare://recovered"]}, False, False),
        ({"do_xcom_push": False}, True, False),
    ],
    ids=["off", "bad-flag", "outlets", "no-return-value"],
)
def test_what_ends_from_the_trigger_and_what_resumes(ayrshare_conn, kwargs, ends, return_value):
    from ayrshare_provider.exceptions import AyrshareConfigError

    ayrshare_conn.add_post(error_post("p1"), outcome="success", pending_reads=1)
    if "outlets" in kwargs:
        from airflow.providers.common.compat.sdk import Asset

        kwargs = {"outlets": [Asset(kwargs["outlets"][0])]}
    task = retry_task(**kwargs)
    if ends is None:
        with pytest.raises(AyrshareConfigError, match="end_from_trigger must be True or False"):
            task.execute(make_context())
        return
    trigger = deferred_trigger(task)
    assert trigger.end_from_trigger is ends
    trigger.trigger_id = TRIGGER_ID
    event = first_event(trigger)
    assert isinstance(event, TaskSuccessEvent) is ends
    if ends:
        assert ("return_value" in event.xcoms) is return_value


def test_the_sensor_and_the_repost_end_from_the_trigger_too(ayrshare_conn):
    ayrshare_conn.add_post({**error_post("p2"), "status": "pending", "errors": []})
    sensor = PostStatusSensor(task_id="watch", post_id="p2", deferrable=True, poke_interval=0.01, timeout=10)
    assert deferred_trigger(sensor).end_from_trigger
    repost = RepostOperator(task_id="repost", post_id="p1", deferrable=True, end_from_trigger="true")
    assert repost.status_trigger("p1", timeout=10, poll_interval=1, action="reposted").end_from_trigger
