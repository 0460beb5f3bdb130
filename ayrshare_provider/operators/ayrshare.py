"""RetryPostOperator: retry one failed post, at most once, and report how it ended."""

from __future__ import annotations

import math
import time
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from airflow.providers.common.compat.sdk import BaseOperator

from ayrshare_provider.exceptions import (
    AyrshareAlreadyRetriedError,
    AyrshareError,
    AyrshareNotRetryableError,
    AyrshareRetryLaterError,
)
from ayrshare_provider.links.ayrshare import AyrsharePostLink
from ayrshare_provider.operators.task_mixin import AyrshareTaskMixin, default_deferrable
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
from ayrshare_provider.utils.rendered import flag, interval, seconds
from ayrshare_provider.utils.xcom import WAIT_HINT_XCOM_KEY

if TYPE_CHECKING:
    from collections.abc import Sequence

    from airflow.sdk import Context

# What the operator decided and did: the post's summary, the error to raise once it is reported
# (None: none), and what to wait on for the final status (None: nothing, the summary is final).
_Decision = tuple[dict[str, Any], AyrshareError | None, Action | None]
# Plans whose "error" may be how this task's own earlier retry ended.
_RETRYABLE_ONCE = (Plan.RETRY, Plan.RETRY_LATER, Plan.NOT_RETRYABLE, Plan.RETRY_SPENT)

