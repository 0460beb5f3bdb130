"""The one retry at the right moment: a network's wait hint (Instagram 435) is obeyed before any PUT."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import pytest
from airflow.providers.common.compat.sdk import TaskDeferred

from ayrshare_provider.exceptions import AyrshareRetryLaterError
from ayrshare_provider.operators.ayrshare import RetryPostOperator
from ayrshare_provider.operators.task_mixin import run_here
from ayrshare_provider.triggers.post_status import PostStatusTrigger
from ayrshare_provider.utils.xcom import SUMMARY_XCOM_KEY
from tests.context import make_context
from tests.helpers import failed_post, seed_posts

LIMIT_MESSAGE = "Instagram rate limit: the account reached its 50 posts per 24 hours."


def seed_throttled(emulator, wait: float, sent_ago: float = 0.0) -> str:
    """An Instagram post that failed with code 435 ``sent_ago`` seconds ago, asking to wait ``wait`` seconds."""
    sent = (datetime.now(UTC) - timedelta(seconds=sent_ago)).isoformat()
    record = failed_post("instagram", created=sent, scheduleDate=sent)
    record["errors"][0].update(code=435, message=LIMIT_MESSAGE, details=wait)
    [post_id] = seed_posts(emulator, record)
    return post_id


def operator(post_id: str, **kwargs) -> RetryPostOperator:
    defaults = {
        "task_id": "retry",
        "post_id": post_id,
        "poll_interval": 0.05,
        "timeout": 30,
        "deferrable": False,
        "hook_params": {"backoff": 0.01, "max_backoff": 0.05},
    }
    return RetryPostOperator(**{**defaults, **kwargs})


def puts(emulator, post_id: str) -> int:
    return emulator.state.counters()["retry_puts"].get(post_id, 0)


def test_a_wait_that_is_over_does_not_delay_the_retry(emulator_conn):
    post_id = seed_throttled(emulator_conn, wait=86400, sent_ago=2 * 86400)
    summary = operator(post_id).execute(make_context())
    assert summary["status"] == "success" and puts(emulator_conn, post_id) == 1


def test_the_retry_waits_for_the_hint_then_publishes(emulator_conn):
    post_id = seed_throttled(emulator_conn, wait=1.5)
    started = time.monotonic()
    summary = operator(post_id).execute(make_context())
    # A PUT before the hint would have met Instagram's limit again (the emulator fails it with 435).
    assert summary["status"] == "success" and summary["action"] == "retried"
    assert time.monotonic() - started >= 1.2 and puts(emulator_conn, post_id) == 1


def test_a_deferrable_task_waits_for_the_hint_in_the_triggerer_with_no_put(emulator_conn):
    post_id = seed_throttled(emulator_conn, wait=1.0)
    task, context = operator(post_id, deferrable=True), make_context()
    with pytest.raises(TaskDeferred) as deferred:
        task.execute(context)
    assert deferred.value.method_name == "execute_after_wait_hint"
    assert puts(emulator_conn, post_id) == 0  # nothing sent before the moment
    event = run_here(deferred.value.trigger)  # the triggerer's wait: about a second
    with pytest.raises(TaskDeferred) as waiting:
        task.execute_after_wait_hint(context, event)
    assert isinstance(waiting.value.trigger, PostStatusTrigger) and puts(emulator_conn, post_id) == 1
    assert task.execute_complete(context, run_here(waiting.value.trigger))["status"] == "success"


def test_a_hint_past_the_timeout_fails_clearly_without_a_put(emulator_conn):
    post_id = seed_throttled(emulator_conn, wait=3600)
    context = make_context()
    with pytest.raises(
        AyrshareRetryLaterError, match=r"code 435.*more than this task waits for a hint \(60 s\)"
    ) as error:
        operator(post_id, timeout=60).execute(context)
    assert error.value.not_before > datetime.now(UTC) + timedelta(minutes=59)
    assert puts(emulator_conn, post_id) == 0
    assert context["ti"].xcoms[SUMMARY_XCOM_KEY]["action"] == "not_retried"


def test_templated_settings_rendered_as_text_are_read_as_numbers_and_flags(emulator_conn):
    post_id = seed_throttled(emulator_conn, wait=86400, sent_ago=2 * 86400)
    task = operator(
        post_id, poll_interval="0.05", timeout="30", wait_for_completion="False", check_retryable="true"
    )
    assert {"poll_interval", "timeout", "wait_for_completion", "check_retryable"} <= set(task.template_fields)
    assert "profile_key" not in task.template_fields
    summary = task.execute(make_context())
    assert summary["action"] == "retried" and summary["status"] == "pending"  # returned without waiting
    assert task.timeout == 30.0 and task.wait_for_completion is False


@pytest.mark.parametrize(("field", "value"), [("poll_interval", "soon"), ("wait_for_completion", "maybe")])
def test_a_templated_setting_that_is_not_a_number_or_flag_is_a_config_error(field, value):
    from ayrshare_provider.exceptions import AyrshareConfigError

    with pytest.raises(AyrshareConfigError, match=field):
        operator("p1", **{field: value}).execute(make_context())
