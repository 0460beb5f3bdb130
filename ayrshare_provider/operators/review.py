"""ReviewPostsOperator: ask a person, in Airflow, which blocked posts to retry once they are fixed.

Built on the standard provider's human-in-the-loop operator (Airflow 3.1+). Importing this module
on an older Airflow raises :class:`ImportError` with the reason; the recovery DAG then skips those
posts with theirs.
"""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING, Any

from ayrshare_provider import metrics
from ayrshare_provider.metrics import Metric
from ayrshare_provider.version_compat import hitl_operator

if TYPE_CHECKING:
    from airflow.providers.standard.operators.hitl import HITLOperator
else:
    HITLOperator = hitl_operator()
    if HITLOperator is None:
        raise ImportError(
            "ReviewPostsOperator needs Airflow 3.1+ and a standard provider whose HITLOperator takes "
            "response_timeout (human-in-the-loop operators)"
        )

from ayrshare_provider.exceptions import AyrshareConfigError
from ayrshare_provider.posts import network_name, validate_post_id
from ayrshare_provider.utils.rendered import seconds
from ayrshare_provider.utils.xcom import PERSON_ANSWER_XCOM_KEY

if TYPE_CHECKING:
    from collections.abc import Sequence

    from airflow.sdk import Context


class ReviewPostsOperator(HITLOperator):
    """
    Ask a person which posts to retry, once they have fixed what blocks them (relink, new media...).

    One request lists every post (id, text, each network's error and what to fix); the person
    picks the posts they fixed, or "Retry none". The step returns the ids picked, for a retry step
    (``RetryPostOperator`` with ``check_retryable=False``) to map over, and pushes the whole answer
    under ``PERSON_ANSWER_XCOM_KEY``. With no post to ask about, the step ends at once and asks nobody. When no one
    answers within ``timeout`` the step chooses "Retry none" and ends: nothing is retried.

    On Airflow 3.3 the step waits in the scheduler's ``awaiting_input`` state (no worker slot, no
    triggerer); on 3.1 and 3.2 it is deferred. People answer under Browse > Required Actions, or
    through the REST API (``PATCH .../taskInstances/{task_id}/{map_index}/hitlDetails``).

    The answer: ``chosen`` (ids), ``left`` (each post not chosen, with its networks),
    ``responded_by`` (the person's name, None after a timeout), ``responded_at`` and ``timed_out``.

    :param posts: the posts to ask about (templated), each as
        :func:`~ayrshare_provider.posts.person_request` builds it; usually the recovery plan's
        ``needs_person`` from XCom.
    :param timeout: seconds to wait for an answer (templated; default 24 hours).
    :param subject: the request's headline (templated).
    :param kwargs: more arguments of :class:`~airflow.providers.standard.operators.hitl.HITLOperator`
        and ``BaseOperator``: ``notifiers`` (called when the request is made, each with the task's
        context: a Slack or email notifier tells the person), ``assigned_users``.
    """

    RETRY_NONE = "Retry none"

    template_fields: Sequence[str] = ("subject", "posts", "timeout")
    ui_color = "#fff4d6"

    def __init__(
        self,
        *,
        posts: Any,
        timeout: float | str = 24 * 3600,
        subject: str = "Failed Ayrshare posts: which ones did you fix?",
        **kwargs: Any,
    ) -> None:
        for fixed in ("options", "defaults", "multiple", "body", "response_timeout"):
            if fixed in kwargs:
                raise ValueError(f"ReviewPostsOperator sets {fixed!r} itself")
        super().__init__(
            subject=subject,
            options=[self.RETRY_NONE],  # the posts' options are known only when the step runs
            defaults=[self.RETRY_NONE],  # a timeout chooses this: nothing is retried
            multiple=True,
            **kwargs,
        )
        self.posts = posts
        self.timeout = timeout

    def execute(self, context: Context) -> Any:
        posts = self._prepare()
        if not posts:
            self.log.info("No post needs a person: nobody is asked")
            return self._answer(context, posts, chosen_options=[], responded_by=None, responded_at=None)
        self.log.info("Asking a person about %d post(s): %s", len(posts), ", ".join(p["id"] for p in posts))
        for post in posts:
            metrics.count(Metric.PERSON_ASKED, network=metrics.networks_of(post))
        return super().execute(context)

    def execute_complete(self, context: Context, event: dict[str, Any]) -> Any:
        posts = self._prepare()  # the step is built anew on resume: its options are the posts again
        answer = super().execute_complete(context, event)
        person = answer.get("responded_by_user")
        responded_at = answer.get("responded_at")
        return self._answer(
            context,
            posts,
            chosen_options=list(answer.get("chosen_options") or []),
            responded_by=(person.get("name") or person.get("id") or "someone")
            if isinstance(person, dict)
            else None,
            responded_at=responded_at.isoformat() if hasattr(responded_at, "isoformat") else responded_at,
        )

    # -- the request ------------------------------------------------------------------------------

    def _prepare(self) -> list[dict[str, Any]]:
        """Read the posts, and set the request's options, body and timeout from them."""
        posts = _posts(self.posts)
        self.response_timeout = timedelta(seconds=seconds("timeout", self.timeout))
        self.options = [self.RETRY_NONE, *(option_for(post) for post in posts)]
        self.body = request_body(posts)
        return posts

    def _answer(
        self,
        context: Context,
        posts: list[dict[str, Any]],
        *,
        chosen_options: list[str],
        responded_by: str | None,
        responded_at: str | None,
    ) -> list[str]:
        """The ids the person chose (the step's return value); "Retry none" among the choices wins."""
        by_option = {option_for(post): post for post in posts}
        chosen = [] if self.RETRY_NONE in chosen_options else [by_option[o]["id"] for o in chosen_options]
        timed_out = bool(posts) and responded_by is None
        left = [
            {"id": post["id"], "networks": post["networks"], "by": responded_by}
            for post in posts
            if post["id"] not in chosen
        ]
        if posts:
            self.log.info(
                "%s: retry %s; left %s",
                "No answer in time" if timed_out else f"{responded_by} answered",
                ", ".join(chosen) or "none",
                ", ".join(entry["id"] for entry in left) or "none",
            )
        answer = {
            "chosen": chosen,
            "left": left,
            "responded_by": responded_by,
            "responded_at": responded_at,
            "timed_out": timed_out,
        }
        context["ti"].xcom_push(key=PERSON_ANSWER_XCOM_KEY, value=answer)
        return chosen


