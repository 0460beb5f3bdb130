"""What an Ayrshare answer, or its absence, means: the parsed JSON object, or the typed error to raise.

The hook's one reading of every answer: an HTTP status and body become a record or an
:class:`~ayrshare_provider.exceptions.AyrshareError` subclass naming the call, the post, the
status, Ayrshare's code and each network's error; a call that got no answer becomes an
:class:`~ayrshare_provider.exceptions.AyrshareConnectionError` naming the URL and what failed.
"""

from __future__ import annotations

import json
import re
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import urlsplit

from ayrshare_provider.exceptions import (
    ALREADY_RETRIED_CODE,
    AyrshareAlreadyRetriedError,
    AyrshareAuthError,
    AyrshareConnectionError,
    AyrshareError,
    AyrshareNotFoundError,
    AyrshareRateLimitError,
    AyrshareServerError,
    AyrshareWriteRefusedError,
)

if TYPE_CHECKING:
    from collections.abc import Iterator

_E = TypeVar("_E", bound=AyrshareError)


def refused_write(error: AyrshareError) -> AyrshareError:
    """
    ``error`` as the final :class:`AyrshareWriteRefusedError` when it is Ayrshare refusing a write:
    a plain 4xx answer, or an error envelope with a 2xx status. Already final errors (401, 403,
    404, 329), a 429 and a 5xx stay as they are.
    """
    status = error.http_status
    if type(error) is not AyrshareError or status is None or status >= 500:
        return error
    return _retyped(error, AyrshareWriteRefusedError)


def refused_key(error: AyrshareAuthError, conn_id: str) -> AyrshareAuthError:
    """A refused API key, Profile Key or X credential, naming the Airflow connection to fix: the one fix."""
    return _retyped(
        error,
        AyrshareAuthError,
        hint=f"fix the API Key, Profile Key or X credentials of the Airflow connection {conn_id!r} "
        "under Admin > Connections",
    )


def _retyped(error: AyrshareError, kind: type[_E], hint: str | None = None) -> _E:
    """``error`` as ``kind``: the same message, call, post, status, code and network errors; ``hint`` if given."""
    return kind(
        error.message,
        call=error.call,
        post_id=error.post_id,
        http_status=error.http_status,
        code=error.code,
        errors=error.errors,
        hint=hint or error.hint,
    )


