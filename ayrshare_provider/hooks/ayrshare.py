"""AyrshareHook: the only module that speaks HTTP to Ayrshare."""

from __future__ import annotations

import asyncio
import logging
import time
from functools import partial
from typing import TYPE_CHECKING, Any, TypedDict
from urllib.parse import quote, urlsplit

import requests
import tenacity
from airflow.providers.http.hooks.http import HttpHook

from ayrshare_provider import connection_form, metrics
from ayrshare_provider.exceptions import (
    AyrshareAuthError,
    AyrshareConfigError,
    AyrshareError,
    AyrshareRateLimitError,
    AyrshareRetryUnconfirmedError,
    AyrshareServerError,
    AyrshareWriteUncertainError,
    is_transient,
)
from ayrshare_provider.hooks.answers import connection_error, parse_response, refused_key, refused_write
from ayrshare_provider.hooks.connection import ConnectionTarget, resolve_target
from ayrshare_provider.metrics import Metric
from ayrshare_provider.posts import ERROR, KNOWN_STATUSES, status_of, validate_post_id
from ayrshare_provider.rate_budget import reset_seconds

if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Unpack

    import aiohttp

    from ayrshare_provider.hooks.settings import HookSettings
    from ayrshare_provider.rate_budget import Claim

RETRY_CALL = "PUT /api/post/retry"
CREATE_CALL = "POST /api/post"
POST_CALL = "GET /api/post/{id}"
HISTORY_CALL = "GET /api/history"
USER_CALL = "GET /api/user"
PROFILES_CALL = "GET /api/profiles"
# Profiles asked for per page of GET /api/profiles: Ayrshare paginates (hasMore, nextCursor) and documents
# no maximum, so a modest page that any server serves; the cursor brings the rest.
PROFILES_PAGE = 100
WEBHOOK_PATH = "/api/hook/webhook"
# Connecting waits at most this long, whatever the answer's timeout: a host that does not take the
# connection within it will not.
_CONNECT_TIMEOUT = 10.0
# The shortest wait before claiming a call again (a zero backoff must not spin).
_SHORTEST_PAUSE = 0.05


class HistoryFilters(TypedDict, total=False):
    """
    The filters of ``GET /api/history``, as keyword arguments of the hook's history calls.

    :param status: only posts with this status, such as ``"error"``.
    :param last_days: only posts of the last N days; 0 means all (Ayrshare's default is 30).
    :param limit: at most this many records, 1 to 1000 (Ayrshare's default is 25).
    :param platforms: only posts to any of these networks.
    :param post_type: ``"immediate"`` or ``"scheduled"``.
    :param start_date: ISO 8601 start; with ``end_date`` it overrides ``last_days``.
    :param end_date: ISO 8601 end.
    """

    status: str | None
    last_days: int | None
    limit: int | None
    platforms: list[str] | None
    post_type: str | None
    start_date: str | None
    end_date: str | None


# The keyword of each history filter, and its name in Ayrshare's query.
_HISTORY_QUERY = {
    "status": "status",
    "last_days": "lastDays",
    "limit": "limit",
    "platforms": "platforms",
    "post_type": "type",
    "start_date": "startDate",
    "end_date": "endDate",
}


_log = logging.getLogger(__name__)


def history_params(filters: HistoryFilters) -> dict[str, Any]:
    """The query of ``GET /api/history``, checked before anything is sent (see :class:`HistoryFilters`)."""
    if unknown := sorted(set(filters) - set(_HISTORY_QUERY)):
        raise AyrshareConfigError(f"unknown history filter(s) {unknown}; known: {sorted(_HISTORY_QUERY)}")
    status, limit, last_days = filters.get("status"), filters.get("limit"), filters.get("last_days")
    if status is not None and status not in KNOWN_STATUSES:
        raise AyrshareConfigError(f"status {status!r} is not one of {sorted(KNOWN_STATUSES)}")
    if limit is not None and not 1 <= _whole(limit, "limit") <= 1000:
        raise AyrshareConfigError(f"limit must be between 1 and 1000, got {limit}")
    if last_days is not None and _whole(last_days, "last_days") < 0:
        raise AyrshareConfigError(f"last_days must be 0 (all) or more, got {last_days}")
    query = {**filters, "platforms": list(filters.get("platforms") or [])}
    return {_HISTORY_QUERY[name]: value for name, value in query.items() if value not in (None, [])}


def _whole(value: Any, name: str) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        raise AyrshareConfigError(f"{name} must be a whole number, got {value!r}") from None


