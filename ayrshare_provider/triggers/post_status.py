"""PostStatusTrigger: waits for a post's final status in the triggerer, without a worker slot."""

from __future__ import annotations

import asyncio
import hashlib
import random
import time
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING, Any

from airflow.providers.common.compat.triggers import BaseEventTrigger
from airflow.triggers.base import TriggerEvent

from ayrshare_provider import metrics
from ayrshare_provider.exceptions import AyrshareError, is_transient
from ayrshare_provider.posts import Action, StatusWatch, WaitState, summarize, wait_state
from ayrshare_provider.triggers.events import PostStatusEvent, WaitOutcome
from ayrshare_provider.triggers.history_listing import HistoryListing, history_listings
from ayrshare_provider.triggers.metadata_calls import patiently
from ayrshare_provider.triggers.pushed_status import pushed_record
from ayrshare_provider.triggers.trigger_hook import hook_from_kwargs
from ayrshare_provider.triggers.wait_strategy import WaitStrategy, choose_wait_strategy
from ayrshare_provider.utils.xcom import POST_URL_XCOM_KEY, report_xcoms

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Hashable

    from ayrshare_provider.hooks.ayrshare import AyrshareHook

_FIRST_POLL_SPREAD = 5.0  # seconds, at most
# Airflow's XCom key of a task's return value (XCOM_RETURN_KEY), named here: importing it loads
# Airflow's XCom model, which the triggerer never needs otherwise.
_RETURN_VALUE = "return_value"
# A batched wait reads its post on its own when the shared listing did not show it this many
# times in a row (it may be older than the listing's 1,000 newest posts, or the listing failed)...
_READ_ALONE_AFTER_UNSEEN = 2
# ... or showed it unsettled this many times (about ten minutes): correctness never rests on the listing.
_READ_ALONE_AFTER_UNSETTLED = 10
# One listing can settle hundreds of waits at once; each finishes within this many seconds, at
# random, so that their events are not all built in one turn of the triggerer's event loop.
_SETTLE_SPREAD = 0.1


@dataclass
class _ListingMisses:
    """How many shared listings in a row could not settle one batched wait."""

    unseen: int = 0
    unsettled: int = 0

    def time_to_read_alone(self, listed: bool) -> bool:
        """Count a listing that did not settle the post; True (and start again) when the post should be read alone."""
        if listed:
            self.unseen, self.unsettled = 0, self.unsettled + 1
        else:
            self.unseen += 1
        if self.unseen >= _READ_ALONE_AFTER_UNSEEN or self.unsettled >= _READ_ALONE_AFTER_UNSETTLED:
            self.unseen = self.unsettled = 0
            return True
        return False


