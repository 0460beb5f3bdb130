"""PostStatusTrigger: waits for a post's final status in the triggerer, without a worker slot."""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import AsyncIterator
from typing import Any

from airflow.triggers.base import BaseTrigger, TriggerEvent

from ayrshare_provider.exceptions import AyrshareError, AyrshareWaitTimeoutError, is_transient
from ayrshare_provider.posts import Action, StatusWatch, WaitState, post_failed_error, summarize

_FIRST_POLL_SPREAD = 5.0  # seconds, at most

# Event "status" values; execute_complete() turns each into a return value or an error.
EVENT_SUCCESS = "success"
EVENT_FAILED = "failed"
EVENT_TIMEOUT = "timeout"
EVENT_ERROR = "error"


class PostStatusTrigger(BaseTrigger):
    """
    Polls one post until it is published, fails, or the deadline passes; yields one event.

    Transient errors (5xx, dropped connections, 429) are logged and polled through until the
    deadline; anything else (bad key, unknown post) ends the wait at once. The event holds the
    post's summary and never a credential.

    :param post_id: the Ayrshare post to watch.
    :param ayrshare_conn_id: the Ayrshare connection; read again in the triggerer.
    :param end_time: wall-clock deadline (``time.time()`` seconds), so it survives a triggerer restart.
    :param poll_interval: seconds between two reads.
    :param profile_key: a Profile Key given to the task instead of the connection's.
    :param action: what the task did before deferring, carried into the summary.
    :param hook_params: keyword arguments for the hook (plain values: timeouts, attempts, backoff).
    """

    def __init__(
        self,
        post_id: str,
        ayrshare_conn_id: str,
        end_time: float,
        poll_interval: float = 15.0,
        profile_key: str | None = None,
        action: str = Action.WATCHED.value,
        hook_params: dict[str, Any] | None = None,
    ) -> None:
        super().__init__()
        self.post_id = post_id
        self.ayrshare_conn_id = ayrshare_conn_id
        self.end_time = float(end_time)
        self.poll_interval = float(poll_interval)
        self.profile_key = profile_key
        self.action = action
        self.hook_params = hook_params or {}
        if profile_key:
            from airflow.providers.common.compat.sdk import mask_secret

            mask_secret(profile_key)

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
            },
        )

    def __repr__(self) -> str:
        # The triggerer logs repr(trigger); BaseTrigger's would print every kwarg, profile_key included.
        return f"<PostStatusTrigger post_id={self.post_id!r} conn_id={self.ayrshare_conn_id!r} end_time={self.end_time}>"

    def _event(self, status: str, message: str, summary: dict[str, Any] | None = None) -> TriggerEvent:
        return TriggerEvent({"status": status, "post_id": self.post_id, "message": message, "summary": summary})

    async def run(self) -> AsyncIterator[TriggerEvent]:
        from ayrshare_provider.hooks.ayrshare import AyrshareHook

        # tcp_keep_alive: the sync session's socket options; a trigger only uses the async session.
        hook = AyrshareHook(self.ayrshare_conn_id, profile_key=self.profile_key, tcp_keep_alive=False, **self.hook_params)
        watch = StatusWatch(self.post_id, self.log)
        # The task read the post just before deferring. A random first wait spreads the polls of
        # triggers that start together (a mapped recovery defers hundreds at once), so that
        # neither the triggerer's event loop nor the profile's rate limit sees them in lockstep.
        await asyncio.sleep(random.uniform(0, max(0.0, min(self.poll_interval, self.end_time - time.time(), _FIRST_POLL_SPREAD))))
        try:
            while True:
                try:
                    record = await hook.aget_post(self.post_id)
                except AyrshareError as err:
                    if not is_transient(err):
                        yield self._event(EVENT_ERROR, str(err))
                        return
                    self.log.warning("Reading post %s failed for now, polling on: %s", self.post_id, err)
                else:
                    state = watch.observe(record)
                    if state is not WaitState.WAITING:
                        summary = summarize(record, Action(self.action), post_id=self.post_id)
                        status = EVENT_SUCCESS if state is WaitState.SUCCESS else EVENT_FAILED
                        yield self._event(status, f"post {self.post_id} is {summary['status']}", summary)
                        return
                remaining = self.end_time - time.time()
                if remaining <= 0:
                    yield self._event(EVENT_TIMEOUT, f"post {self.post_id} was not final by the deadline")
                    return
                await asyncio.sleep(min(self.poll_interval, remaining))
        finally:
            await hook.aclose()


def summary_from_event(event: dict[str, Any] | None, post_id: str) -> dict[str, Any]:
    """
    Check a :class:`PostStatusTrigger` event: return the post's summary, or raise its error.

    :param event: the event's payload, as given to ``execute_complete``.
    :param post_id: the post the task waited for, for the error message.
    """
    if not isinstance(event, dict) or "status" not in event:
        raise AyrshareError(f"the trigger sent no usable event: {event!r}", post_id=post_id)
    status, message, summary = event["status"], event.get("message") or "", event.get("summary")
    if status == EVENT_SUCCESS and isinstance(summary, dict):
        return summary
    if status == EVENT_FAILED and isinstance(summary, dict):
        raise post_failed_error(summary)
    if status == EVENT_TIMEOUT:
        raise AyrshareWaitTimeoutError(message, post_id=post_id)
    raise AyrshareError(message or f"the trigger ended with status {status!r}", post_id=post_id)

