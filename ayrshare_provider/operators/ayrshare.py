"""RetryPostOperator: retry one failed post, at most once, and report how it ended."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from airflow.providers.common.compat.sdk import BaseOperator, BaseOperatorLink

from ayrshare_provider.exceptions import (
    AyrshareAlreadyRetriedError,
    AyrshareConfigError,
    AyrshareNotRetryableError,
    AyrshareRetryLaterError,
)
from ayrshare_provider.posts import (
    Action,
    Plan,
    WaitState,
    plan_retry,
    post_failed_error,
    retry_not_before,
    status_of,
    summarize,
    validate_post_id,
    wait_state,
)
from ayrshare_provider.task_helpers import (
    POST_URL_XCOM_KEY,
    AyrshareTaskMixin,
    default_deferrable,
    report_summary,
    result_from_event,
    run_inline,
)

if TYPE_CHECKING:
    from collections.abc import Sequence

    from airflow.sdk import Context
    from airflow.sdk.types import TaskInstanceKey


class AyrsharePostLink(BaseOperatorLink):
    """Opens the published post on its network (the first post URL Ayrshare returned)."""

    name = "Ayrshare post"

    def get_link(self, operator: Any, *, ti_key: TaskInstanceKey) -> str:
        from airflow.providers.common.compat.sdk import XCom

        return XCom.get_value(key=POST_URL_XCOM_KEY, ti_key=ti_key) or ""


class RetryPostOperator(AyrshareTaskMixin, BaseOperator):
    """
    Retry one failed Ayrshare post exactly once, then wait for its final status.

    The post is read first: a published post is not retried; a post whose network asked to wait
    (Instagram's code 435 and its ``details``, or any Retry-After passed through) is retried only
    once that wait is over: the task waits until then (deferred, when ``deferrable``), or fails
    with :class:`~ayrshare_provider.exceptions.AyrshareRetryLaterError` when the wait would end
    after ``timeout``. A post already ``pending`` or
    ``processing`` (say, after an earlier attempt of this task sent the retry) is only waited
    for; any status but ``error`` fails the task. A post that was already retried (code 329)
    is waited for if its retry is under way, else the task fails. The retry itself is never
    repeated after a 4xx.

    Returns a summary (id, final status, whether this task retried it, and per network:
    status, post URL, error code and message). A post that fails again raises
    :class:`~ayrshare_provider.exceptions.AyrsharePostFailedError` with the networks' errors.

    :param post_id: the top-level Ayrshare post id (templated).
    :param ayrshare_conn_id: the Ayrshare connection (templated).
        ``poll_interval``, ``timeout``, ``wait_for_completion`` and ``check_retryable`` are templated too.
    :param profile_key: act for this User Profile instead of the connection's Profile Key.
        Not templated, so that it never shows among rendered fields.
    :param wait_for_completion: wait for the final status; otherwise return once the retry is sent.
    :param deferrable: wait in the triggerer instead of a worker slot.
    :param poll_interval: seconds between two reads of the post while waiting.
    :param batch_wait: while deferred on Airflow 3.3+, share one ``GET /api/history`` listing per
        interval with every other batched wait of the same connection and Profile Key, instead of
        reading this post on its own (see :class:`~ayrshare_provider.triggers.ayrshare.PostStatusTrigger`).
        Worth it from a few dozen posts waited on at once; older Airflow polls each post.
    :param timeout: seconds to wait for a final status before failing; also the longest wait for a
        network's wait hint before the retry.
    :param check_retryable: refuse a post whose errors say a retry cannot help
        (``retryAvailable: false``, a network to relink, a duplicate). Set False to retry anyway.
    :param hook_params: more keyword arguments for :class:`~ayrshare_provider.hooks.ayrshare.AyrshareHook`
        (``timeout``, ``max_attempts``, ``backoff``, ``max_backoff``); also used while deferred.
    """

    template_fields: Sequence[str] = (
        "post_id",
        "ayrshare_conn_id",
        "poll_interval",
        "timeout",
        "wait_for_completion",
        "check_retryable",
    )
    operator_extra_links = (AyrsharePostLink(),)
    ui_color = "#e8f0fe"

    def __init__(
        self,
        *,
        post_id: str,
        ayrshare_conn_id: str = "ayrshare_default",
        profile_key: str | None = None,
        wait_for_completion: bool = True,
        deferrable: bool = default_deferrable(),
        poll_interval: float = 15.0,
        batch_wait: bool = False,
        timeout: float = 1800.0,
        check_retryable: bool = True,
        hook_params: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.post_id = post_id
        self.ayrshare_conn_id = ayrshare_conn_id
        self.profile_key = profile_key
        self.wait_for_completion = wait_for_completion
        self.deferrable = deferrable
        self.poll_interval = poll_interval
        self.batch_wait = batch_wait
        self.timeout = timeout
        self.check_retryable = check_retryable
        self.hook_params = hook_params or {}

    def execute(self, context: Context) -> dict[str, Any]:
        self._coerce_rendered()
        post_id = validate_post_id(self.post_id)
        record = self.hook.get_post(post_id)
        plan, reason = plan_retry(record)
        self.log.info("Post %s: %s (%s)", post_id, plan.value, reason)
        if plan is Plan.ALREADY_PUBLISHED:
            return self._finish(context, summarize(record, Action.ALREADY_PUBLISHED, post_id=post_id))
        if plan in (Plan.RETRY, Plan.RETRY_LATER, Plan.NOT_RETRYABLE) and _sent_before(context, post_id):
            # An earlier attempt of this task retried it, and "error" is how that retry ended.
            summary = summarize(record, Action.RETRIED, post_id=post_id)
            report_summary(context, summary)
            raise post_failed_error(
                summary, "retried by an earlier attempt of this task, which ended with status 'error'"
            )
        if plan is Plan.WRONG_STATUS or (plan is Plan.NOT_RETRYABLE and self.check_retryable):
            report_summary(context, summarize(record, Action.NOT_RETRIED, post_id=post_id))
            raise AyrshareNotRetryableError(f"not retried: {reason}", post_id=post_id)
        if plan is Plan.RETRY_LATER:
            return self._retry_after_wait_hint(context, post_id, record)
        if plan is Plan.IN_FLIGHT:
            action = Action.IN_FLIGHT
        else:
            action, record = self._retry_once(context, post_id)

        if not self.wait_for_completion:
            return self._finish(context, summarize(record, action, post_id=post_id))
        trigger = self.status_trigger(
            post_id, timeout=self.timeout, poll_interval=self.poll_interval, action=action.value
        )
        if self.deferrable:
            report_summary(context, summarize(record, action, post_id=post_id))  # visible while deferred
            self.defer_until_final(trigger, self.timeout)
        return self.execute_complete(context, run_inline(trigger))

    def _retry_after_wait_hint(
        self, context: Context, post_id: str, record: dict[str, Any]
    ) -> dict[str, Any]:
        """Wait until the network's wait hint is over (deferred, or here), then start again from the read."""
        not_before, why = retry_not_before(record) or (datetime.now(UTC), "")
        wait = (not_before - datetime.now(UTC)).total_seconds()
        if wait > self.timeout:
            report_summary(context, summarize(record, Action.NOT_RETRIED, post_id=post_id))
            raise AyrshareRetryLaterError(
                f"not retried yet: {why}, so the retry helps only from {not_before.isoformat()}, "
                f"after this task's timeout of {self.timeout:g} s; run it again after that moment",
                not_before=not_before,
                post_id=post_id,
            )
        self.log.info(
            "Post %s: %s; waiting %.0f s, until %s, before its one retry", post_id, why, wait, not_before
        )
        if self.deferrable:
            from airflow.providers.common.compat.standard.triggers import TimeDeltaTrigger

            self.defer(
                trigger=TimeDeltaTrigger(timedelta(seconds=max(0.0, wait))),
                method_name="execute_after_wait_hint",
            )
        time.sleep(max(0.0, wait))
        return self.execute(context)

    def execute_after_wait_hint(self, context: Context, event: Any = None) -> dict[str, Any]:
        """Resume after the wait hint: read the post again and go on as :meth:`execute` does."""
        return self.execute(context)

    def _coerce_rendered(self) -> None:
        """Templated settings arrive as strings when a template renders them: make them numbers and flags."""
        for name in ("poll_interval", "timeout"):
            value = getattr(self, name)
            try:
                setattr(self, name, float(value))
            except (TypeError, ValueError):
                raise AyrshareConfigError(f"{name} must be a number of seconds, got {value!r}") from None
        for name in ("wait_for_completion", "check_retryable"):
            value = getattr(self, name)
            if isinstance(value, str) and value.strip().lower() in ("true", "false"):
                value = value.strip().lower() == "true"
            if not isinstance(value, bool):
                raise AyrshareConfigError(f"{name} must be True or False, got {value!r}")
            setattr(self, name, value)

    def _retry_once(self, context: Context, post_id: str) -> tuple[Action, dict[str, Any]]:
        """Send the one retry (the hook sends it again only if it surely did not land); handle "already retried"."""
        _remember(context, post_id, _SENDING)
        try:
            answer = self.hook.retry_post(post_id)
        except AyrshareAlreadyRetriedError:
            _remember(context, post_id, _SENT)
            # Retried before (maybe by this very task, when an answer was lost): its status is the truth.
            record = self.hook.get_post(post_id)
            if wait_state(record) is WaitState.FAILED:
                summary = summarize(record, Action.ALREADY_RETRIED, post_id=post_id)
                report_summary(context, summary)
                raise post_failed_error(
                    summary, f"already retried, and the retry ended with status {summary['status']!r}"
                ) from None
            self.log.info("Post %s was already retried; it is %r, waiting for it", post_id, status_of(record))
            return Action.ALREADY_RETRIED, record
        _remember(context, post_id, _SENT)
        self.log.info("Retry of post %s accepted: %r", post_id, answer.get("status"))
        return Action.RETRIED, {"id": post_id, "status": answer.get("status") or "pending"}

    def execute_complete(self, context: Context, event: dict[str, Any] | None = None) -> dict[str, Any]:
        """Turn the trigger's event into the task's result (or its error)."""
        return result_from_event(context, event, self.post_id)

    def _finish(self, context: Context, summary: dict[str, Any]) -> dict[str, Any]:
        report_summary(context, summary)
        return summary


# What this task instance knows of its own retry, across its attempts (Airflow 3.3's task state
# store; older Airflow has none, and then the post's status is all there is to go on).
# Not ResumableJobMixin: it stores the job id only after the submit returns and resubmits a job
# that ended failed; a post's one retry must be marked before the PUT leaves, and never resent.
_STATE_KEY = "ayrshare_retry"
_SENDING = "sending"  # the PUT may have gone out: a later attempt sends it again, and 329 tells
_SENT = "sent"  # the retry landed: a later attempt never sends another


def _remember(context: Context, post_id: str, state: str) -> None:
    store = context.get("task_state_store")
    if store is not None:
        store.set(_STATE_KEY, {"post_id": post_id, "state": state})


def _sent_before(context: Context, post_id: str) -> bool:
    store = context.get("task_state_store")
    memory = store.get(_STATE_KEY) if store is not None else None
    return isinstance(memory, dict) and memory.get("post_id") == post_id and memory.get("state") == _SENT
