"""AyrshareHook: the only module that speaks HTTP to Ayrshare."""

from __future__ import annotations

import ipaddress
import time
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlsplit

import requests
import tenacity
from airflow.providers.common.compat.sdk import mask_secret
from airflow.providers.http.hooks.http import HttpHook

from ayrshare_provider import PACKAGE_NAME, __version__, connection_form
from ayrshare_provider.exceptions import (
    AyrshareConfigError,
    AyrshareError,
    AyrshareRateLimitError,
    AyrshareRetryUnconfirmedError,
    AyrshareServerError,
    is_transient,
    parse_response,
)
from ayrshare_provider.posts import ERROR, KNOWN_STATUSES, status_of, validate_post_id
from ayrshare_provider.rate_budget import ProfileBudget, budget_for, reset_seconds

if TYPE_CHECKING:
    import aiohttp

USER_AGENT = f"{PACKAGE_NAME}/{__version__}"
_LOOPBACK_NAMES = {"localhost"}
#: Defaults of the hook's tuning; each can be set in the connection's extra (the form has a field
#: for each) or as a hook argument.
TUNING_DEFAULTS: dict[str, float] = {
    name: field["default"] for name, field in connection_form.TUNING_FIELDS.items()
}
RETRY_CALL = "PUT /api/post/retry"
POST_CALL = "GET /api/post/{id}"
HISTORY_CALL = "GET /api/history"


def _is_loopback(hostname: str) -> bool:
    if hostname.lower() in _LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(hostname).is_loopback
    except ValueError:
        return False


def base_url_of(conn_id: str, host: str | None, schema: str | None, port: int | None) -> str:
    """
    The API origin for a connection: host as given, or ``https://api.ayrshare.com``.

    A bare host name gets ``https``. A trailing ``/api`` is dropped (users paste the documented
    base URL); any other path is refused. Plain ``http`` is refused unless the host is loopback:
    it would send the API key in clear text.
    """
    host = (host or "").strip() or connection_form.DEFAULT_HOST
    url = host if "://" in host else f"{(schema or 'https').strip()}://{host}"
    if port:
        url = f"{url}:{port}"
    url = url.rstrip("/")
    if url.endswith("/api"):
        url = url[: -len("/api")]
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises on a port that is not a number
    except ValueError as err:
        raise AyrshareConfigError(
            f"connection {conn_id!r} has host {host!r}, which is not a URL: {err}"
        ) from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise AyrshareConfigError(f"connection {conn_id!r} has host {host!r}, which is not an http(s) URL")
    if parts.path or parts.query or parts.fragment:
        raise AyrshareConfigError(
            f"connection {conn_id!r} has host {host!r} with a path: give the origin only, such as {connection_form.DEFAULT_HOST}"
        )
    if parts.scheme == "http" and not _is_loopback(parts.hostname):
        raise AyrshareConfigError(
            f"connection {conn_id!r} points at http://{parts.hostname}: refusing to send the API key "
            "over plain HTTP to a host other than loopback; use https://"
        )
    return url


def auth_headers(
    conn_id: str, api_key: str | None, extra: dict[str, Any], profile_key: str | None
) -> dict[str, str]:
    """
    The headers that carry the credentials, after registering each one with Airflow's masker.

    :param conn_id: the connection, for the error message.
    :param api_key: the connection's password.
    :param extra: the connection's extra fields.
    :param profile_key: a Profile Key passed to the hook, which wins over the connection's.
    """
    if not api_key or not api_key.strip():
        raise AyrshareConfigError(
            f"connection {conn_id!r} has no API key: put it in the API Key (password) field"
        )
    headers = {"Authorization": f"Bearer {api_key.strip()}"}
    optional = {
        "Profile-Key": profile_key or extra.get(connection_form.PROFILE_KEY),
        "X-Twitter-OAuth1-Api-Key": extra.get(connection_form.X_API_KEY),
        "X-Twitter-OAuth1-Api-Secret": extra.get(connection_form.X_API_SECRET),
    }
    for name, value in optional.items():
        if isinstance(value, str) and value.strip():
            headers[name] = value.strip()
    for value in headers.values():
        mask_secret(value.removeprefix("Bearer "))
    return headers


def _post_path(post_id: str) -> str:
    """The path of one post; the id is escaped (it was validated too), so it cannot reach another endpoint."""
    return f"/api/post/{quote(post_id, safe='')}"


# The keyword of each history filter, and its name in Ayrshare's query.
_HISTORY_FILTERS = {
    "status": "status",
    "last_days": "lastDays",
    "limit": "limit",
    "platforms": "platforms",
    "post_type": "type",
    "start_date": "startDate",
    "end_date": "endDate",
}