class PostStatusTrigger(BaseEventTrigger):
    """
    Polls one post until it is published, fails, or the deadline passes; yields one event.

    Transient errors (5xx, dropped connections, 429) are logged and polled through until the
    deadline; anything else (bad key, unknown post) ends the wait at once. The event is a
    :class:`~ayrshare_provider.triggers.events.PostStatusEvent`: the post's summary, never a credential.

    How it learns the status is its ``strategy``
    (:class:`~ayrshare_provider.triggers.wait_strategy.WaitStrategy`), which the task chose once:
    ``alone`` polls the post (:meth:`run`); ``batched``, on Airflow 3.3+, shares one
    ``GET /api/history`` listing per interval with the other batched waits of the same connection,
    Profile Key and interval (the triggerer's shared streams,
    :mod:`~ayrshare_provider.triggers.history_listing`), trusting a failure there only once the
    listing is younger than ``since`` (history answers are cached for up to a minute) and reading
    the post alone now and then when the listing cannot tell; ``pushed`` checks the status Ayrshare
    pushed to Airflow's webhook receiver each interval
    (:mod:`~ayrshare_provider.triggers.pushed_status`: no call to Ayrshare), and reads the post
    itself only once the connection's ``webhook_grace`` has passed with nothing pushed.

    :param post_id: the Ayrshare post to watch.
    :param ayrshare_conn_id: the Ayrshare connection; read again in the triggerer.
    :param end_time: wall-clock deadline (``time.time()`` seconds), so it survives a triggerer restart.
    :param poll_interval: seconds between two reads.
    :param profile_key: a Profile Key given to the task instead of the connection's.
    :param action: what the task did before deferring, carried into the summary.
    :param hook_params: keyword arguments for the hook (plain values: timeouts, attempts, backoff).
    :param strategy: how the wait learns the status (a ``WaitStrategy`` or its value); ``alone`` by default.
    :param since: wall-clock time the wait began (after the retry landed): a listing younger than
        this settles a failure, and the push grace runs from it; defaults to now.
    :param retried_at: when the task sent the retry waited for: a status Ayrshare pushed from then
        on settles a ``pushed`` wait (the push can come before the task defers); defaults to ``since``.
    :param known: what the task knows beyond the post's record (when it retried, what it
        reposted), added to the final summary; plain JSON values.
    :param end_from_trigger: when the post publishes, end the task here (``TaskSuccessEvent``) with
        the XComs its ``execute_complete`` would push, instead of resuming it on a worker. Only in a
        triggerer: ``dag.test()`` runs a trigger in its own process and resumes the task with the
        event's payload, which carries no XComs, so there the task resumes as usual. Other
        outcomes always resume the task, which raises the post's error as it always has.
    :param push_return_value: with ``end_from_trigger``, push the summary as the task's return value too.
    :param legacy: the keys a trigger serialized by version 0.2 carries instead of ``strategy``
        (``batch_wait``, ``pushed``, ``pushed_after``), read as 0.2 meant them.
    """

    # A task's trigger on BaseEventTrigger, the base Airflow documents for triggers that schedule
    # DAGs: the triggerer gives shared streams (shared_stream_key, open_shared_stream) only to
    # BaseEventTrigger instances, and batched waits are built on them. As a deferred task's trigger,
    # it keeps the [triggerer] queues that BaseEventTrigger turns off.
    supports_triggerer_queue = True

    def __init__(
        self,
        post_id: str,
        ayrshare_conn_id: str,
        end_time: float,
        poll_interval: float = 15.0,
        profile_key: str | None = None,
        action: str = Action.WATCHED.value,
        hook_params: dict[str, Any] | None = None,
        strategy: WaitStrategy | str = WaitStrategy.ALONE,
        since: float | None = None,
        retried_at: float | None = None,
        known: dict[str, Any] | None = None,
        end_from_trigger: bool = False,
        push_return_value: bool = True,
        **legacy: Any,
    ) -> None:
        super().__init__()
        self.post_id = post_id
        self.ayrshare_conn_id = ayrshare_conn_id
        self.end_time = float(end_time)
        self.poll_interval = float(poll_interval)
        self.profile_key = profile_key
        self.action = action
        self.hook_params = hook_params or {}
        self.since = time.time() if since is None else float(since)
        self.retried_at = self.since if retried_at is None else float(retried_at)
        self.known = known or {}
        self.end_from_trigger = bool(end_from_trigger)
        self.push_return_value = bool(push_return_value)
        if legacy and strategy != WaitStrategy.ALONE:
            raise TypeError("PostStatusTrigger takes strategy= or 0.2's batch_wait=/pushed=, not both")
        self.strategy = WaitStrategy(strategy) if not legacy else self._read_legacy(legacy)
        self._unreadable_pushes_logged = False
        if profile_key:
            from airflow.providers.common.compat.sdk import mask_secret

            mask_secret(profile_key)

    def _read_legacy(self, legacy: dict[str, Any]) -> WaitStrategy:
        """The strategy of a trigger serialized by 0.2, which decided it from two flags."""
        unknown = set(legacy) - {"batch_wait", "pushed", "pushed_after"}
        if unknown:
            raise TypeError(
                f"PostStatusTrigger got unexpected keyword arguments: {', '.join(sorted(unknown))}"
            )
        if legacy.get("pushed_after") is not None:  # 0.2's name for retried_at
            self.retried_at = float(legacy["pushed_after"])
        return choose_wait_strategy(
            batch_wait=bool(legacy.get("batch_wait")),
            pushes_expected=bool(legacy.get("pushed")),
            own_profile_key=bool(self.profile_key),
        )

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            f"{type(self).__module__}.{type(self).__qualname__}",
            {
                "post_id": self.post_id,
                "ayrshare_conn_id": self.ayrshare_conn_id,
                "end_time": self.end_time,
                "poll_interval": self.poll_interval,
                "profile_key": self.profile_key,
                "action": self.action,
                "hook_params": self.hook_params,
                "strategy": self.strategy.value,
                "since": self.since,
                "retried_at": self.retried_at,
                "known": self.known,
                "end_from_trigger": self.end_from_trigger,
                "push_return_value": self.push_return_value,
            },
        )

    def __repr__(self) -> str:
        # The triggerer logs repr(trigger); BaseTrigger's would print every kwarg, profile_key included.
        return f"<PostStatusTrigger post_id={self.post_id!r} conn_id={self.ayrshare_conn_id!r} end_time={self.end_time}>"

    def _hook(self) -> AyrshareHook:
        return hook_from_kwargs(self.serialize()[1])

    def _event(
        self,
        outcome: WaitOutcome,
        message: str,
        summary: dict[str, Any] | None = None,
        error: AyrshareError | None = None,
    ) -> TriggerEvent:
        fields = PostStatusEvent.error_fields(error) if error is not None else None
        return TriggerEvent(PostStatusEvent(outcome, self.post_id, message, summary, fields).to_payload())

    async def _final_event(self, record: dict[str, Any], state: WaitState) -> TriggerEvent:
        summary = {**summarize(record, Action(self.action), post_id=self.post_id), **self.known}
        ends_here = state is WaitState.SUCCESS and self.end_from_trigger and self.trigger_id is not None
        if ends_here and (ended := await self._task_success(summary)) is not None:
            return ended
        outcome = WaitOutcome.SUCCESS if state is WaitState.SUCCESS else WaitOutcome.FAILED
        return self._event(outcome, f"post {self.post_id} is {summary['status']}", summary)

    async def _task_success(self, summary: dict[str, Any]) -> TriggerEvent | None:
        """
        End the task here, published, with the XComs its resumed ``execute_complete`` would push;
        None (resume it, as without ``end_from_trigger``) when they cannot be pushed from here.
        """
        from airflow.triggers.base import TaskSuccessEvent

        from ayrshare_provider.version_compat import AIRFLOW_V_3_0_PLUS

        xcoms = report_xcoms(summary)
        if self.push_return_value:
            xcoms[_RETURN_VALUE] = summary
        if not AIRFLOW_V_3_0_PLUS:
            ended = TaskSuccessEvent(xcoms=xcoms)  # 2.11's triggerer stores them as a task would
        else:
            try:
                await _push_as_the_task(self.task_instance, xcoms, self.log)
            except Exception as err:  # noqa: BLE001 - any failure here only means a worker ends the task
                self.log.warning(
                    "Post %s: XComs not pushed from the triggerer (%s); the task resumes", self.post_id, err
                )
                return None
            ended = TaskSuccessEvent()
        self.log.info("Post %s is %s: the task ends here, with its summary", self.post_id, summary["status"])
        metrics.count_retry_outcome(summary, profile=self.ayrshare_conn_id)  # no execute_complete will
        return ended

    def _timeout_event(self) -> TriggerEvent:
        return self._event(WaitOutcome.TIMEOUT, f"post {self.post_id} was not final by the deadline")

    async def _read_alone(self, hook: AyrshareHook, watch: StatusWatch) -> TriggerEvent | None:
        """Read the post on its own: its final event, an error event, or None to keep waiting."""
        try:
            # Never past the deadline, not even waiting for the rate limit: the wait's own timeout
            # event must come before Airflow's deferral timeout.
            record = await asyncio.wait_for(
                hook.aget_post(self.post_id), max(0.1, self.end_time - time.time())
            )
        except TimeoutError:
            return None  # the caller sees the deadline has passed
        except AyrshareError as err:
            if not is_transient(err):
                return self._event(WaitOutcome.ERROR, str(err), error=err)
            self.log.warning("Reading post %s failed for now, polling on: %s", self.post_id, err)
            return None
        state = watch.observe(record)
        return None if state is WaitState.WAITING else await self._final_event(record, state)

    async def run(self) -> AsyncIterator[TriggerEvent]:
        hook = self._hook()
        watch = StatusWatch(self.post_id, lambda: self.log)
        # The task read the post just before deferring. A random first wait spreads the polls of
        # triggers that start together (a mapped recovery defers hundreds at once), so that
        # neither the triggerer's event loop nor the profile's rate limit sees them in lockstep.
        first_wait = min(self.poll_interval, self.end_time - time.time(), _FIRST_POLL_SPREAD)
        await asyncio.sleep(random.uniform(0, max(0.0, first_wait)))
        push_only_until = await self._push_only_until(hook)
        try:
            while True:
                if push_only_until is not None and (event := await self._pushed_event(watch)):
                    yield event
                    return
                if (push_only_until is None or time.time() >= push_only_until) and (
                    event := await self._read_alone(hook, watch)
                ):
                    yield event
                    return
                remaining = self.end_time - time.time()
                if remaining <= 0:
                    yield self._timeout_event()
                    return
                await asyncio.sleep(min(self.poll_interval, remaining))
        finally:
            await hook.aclose()

    # -- waiting on pushed statuses: the webhook receiver, Airflow 3.3 ------------------------------

    async def _push_only_until(self, hook: AyrshareHook) -> float | None:
        """Until when the wait relies on pushed statuses alone; None when it does not read them at all."""
        if self.strategy is not WaitStrategy.PUSHED:
            return None
        try:
            grace = (await hook.asettings()).webhook_grace
        except AyrshareError as err:
            self.log.warning("Post %s: pushed statuses not used (%s)", self.post_id, err)
            return None
        return self.since + grace  # from when the wait began: a late trigger start is no lost delivery

    async def _pushed_event(self, watch: StatusWatch) -> TriggerEvent | None:
        """The final event from a pushed status, if one came."""
        try:
            record = await pushed_record(self.ayrshare_conn_id, self.post_id, self.retried_at)
        except Exception as err:  # noqa: BLE001 - a busy database: as if nothing was pushed yet
            if not self._unreadable_pushes_logged:
                self._unreadable_pushes_logged = True
                self.log.warning(
                    "Post %s: pushed statuses cannot be read (%s); the post is read once the grace is over",
                    self.post_id,
                    err,
                )
            return None
        if record is None or (state := watch.observe(record)) is WaitState.WAITING:
            return None
        self.log.info("Post %s is %s, as Ayrshare pushed it", self.post_id, record.get("status"))
        return await self._final_event(record, state)

    # -- batched waiting: Airflow 3.3's shared streams ------------------------------------------

    def shared_stream_key(self) -> Hashable | None:
        """Batched waits of one connection, Profile Key (as a digest), interval and hook tuning share a listing."""
        if self.strategy is not WaitStrategy.BATCHED:
            return None
        profile = hashlib.sha256((self.profile_key or "").encode()).hexdigest()[:16]
        hook_params = tuple(sorted((name, repr(value)) for name, value in self.hook_params.items()))
        return ("ayrshare-history", self.ayrshare_conn_id, profile, self.poll_interval, hook_params)

    @classmethod
    async def open_shared_stream(cls, kwargs: dict[str, Any]) -> AsyncIterator[HistoryListing]:
        """One poll loop per group: :func:`~ayrshare_provider.triggers.history_listing.history_listings`."""
        hook = hook_from_kwargs(kwargs)
        try:
            async for listing in history_listings(hook, float(kwargs["poll_interval"])):
                yield listing
        finally:
            await hook.aclose()

    async def filter_shared_stream(
        self, shared_stream: AsyncIterator[HistoryListing]
    ) -> AsyncIterator[TriggerEvent]:
        """This post's final event from the shared listings; it reads the post alone only when they cannot tell."""
        watch = StatusWatch(self.post_id, lambda: self.log)
        misses = _ListingMisses()
        hook: AyrshareHook | None = None
        try:
            async for listing in shared_stream:
                if listing.fetched:
                    record = listing.records.get(self.post_id)
                    if record is not None and (state := self._settled_by(record, listing)) is not None:
                        await asyncio.sleep(random.uniform(0, _SETTLE_SPREAD))
                        watch.observe(record)
                        yield await self._final_event(record, state)
                        return
                    if misses.time_to_read_alone(listed=record is not None):
                        hook = hook or self._hook()
                        if event := await self._read_alone(hook, watch):
                            yield event
                            return
                if time.time() >= self.end_time:
                    yield self._timeout_event()
                    return
        finally:
            if hook is not None:
                await hook.aclose()

    def _settled_by(self, record: dict[str, Any], listing: HistoryListing) -> WaitState | None:
        """The post's final state as the listing shows it, or None when the listing cannot settle it."""
        state = wait_state(record)
        if state is WaitState.SUCCESS:
            return state
        # A cached listing may predate the retry and still show the old failure.
        if state is WaitState.FAILED and listing.fresh_as_of >= self.since:
            return state
        return None