#: How old (seconds) a plan's record may be for a retry task to act on it without reading the post
#: first. Only a retry changes a failed post, and a second retry is answered 329 (read, then waited
#: for or failed), so the read guards against little; the bound keeps a task cleared or started
#: long after its plan honest. 20 minutes: the listing's cache (up to 60 s), and the slowest task of
#: a 1,000-post burst, which waits its turn under the profile's rate limit (300 calls per 5 minutes:
#: its PUT goes in the fourth window, 15 minutes in).
MAX_RECORD_AGE = 1200.0
# How far ahead of this worker's clock a plan's record may be dated (the plan ran on another machine).
_CLOCK_SKEW = 60.0
# What a plan's record may be acted on for: a retry now, or after a wait hint (whose end reads again).
_TRUSTED_PLANS = (Plan.RETRY, Plan.RETRY_LATER)


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

    The summary says when the retry was sent (``retried_at``) and, after a wait hint, until when
    the task waited (``waited_until``).

    Returns a summary (id, final status, whether this task retried it, and per network:
    status, post URL, error code and message). A post that fails again raises
    :class:`~ayrshare_provider.exceptions.AyrsharePostFailedError` with the networks' errors.

    Given the ``record`` a listing just read (a recovery's plan), the first attempt of the task
    decides from it and sends the retry without a read of its own while the record is at most
    ``max_record_age`` seconds old: one call per post. A later attempt, an older record, or one
    that does not call for a retry: the post is read first.

    :param post_id: the top-level Ayrshare post id (templated).
    :param ayrshare_conn_id: the Ayrshare connection (templated).
        ``poll_interval``, ``timeout``, ``wait_for_completion``, ``check_retryable``, ``batch_wait``,
        ``max_wait_hint``, ``max_record_age`` and ``end_from_trigger`` are templated too.
    :param profile_key: act for this User Profile instead of the connection's Profile Key.
        Not templated, so that it never shows among rendered fields.
    :param wait_for_completion: wait for the final status; otherwise return once the retry is sent.
    :param deferrable: wait in the triggerer instead of a worker slot.
    :param poll_interval: seconds between two reads of the post while waiting.
    :param batch_wait: while deferred on Airflow 3.3+, share one ``GET /api/history`` listing per
        interval with every other batched wait of the same connection and Profile Key, instead of
        reading this post on its own (see :class:`~ayrshare_provider.triggers.post_status.PostStatusTrigger`).
        Worth it from a few dozen posts waited on at once; older Airflow polls each post.
    :param timeout: seconds to wait for a final status before failing.
    :param max_wait_hint: the longest wait, in seconds, for a network's wait hint before the retry
        (default: ``timeout``). A post whose hint ends later fails the task with
        :class:`~ayrshare_provider.exceptions.AyrshareRetryLaterError` and is not retried.
    :param record: the post's record as a listing read it (what
        :func:`~ayrshare_provider.posts.retry_facts` keeps of it), to retry from without a read.
    :param record_as_of: the wall-clock moment (``time.time()``) the record shows the post at least
        as of (a cached listing: its read less the cache's age); without it the record is not used.
    :param max_record_age: the oldest record, in seconds, acted on without a read (0: always read).
    :param end_from_trigger: when the post publishes while deferred, end the task in the triggerer
        with the same XComs (summary, post URL, return value, extra link) instead of resuming it on
        a worker: one worker run instead of two. A failed post, a timeout or an error still resumes
        the task, which raises as always; so does a task with ``outlets`` or an
        ``on_success_callback`` (the task runner emits asset events, and Airflow 3 runs no success
        callback of a task ended in the triggerer). Off by default, as on Airflow's own sensors;
        the recovery DAGs turn it on.
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
        "batch_wait",
        "max_wait_hint",
        "max_record_age",
        "end_from_trigger",
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
        max_wait_hint: float | None = None,
        record: dict[str, Any] | None = None,
        record_as_of: float | None = None,
        max_record_age: float = MAX_RECORD_AGE,
        end_from_trigger: bool = False,
        check_retryable: bool = True,
        hook_params: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self._init_ayrshare(
            post_id=post_id,
            ayrshare_conn_id=ayrshare_conn_id,
            profile_key=profile_key,
            deferrable=deferrable,
            batch_wait=batch_wait,
            end_from_trigger=end_from_trigger,
            hook_params=hook_params,
        )
        self.wait_for_completion = wait_for_completion
        self.poll_interval = poll_interval
        self.timeout = timeout
        self.max_wait_hint = max_wait_hint
        self.record = record
        self.record_as_of = record_as_of
        self.max_record_age = max_record_age
        self.check_retryable = check_retryable

    def execute(self, context: Context) -> dict[str, Any]:
        self.report_no_url_yet(context)
        return self._recover(context, seen_at=None, from_plan=True)

    def execute_after_wait_hint(self, context: Context, event: Any = None, **_: Any) -> dict[str, Any]:
        """Resume after a wait hint: read the post again and go on from there, as :meth:`execute` does."""
        known = _waited_for(context)
        seen_at = known.get("seen_at")
        return self._recover(
            context,
            seen_at=datetime.fromisoformat(seen_at) if seen_at else None,
            waited_until=known.get("waited_until"),
        )

    def _recover(
        self,
        context: Context,
        seen_at: datetime | None,
        waited_until: str | None = None,
        from_plan: bool = False,
    ) -> dict[str, Any]:
        """
        Decide from the post as it reads now (or, ``from_plan``, as the plan's fresh record shows it)
        and act on it; then report it, once, and wait or end.
        """
        self._coerce_rendered()
        post_id = validate_post_id(self.post_id)
        planned = self._fresh_plan_record(context, post_id) if from_plan else None
        summary, error, waiting_on = self._decide_and_act(context, post_id, seen_at, waited_until, planned)
        self.report(context, summary)  # while it waits, too: the report and the link see the post as it is
        if error is not None:
            raise error
        if waiting_on is None or not self.wait_for_completion:
            return summary
        known = {key: summary[key] for key in ("retried_at", "waited_until") if summary.get(key)}
        sent = summary.get("retried_at") if waiting_on is Action.RETRIED else None
        trigger = self.status_trigger(
            post_id,
            timeout=self.timeout,
            poll_interval=self.poll_interval,
            action=waiting_on.value,
            known=known,
            # The retry's outcome can be pushed before the task defers (a slow worker).
            retried_at=datetime.fromisoformat(sent).timestamp() if sent else None,
        )
        return self.wait_for_final_status(context, trigger, self.timeout)

    def _decide_and_act(
        self,
        context: Context,
        post_id: str,
        seen_at: datetime | None,
        waited_until: str | None,
        planned: dict[str, Any] | None = None,
    ) -> _Decision:
        """
        Read the post, decide what its record allows, and send its one retry when it is due.

        :param waited_until: the end of the wait hint this task waited for, if it did (said in the summary).
        :param planned: a fresh record of the plan's, decided on instead of the first read.
        """
        while True:
            record = planned if planned is not None else self.hook.get_post(post_id)
            planned = None  # any later turn (after a wait hint) reads the post
            seen_at = seen_at or datetime.now(UTC)  # a wait hint without dates counts from the first read
            plan, reason = plan_retry(record, seen_at=seen_at)
            self.log.info("Post %s: %s (%s)", post_id, plan.value, reason)
            if plan is Plan.ALREADY_PUBLISHED:
                return summarize(record, Action.ALREADY_PUBLISHED, post_id=post_id), None, None
            if plan in _RETRYABLE_ONCE and _sent_before(context, post_id):
                # An earlier attempt of this task retried it, and "error" is how that retry ended.
                summary = summarize(record, Action.RETRIED, post_id=post_id)
                why = "retried by an earlier attempt of this task, which ended with status 'error'"
                return summary, post_failed_error(summary, why), None
            if plan is Plan.WRONG_STATUS or (plan is Plan.NOT_RETRYABLE and self.check_retryable):
                refused = AyrshareNotRetryableError(f"not retried: {reason}", post_id=post_id)
                return summarize(record, Action.NOT_RETRIED, post_id=post_id), refused, None
            if plan is Plan.RETRY_SPENT:
                summary = summarize(record, Action.ALREADY_RETRIED, post_id=post_id)
                return summary, post_failed_error(summary, f"not retried: {reason}"), None
            if plan is Plan.IN_FLIGHT:
                return summarize(record, Action.IN_FLIGHT, post_id=post_id), None, Action.IN_FLIGHT
            if plan is not Plan.RETRY_LATER:
                summary, error, waiting_on = self._retry_once(context, post_id)
                if waited_until:
                    summary["waited_until"] = waited_until
                return summary, error, waiting_on
            not_before, why = retry_not_before(record, seen_at) or (seen_at, "")
            wait = (not_before - datetime.now(UTC)).total_seconds()
            longest = self.timeout if self.max_wait_hint is None else self.max_wait_hint
            if wait > longest:
                too_late = AyrshareRetryLaterError(
                    f"not retried yet: {why}, so the retry helps only from {not_before.isoformat()}, "
                    f"more than this task waits for a hint ({longest:g} s); run it again after that moment",
                    not_before=not_before,
                    post_id=post_id,
                )
                return summarize(record, Action.NOT_RETRIED, post_id=post_id), too_late, None
            self.log.info(
                "Post %s: %s; waiting %.0f s, until %s, before its one retry", post_id, why, wait, not_before
            )
            if self.deferrable:
                from airflow.providers.common.compat.standard.triggers import TimeDeltaTrigger

                _wait_for(context, seen_at=seen_at.isoformat(), waited_until=not_before.isoformat())
                self.defer(
                    trigger=TimeDeltaTrigger(timedelta(seconds=max(0.0, wait))),
                    method_name="execute_after_wait_hint",
                )
            time.sleep(max(0.0, wait))  # then read the post again: it may have changed meanwhile
            waited_until = not_before.isoformat()

    def _retry_once(self, context: Context, post_id: str) -> _Decision:
        """Send the one retry (the hook sends it again only if it surely did not land); handle "already retried"."""
        sent_at = datetime.now(UTC)
        try:
            answer = self.hook.retry_post(post_id)
        except AyrshareAlreadyRetriedError:
            _remember_sent(context, post_id)
            # Retried before (maybe by this very task, when an answer was lost): its status is the truth.
            record = self.hook.get_post(post_id)
            summary = summarize(record, Action.ALREADY_RETRIED, post_id=post_id)
            if wait_state(record) is WaitState.FAILED:
                why = f"already retried, and the retry ended with status {summary['status']!r}"
                return summary, post_failed_error(summary, why), None
            self.log.info("Post %s was already retried; it is %r, waiting for it", post_id, status_of(record))
            return summary, None, Action.ALREADY_RETRIED
        _remember_sent(context, post_id)
        self.log.info("Retry of post %s accepted: %r", post_id, answer.get("status"))
        record = {"id": post_id, "status": answer.get("status") or "pending"}
        summary = summarize(record, Action.RETRIED, post_id=post_id)
        summary["retried_at"] = sent_at.isoformat()
        return summary, None, Action.RETRIED

    def _fresh_plan_record(self, context: Context, post_id: str) -> dict[str, Any] | None:
        """The plan's record of this post when this attempt may act on it without a read; else None (read first)."""
        if self.record is None or not 0 < self.max_record_age < math.inf:  # 0 (or NaN): always read
            return None
        why_read = None
        age = time.time() - _as_float(self.record_as_of)
        try_number = getattr(context["ti"], "try_number", 1) or 1
        if not isinstance(self.record, dict) or self.record.get("id") != post_id:
            why_read = "the plan's record is not this post's"
        elif try_number > 1:
            why_read = f"attempt {try_number} does not trust what the plan read before the first"
        elif _sent_before(context, post_id):
            why_read = "this task instance sent its retry before"
        elif math.isnan(age):
            why_read = "the plan gave no moment its record is as of (record_as_of)"
        elif age < -_CLOCK_SKEW:
            why_read = f"the plan's record is dated {-age:.0f} s ahead of this machine's clock"
        elif age > self.max_record_age:
            why_read = (
                f"the plan's record is {age:.0f} s old, over max_record_age ({self.max_record_age:g} s)"
            )
        elif plan_retry(self.record)[0] not in _TRUSTED_PLANS:
            why_read = "the plan's record does not call for a retry"
        if why_read:
            self.log.info("Post %s: reading it first: %s", post_id, why_read)
            return None
        self.log.info(
            "Post %s: acting on the plan's record (%.0f s old), without a read of its own", post_id, age
        )
        return self.record

    def _coerce_rendered(self) -> None:
        """Templated settings arrive as strings when a template renders them: make them numbers and flags."""
        self.poll_interval = interval("poll_interval", self.poll_interval)
        self.timeout = seconds("timeout", self.timeout)
        self.max_record_age = seconds("max_record_age", self.max_record_age)
        if self.max_wait_hint in (None, "", "None"):
            self.max_wait_hint = None
        else:
            self.max_wait_hint = seconds("max_wait_hint", self.max_wait_hint)
        for name in ("wait_for_completion", "check_retryable", "batch_wait", "end_from_trigger"):
            setattr(self, name, flag(name, getattr(self, name)))


# What this task instance knows of its own retry, across its attempts (Airflow 3.3's task state
# store; older Airflow has none, and then the post's status is all there is to go on): that its
# retry landed, so that no later attempt sends another. Nothing is marked before the PUT: a later
# attempt reads the post first, and Ayrshare answers a second PUT with 329, which the operator reads.
# Not ResumableJobMixin: it resubmits a job that ended failed; a post's one retry is never resent.
_STATE_KEY = "ayrshare_retry"


def _remember_sent(context: Context, post_id: str) -> None:
    store: Any = context.get("task_state_store")  # Airflow 3.3+; the Context type of older ones lacks it
    if store is not None:
        store.set(_STATE_KEY, {"post_id": post_id, "state": "sent"})


def _sent_before(context: Context, post_id: str) -> bool:
    store: Any = context.get("task_state_store")
    memory = store.get(_STATE_KEY) if store is not None else None
    return isinstance(memory, dict) and memory.get("post_id") == post_id and memory.get("state") == "sent"


def _as_float(moment: Any) -> float:
    """A record's moment as ``time.time()`` seconds; NaN when it is missing or not a number."""
    try:
        return float(moment)
    except (TypeError, ValueError):
        return math.nan


def _wait_for(context: Context, **wait: str) -> None:
    """Keep the wait hint's moments for the resumed task (see :data:`WAIT_HINT_XCOM_KEY`)."""
    context["ti"].xcom_push(key=WAIT_HINT_XCOM_KEY, value=wait)


def _waited_for(context: Context) -> dict[str, Any]:
    """What :func:`_wait_for` kept, in this try of the task."""
    ti = context["ti"]
    kept = ti.xcom_pull(task_ids=ti.task_id, key=WAIT_HINT_XCOM_KEY, map_indexes=ti.map_index)
    return kept if isinstance(kept, dict) else {}
