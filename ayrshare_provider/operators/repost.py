"""RepostOperator: publish a post whose one retry is spent as one new post, once (idempotencyKey)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from airflow.providers.common.compat.sdk import BaseOperator

from ayrshare_provider import metrics, repost_ledger
from ayrshare_provider.exceptions import (
    AyrshareNotFoundError,
    AyrshareNotRetryableError,
    AyrshareRepostUncertainError,
    AyrshareWriteRefusedError,
    AyrshareWriteUncertainError,
)
from ayrshare_provider.links.ayrshare import AyrsharePostLink
from ayrshare_provider.metrics import Metric
from ayrshare_provider.operators.task_mixin import AyrshareTaskMixin, default_deferrable
from ayrshare_provider.posts import (
    Action,
    WaitState,
    fix_for,
    is_published,
    post_failed_error,
    repost_body,
    summarize,
    validate_post_id,
    wait_state,
)
from ayrshare_provider.utils.rendered import flag, interval, seconds

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
    paused, awaiting approval: it may still publish) or that is itself a repost is refused. A post
    published everywhere is not reposted.

    Exactly once across runs: every repost is written down in Airflow's metadata database
    (:mod:`~ayrshare_provider.repost_ledger`, Airflow Variables) before its ``POST`` and once it is
    made. A post reposted by any earlier run is reported as reposted earlier, with the new post, and
    never posted again; a repost of ours is known as one without any field of its record; a repost
    Ayrshare refused (a 4xx, such as code 137, duplicate content) is never sent again. The body carries
    an ``idempotencyKey`` derived from the original's id and those networks, so that a resend after a
    lost answer (within one attempt, or the task's next attempt within minutes) gets the first repost
    back; a resend later than that would rely on Ayrshare remembering the key, which it does not
    promise, so the task fails with
    :class:`~ayrshare_provider.exceptions.AyrshareRepostUncertainError` for a person to look instead.

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
        self.poll_interval = interval("poll_interval", self.poll_interval)
        self.timeout = seconds("timeout", self.timeout)
        self.batch_wait = flag("batch_wait", self.batch_wait)
        post_id = validate_post_id(self.post_id)
        entry = repost_ledger.entry_of(
            post_id
        )  # what earlier runs and attempts did, whatever Ayrshare recalls
        if entry is not None and entry.state == "made" and entry.new_id:  # made always has its new id
            self.log.info("Post %s was reposted earlier as %s: not posted again", post_id, entry.new_id)
            try:
                record = self.hook.get_post(entry.new_id)
            except AyrshareNotFoundError:
                why = f"reposted earlier as {entry.new_id}, which Ayrshare no longer finds (deleted?)"
                fix = f"delete the Airflow Variable {repost_ledger.entry_key(post_id)!r} to allow a repost"
                self.report(context, _not_reposted({"id": post_id, "status": "error"}, post_id, why, fix))
                raise AyrshareNotRetryableError(f"not reposted: {why}; {fix}", post_id=post_id) from None
            return self._reported(context, post_id, record, Action.REPOSTED_EARLIER, entry.idempotency_key)
        original = self.hook.get_post(post_id)
        if (origin := repost_ledger.original_of(post_id)) is not None:
            self.report(context, summarize(original, Action.NOT_RETRIED, post_id=post_id))
            raise AyrshareNotRetryableError(
                f"not reposted: it is itself this provider's repost of {origin}; a person decides what follows",
                post_id=post_id,
            )
        if entry is not None and entry.state == "refused":
            refused = f"Ayrshare refused it earlier ({entry.refusal})"
            self.report(context, _not_reposted(original, post_id, refused, entry.fix or ""))
            raise AyrshareNotRetryableError(
                f"not reposted: Ayrshare refused its repost earlier ({entry.refusal}); needs a person: "
                f"{entry.fix}, then delete the Airflow Variable {repost_ledger.entry_key(post_id)!r} "
                "to allow one more repost",
                post_id=post_id,
            )
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
        key = body["idempotencyKey"]
        look = (
            "look for it in Ayrshare's history, then delete the Airflow Variable "
            f"{repost_ledger.entry_key(post_id)!r} to allow a repost"
        )
        resending = entry is not None  # "sending": an attempt sent it and never wrote down the answer
        if entry is not None:
            if entry.idempotency_key != key or not entry.key_still_trusted():
                sent = datetime.fromtimestamp(entry.at, UTC).isoformat()
                why = f"a repost was sent at {sent} and its answer never came, so it may exist"
                self.report(context, _not_reposted(original, post_id, why, look))
                raise AyrshareRepostUncertainError(f"not reposted: {why}; {look}", post_id=post_id)
            self.log.info("Post %s: sending its repost again, with the same idempotencyKey %s", post_id, key)
        else:
            entry = repost_ledger.note_sending(post_id, key, self.ayrshare_conn_id)
        self.log.info(
            "Reposting post %s to %s (idempotencyKey %s)", post_id, ", ".join(body["platforms"]), key
        )
        try:
            record = self.hook.create_post(body, post_id=post_id)
        except AyrshareWriteUncertainError as uncertain:  # the ledger keeps "sending": a person looks
            self.report(context, _not_reposted(original, post_id, f"{uncertain.message}; it may exist", look))
            raise
        except AyrshareWriteRefusedError as refused:
            said = refused.message if refused.code is None else f"code {refused.code}: {refused.message}"
            if resending:  # a refused resend: the first send may have made it (137 for its own copy...)
                why = f"its repost was sent again and refused ({said}), so the first may exist"
                self.report(context, _not_reposted(original, post_id, why, look))
                raise AyrshareRepostUncertainError(f"not reposted: {why}; {look}", post_id=post_id) from None
            fix = "; ".join(
                fix_for({"platform": network, "code": refused.code, "message": refused.message})
                for network in body["platforms"]
            )
            self.report(context, _not_reposted(original, post_id, f"Ayrshare refused it ({said})", fix))
            try:  # nothing was made: written down so that no run sends it again
                repost_ledger.note_refused(entry, said, fix)
            except Exception as err:  # noqa: BLE001 - the refusal stays final either way
                self.log.warning(
                    "Post %s: the refusal is not written down (%s); its entry says 'sending'", post_id, err
                )
            raise
        repost_ledger.note_made(entry, record["id"])
        metrics.count(
            Metric.REPOST_CREATED, profile=self.ayrshare_conn_id, network="+".join(sorted(body["platforms"]))
        )
        self.log.info("Post %s reposted as %s: %r", post_id, record["id"], record.get("status"))
        return self._reported(context, post_id, record, Action.REPOSTED, key, body["platforms"])

    def _reported(
        self,
        context: Context,
        post_id: str,
        record: dict[str, Any],
        action: Action,
        key: str,
        networks: list[str] | None = None,
    ) -> dict[str, Any]:
        """Report the repost (made now, or earlier), then raise its failure, return it, or wait for it."""
        repost = {
            "id": post_id,  # the report and the summaries know a post by its original id
            "repost_id": record["id"],
            "reposted_networks": networks if networks is not None else list(record.get("platforms") or []),
            "idempotency_key": key,
        }
        summary = {**summarize(record, action, post_id=record["id"]), **repost}
        self.report(context, summary)
        state = wait_state(record)
        said = "reposted earlier" if action is Action.REPOSTED_EARLIER else "reposted"
        if state is WaitState.FAILED:
            raise post_failed_error(summary, f"{said} as {record['id']}, which failed")
        if state is WaitState.SUCCESS or not self.wait_for_completion:
            return summary
        trigger = self.status_trigger(
            record["id"],
            timeout=self.timeout,
            poll_interval=self.poll_interval,
            action=action.value,
            known=repost,
        )
        return self.wait_for_final_status(context, trigger, self.timeout)


def _not_reposted(original: dict[str, Any], post_id: str, why: str, fix: str) -> dict[str, Any]:
    """The summary of a post this task did not repost, with why and what a person does about it."""
    return {**summarize(original, Action.NOT_RETRIED, post_id=post_id), "not_reposted": why, "fix": fix}