def history_records(body: dict[str, Any]) -> list[dict[str, Any]]:
    """The records of a history answer; an answer without its list is an error, not an empty history."""
    history = body.get("history")
    if not isinstance(history, list):
        raise AyrshareServerError("the answer has no 'history' list", call=HISTORY_CALL)
    return [record for record in history if isinstance(record, dict)]


def profiles_page(body: dict[str, Any]) -> tuple[list[dict[str, Any]], bool, str]:
    """One page of ``GET /api/profiles``: its profiles, whether more follow, and the cursor to them."""
    listed = body.get("profiles")
    if not isinstance(listed, list):
        raise AyrshareServerError("the answer has no 'profiles' list", call=PROFILES_CALL)
    pagination = body.get("pagination")
    if not isinstance(pagination, dict):
        pagination = {}  # no pagination: one page
    cursor = pagination.get("nextCursor")
    more = bool(pagination.get("hasMore"))
    if more and (not isinstance(cursor, str) or not cursor):
        raise AyrshareServerError(
            "the answer says more profiles follow but gives no nextCursor", call=PROFILES_CALL
        )
    return [profile for profile in listed if isinstance(profile, dict)], more, cursor or ""


def _post_path(post_id: str) -> str:
    """The path of one post; the id is escaped (it was validated too), so it cannot reach another endpoint."""
    return f"/api/post/{quote(post_id, safe='')}"


def _retry_after(headers: Any) -> float | None:
    """Seconds to wait after a 429, from ``Retry-After`` or else ``x-ratelimit-reset``."""
    try:
        return max(0.0, float(headers.get("Retry-After")))
    except (TypeError, ValueError):
        return reset_seconds(headers)


def _answer(
    status: int,
    text: str,
    headers: Any,
    call: str,
    post_id: str | None,
    conn_id: str,
    created_post_ok: bool = False,
) -> dict[str, Any]:
    """An answer's JSON object, or its typed error (both halves of the hook end here)."""
    try:
        return parse_response(
            status,
            text,
            call=call,
            post_id=post_id,
            retry_after=_retry_after(headers),
            created_post_ok=created_post_ok,
        )
    except AyrshareAuthError as refused:
        raise refused_key(refused, conn_id) from None


def _told_once(error: AyrshareError) -> AyrshareError:
    """
    The error as its task's log shows it last: without the frames of the retries that ended in it
    (tenacity's, the futures'), which say nothing its message does not. DEBUG logs keep them.
    """
    _log.debug("Ayrshare call failed after its retries", exc_info=error)
    return error.with_traceback(None)


