"""PostStatusSensor: wait until a post is published (or fails)."""

from __future__ import annotations

from functools import cached_property
from typing import TYPE_CHECKING, Any

from airflow.providers.common.compat.sdk import BaseSensorOperator, PokeReturnValue

from ayrshare_provider.exceptions import AyrshareError, is_transient
from ayrshare_provider.links.ayrshare import AyrsharePostLink
from ayrshare_provider.operators.task_mixin import AyrshareTaskMixin, default_deferrable
from ayrshare_provider.posts import (
    Action,
    StatusWatch,
    WaitState,
    post_failed_error,
    summarize,
    validate_post_id,
)

if TYPE_CHECKING:
    from collections.abc import Sequence

    from airflow.sdk import Context


class PostStatusSensor(AyrshareTaskMixin, BaseSensorOperator):
    """
    Wait for a post's final status: succeed with its summary when published, fail when it failed.

    Any other status (``pending``, ``processing``, ``paused``, ``awaiting approval``, or one
    this provider does not know) keeps the sensor waiting. Works in ``poke``, ``reschedule``
    and deferrable mode; ``poke_interval`` and ``timeout`` apply to all three.

    :param post_id: the top-level Ayrshare post id (templated).
    :param ayrshare_conn_id: the Ayrshare connection (templated).
    :param profile_key: act for this User Profile instead of the connection's Profile Key.
    :param deferrable: wait in the triggerer instead of a worker slot.
    :param batch_wait: while deferred on Airflow 3.3+, share one history listing per interval with
        every other batched wait of the same connection and Profile Key (see ``RetryPostOperator``).
    :param hook_params: more keyword arguments for :class:`~ayrshare_provider.hooks.ayrshare.AyrshareHook`
        (``timeout``, ``max_attempts``, ``backoff``, ``max_backoff``); also used while deferred.
    :param end_from_trigger: when the post publishes while deferred, end the task in the triggerer
        with the same XComs instead of resuming it on a worker (see
        :class:`~ayrshare_provider.operators.ayrshare.RetryPostOperator`).
    """

    template_fields: Sequence[str] = ("post_id", "ayrshare_conn_id")
    operator_extra_links = (AyrsharePostLink(),)
    ui_color = "#e8f0fe"

    def __init__(
        self,
        *,
        post_id: str,
        ayrshare_conn_id: str = "ayrshare_default",
        profile_key: str | None = None,
        deferrable: bool = default_deferrable(),
        batch_wait: bool = False,
        hook_params: dict[str, Any] | None = None,
        end_from_trigger: bool = False,
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

    @cached_property
    def _watch(self) -> StatusWatch:
        return StatusWatch(validate_post_id(self.post_id), lambda: self.log)

    def poke(self, context: Context) -> PokeReturnValue:
        post_id = validate_post_id(self.post_id)
        try:
            record = self.hook.get_post(post_id)
        except AyrshareError as err:
            if not is_transient(err):
                raise
            self.log.warning("Reading post %s failed for now, poking again later: %s", post_id, err)
            return PokeReturnValue(is_done=False)
        state = self._watch.observe(record)
        if state is WaitState.WAITING:
            return PokeReturnValue(is_done=False)
        summary = summarize(record, Action.WATCHED, post_id=post_id)
        self.report(context, summary)
        if state is WaitState.FAILED:
            raise post_failed_error(summary)
        return PokeReturnValue(is_done=True, xcom_value=summary)

    def execute(self, context: Context) -> Any:
        self.report_no_url_yet(context)
        if not self.deferrable:
            return super().execute(context)
        first = self.poke(context)  # no deferral when the post is final already
        if first.is_done:
            return first.xcom_value
        trigger = self.status_trigger(
            validate_post_id(self.post_id),
            timeout=float(self.timeout),
            poll_interval=float(self.poke_interval),
            action=Action.WATCHED.value,
        )
        return self.wait_for_final_status(context, trigger, float(self.timeout))
