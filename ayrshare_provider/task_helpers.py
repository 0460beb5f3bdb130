"""What RetryPostOperator and PostStatusSensor share: their hook, their wait, and how they report a post.

Light at import: DAG files import the operator and sensor at parse time, so the hook and the
trigger are imported where they are used.
"""

from __future__ import annotations

import time
from datetime import timedelta
from functools import cached_property
from typing import TYPE_CHECKING, Any

from airflow.providers.common.compat.sdk import conf

from ayrshare_provider.exceptions import AyrshareError, AyrshareWaitTimeoutError
from ayrshare_provider.posts import post_failed_error, validate_post_id

if TYPE_CHECKING:
    from collections.abc import AsyncGenerator

    from airflow.sdk import Context
    from airflow.triggers.base import BaseTrigger, TriggerEvent

    from ayrshare_provider.hooks.ayrshare import AyrshareHook
    from ayrshare_provider.triggers.ayrshare import PostStatusTrigger

#: XCom key of the first published post URL, read by the extra link.
POST_URL_XCOM_KEY = "ayrshare_post_url"
#: XCom key of the post summary, pushed even when the task then fails (the recovery DAG's report reads it).
SUMMARY_XCOM_KEY = "ayrshare_summary"
# How much longer Airflow's own deferral timeout is than the trigger's deadline, so that the
# trigger's clear "not final by the deadline" event wins the race (a batched wait checks its
# deadline at each tick of its group, one poll interval apart).
DEFERRAL_GRACE = timedelta(minutes=1)


def default_deferrable() -> bool:
    """The ``[operators] default_deferrable`` setting."""
    return conf.getboolean("operators", "default_deferrable", fallback=False)


class AyrshareTaskMixin:
    """The hook and the status wait of a task that talks to Ayrshare, from its connection, Profile Key and hook params."""

    ayrshare_conn_id: str
    profile_key: str | None
    hook_params: dict[str, Any]
    batch_wait: bool

    @cached_property
    def hook(self) -> AyrshareHook:
        from ayrshare_provider.hooks.ayrshare import AyrshareHook

        return AyrshareHook(self.ayrshare_conn_id, profile_key=self.profile_key, **self.hook_params)

    def status_trigger(
        self, post_id: str, *, timeout: float, poll_interval: float, action: str
    ) -> PostStatusTrigger:
        """
        The trigger that waits for the post's final status, ``timeout`` seconds from now.

        :param post_id: the post to wait for.
        :param timeout: seconds until the wait gives up.
        :param poll_interval: seconds between two reads.
        :param action: what the task did to the post, carried into the summary.
        """
        from ayrshare_provider.triggers.ayrshare import PostStatusTrigger

        return PostStatusTrigger(
            post_id=post_id,
            ayrshare_conn_id=self.ayrshare_conn_id,
            end_time=time.time() + timeout,
            poll_interval=poll_interval,
            profile_key=self.profile_key,
            action=action,
            hook_params=self.hook_params,
            batch_wait=self.batch_wait,
        )

    def defer_until_final(self, trigger: PostStatusTrigger, timeout: float) -> None:
        """Hand the wait to the triggerer; ``execute_complete`` resumes the task with the event."""
        self.defer(  # type: ignore[attr-defined]  # BaseOperator.defer, on the task this is mixed into
            trigger=trigger,
            method_name="execute_complete",
            timeout=timedelta(seconds=timeout) + DEFERRAL_GRACE,
        )


def report_summary(context: Context, summary: dict[str, Any]) -> None:
    """Push the summary and the post URL as XComs, for the extra link and the recovery report."""
    ti = context["ti"]
    ti.xcom_push(key=SUMMARY_XCOM_KEY, value=summary)
    # Pushed even without a URL: Airflow evaluates the link when the task defers, and a missing key logs
    # an error. "" rather than None: Airflow 3.0's task API refuses an XCom whose value is null.
    ti.xcom_push(key=POST_URL_XCOM_KEY, value=summary.get("post_url") or "")


def result_from_event(context: Context, event: dict[str, Any] | None, task_post_id: Any) -> dict[str, Any]:
    """
    Report a :class:`~ayrshare_provider.triggers.ayrshare.PostStatusTrigger` event's summary, then return it or raise its error.

    :param context: the task's context.
    :param event: the trigger event's payload, as given to ``execute_complete``.
    :param task_post_id: the task's ``post_id``, used only when the event names none (the event's
        own id is the one the trigger watched; a resumed task is not always re-rendered).
    """
    from ayrshare_provider.triggers.ayrshare import EVENT_FAILED, EVENT_SUCCESS, EVENT_TIMEOUT

    payload = event if isinstance(event, dict) else {}
    watched = payload.get("post_id")
    post_id = watched if isinstance(watched, str) else validate_post_id(task_post_id)
    if "status" not in payload:
        raise AyrshareError(f"the trigger sent no usable event: {event!r}", post_id=post_id)
    status, message, summary = payload["status"], payload.get("message") or "", payload.get("summary")
    if isinstance(summary, dict):
        report_summary(context, summary)
    if status == EVENT_SUCCESS and isinstance(summary, dict):
        return summary
    if status == EVENT_FAILED and isinstance(summary, dict):
        raise post_failed_error(summary)
    if status == EVENT_TIMEOUT:
        raise AyrshareWaitTimeoutError(message, post_id=post_id)
    raise AyrshareError(message or f"the trigger ended with status {status!r}", post_id=post_id)


def run_inline(trigger: BaseTrigger) -> Any:
    """Run a trigger in this process until its one event's payload: the same wait, holding the worker slot."""
    import asyncio

    async def first_event() -> Any:
        events: AsyncGenerator[TriggerEvent] = trigger.run()  # type: ignore[assignment]  # an async generator
        try:
            return (await anext(events)).payload
        finally:
            await events.aclose()  # closes the trigger's HTTP session

    return asyncio.run(first_event())