class AyrshareHook(HttpHook):
    """
    Calls the Ayrshare API with the credentials of an Ayrshare connection.

    Reads are retried with exponential backoff (tenacity) on 5xx, transport errors and 429. The
    one write, :meth:`retry_post`, is repeated only when it surely did not land: after a 429,
    once; after a 5xx or a lost answer, only if the post still reads ``error``. Never after
    another 4xx. Calls slow down before the profile's rate limit is reached: every hook on the
    machine that acts for the same profile shares one budget
    (:mod:`ayrshare_provider.rate_budget`), so a triggerer's waits and every task stop short of the
    limit together. One HTTP session is reused.

    **An** ``HttpHook`` **that owns its session.** It is an ``HttpHook`` (the http provider's
    connection lookup, ``url_from_endpoint``, its TCP keep-alive adapter, ``run()``'s signature, a
    place among Airflow's HTTP hooks) but builds its own ``requests.Session``, for two reasons:
    ``HttpHook.get_conn`` would send every extra field of the connection as a header of its own name
    (the Profile Key and the X consumer secret included, to every host the connection names), and
    the password as basic auth; and every call must go through the profile's shared rate budget,
    which ``run_and_check`` would go around (so it is refused). The async half (for triggers) holds
    one ``aiohttp`` session for the same reasons, and because ``HttpAsyncHook`` turns an error answer
    into ``"status:reason"``, losing Ayrshare's code (329: already retried), and retries 5xx only.
    A hook on ``BaseHook`` with a session of its own was weighed and not taken: it would give up the
    http provider's connection handling and keep-alive settings (``tcp_keep_alive*`` hook params)
    that users of 0.2 set.

    The connection is read once, on the first call, into a frozen
    :class:`~ayrshare_provider.hooks.connection.ConnectionTarget` (origin, headers, settings, budget).

    :param ayrshare_conn_id: the Ayrshare connection (API key in the password field).
    :param profile_key: act on behalf of this User Profile instead of the connection's.
    :param timeout: seconds to wait for a response (default 30; connecting waits at most 10).
    :param max_attempts: attempts for a call before its error is raised (default 5).
    :param backoff: first wait between attempts, in seconds (default 1); it doubles up to ``max_backoff``.
    :param max_backoff: longest wait between two attempts, in seconds (default 60).
    :param history_max_age: how old a history answer with ``limit`` over 25 can be, in seconds
        (Ayrshare caches it for 60); batched waits trust a failure they read there only after this.
    :param rate_headroom: the share of the profile's rate-limit window this machine uses before it
        waits for the next window (default 0.98); lower it when other apps post with the same profile.
    :param webhook_grace: with a webhook secret in the connection, seconds a wait relies on pushed
        statuses alone before it reads the post too (default 300).
    :param method: the HTTP method of :meth:`run` (default GET); the API calls set their own.
    """

    conn_name_attr = "ayrshare_conn_id"
    default_conn_name = "ayrshare_default"
    conn_type = connection_form.CONN_TYPE
    hook_name = "Ayrshare"
    default_host = connection_form.DEFAULT_HOST

    def __init__(
        self,
        ayrshare_conn_id: str = default_conn_name,
        profile_key: str | None = None,
        *,
        timeout: float | None = None,
        max_attempts: int | None = None,
        backoff: float | None = None,
        max_backoff: float | None = None,
        history_max_age: float | None = None,
        rate_headroom: float | None = None,
        webhook_grace: float | None = None,
        method: str = "GET",
        **kwargs: Any,
    ) -> None:
        super().__init__(method=method, http_conn_id=ayrshare_conn_id, **kwargs)
        self.ayrshare_conn_id = ayrshare_conn_id
        self.profile_key = profile_key
        self._arguments = {
            "timeout": timeout,
            "max_attempts": max_attempts,
            "backoff": backoff,
            "max_backoff": max_backoff,
            "history_max_age": history_max_age,
            "rate_headroom": rate_headroom,
            "webhook_grace": webhook_grace,
        }
        self._target: ConnectionTarget | None = None
        self._session: requests.Session | None = None
        self._retrying: tenacity.Retrying | None = None
        self._async_session: aiohttp.ClientSession | None = None

    # -- connection form, for Airflow < 3.2 (3.2+ reads get_provider_info) -----------------

    @classmethod
    def get_ui_field_behaviour(cls) -> dict[str, Any]:
        """Hidden, relabeled and placeholder fields of the connection form."""
        return connection_form.legacy_ui_field_behaviour()

    @classmethod
    def get_connection_form_widgets(cls) -> dict[str, Any]:
        """The extra fields of the connection form."""
        return connection_form.legacy_form_widgets()

    # -- the connection, read once -------------------------------------------------------------

    def _resolve(self, conn: Any, extra: dict[str, Any]) -> ConnectionTarget:
        if self._target is None:
            self._target = resolve_target(
                self.ayrshare_conn_id, conn, extra, self.profile_key, self._arguments
            )
            self.base_url = self._target.base_url  # what HttpHook.url_from_endpoint joins paths to
        return self._target

    def _connect(self) -> ConnectionTarget:
        """The connection's target, read with the sync lookup on first use."""
        if self._target is None:
            conn = self.get_connection(self.ayrshare_conn_id)
            self._resolve(conn, conn.extra_dejson)
        return self._target  # type: ignore[return-value]  # set by _resolve

    async def _aconnect(self) -> ConnectionTarget:
        """The connection's target, read with the async-safe lookup on first use (the triggerer's loop)."""
        if self._target is None:
            from airflow.providers.common.compat.connection import (
                get_async_connection,
                get_async_extra_dejson,
            )

            conn = await get_async_connection(self.ayrshare_conn_id, hook=self)
            self._resolve(conn, await get_async_extra_dejson(conn))
        return self._target  # type: ignore[return-value]  # set by _resolve

    def url_from_endpoint(self, endpoint: str | None) -> str:
        """HttpHook's URL of an endpoint, on this hook's checked origin (the connection is read first)."""
        self._connect()
        return super().url_from_endpoint(endpoint)

    def run_and_check(self, *args: Any, **kwargs: Any) -> Any:
        """Refused: it would send around the profile's rate budget and Ayrshare's error handling; use :meth:`run`."""
        raise AyrshareConfigError(
            "AyrshareHook.run_and_check() is not supported: use run() or the hook's API calls"
        )

    @property
    def settings(self) -> HookSettings:
        """The hook's tuning: its arguments, else the connection's extra, else the defaults (read on first use)."""
        return self._connect().settings

    async def asettings(self) -> HookSettings:
        """:attr:`settings`, without blocking the event loop (for triggers)."""
        return (await self._aconnect()).settings

    @property
    def pushes_expected(self) -> bool:
        """The connection has a webhook secret: Ayrshare is expected to push final statuses to Airflow."""
        return self._connect().pushes

    async def apushes_expected(self) -> bool:
        """:attr:`pushes_expected`, without blocking the event loop (for triggers)."""
        return (await self._aconnect()).pushes

    def get_conn(
        self, headers: dict[Any, Any] | None = None, extra_options: dict[str, Any] | None = None
    ) -> requests.Session:
        """
        The hook's one ``requests.Session``, with Ayrshare's headers and HttpHook's keep-alive adapter.

        Every call of the hook shares it, so it takes no per-call ``headers`` or ``extra_options``:
        give those to :meth:`run`.
        """
        if headers or extra_options:
            raise AyrshareConfigError(
                "AyrshareHook.get_conn() takes no headers or extra_options (its session is shared by "
                "every call): pass them to run()"
            )
        if self._session is None:
            target = self._connect()
            session = requests.Session()
            session.headers.update(target.headers)
            adapter = getattr(self, "adapter", None) or self.keep_alive_adapter
            if adapter is not None:
                session.mount("https://", adapter)
                session.mount("http://", adapter)
            self._session = session
        return self._session

    # -- retries and the rate budget, shared by both halves -------------------------------------

    def _read_policy(self, settings: HookSettings) -> dict[str, Any]:
        """Reads are repeated on every transient error, ``max_attempts`` times in all."""
        return {
            "retry": tenacity.retry_if_exception(is_transient),
            "stop": tenacity.stop_after_attempt(settings.max_attempts),
            "wait": partial(self._backoff, settings),
            "before_sleep": partial(self._log_retry, settings),
            "reraise": True,
        }

    @staticmethod
    def _backoff(settings: HookSettings, retry_state: tenacity.RetryCallState) -> float:
        error = retry_state.outcome.exception() if retry_state.outcome else None
        if isinstance(error, AyrshareRateLimitError) and error.retry_after is not None:
            return min(error.retry_after, settings.max_backoff)
        # Exponential with up to a second of jitter; spelled so that tenacity 8.2 to 9.x all take it.
        wait = tenacity.wait_exponential(multiplier=settings.backoff) + tenacity.wait_random(0, 1)
        return min(wait(retry_state), settings.max_backoff)

    def _log_retry(self, settings: HookSettings, retry_state: tenacity.RetryCallState) -> None:
        error = retry_state.outcome.exception() if retry_state.outcome else None
        self.log.warning(
            "Attempt %d of %d failed, retrying in %.1f s: %s",
            retry_state.attempt_number,
            settings.max_attempts,
            retry_state.next_action.sleep if retry_state.next_action else 0.0,
            error,
        )

    def _pause(self, settings: HookSettings, claim: Claim) -> float:
        """Seconds to wait before claiming again; said once per window at INFO, since hundreds of waits can pause."""
        log = self.log.info if claim.first_waiter else self.log.debug
        log(
            "Holding the call %.1f s for the profile's rate limit (Ayrshare's window, or its first answer)",
            claim.wait,
        )
        return max(_SHORTEST_PAUSE, min(claim.wait, settings.max_backoff or claim.wait))

    def _count_sent(self, call: str, status: int | None = None) -> None:
        """The metrics of one request the hook sent (``status`` None: no answer came): a call, a retry PUT, a 429."""
        metrics.count(Metric.API_CALLS, profile=self.ayrshare_conn_id)
        if call == RETRY_CALL:
            metrics.count(Metric.RETRY_SENT, profile=self.ayrshare_conn_id)
        if status == 429:
            metrics.count(Metric.API_RATE_LIMITED, profile=self.ayrshare_conn_id)

    # -- sync -------------------------------------------------------------------------------

    def _send(
        self,
        method: str,
        path: str,
        call: str,
        post_id: str | None = None,
        options: dict[str, Any] | None = None,
        created_post_ok: bool = False,
        as_primary: bool = False,
        **request: Any,
    ) -> dict[str, Any]:
        """
        One request, once: claim a call of the profile's budget, send, learn the budget, parse.

        :param options: ``timeout`` (seconds), ``verify``, ``proxies``, ``cert``, ``allow_redirects``.
        :param created_post_ok: see :func:`~ayrshare_provider.hooks.answers.parse_response`.
        :param as_primary: send without the Profile Key, as the Primary Profile, within its budget.
        """
        target, session, options = self._connect(), self.get_conn(), options or {}
        settings = target.settings
        budget = target.primary_budget if as_primary else target.budget
        if as_primary:  # requests drops a header whose value is None from the session's
            request["headers"] = {**(request.get("headers") or {}), "Profile-Key": None}
        url = self.url_from_endpoint(path)
        prepared = session.prepare_request(requests.Request(method, url, **request))
        sending = session.merge_environment_settings(
            url, options.get("proxies") or {}, None, options.get("verify"), options.get("cert")
        )
        timeout = float(options.get("timeout") or settings.timeout)
        while not (claim := budget.take(settings.rate_headroom, settings.backoff)).granted:
            time.sleep(self._pause(settings, claim))
        try:
            response = session.send(
                prepared,
                timeout=(min(_CONNECT_TIMEOUT, timeout), timeout),
                allow_redirects=options.get("allow_redirects", True),
                **sending,
            )
        except requests.RequestException as err:
            budget.settle(claim)
            self._count_sent(call)
            raise connection_error(err, url=target.base_url, call=call, post_id=post_id) from None
        except BaseException:
            budget.settle(claim)  # a task timeout or a kill signal: the claim ends all the same
            raise
        budget.settle(claim, response.status_code, response.headers)
        self._count_sent(call, response.status_code)
        return _answer(
            response.status_code,
            response.text,
            response.headers,
            call,
            post_id,
            self.ayrshare_conn_id,
            created_post_ok,
        )

    def _read(self, path: str, call: str, post_id: str | None = None, **request: Any) -> dict[str, Any]:
        return self._repeatable("GET", path, call, post_id, **request)

    def _repeatable(
        self, method: str, path: str, call: str, post_id: str | None = None, **request: Any
    ) -> dict[str, Any]:
        """A call that does the same thing however often it lands (a read, a registration): retried like a read."""
        if self._retrying is None:  # built once: tenacity keeps each call's state per thread
            self._retrying = tenacity.Retrying(**self._read_policy(self._connect().settings))
        try:
            return self._retrying(self._send, method, path, call, post_id, **request)
        except AyrshareError as err:
            raise _told_once(err) from None

    def run(
        self,
        endpoint: str | None = None,
        data: dict[str, Any] | str | None = None,
        headers: dict[str, Any] | None = None,
        extra_options: dict[str, Any] | None = None,
        **request_kwargs: Any,
    ) -> dict[str, Any]:
        """
        HttpHook's generic call, through this hook's session, rate budget and error handling.

        Sends the hook's ``method`` (GET unless given) to ``endpoint``: a GET sends ``data`` as the
        query and is retried like :meth:`get_post`; any other method sends ``data`` as a JSON body
        (a dict) or as is, once. Unlike ``HttpHook.run`` it returns Ayrshare's JSON answer, not the
        response, and raises an :class:`~ayrshare_provider.exceptions.AyrshareError` for a failed call.

        :param endpoint: the path, such as ``/api/user``.
        :param data: the query (GET) or the body.
        :param headers: headers added to Ayrshare's for this request.
        :param extra_options: ``timeout`` (seconds), ``verify``, ``proxies``, ``cert``, ``allow_redirects``.
        :param request_kwargs: more keyword arguments of ``requests.Request``.
        """
        method, path = self.method.upper(), "/" + (endpoint or "").lstrip("/")
        call = f"{method} {path.split('?')[0]}"
        if method == "GET":
            return self._read(
                path, call, params=data, headers=headers, options=extra_options, **request_kwargs
            )
        body = {"json": data} if isinstance(data, dict) else {"data": data}
        return self._send(
            method, path, call, headers=headers, options=extra_options, **body, **request_kwargs
        )

    def get_post(self, post_id: str) -> dict[str, Any]:
        """
        Read one post record (``GET /api/post/{id}``).

        :param post_id: the top-level Ayrshare post id.
        """
        post_id = validate_post_id(post_id)
        return self._read(_post_path(post_id), POST_CALL, post_id)

    def retry_post(self, post_id: str) -> dict[str, Any]:
        """
        Ask Ayrshare to retry a failed post (``PUT /api/post/retry``). A post can be retried once.

        The PUT is sent again only when it surely did not land: after a 429 (once), or after a
        5xx or a lost answer when the post still reads ``error``. When the post reads anything
        else, the retry landed and its status is returned. Raises
        :class:`~ayrshare_provider.exceptions.AyrshareAlreadyRetriedError` (code 329) when the
        post was retried before, and
        :class:`~ayrshare_provider.exceptions.AyrshareRetryUnconfirmedError` when the answer was
        lost and the post could not be read either.

        :param post_id: the top-level Ayrshare post id; its status must be ``error``.
        """
        post_id = validate_post_id(post_id)

        def send_once() -> dict[str, Any]:
            try:
                return self._send("PUT", "/api/post/retry", RETRY_CALL, post_id, json={"id": post_id})
            except AyrshareServerError as err:
                return self._landed_or_raise(post_id, err)

        return self._write(send_once, resends_surely_unapplied=True)  # _landed_or_raise reads first

    def _write(
        self, send_once: Callable[[], dict[str, Any]], *, resends_surely_unapplied: bool
    ) -> dict[str, Any]:
        """
        Send a write as Ayrshare allows: after a 429 once more at most, after backing off; after a
        5xx or a lost answer only when ``send_once`` raises it (it knows whether the write surely did
        not land); never after another 4xx, which is final (:class:`AyrshareWriteRefusedError`).

        :param resends_surely_unapplied: a resend goes only once the first surely did not land (the
            retry PUT reads the post first), so a refused resend is a refusal like any other. Else
            (a new post, resent on its ``idempotencyKey``) a refused resend leaves the first unknown:
            :class:`AyrshareWriteUncertainError`.
        """
        rate_limited = sends = 0

        def counted() -> dict[str, Any]:
            nonlocal sends
            sends += 1
            return send_once()

        def send_again(retry_state: tenacity.RetryCallState) -> bool:
            nonlocal rate_limited
            error = retry_state.outcome.exception() if retry_state.outcome else None
            if isinstance(error, AyrshareRateLimitError):
                rate_limited += 1
                return rate_limited < 2
            return isinstance(error, AyrshareServerError) and not isinstance(
                error, AyrshareRetryUnconfirmedError
            )

        policy = {**self._read_policy(self._connect().settings), "retry": send_again}
        try:
            return tenacity.Retrying(**policy)(counted)
        except AyrshareError as err:
            # No attempt of the task may send a refused write again: it fails at once.
            final = refused_write(err)
            if final is err:
                raise _told_once(err) from None
            if sends > 1 and not resends_surely_unapplied:
                raise AyrshareWriteUncertainError(
                    f"sent again after its answer was lost, then refused ({final}): whether the first "
                    "send made something is unknown; nothing more is sent",
                    call=err.call,
                    post_id=err.post_id,
                    http_status=err.http_status,
                    code=err.code,
                ) from None
            raise final from None

    def _landed_or_raise(self, post_id: str, error: AyrshareServerError) -> dict[str, Any]:
        """After a retry PUT got no usable answer, the post's status tells whether it landed."""
        try:
            record = self.get_post(post_id)
        except AyrshareError:
            raise AyrshareRetryUnconfirmedError(
                f"the answer was lost ({error.message}) and the post could not be read: whether the retry "
                "landed is unknown; a new attempt reads the post before sending anything",
                call=RETRY_CALL,
                post_id=post_id,
            ) from None
        status = status_of(record)
        if status == ERROR:
            raise error  # surely not applied: safe to send again
        self.log.warning(
            "The answer to the retry of post %s was lost, but the post is now %r: it landed", post_id, status
        )
        return {"status": status, "id": post_id}

    def create_post(self, body: dict[str, Any], *, post_id: str | None = None) -> dict[str, Any]:
        """
        Create a post (``POST /api/post``) that carries an ``idempotencyKey``; return its record.

        The key makes the write safe to send again: Ayrshare answers a repeated key with the post
        the first request created, and creates none. So it is sent again, like a read, after a 5xx
        or a lost answer; after a 429 once more at most. A 400 that carries the new post's record
        (a network refused it) is that record, not an error: the post exists.

        :param body: the post: ``post``, ``platforms``, options, and ``idempotencyKey`` (required).
        :param post_id: the post this one stands in for, named in errors.
        """
        if not isinstance(body.get("idempotencyKey"), str) or not body["idempotencyKey"]:
            raise AyrshareConfigError(
                "create_post sends only posts with an idempotencyKey: without one, a lost answer could "
                "make a second post",
                call=CREATE_CALL,
                post_id=post_id,
            )
        record = self._write(
            lambda: self._send("POST", "/api/post", CREATE_CALL, post_id, json=body, created_post_ok=True),
            resends_surely_unapplied=False,
        )
        if not isinstance(record.get("id"), str) or not record["id"]:
            raise AyrshareServerError("the answer names no post id", call=CREATE_CALL, post_id=post_id)
        return record

    def get_history(self, **filters: Unpack[HistoryFilters]) -> list[dict[str, Any]]:
        """
        List post records, newest first (``GET /api/history``); the filters are :class:`HistoryFilters`.

        Ayrshare serves an answer with ``limit`` over 25 from a one-minute cache.
        """
        return history_records(self._read("/api/history", HISTORY_CALL, params=history_params(filters)))

    def history_as_of(self) -> float:
        """
        The wall-clock moment (``time.time()``) a history listing read from now on shows every post
        at least as of: now, less ``history_max_age``, since Ayrshare may answer from its cache.
        """
        return time.time() - self.settings.history_max_age

    def get_user(self) -> dict[str, Any]:
        """Read the profile the credentials act as (``GET /api/user``)."""
        return self._read("/api/user", USER_CALL)

    def get_profiles(
        self,
        *,
        title: str | None = None,
        ref_id: str | None = None,
        has_active_social_accounts: bool | None = None,
    ) -> list[dict[str, Any]]:
        """
        List the account's User Profiles (``GET /api/profiles``, Business plan), every page.

        Sent as the Primary Profile (without the connection's Profile Key, within the Primary
        Profile's rate budget). Each profile has ``title``, ``refId``, ``status`` (``active`` or
        ``suspended``) and ``activeSocialAccounts``; Ayrshare never lists Profile Keys.

        :param title: only the profile with this title.
        :param ref_id: only the profile with this refId.
        :param has_active_social_accounts: only profiles with (True) linked networks.
        """
        query: dict[str, Any] = {"limit": PROFILES_PAGE}
        if title is not None:
            query["title"] = title
        if ref_id is not None:
            query["refId"] = ref_id
        if has_active_social_accounts is not None:
            query["hasActiveSocialAccounts"] = "true" if has_active_social_accounts else "false"
        profiles: list[dict[str, Any]] = []
        cursors: set[str] = set()
        while True:
            page = self._read("/api/profiles", PROFILES_CALL, params=query, as_primary=True)
            listed, more, cursor = profiles_page(page)
            profiles += listed
            if not more:
                return profiles
            if cursor in cursors:  # a cursor that does not move on would page forever
                raise AyrshareServerError(f"the next page's cursor {cursor!r} repeats", call=PROFILES_CALL)
            cursors.add(cursor)
            query["cursor"] = cursor

    # -- webhooks ---------------------------------------------------------------------------

    def register_webhook(
        self, url: str, action: str = "scheduled", secret: str | None = None
    ) -> dict[str, Any]:
        """
        Ask Ayrshare to call ``url`` on ``action`` (``POST /api/hook/webhook``); registering again replaces it.

        :param url: the HTTPS URL Ayrshare calls, such as
            ``https://airflow.example.com/ayrshare/webhook?conn_id=ayrshare_default``.
        :param action: the webhook action; the recovery uses ``scheduled``.
        :param secret: the secret Ayrshare signs deliveries with; by default the connection's
            ``webhook_secret``, which the receiver checks them with.
        """
        if secret is None:
            secret = self._connect().webhook_secret
        body = {"action": action, "url": url, **({"secret": secret} if secret else {})}
        return self._repeatable("POST", WEBHOOK_PATH, f"POST {WEBHOOK_PATH}", json=body)

    def unregister_webhook(self, action: str = "scheduled") -> dict[str, Any]:
        """
        Stop Ayrshare's calls for ``action`` (``DELETE /api/hook/webhook``).

        :param action: the webhook action to unregister.
        """
        # Sent once: after a lost answer a second DELETE would meet 404 for a webhook it removed.
        return self._send("DELETE", WEBHOOK_PATH, f"DELETE {WEBHOOK_PATH}", json={"action": action})

    def list_webhooks(self) -> dict[str, str]:
        """The registered webhooks (``GET /api/hook/webhook``), as action to URL."""
        body = self._read(WEBHOOK_PATH, f"GET {WEBHOOK_PATH}")
        listed = body.get("webhooks")
        if isinstance(listed, list):
            return {
                str(item["action"]): str(item.get("url", ""))
                for item in listed
                if isinstance(item, dict) and item.get("action")
            }
        return {
            str(action): str(url) for action, url in body.items() if isinstance(url, str) and "://" in url
        }

    def test_connection(self) -> tuple[bool, str]:
        """What the UI's Test button runs: ``GET /api/user``, then whether a scheduled-action webhook is registered."""
        try:
            user = self.get_user()
        except AyrshareError as err:
            return False, str(err)
        networks = user.get("activeSocialAccounts") or []
        who = user.get("title") or user.get("refId") or "the profile"
        message = f"Connected to Ayrshare as {who}; linked networks: {', '.join(networks) or 'none'}"
        return True, f"{message}; {self._webhook_state()}"

    def _webhook_state(self) -> str:
        """What the Test button says of webhooks: registered or not, and whether deliveries can be checked."""
        try:
            url = self.list_webhooks().get("scheduled")
        except AyrshareError as err:  # not on the plan, or the call failed: the connection itself works
            return f"webhooks could not be listed ({err.message})"
        if not url:
            return "no scheduled-action webhook registered: failed posts are found by polling"
        registered = f"scheduled-action webhook registered to {urlsplit(url).netloc}"
        if self._connect().pushes:
            return registered
        return f"{registered}, but the connection has no webhook secret: Airflow refuses its deliveries"

    # -- async (triggers) -----------------------------------------------------------------

    async def _aget_session(self) -> aiohttp.ClientSession:
        """The hook's one ``aiohttp`` session, with Ayrshare's headers."""
        if self._async_session is None:
            import aiohttp

            target = await self._aconnect()
            timeout = target.settings.timeout
            self._async_session = aiohttp.ClientSession(
                headers=target.headers,
                timeout=aiohttp.ClientTimeout(total=timeout, connect=min(_CONNECT_TIMEOUT, timeout)),
            )
        return self._async_session

    async def _asend(
        self, method: str, path: str, call: str, post_id: str | None = None, **request: Any
    ) -> dict[str, Any]:
        """:meth:`_send` without blocking the event loop (the budget's lock included)."""
        import aiohttp

        target, session = await self._aconnect(), await self._aget_session()
        settings = target.settings
        while not (claim := await target.budget.atake(settings.rate_headroom, settings.backoff)).granted:
            await asyncio.sleep(self._pause(settings, claim))
        answered = None
        try:
            async with session.request(method, target.base_url + path, **request) as response:
                # errors="replace": a body in a broken encoding is parsed, and refused, as what it is.
                answered = response.status, await response.text(errors="replace"), response.headers
        except (TimeoutError, aiohttp.ClientError) as err:
            self._count_sent(call)
            raise connection_error(err, url=target.base_url, call=call, post_id=post_id) from None
        finally:
            # Whatever ends the call (an answer, a lost one, the trigger's cancellation), its claim ends.
            await target.budget.asettle(claim, *((answered[0], answered[2]) if answered else ()))
        status, text, headers = answered
        self._count_sent(call, status)
        return _answer(status, text, headers, call, post_id, self.ayrshare_conn_id)

    async def _aread(
        self, path: str, call: str, post_id: str | None = None, **request: Any
    ) -> dict[str, Any]:
        retrying = tenacity.AsyncRetrying(**self._read_policy(await self.asettings()))
        try:
            return await retrying(self._asend, "GET", path, call, post_id, **request)
        except AyrshareError as err:
            raise _told_once(err) from None

    async def aget_post(self, post_id: str) -> dict[str, Any]:
        """
        Read one post record without blocking the event loop (for triggers); retried like :meth:`get_post`.

        :param post_id: the top-level Ayrshare post id.
        """
        post_id = validate_post_id(post_id)
        return await self._aread(_post_path(post_id), POST_CALL, post_id)

    async def aget_history(self, **filters: Unpack[HistoryFilters]) -> list[dict[str, Any]]:
        """:meth:`get_history` without blocking the event loop (for triggers); the same filters."""
        return history_records(
            await self._aread("/api/history", HISTORY_CALL, params=history_params(filters))
        )

    async def aclose(self) -> None:
        """Close the async session, if one was opened."""
        if self._async_session is not None:
            await self._async_session.close()
            self._async_session = None