def _as_int(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def _network_errors(body: dict[str, Any]) -> list[dict[str, Any]]:
    items = body.get("errors")
    if not isinstance(items, list):
        return []
    return [
        {"platform": item.get("platform"), "code": _as_int(item.get("code")), "message": item.get("message")}
        for item in items
        if isinstance(item, dict)
    ]


def _html_title(text: str) -> str:
    match = re.search(r"<title[^>]*>(.*?)</title>", text, re.IGNORECASE | re.DOTALL)
    return " ".join(match.group(1).split())[:120] if match else ""


def _error_class(status_code: int, code: int | None) -> type[AyrshareError]:
    if code == ALREADY_RETRIED_CODE:
        return AyrshareAlreadyRetriedError
    if status_code in (401, 403):
        return AyrshareAuthError
    if status_code == 404:
        return AyrshareNotFoundError
    if status_code == 429:
        return AyrshareRateLimitError
    if status_code >= 500:
        return AyrshareServerError
    return AyrshareError


def parse_response(
    status_code: int,
    text: str,
    *,
    call: str,
    post_id: str | None = None,
    retry_after: float | None = None,
    created_post_ok: bool = False,
) -> dict[str, Any]:
    """
    Return the JSON object of a successful Ayrshare response, or raise the matching error.

    A call failed when the HTTP status is not 2xx, or when the body is Ayrshare's error
    envelope (``"status": "error"``) rather than a post record: a failed *post* is also
    ``"status": "error"``, but a record always has its ``id``, an envelope never does.

    :param status_code: the HTTP status.
    :param text: the body as text.
    :param call: the call, such as ``"GET /api/post/{id}"``, for the error message.
    :param post_id: the post concerned, for the error message.
    :param retry_after: seconds to wait before another call, for a 429.
    :param created_post_ok: return a 400 that carries a post record (``POST /api/post`` answers so
        when a network refused the new post: the post exists, with its errors) instead of raising.
    """
    context: dict[str, Any] = {"call": call, "post_id": post_id, "http_status": status_code}
    ok = 200 <= status_code < 300
    try:
        body = json.loads(text) if text.strip() else None
    except ValueError:
        title = _html_title(text)
        kind = "an HTML page" if "<html" in text[:500].lower() or title else "a body that is not JSON"
        said = f"Ayrshare answered with {kind} instead of JSON" + (f" ({title!r})" if title else "")
        error_class = AyrshareServerError if ok else _error_class(status_code, None)
        if error_class is AyrshareError:
            error_class = AyrshareServerError
        raise error_class(said + "; a proxy or gateway may be in the way", **context) from None

    if not isinstance(body, dict):
        shape = "an empty body" if body is None else f"JSON {type(body).__name__}"
        if ok:
            raise AyrshareServerError(f"expected a JSON object, got {shape}", **context)
        raise _error_class(status_code, None)(f"error without details ({shape})", **context)

    is_envelope = body.get("status") == "error" and "id" not in body
    if (ok or (created_post_ok and status_code == 400)) and not is_envelope:
        return body

    errors = _network_errors(body)
    code = _as_int(body.get("code"))
    if code is None and len(errors) == 1:
        code = errors[0]["code"]
    message = body["message"] if isinstance(body.get("message"), str) else None
    if not message:
        message = "; ".join(str(error["message"]) for error in errors if error.get("message")) or "no message"
        if len(errors) == 1:
            errors = []  # already said in the message
    error_class = _error_class(status_code if not ok else 400, code)
    if error_class is AyrshareRateLimitError:
        raise AyrshareRateLimitError(message, retry_after=retry_after, code=code, errors=errors, **context)
    raise error_class(message, code=code, errors=errors, **context)


def connection_error(
    error: BaseException, *, url: str, call: str, post_id: str | None
) -> AyrshareConnectionError:
    """
    The error for a call that got no answer, naming the URL and what failed, from the transport's exception.

    Reads the whole chain (``requests`` and ``urllib3`` wrap the socket's error two or three times,
    ``aiohttp`` keeps it as ``os_error``) for the standard library's errors, which both share.

    :param error: what ``requests`` or ``aiohttp`` raised.
    :param url: the origin that was called (no path: an id or a query could hold anything).
    :param call: the call, such as ``"GET /api/user"``.
    :param post_id: the post concerned, if any.
    """
    import socket
    import ssl

    chain = list(_causes(error))
    names = " ".join(type(cause).__name__ for cause in chain)
    host = urlsplit(url).hostname or url
    if any(isinstance(cause, ssl.SSLError) for cause in chain) or "SSL" in names:
        reason = f"TLS failed with {url}"
        if url.startswith("https://"):
            reason += (
                " (if the server there speaks plain HTTP, as a local emulator does, write http:// in Host)"
            )
    elif (
        any(isinstance(cause, socket.gaierror) for cause in chain)
        or "NameResolution" in names
        or "DNSError" in names
    ):
        reason = f"DNS lookup failed for {host}: check the connection's Host"
    elif any(isinstance(cause, ConnectionRefusedError) for cause in chain):
        reason = f"connection refused by {url}: is the server running, on that port?"
    elif any(isinstance(cause, TimeoutError) for cause in chain) or "Timeout" in names:
        reason = f"{'connecting to' if 'Connect' in names else 'no answer in time from'} {url} (timeout)"
    else:
        reason = f"the connection to {url} was lost ({type(error).__name__})"
    return AyrshareConnectionError(f"no answer: {reason}", url=url, reason=reason, call=call, post_id=post_id)


def _causes(error: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    pending: list[Any] = [error]
    while pending:
        cause = pending.pop()
        if not isinstance(cause, BaseException) or id(cause) in seen:
            continue
        seen.add(id(cause))
        yield cause
        pending += [
            cause.__cause__,
            cause.__context__,
            getattr(cause, "reason", None),
            getattr(cause, "os_error", None),
        ]
        pending += list(cause.args)
