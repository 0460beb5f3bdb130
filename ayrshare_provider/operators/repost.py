"""RepostOperator: publish a post whose one retry is spent as one new post, once (idempotencyKey)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from airflow.providers.common.compat.sdk import BaseOperator

from ayrshare_provider.exceptions import AyrshareNotRetryableError
from ayrshare_provider.links.ayrshare import AyrsharePostLink
from ayrshare_provider.posts import (
    Action,
    WaitState,
    is_published,
    post_failed_error,
    repost_body,
    summarize,
    validate_post_id,
    wait_state,
)
from ayrshare_provider.utils.mixins import AyrshareTaskMixin, default_deferrable
from ayrshare_provider.utils.rendered import flag, seconds

if TYPE_CHECKING:
    from collections.abc import Sequence

    from airflow.sdk import Context


class RepostOperator(AyrshareTaskMixin, BaseOperator):
    """
    Publish a failed post again as a new post, to only the networks that do not have it, once.

    For a post that Ayrshare cannot retry any more (its one retry failed, or was spent before:
    code 329), the only way forward is a new post. This operator reads the original, and creates
    (``POST /api/post``) a post with its text, media and the options that change what is
    published, to **only** the networks whose error the original shows: never one that has it,
    nor one whose outcome the record does not tell. A post that is not ``error`` (in flight,
    paused, awaiting approval: it may still publish) or that is itself a repost is refused. The body
    carries an ``idempotencyKey`` derived from the original's id and those networks, so a second
    attempt of the task (after a lost answer, a kill, a retry) gets the first repost back instead
    of creating another. A post published everywhere is not reposted.

    Returns the summary of the new post, under the original's ``id``, with ``repost_id``,
    ``reposted_networks`` and ``idempotency_key``; raises
    :class:`~ayrshare_provider.exceptions.AyrsharePostFailedError` when the new post failed too.

    :param post_id: the original (failed) post's top-level id (templated).
    :param ayrshare_conn_id: the Ayrshare connection (templated).
    :param profile_key: act for this User Profile instead of the connection's Profile Key (not templated).
    :param wait_for_completion: wait for the new post's final status; otherwise return once it is created.
    :param deferrable: wait in the triggerer instead of a worker slot.
    :param poll_interval: seconds between two reads of the new post while waiting (templated).
    :param batch_wait: share one history listing per interval while deferred (Airflow 3.3+), as
        :class:`~ayrshare_provider.operators.ayrshare.RetryPostOperator` does (templated).
    :param timeout: seconds to wait for the new post's final status (templated).
    :param hook_params: more keyword arguments for :class:`~ayrshare_provider.hooks.ayrshare.AyrshareHook`.
    :param end_from_trigger: when the post publishes while deferred, end the task in the triggerer
        with the same XComs instead of resuming it on a worker (see
        :class:`~ayrshare_provider.operators.ayrshare.RetryPostOperator`) (templated).
    """

    template_fields: Sequence[str] = (
        "post_id",
        "ayrshare_conn_id",
        "poll_interval",
        "timeout",
        "batch_wait",
        "end_from_trigger",
    )
    operator_extra_links = (AyrsharePostLink(),)
    ui_color = "#fdf3e1"

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
        self.wait_for_completion = wait_for_completion
        self.poll_interval = poll_interval
        self.timeout = timeout

    def execute(self, context: Context) -> dict[str, Any]:
        self.report_no_url_yet(context)
        # Templated settings arrive as text when a template renders them.
        self.poll_interval = seconds("poll_interval", self.poll_interval)
        self.timeout = seconds("timeout", self.timeout)
        self.batch_wait = flag("batch_wait", self.batch_wait)
        post_id = validate_post_id(self.post_id)
        original = self.hook.get_post(post_id)
        body = repost_body(original, post_id)  # refuses a post that may still publish, or a repost
        if body is None:  # no network shows an error
            if not is_published(original):
                summary = summarize(original, Action.NOT_RETRIED, post_id=post_id)
                self.report(context, summary)
                raise AyrshareNotRetryableError(
                    "not reposted: no network shows an error, yet not every one has it", post_id=post_id
                )
            self.log.info("Post %s is published on every network it targets: nothing to repost", post_id)
            summary = summarize(original, Action.ALREADY_PUBLISHED, post_id=post_id)
            self.report(context, summary)
            return summary
        self.log.info(
            "Reposting post %s to %s (idempotencyKey %s)",
            post_id,
            ", ".join(body["platforms"]),
            body["idempotencyKey"],
        )
        record = self.hook.create_post(body, post_id=post_id)
        repost = {
            "id": post_id,  # the report and the summaries know a post by its original id
            "repost_id": record["id"],
            "reposted_networks": body["platforms"],
            "idempotency_key": body["idempotencyKey"],
        }
        self.log.info("Post %s reposted as %s: %r", post_id, record["id"], record.get("status"))
        summary = {**summarize(record, Action.REPOSTED, post_id=record["id"]), **repost}
        self.report(context, summary)
        state = wait_state(record)
        if state is WaitState.FAILED:
            raise post_failed_error(summary, f"reposted as {record['id']}, which failed")
        if state is WaitState.SUCCESS or not self.wait_for_completion:
            return summary
        trigger = self.status_trigger(
            record["id"],
            timeout=self.timeout,
            poll_interval=self.poll_interval,
            action=Action.REPOSTED.value,
            known=repost,
        )
        return self.wait_for_final_status(context, trigger, self.timeout)
