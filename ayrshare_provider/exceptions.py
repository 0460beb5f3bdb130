"""Errors raised by the Ayrshare provider (:mod:`ayrshare_provider.hooks.answers` turns an answer into one).

Every error says which call failed, for which post, with what HTTP status and Ayrshare code,
and what Ayrshare said per network. None of them ever carries a credential: messages are
built only from the structured fields below, never from request headers or raw bodies.
"""

from __future__ import annotations

from typing import Any

from airflow.providers.common.compat.sdk import AirflowException, AirflowFailException

#: Ayrshare's code for "This post was already retried and cannot be retried again."
ALREADY_RETRIED_CODE = 329

# What a user can do about the codes Ayrshare documents; shown after the message.
_HINTS: dict[int, str] = {
    107: "the network rejected a duplicate post: change the text before posting again",
    110: "the network rejected a duplicate post: change the text before posting again",
    137: "duplicate content: Ayrshare refuses the same text on this profile and network within 48 hours; "
    "change the text",
    156: "the social network is not linked to this profile: link it in the Ayrshare dashboard",
    161: "Facebook authorization expired: relink Facebook in the Ayrshare dashboard",
    272: "X rejected the authorization: check the X consumer key/secret in the connection",
    ALREADY_RETRIED_CODE: "already retried: cannot be retried again",
    349: "the social account is locked: unlock it on the network, then relink",
}


class AyrshareError(AirflowException):
    """
    A call to Ayrshare failed, or a post did not end as asked.

    :param message: what went wrong, in words (Ayrshare's own message where it gave one).
    :param call: the call that failed, such as ``"PUT /api/post/retry"``.
    :param post_id: the Ayrshare post concerned, if any.
    :param http_status: the HTTP status Ayrshare answered with, if any.
    :param code: Ayrshare's numeric error code, if any.
    :param errors: per-network errors, each a dict with ``platform``, ``code`` and ``message``.
    :param hint: what the user can do next, if known.
    """

    def __init__(
        self,
        message: str,
        *,
        call: str | None = None,
        post_id: str | None = None,
        http_status: int | None = None,
        code: int | None = None,
        errors: list[dict[str, Any]] | None = None,
        hint: str | None = None,
    ) -> None:
        self.message = message
        self.call = call
        self.post_id = post_id
        self.http_status = http_status
        self.code = code
        self.errors = errors or []
        self.hint = hint or _hint_for(code, self.errors)
        super().__init__(self._describe())

    def _describe(self) -> str:
        # A failed call reads "Ayrshare <call> for post 'x' failed: ..."; a decision about a post
        # that no call got wrong (not retried, must wait) reads "Post 'x': ...".
        if self.call:
            subject = (
                f"Ayrshare {self.call}" + (f" for post {self.post_id!r}" if self.post_id else "") + " failed"
            )
        else:
            subject = f"Post {self.post_id!r}" if self.post_id else ""
        details = [
            f"HTTP {self.http_status}" if self.http_status is not None else "",
            f"code {self.code}" if self.code is not None else "",
        ]
        head = ", ".join(part for part in (subject, *details) if part)
        text = f"{head}: {self.message}" if head else self.message
        for error in self.errors:
            text += f"; {network_error_text(error)}"
        if self.hint and self.hint not in text:
            text += f" ({self.hint})"
        return text


# Final errors: no later attempt of the task can change them, so they fail it at once. The one
# mark of that is AirflowFailException (Airflow skips the task's retries and any retry policy for
# it); retry_policy.py reads nothing else.


class AyrshareConfigError(AyrshareError, AirflowFailException):
    """The connection or the arguments cannot work (no API key, bad host, plain HTTP to a remote host). Final."""


class AyrshareInvalidPostIdError(AyrshareError, AirflowFailException, ValueError):
    """A post id that is not an Ayrshare id (empty, blank, or with characters that could reach another URL)."""


class AyrshareAuthError(AyrshareError, AirflowFailException):
    """401 or 403: the API key, Profile Key or X credentials were refused. Never retried; final."""


class AyrshareProfilesFailedError(AyrshareError, AirflowFailException):
    """A recovery over many profiles could not plan some of them (a refused key...); the others were recovered."""


