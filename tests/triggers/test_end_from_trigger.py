"""A post that publishes ends its task in the triggerer, with the XComs a resumed task would push."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

import pytest
from airflow.providers.common.compat.sdk import TaskDeferred
from airflow.triggers.base import TaskSuccessEvent

from ayrshare_provider.exceptions import AyrsharePostFailedError
from ayrshare_provider.operators.ayrshare import RetryPostOperator
from ayrshare_provider.operators.repost import RepostOperator
from ayrshare_provider.sensors.ayrshare import PostStatusSensor
from ayrshare_provider.triggers.post_status import PostStatusTrigger
from tests.context import make_context
from tests.helpers import error_post

TRIGGER_ID = 7  # what the triggerer sets on each trigger it runs; dag.test() and run_here() set none
LINK_XCOM = "_link_AyrsharePostLink"  # where Airflow 3 reads the extra link from


@pytest.fixture
def in_a_triggerer(monkeypatch):
    """
    What a triggerer gives a trigger: its id, its task instance, and on Airflow 3 the Task SDK's
    ``XCom.set`` served by the triggerer (recorded here: a unit test has no triggerer process to
    serve it; the full-stack test pulls the real ones). Returns the pushed XComs.
    """
    from airflow.providers.common.compat.sdk import XCom
    from airflow.providers.common.compat.version_compat import AIRFLOW_V_3_0_PLUS

    pushed: dict[str, Any] = {}
    if AIRFLOW_V_3_0_PLUS:

        def record(key: str, value: Any, **where: Any) -> None:
            assert where == {"dag_id": "recovery", "task_id": "retry", "run_id": "run-1", "map_index": 3}
            pushed[key] = value

        monkeypatch.setattr(XCom, "set", staticmethod(record))
    return pushed


def in_triggerer(trigger: PostStatusTrigger) -> PostStatusTrigger:
    trigger.trigger_id = TRIGGER_ID
    trigger.task_instance = SimpleNamespace(dag_id="recovery", task_id="retry", run_id="run-1", map_index=3)
    return trigger


def ended_xcoms(event: Any, pushed: dict[str, Any]) -> dict[str, Any]:
    """The XComs a task ended in the triggerer has: the event's on 2.11, pushed through the SDK on 3."""
    return event.xcoms or pushed


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
    """A deferrable retry task that ends in the triggerer, as the recovery DAGs make it (``kwargs`` win)."""
    defaults = {
        "task_id": "retry",
        "post_id": "p1",
        "deferrable": True,
        "poll_interval": 0.01,
        "timeout": 10,
        "end_from_trigger": True,
        "hook_params": {"backoff": 0.01, "max_backoff": 0.05},
    }
    return RetryPostOperator(**{**defaults, **kwargs})


def resumed_xcoms(task: Any, trigger: PostStatusTrigger) -> dict[str, Any]:
    """What the task pushes when the same wait's plain event resumes it (return value included)."""
    plain = PostStatusTrigger(**{**trigger.serialize()[1], "end_from_trigger": False})
    context = make_context()
    result = task.execute_complete(context, first_event(plain).payload)
    return {**context["ti"].xcoms, "return_value": result}


def test_a_published_post_ends_the_task_with_the_xcoms_of_a_resumed_one(ayrshare_conn, in_a_triggerer):
    ayrshare_conn.add_post(error_post("p1"), outcome="success", pending_reads=1)
    task = retry_task(profile_key="PROFILE-NEVER-IN-XCOM-31")
    trigger = in_triggerer(deferred_trigger(task))
    assert trigger.end_from_trigger
    ended = first_event(trigger)
    assert isinstance(ended, TaskSuccessEvent)
    xcoms = ended_xcoms(ended, in_a_triggerer)
    url = "https://twitter.example.com/posts/99"
    assert xcoms["ayrshare_post_url"] == url
    assert xcoms["ayrshare_summary"]["status"] == "success"
    assert xcoms["ayrshare_summary"]["retried_at"]  # what the task knew travels with it
    if in_a_triggerer:  # Airflow 3: pushed as a worker pushes them, the extra link's value too
        assert xcoms.pop(LINK_XCOM) == url and not ended.xcoms
    assert xcoms == resumed_xcoms(task, trigger)
    assert "PROFILE-NEVER-IN-XCOM-31" not in repr(xcoms)


@pytest.fixture
def quick_patience(monkeypatch):
    """The pauses between tries of a metadata call, in hundredths of a second."""
    from ayrshare_provider.triggers import metadata_calls

    monkeypatch.setattr(metadata_calls, "FIRST_PAUSE", 0.01)