def option_for(post: dict[str, Any]) -> str:
    """The option a person ticks to retry this post: its id and networks (unique: ids are)."""
    networks = ", ".join(network_name(error.get("platform")) for error in post["networks"]) or "no network"
    whose = f" of {post['profile']}" if post.get("profile") else ""  # a run over many profiles
    return f"Retry {post['id']}{whose} ({networks})"


def request_body(posts: list[dict[str, Any]]) -> str:
    """The request, in Markdown: one row per post and network, with what to fix."""
    rows = [
        "These posts failed for a reason only a person can fix. Fix each cause, then tick the "
        "posts to retry (each is retried once); leave the others. Ayrshare retries a post only once.",
        "",
        "| Post | Text | Network | Error | What to fix |",
        "| --- | --- | --- | --- | --- |",
    ]
    for post in posts:
        for error in post["networks"] or [{"platform": None, "code": None, "message": post["reason"]}]:
            cells = [
                f"`{post['id']}`" + (f" ({post['profile']})" if post.get("profile") else ""),
                post.get("text") or "",
                network_name(error.get("platform")),
                f"{error.get('code') or ''} {error.get('message') or ''}".strip(),
                error.get("fix") or post["reason"],
            ]
            rows.append("| " + " | ".join(_cell(cell) for cell in cells) + " |")
    return "\n".join(rows)


def _cell(text: str) -> str:
    """Text that cannot break a Markdown table row."""
    return " ".join(str(text).replace("|", "\\|").split())


def _posts(value: Any) -> list[dict[str, Any]]:
    """The rendered ``posts``: a list of person requests, checked (a bad one is a clear error)."""
    if value in (None, ""):
        return []
    if not isinstance(value, list):
        raise AyrshareConfigError(f"posts must be a list of posts to ask about, got {type(value).__name__}")
    posts = []
    for item in value:
        if not isinstance(item, dict):
            raise AyrshareConfigError(f"each of posts must be a dict with an 'id', got {item!r}")
        networks: list[Any] = item["networks"] if isinstance(item.get("networks"), list) else []
        posts.append(
            {
                "id": validate_post_id(item.get("id")),
                "text": str(item.get("text") or ""),
                "networks": [error for error in networks if isinstance(error, dict)],
                "reason": str(item.get("reason") or "a person must fix it first"),
                "profile": str(item.get("profile") or ""),  # whose post, in a run over many profiles
            }
        )
    return posts