class AyrshareNotFoundError(AyrshareError, AirflowFailException):
    """404: no such post for this profile (or a Profile Key of another profile). Final."""


class AyrshareWriteRefusedError(AyrshareError, AirflowFailException):
    """
    Ayrshare refused a write (a retry or a new post) with a 4xx other than 429. Final: the same
    write would be refused again, and Ayrshare asks that a refused write never be sent again.
    """


class AyrshareWriteUncertainError(AyrshareError, AirflowFailException):
    """
    A write was sent again after its answer was lost, and the resend was refused: whether the first
    send made something is unknown (a refusal of a repeated ``idempotencyKey``, or code 137 because
    the first one landed, look alike). Final: nothing is sent again; a person looks.
    """


class AyrshareRepostUncertainError(AyrshareWriteUncertainError):
    """
    A repost of the post was sent earlier and its answer never came, too long ago to send it again
    safely, or its resend was refused: it may exist. Final: a person looks in Ayrshare's history,
    then deletes the ledger's Variable to allow one more repost (:mod:`~ayrshare_provider.repost_ledger`).
    """


class AyrshareRateLimitError(AyrshareError):
    """
    429: too many requests.

    :param retry_after: seconds to wait, when the response said so.
    """

    def __init__(self, message: str, *, retry_after: float | None = None, **kwargs: Any) -> None:
        self.retry_after = retry_after
        super().__init__(message, **kwargs)


class AyrshareAlreadyRetriedError(AyrshareError, AirflowFailException):
    """Code 329: the post was retried before and can never be retried again. Final."""


class AyrshareServerError(AyrshareError):
    """5xx, a dropped connection, a timeout, or a body that is not the JSON Ayrshare sends."""


class AyrshareConnectionError(AyrshareServerError):
    """
    No answer from the API: the host's name did not resolve, the connection was refused or
    dropped, TLS failed, or the answer did not come in time. The message names the URL and which.

    :param url: the origin that was called (never a path with an id, never a credential).
    :param reason: what failed, in words: "DNS lookup failed", "connection refused", ...
    """

    def __init__(self, message: str, *, url: str, reason: str, **kwargs: Any) -> None:
        self.url = url
        self.reason = reason
        super().__init__(message, **kwargs)


class AyrshareRetryUnconfirmedError(AyrshareServerError):
    """The retry's answer was lost and the post could not be read: nobody knows yet whether it landed."""


class AyrsharePostFailedError(AyrshareError, AirflowFailException):
    """The post ended with status ``error`` (or was deleted) instead of being published. Final: its one retry is spent."""


class AyrshareNotRetryableError(AyrshareError, AirflowFailException):
    """The post is not in a state that a retry can fix; the message says why. Final."""


class AyrshareWaitTimeoutError(AyrshareError):
    """The post had not reached a final status when the wait's timeout ran out."""


class AyrshareRetryLaterError(AyrshareError, AirflowFailException):
    """
    A network asked to wait (say, Instagram's code 435) until past the task's timeout; nothing was sent.

    "Later" is the *post's* one retry, which stays unspent for a later run. The *task* fails at
    once (final): its own next attempts come within minutes, long before the moment the network
    named, so they would only fail the same way.

    :param not_before: the earliest moment the retry can help (timezone-aware).
    """

    def __init__(self, message: str, *, not_before: Any, **kwargs: Any) -> None:
        self.not_before = not_before
        super().__init__(message, **kwargs)


def network_error_text(error: dict[str, Any]) -> str:
    """One network's error in words, as every message and report says it: ``facebook: code 161 <message>``."""
    return f"{error.get('platform') or 'network'}: code {error.get('code')} {error.get('message') or ''}".rstrip()


def is_transient(error: BaseException) -> bool:
    """Whether repeating the same read may succeed: 5xx, transport errors and 429."""
    return isinstance(error, (AyrshareServerError, AyrshareRateLimitError))


def _hint_for(code: int | None, errors: list[dict[str, Any]]) -> str | None:
    for candidate in [code, *(error.get("code") for error in errors)]:
        if isinstance(candidate, int) and candidate in _HINTS:
            return _HINTS[candidate]
    return None
