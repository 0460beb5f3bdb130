"""AyrshareTaskMixin: what RetryPostOperator and PostStatusSensor share.

Their Ayrshare arguments, their hook, their wait for a post's final status (deferred or here), how
a wait's event becomes the task's result, and how a task reports a post. Light at import: DAG files
import the operator and sensor at parse time, so the hook and the trigger are imported where used.
"""

from __future__ import annotations

import time
from datetime import timedelta
from functools import cached_property
from typing import TYPE_CHECKING, Any

from airflow.providers.common.compat.sdk import conf

from ayrshare_provider import metrics
from ayrshare_provider.triggers.events import PostStatusEvent
from ayrshare_provider.utils.rendered import flag
from ayrshare_provider.utils.xcom import POST_URL_XCOM_KEY, report_xcoms

if TYPE_CHECKING:
    from collections.abc import AsyncGenerator

    from airflow.sdk import Context
    from airflow.triggers.base import BaseTrigger, TriggerEvent

    from ayrshare_provider.hooks.ayrshare import AyrshareHook
    from ayrshare_provider.triggers.post_status import PostStatusTrigger

# How much longer Airflow's own deferral timeout is than the trigger's deadline, so that the
# trigger's clear "not final by the deadline" event wins the race (a batched wait checks its
# deadline at each tick of its group, one poll interval apart).
DEFERRAL_GRACE = timedelta(minutes=1)


def default_deferrable() -> bool:
    """The ``[operators] default_deferrable`` setting."""
    return conf.getboolean("operators", "default_deferrable", fallback=False)


class AyrshareTaskMixin:
    """
    The Ayrshare side of a task: its arguments, hook, status wait and report.

    Each task keeps the arguments in its own ``__init__`` signature, because Airflow checks the
    keywords of ``partial()`` and ``expand()`` against the signatures of operator classes only;
    :meth:`_init_ayrshare` is the one place that stores them.
    """

    post_id: Any
    ayrshare_conn_id: str
    profile_key: str | None
    deferrable: bool
    batch_wait: bool
    end_from_trigger: bool
    hook_params: dict[str, Any]

    def _init_ayrshare(
        self,
        *,
        post_id: Any,
        ayrshare_conn_id: str,
        profile_key: str | None,
        deferrable: bool,
        batch_wait: bool,
        hook_params: dict[str, Any] | None,
        end_from_trigger: bool = False,
    ) -> None:
        """Keep the task's Ayrshare arguments (no I/O: a DAG file builds tasks at every parse)."""
        self.post_id = post_id
        self.ayrshare_conn_id = ayrshare_conn_id
        self.profile_key = profile_key
        self.deferrable = deferrable
        self.batch_wait = batch_wait
        self.end_from_trigger = end_from_trigger
        self.hook_params = hook_params or {}

    @cached_property
    def hook(self) -> AyrshareHook:
        from ayrshare_provider.hooks.ayrshare import AyrshareHook

        return AyrshareHook(self.ayrshare_conn_id, profile_key=self.profile_key, **self.hook_params)

    # -- reporting a post ---------------------------------------------------------------------

    def report_no_url_yet(self, context: Context) -> None:
        """
        Push an empty post URL before anything else: the extra link is read when every try ends,
        and a missing key would log an error after the task's real one ("" because Airflow 3.0's
        task API refuses a null XCom).
        """
        context["ti"].xcom_push(key=POST_URL_XCOM_KEY, value="")

    def report(self, context: Context, summary: dict[str, Any]) -> None:
        """Push the post's summary and its URL, for the recovery report and the extra link."""
        ti = context["ti"]
        for key, value in report_xcoms(summary).items():
            ti.xcom_push(key=key, value=value)

    # -- waiting for a post's final status ------------------------------------------------------

    def status_trigger(
        self,
        post_id: str,
        *,
        timeout: float,
        poll_interval: float,
        action: str,
        known: dict[str, Any] | None = None,
        retried_at: float | None = None,
    ) -> PostStatusTrigger:
        """
        The trigger that waits for the post's final status, ``timeout`` seconds from now.

        :param post_id: the post to wait for.
        :param timeout: seconds until the wait gives up.
        :param poll_interval: seconds between two reads.
        :param action: what the task did to the post, carried into the summary.
        :param known: what the task knows beyond the post's record (``retried_at``, a repost's
            ids), carried into the summary.
        :param retried_at: when this task sent the retry waited for (``time.time()`` seconds): a
            status from then on settles the wait, Ayrshare's push of it included (with a webhook
            secret in the connection). None: the wait is not for a retry of this task's.
        """
        from ayrshare_provider.triggers.post_status import PostStatusTrigger
        from ayrshare_provider.triggers.wait_strategy import choose_wait_strategy

        # A task with outlets or a success callback resumes to end: the task runner emits asset
        # events, and Airflow 3 runs no success callback of a task that the triggerer ended.
        end_from_trigger = flag("end_from_trigger", self.end_from_trigger) and not (
            getattr(self, "outlets", None) or getattr(self, "on_success_callback", None)
        )
        return PostStatusTrigger(
            post_id=post_id,
            ayrshare_conn_id=self.ayrshare_conn_id,
            end_time=time.time() + timeout,
            poll_interval=poll_interval,
            profile_key=self.profile_key,
            action=action,
            hook_params=self.hook_params,
            # Ayrshare pushes the outcome of scheduled and retried posts: a wait for a retry this
            # task sent can settle on it; other waits (a sensor, a repost, someone else's retry) read.
            strategy=choose_wait_strategy(
                batch_wait=self.batch_wait,
                pushes_expected=retried_at is not None and self.hook.pushes_expected,
                own_profile_key=bool(self.profile_key),
            ),
            retried_at=retried_at,
            known=known,
            end_from_trigger=end_from_trigger,
            push_return_value=bool(getattr(self, "do_xcom_push", True)),
        )

    def wait_for_final_status(
        self, context: Context, trigger: PostStatusTrigger, timeout: float
    ) -> dict[str, Any]:
        """
        Wait with ``trigger``: deferred to the triggerer (``execute_complete`` resumes the task,
        unless the trigger ended it, see ``end_from_trigger``), or here.

        :param context: the task's context.
        :param trigger: the wait, from :meth:`status_trigger`.
        :param timeout: its timeout in seconds, for Airflow's own deferral timeout.
        """
        if self.deferrable:
            self.defer(  # type: ignore[attr-defined]  # BaseOperator.defer, on the task this is mixed into
                trigger=trigger,
                method_name="execute_complete",
                timeout=timedelta(seconds=timeout) + DEFERRAL_GRACE,
            )
        return self.execute_complete(context, run_here(trigger))

    def execute_complete(self, context: Context, event: dict[str, Any] | None = None) -> dict[str, Any]:
        """Turn the wait's event into the task's result: report the post, then return it or raise its error."""
        outcome = PostStatusEvent.from_payload(event, post_id=str(self.post_id))
        if outcome.summary is not None:
            self.report(context, outcome.summary)
            metrics.count_retry_outcome(outcome.summary, profile=self.ayrshare_conn_id)
        return outcome.result()


def run_here(trigger: BaseTrigger) -> Any:
    """Run a trigger in this process until its one event's payload: the same wait, holding the worker slot."""
    import asyncio

    async def first_event() -> Any:
        events: AsyncGenerator[TriggerEvent] = trigger.run()  # type: ignore[assignment]  # an async generator
        try:
            return (await anext(events)).payload
        finally:
            await events.aclose()  # closes the trigger's HTTP session

    return asyncio.run(first_event())
