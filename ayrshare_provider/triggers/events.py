"""PostStatusEvent: what a post-status wait ends with, as the trigger sends it and the task reads it.

Plain data, light to import (the operator and sensor read it at resume time, the trigger builds it
in the triggerer); both sides go through :meth:`PostStatusEvent.to_payload` and
:meth:`~PostStatusEvent.from_payload`.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import Any

from ayrshare_provider import exceptions
from ayrshare_provider.exceptions import AyrshareError, AyrshareWaitTimeoutError
from ayrshare_provider.posts import post_failed_error

# The errors that end a wait (transient ones are waited through), rebuilt by kind in the task, so
# that a final one (a refused key, an unknown post) fails the task as final there too.
_ERROR_KINDS = frozenset(
    {
        "AyrshareError",
        "AyrshareAuthError",
        "AyrshareConfigError",
        "AyrshareInvalidPostIdError",
        "AyrshareNotFoundError",
        "AyrshareAlreadyRetriedError",
    }
)


class WaitOutcome(str, Enum):
    """How a wait for a post's final status ended."""

    SUCCESS = "success"  # published
    FAILED = "failed"  # ended with status error (or deleted)
    TIMEOUT = "timeout"  # not final by the deadline
    ERROR = "error"  # a call failed in a way waiting cannot fix (bad key, unknown post)


@dataclass(frozen=True)
class PostStatusEvent:
    """
    The one event of a post-status wait: small, JSON-friendly, never a credential.

    :param outcome: how the wait ended.
    :param post_id: the post waited for.
    :param message: what happened, in words.
    :param summary: the post's summary (:func:`ayrshare_provider.posts.summarize`) when it reached a final status.
    :param error: for :attr:`WaitOutcome.ERROR`, the error's kind and fields (:meth:`error_fields`).
    """

    outcome: WaitOutcome
    post_id: str
    message: str
    summary: dict[str, Any] | None = None
    error: dict[str, Any] | None = None

    @staticmethod
    def error_fields(error: AyrshareError) -> dict[str, Any]:
        """What the task needs to raise the same error: its kind, message and context, no credential."""
        return {
            "kind": type(error).__name__,
            "message": error.message,
            "call": error.call,
            "http_status": error.http_status,
            "code": error.code,
            "errors": error.errors,
        }

    def to_payload(self) -> dict[str, Any]:
        """The trigger event's payload."""
        return {
            "status": self.outcome.value,
            "post_id": self.post_id,
            "message": self.message,
            "summary": self.summary,
            "error": self.error,
        }

    @classmethod
    def from_payload(cls, payload: Any, post_id: str) -> PostStatusEvent:
        """
        Read an event's payload back, or raise a clear error for one that is not a post-status event.

        :param payload: what ``execute_complete`` was given.
        :param post_id: the task's post, named in the error when the payload names none.
        """
        if not isinstance(payload, dict):
            raise AyrshareError(f"the trigger sent no usable event: {payload!r}", post_id=post_id)
        watched = payload.get("post_id")
        watched = watched if isinstance(watched, str) else post_id
        try:
            outcome = WaitOutcome(payload.get("status"))
        except ValueError:
            raise AyrshareError(f"the trigger sent no usable event: {payload!r}", post_id=watched) from None
        summary = payload.get("summary")
        if outcome in (WaitOutcome.SUCCESS, WaitOutcome.FAILED) and not isinstance(summary, dict):
            raise AyrshareError(f"the trigger's {outcome.value!r} event has no summary", post_id=watched)
        return cls(
            outcome,
            watched,
            str(payload.get("message") or ""),
            summary if isinstance(summary, dict) else None,
            payload["error"] if isinstance(payload.get("error"), dict) else None,
        )

    def result(self) -> dict[str, Any]:
        """The post's summary when it was published; otherwise the error the task raises."""
        if self.outcome is WaitOutcome.SUCCESS and self.summary is not None:
            return self.summary
        if self.outcome is WaitOutcome.FAILED and self.summary is not None:
            raise post_failed_error(self.summary)
        if self.outcome is WaitOutcome.TIMEOUT:
            raise AyrshareWaitTimeoutError(self.message, post_id=self.post_id)
        raise self._error()

    def _error(self) -> AyrshareError:
        fields = self.error or {}
        kind = fields.get("kind") if fields.get("kind") in _ERROR_KINDS else "AyrshareError"
        error_class: type[AyrshareError] = getattr(exceptions, str(kind))
        errors = fields.get("errors")
        return error_class(
            str(fields.get("message") or self.message or f"the wait ended with {self.outcome.value!r}"),
            call=fields.get("call"),
            post_id=self.post_id,
            http_status=fields.get("http_status"),
            code=fields.get("code"),
            errors=errors if isinstance(errors, list) else None,
        )