async def _push_as_the_task(task_instance: Any, xcoms: dict[str, Any], log: Any) -> None:
    """
    Push ``xcoms`` for the deferred task on Airflow 3, the way its worker would: through the Task
    SDK's ``XCom.set`` (the triggerer serves it as it serves connections). Not ``TaskSuccessEvent``'s
    own ``xcoms``: Airflow 3.0 to 3.3 store those JSON-encoded once more, so that a downstream task
    pulls the summary as a string. Also pushes the extra link's XCom, which Airflow 3 reads instead
    of calling the link, and which the task runner last wrote when the task deferred (no URL yet).
    Each push is tried again while the metadata database is busy (:func:`patiently`).
    """
    from airflow.providers.common.compat.sdk import XCom
    from asgiref.sync import sync_to_async

    from ayrshare_provider.links.ayrshare import AyrsharePostLink

    link = AyrsharePostLink()
    xcoms = {**xcoms, link.xcom_key: xcoms.get(POST_URL_XCOM_KEY) or ""}
    where = {
        "dag_id": task_instance.dag_id,
        "task_id": task_instance.task_id,
        "run_id": task_instance.run_id,
        "map_index": task_instance.map_index,
    }
    for key, value in xcoms.items():
        await patiently(
            partial(sync_to_async(XCom.set), key, value, **where), what=f"Pushing XCom {key!r}", log=log
        )