def test_a_busy_metadata_database_is_waited_out_and_the_task_still_ends_in_the_triggerer(
    ayrshare_conn, in_a_triggerer, quick_patience, monkeypatch
):
    """SQLite answers "database is locked" while a burst writes: the push is tried again, not given up."""
    from airflow.providers.common.compat.version_compat import AIRFLOW_V_3_0_PLUS

    if not AIRFLOW_V_3_0_PLUS:
        pytest.skip("Airflow 2.11's triggerer pushes the event's XComs itself")
    from airflow.providers.common.compat.sdk import XCom

    tries: list[str] = []
    recorded = XCom.set

    def busy_twice(key: str, value: Any, **where: Any) -> None:
        tries.append(key)
        if len(tries) <= 2:
            raise RuntimeError("(sqlite3.OperationalError) database is locked")
        recorded(key, value, **where)

    monkeypatch.setattr(XCom, "set", staticmethod(busy_twice))
    ayrshare_conn.add_post(error_post("p1"), outcome="success", pending_reads=1)
    event = first_event(in_triggerer(deferred_trigger(retry_task())))
    assert isinstance(event, TaskSuccessEvent)
    assert tries[:3] == ["ayrshare_summary"] * 3  # the first push, tried three times
    assert in_a_triggerer["ayrshare_summary"]["status"] == "success" and LINK_XCOM in in_a_triggerer


def test_when_the_xcoms_cannot_be_pushed_from_the_triggerer_the_task_resumes(
    ayrshare_conn, in_a_triggerer, quick_patience, monkeypatch
):
    from airflow.providers.common.compat.version_compat import AIRFLOW_V_3_0_PLUS

    if not AIRFLOW_V_3_0_PLUS:
        pytest.skip("Airflow 2.11's triggerer pushes the event's XComs itself")
    from airflow.providers.common.compat.sdk import XCom

    def refuse(*_: Any, **__: Any) -> None:
        raise ConnectionError("the triggerer's supervisor went away")

    monkeypatch.setattr(XCom, "set", staticmethod(refuse))
    ayrshare_conn.add_post(error_post("p1"), outcome="success", pending_reads=1)
    task = retry_task()
    event = first_event(in_triggerer(deferred_trigger(task)))
    assert not isinstance(event, TaskSuccessEvent) and event.payload["status"] == "success"
    assert task.execute_complete(make_context(), event.payload)["status"] == "success"


def test_a_post_that_fails_again_resumes_the_task_which_raises_as_always(ayrshare_conn, in_a_triggerer):
    ayrshare_conn.add_post(error_post("p1"), outcome="error", pending_reads=1)
    task = retry_task()
    event = first_event(in_triggerer(deferred_trigger(task)))
    assert not isinstance(event, TaskSuccessEvent) and event.payload["status"] == "failed"
    with pytest.raises(AyrsharePostFailedError, match="272"):
        task.execute_complete(make_context(), event.payload)


def test_without_a_triggerer_the_task_resumes_as_dag_test_needs(ayrshare_conn):
    """dag.test() runs the trigger in its own process and resumes with the payload: no XComs there."""
    ayrshare_conn.add_post(error_post("p1"), outcome="success", pending_reads=1)
    trigger = deferred_trigger(retry_task())
    assert trigger.end_from_trigger and trigger.trigger_id is None
    event = first_event(trigger)
    assert not isinstance(event, TaskSuccessEvent) and event.payload["status"] == "success"


@pytest.mark.parametrize(
    ("kwargs", "ends", "return_value"),
    [
        ({"end_from_trigger": False}, False, False),
        ({"end_from_trigger": "{{ params.x }}"}, None, None),  # unrendered: a clear error
        ({"outlets": "an asset"}, False, False),
        ({"on_success_callback": print}, False, False),
        ({"do_xcom_push": False}, True, False),
        ({}, True, True),
    ],
    ids=["off", "bad-flag", "outlets", "success-callback", "no-return-value", "on"],
)
def test_what_ends_from_the_trigger_and_what_resumes(
    ayrshare_conn, in_a_triggerer, kwargs, ends, return_value
):
    from ayrshare_provider.exceptions import AyrshareConfigError

    ayrshare_conn.add_post(error_post("p1"), outcome="success", pending_reads=1)
    if "outlets" in kwargs:
        from airflow.providers.common.compat.sdk import Asset

        kwargs = {"outlets": [Asset("ayrshare://recovered")]}
    task = retry_task(**kwargs)
    if ends is None:
        with pytest.raises(AyrshareConfigError, match="end_from_trigger must be True or False"):
            task.execute(make_context())
        return
    trigger = deferred_trigger(task)
    assert trigger.end_from_trigger is ends
    event = first_event(in_triggerer(trigger))
    assert isinstance(event, TaskSuccessEvent) is ends
    if ends:
        assert ("return_value" in ended_xcoms(event, in_a_triggerer)) is return_value


def test_off_by_default_on_the_classes():
    assert RetryPostOperator(task_id="r", post_id="p1").end_from_trigger is False
    assert PostStatusSensor(task_id="s", post_id="p1").end_from_trigger is False
    assert RepostOperator(task_id="p", post_id="p1").end_from_trigger is False


def test_the_sensor_and_the_repost_end_from_the_trigger_too(ayrshare_conn):
    ayrshare_conn.add_post({**error_post("p2"), "status": "pending", "errors": []})
    sensor = PostStatusSensor(
        task_id="watch", post_id="p2", deferrable=True, poke_interval=0.01, timeout=10, end_from_trigger=True
    )
    assert deferred_trigger(sensor).end_from_trigger
    repost = RepostOperator(task_id="repost", post_id="p1", deferrable=True, end_from_trigger="true")
    assert repost.status_trigger("p1", timeout=10, poll_interval=1, action="reposted").end_from_trigger