def history_params(**filters: Any) -> dict[str, Any]:
    """The query of ``GET /api/history``, checked before anything is sent (see :meth:`AyrshareHook.get_history`)."""
    status, limit, last_days = filters.get("status"), filters.get("limit"), filters.get("last_days")
    if status is not None and status not in KNOWN_STATUSES:
        raise AyrshareConfigError(f"status {status!r} is not one of {sorted(KNOWN_STATUSES)}")
    if limit is not None and not 1 <= int(limit) <= 1000:
        raise AyrshareConfigError(f"limit must be between 1 and 1000, got {limit}")
    if last_days is not None and int(last_days) < 0:
        raise AyrshareConfigError(f"last_days must be 0 (all) or more, got {last_days}")
    if filters.get("platforms"):
        filters["platforms"] = list(filters["platforms"])
    return {_HISTORY_FILTERS[name]: value for name, value in filters.items() if value not in (None, [])}


def history_records(body: dict[str, Any]) -> list[dict[str, Any]]:
    """The records of a history answer; an answer without its list is an error, not an empty history."""
    history = body.get("history")
    if not isinstance(history, list):
        raise AyrshareServerError("the answer has no 'history' list", call=HISTORY_CALL)
    return [record for record in history if isinstance(record, dict)]


def _retry_after(headers: Any) -> float | None:
    """Seconds to wait after a 429, from ``Retry-After`` or else ``x-ratelimit-reset``."""
    try:
        return max(0.0, float(headers.get("Retry-After")))
    except (TypeError, ValueError):
        return reset_seconds(headers)


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

    The tuning arguments can also be set in the connection's extra (``{"timeout": 10}``);
    an argument given here wins.

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
        **kwargs: Any,
    ) -> None:
        super().__init__(http_conn_id=ayrshare_conn_id, **kwargs)
        self.ayrshare_conn_id = ayrshare_conn_id
        self.profile_key = profile_key
        self._tuning_args = {
            "timeout": timeout,
            "max_attempts": max_attempts,
            "backoff": backoff,
            "max_backoff": max_backoff,
            "history_max_age": history_max_age,
            "rate_headroom": rate_headroom,
        }
        self._session: requests.Session | None = None
        self._async_session: aiohttp.ClientSession | None = None
        self._budget: ProfileBudget | None = None  # the profile's rate-limit window, shared on this machine

    def _tune(self, extra: dict[str, Any]) -> None:
        """Resolve each tuning value: hook argument, else connection extra, else default."""
        values: dict[str, float] = {}
        for name, default in TUNING_DEFAULTS.items():
            value = self._tuning_args[name]
            if value is None:
                value = extra.get(name)
            if value is None or value == "":  # a form field left empty
                value = default
            try:
                values[name] = float(value)
            except (TypeError, ValueError):
                raise AyrshareConfigError(
                    f"connection {self.ayrshare_conn_id!r} has {name}={value!r}, which is not a number"
                ) from None
        self.timeout = values["timeout"]
        self.max_attempts = max(1, int(values["max_attempts"]))
        self.backoff = values["backoff"]
        self.max_backoff = values["max_backoff"]
        self.history_max_age = values["history_max_age"]
        if not 0 < values["rate_headroom"] <= 1:
            raise AyrshareConfigError(
                f"connection {self.ayrshare_conn_id!r} has rate_headroom={values['rate_headroom']}: give a share above 0, at most 1"
            )
        self.rate_headroom = values["rate_headroom"]

    # -- connection form, for Airflow < 3.2 (3.2+ reads get_provider_info) -----------------

    @classmethod
    def get_ui_field_behaviour(cls) -> dict[str, Any]:
        """Hidden, relabeled and placeholder fields of the connection form."""
        return connection_form.legacy_ui_field_behaviour()

    @classmethod
    def get_connection_form_widgets(cls) -> dict[str, Any]:
        """The extra fields of the connection form."""
        return connection_form.legacy_form_widgets()

    # -- sync -------------------------------------------------------------------------------

    def _configure(self, conn: Any, extra: dict[str, Any]) -> dict[str, str]:
        """
        Take what the hook needs from its connection, once, for either session: tuning, base URL,
        the profile's rate budget. Returns the headers of every request.

        :param conn: the Airflow connection.
        :param extra: its extra fields (read apart: the async path has its own reader).
        """
        self._tune(extra)
        headers = auth_headers(self.ayrshare_conn_id, conn.password, extra, self.profile_key)
        self.base_url = base_url_of(self.ayrshare_conn_id, conn.host, conn.schema, conn.port)
        self._budget = budget_for(self.base_url, headers.get("Profile-Key"))
        return {**headers, "Accept": "application/json", "User-Agent": USER_AGENT}

    def get_conn(
        self, headers: dict[Any, Any] | None = None, extra_options: dict[str, Any] | None = None
    ) -> requests.Session:
        """
        The hook's one ``requests.Session``, with Ayrshare's headers only.

        Built here rather than by ``HttpHook.get_conn``, which would send the password as basic
        auth and every extra field (credentials, tuning) as a header of its own name.
        """
        if self._session is None:
            conn = self.get_connection(self.ayrshare_conn_id)
            session = requests.Session()
            session.headers.update(self._configure(conn, conn.extra_dejson))
            self._session = self._configure_session_from_mount_adapters(session)  # HttpHook's TCP keep-alive
        return self._session

    def _backoff(self, retry_state: tenacity.RetryCallState) -> float:
        error = retry_state.outcome.exception() if retry_state.outcome else None
        if isinstance(error, AyrshareRateLimitError) and error.retry_after is not None:
            return min(error.retry_after, self.max_backoff)
        # Exponential with up to a second of jitter; spelled so that tenacity 8.2 to 9.x all take it.
        wait = tenacity.wait_exponential(multiplier=self.backoff) + tenacity.wait_random(0, 1)
        return min(wait(retry_state), self.max_backoff)

    def _log_retry(self, retry_state: tenacity.RetryCallState) -> None:
        error = retry_state.outcome.exception() if retry_state.outcome else None
        self.log.warning(
            "Attempt %d of %d failed, retrying in %.1f s: %s",
            retry_state.attempt_number,
            self.max_attempts,
            retry_state.next_action.sleep if retry_state.next_action else 0.0,
            error,
        )

    def _read_policy(self) -> dict[str, Any]:
        """Reads are repeated on every transient error, ``max_attempts`` times in all."""
        return {
            "retry": tenacity.retry_if_exception(is_transient),
            "stop": tenacity.stop_after_attempt(self.max_attempts),
            "wait": self._backoff,
            "before_sleep": self._log_retry,
            "reraise": True,
        }

    def _budget_pause(self) -> float:
        """Seconds to wait before the next call so that the profile stays under its rate limit (0: go)."""
        assert self._budget is not None, "the session is set up first"
        pause, first = self._budget.take(self.rate_headroom, fallback=self.backoff)
        if pause:
            # Hundreds of waits can pause at once: one line per window at INFO is enough.
            log = self.log.info if first else self.log.debug
            log("The profile's rate-limit window is nearly used: waiting %.1f s for the next one", pause)
        return min(pause, self.max_backoff)

    def _send(self, method: str, path: str, call: str, post_id: str | None, **request: Any) -> dict[str, Any]:
        session = self.get_conn()
        while pause := self._budget_pause():
            time.sleep(pause)
        prepared = session.prepare_request(requests.Request(method, self.url_from_endpoint(path), **request))
        options = {"check_response": False, "timeout": (min(10.0, self.timeout), self.timeout)}
        try:
            response = self.run_and_check(session, prepared, options)
        except requests.RequestException as err:
            raise AyrshareServerError(
                f"no answer ({type(err).__name__})", call=call, post_id=post_id
            ) from None
        self._budget.observe(response.headers)  # type: ignore[union-attr]
        return parse_response(
            response.status_code,
            response.text,
            call=call,
            post_id=post_id,
            retry_after=_retry_after(response.headers),
        )

    def _read(self, path: str, *, call: str, post_id: str | None = None, **request: Any) -> dict[str, Any]:
        self.get_conn()  # the connection may tune the retry policy
        return tenacity.Retrying(**self._read_policy())(self._send, "GET", path, call, post_id, **request)

    def get_post(self, post_id: str) -> dict[str, Any]:
        """
        Read one post record (``GET /api/post/{id}``).

        :param post_id: the top-level Ayrshare post id.
        """
        post_id = validate_post_id(post_id)
        return self._read(_post_path(post_id), call=POST_CALL, post_id=post_id)

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
        self.get_conn()
        rate_limited = 0

        def send_once() -> dict[str, Any]:
            nonlocal rate_limited
            try:
                return self._send("PUT", "/api/post/retry", RETRY_CALL, post_id, json={"id": post_id})
            except AyrshareRateLimitError:
                rate_limited += 1
                raise
            except AyrshareServerError as err:
                return self._landed_or_raise(post_id, err)

        def send_again(retry_state: tenacity.RetryCallState) -> bool:
            error = retry_state.outcome.exception() if retry_state.outcome else None
            if isinstance(error, AyrshareRateLimitError):
                return rate_limited < 2  # Ayrshare: a 429 write at most once more, after backing off
            return isinstance(error, AyrshareServerError) and not isinstance(
                error, AyrshareRetryUnconfirmedError
            )

        policy = {**self._read_policy(), "retry": send_again}
        return tenacity.Retrying(**policy)(send_once)

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

    def get_history(
        self,
        status: str | None = None,
        last_days: int | None = None,
        limit: int | None = None,
        platforms: list[str] | None = None,
        post_type: str | None = None,
        start_date: str | None = None,
        end_date: str | None = None,
    ) -> list[dict[str, Any]]:
        """
        List post records, newest first (``GET /api/history``).

        Ayrshare serves an answer with ``limit`` over 25 from a one-minute cache.

        :param status: only posts with this status, such as ``"error"``.
        :param last_days: only posts of the last N days; 0 means all (Ayrshare's default is 30).
        :param limit: at most this many records, 1 to 1000 (Ayrshare's default is 25).
        :param platforms: only posts to any of these networks.
        :param post_type: ``"immediate"`` or ``"scheduled"``.
        :param start_date: ISO 8601 start; with ``end_date`` it overrides ``last_days``.
        :param end_date: ISO 8601 end.
        """
        params = history_params(
            status=status,
            last_days=last_days,
            limit=limit,
            platforms=platforms,
            post_type=post_type,
            start_date=start_date,
            end_date=end_date,
        )
        return history_records(self._read("/api/history", call=HISTORY_CALL, params=params))

    async def aget_history(
        self, status: str | None = None, last_days: int | None = None, limit: int | None = None
    ) -> list[dict[str, Any]]:
        """
        List post records without blocking the event loop (for triggers); retried like :meth:`get_history`.

        :param status: only posts with this status.
        :param last_days: only posts of the last N days; 0 means all.
        :param limit: at most this many records, 1 to 1000.
        """
        params = history_params(status=status, last_days=last_days, limit=limit)
        return history_records(await self._aread("/api/history", HISTORY_CALL, None, params=params))

    def get_user(self) -> dict[str, Any]:
        """Read the profile the credentials act as (``GET /api/user``)."""
        return self._read("/api/user", call="GET /api/user")

    def test_connection(self) -> tuple[bool, str]:
        """What the UI's Test button runs: one ``GET /api/user``."""
        try:
            user = self.get_user()
        except AyrshareError as err:
            return False, str(err)
        networks = user.get("activeSocialAccounts") or []
        who = user.get("title") or user.get("refId") or "the profile"
        return True, f"Connected to Ayrshare as {who}; linked networks: {', '.join(networks) or 'none'}"

    # -- async (triggers) -----------------------------------------------------------------

    async def _aget_session(self) -> aiohttp.ClientSession:
        """The hook's one ``aiohttp`` session; the connection is read with the async-safe helpers."""
        if self._async_session is None:
            import aiohttp
            from airflow.providers.common.compat.connection import (
                get_async_connection,
                get_async_extra_dejson,
            )

            conn = await get_async_connection(self.ayrshare_conn_id, hook=self)
            headers = self._configure(conn, await get_async_extra_dejson(conn))
            self._async_session = aiohttp.ClientSession(
                headers=headers,
                timeout=aiohttp.ClientTimeout(total=self.timeout, connect=min(10.0, self.timeout)),
            )
        return self._async_session

    async def _asend(
        self, method: str, path: str, call: str, post_id: str | None, **request: Any
    ) -> dict[str, Any]:
        import asyncio

        import aiohttp

        session = await self._aget_session()
        while pause := self._budget_pause():
            await asyncio.sleep(pause)
        try:
            async with session.request(method, self.base_url + path, **request) as response:
                status, text, headers = response.status, await response.text(), response.headers
        except (TimeoutError, aiohttp.ClientError) as err:
            raise AyrshareServerError(
                f"no answer ({type(err).__name__})", call=call, post_id=post_id
            ) from None
        self._budget.observe(headers)  # type: ignore[union-attr]
        return parse_response(status, text, call=call, post_id=post_id, retry_after=_retry_after(headers))

    async def _aread(self, path: str, call: str, post_id: str | None, **request: Any) -> dict[str, Any]:
        await self._aget_session()  # the connection may tune the retry policy
        async for attempt in tenacity.AsyncRetrying(**self._read_policy()):
            with attempt:
                return await self._asend("GET", path, call, post_id, **request)
        raise AssertionError("unreachable: tenacity reraises the last error")

    async def aget_post(self, post_id: str) -> dict[str, Any]:
        """
        Read one post record without blocking the event loop (for triggers); retried like :meth:`get_post`.

        :param post_id: the top-level Ayrshare post id.
        """
        post_id = validate_post_id(post_id)
        return await self._aread(_post_path(post_id), POST_CALL, post_id)

    async def aclose(self) -> None:
        """Close the async session, if one was opened."""
        if self._async_session is not None:
            await self._async_session.close()
            self._async_session = None
