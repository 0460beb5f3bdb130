"""The emulator's HTTP face: Ayrshare's endpoints under ``/api``, the control API under ``/_emulator``.

Every ``/api`` call goes through :class:`ServiceRules` first, as on the real service: it is
counted, may meet an injected fault, must carry the API key, and counts against its
profile's rate-limit window.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from fastapi import Body, FastAPI, Request
from fastapi.responses import JSONResponse

from ayrshare_emulator import profiles, scenarios
from ayrshare_emulator.records import iso
from ayrshare_emulator.state import (
    DUPLICATE_CONTENT_CODE,
    X_PLATFORMS,
    ApiError,
    State,
    StoredPost,
    days_ago,
    has_x_credentials,
    publish_date_of,
)

if TYPE_CHECKING:
    from ayrshare_emulator.faults import Fault, Faults

WEBHOOK_ACTIONS = {"scheduled", "social", "messages", "comments", "feed"}
STATUSES = {"success", "error", "pending", "processing", "paused", "awaiting approval", "deleted"}
_ENDPOINTS = [
    (re.compile(r"^/api/post/retry/?$"), "/api/post/retry"),
    (re.compile(r"^/api/post/[^/]+/?$"), "/api/post/{id}"),
    (re.compile(r"^/api/history/[^/]+/?$"), "/api/history/{id}"),
]
_HTML_PAGE = "<html><head><title>{status} Bad Gateway</title></head><body><center><h1>{status} Bad Gateway</h1></center></body></html>"


def endpoint_of(method: str, path: str) -> str:
    """``"GET /api/post/{id}"``: how counters and fault rules name a call."""
    for pattern, template in _ENDPOINTS:
        if pattern.match(path):
            return f"{method} {template}"
    return f"{method} {path.rstrip('/') or '/'}"


# Ayrshare's answer to a request over the rate limit (the service's own, or a fault's).
TOO_MANY_REQUESTS = {
    "action": "request",
    "status": "error",
    "code": 429,
    "message": "Too many requests. Please slow down.",
}


class DroppedConnection(Exception):
    """Raised after the response started, so that uvicorn closes the connection mid-answer."""


class _QuietDrops(logging.Filter):
    """Keeps uvicorn from logging a traceback for each connection the emulator drops on purpose."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not (record.exc_info and isinstance(record.exc_info[1], DroppedConnection))


class ServiceRules:
    """ASGI middleware: counting, faults, API key and rate limit for every ``/api`` call."""

    def __init__(self, app: Any, state: State, faults: Faults) -> None:
        self.app, self.state, self.faults = app, state, faults

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http" or not scope["path"].startswith("/api/"):
            return await self.app(scope, receive, send)
        endpoint = endpoint_of(scope["method"], scope["path"])
        self.state.count_request(endpoint, scope.get("client"))
        headers = {key.decode("latin-1").lower(): value.decode("latin-1") for key, value in scope["headers"]}
        fault = self.faults.pick(endpoint)
        if fault and fault.kind == "latency":
            await asyncio.sleep(fault.seconds)
        elif fault and fault.kind not in ("apply_then_drop", "late_answer"):
            return await self._inject(fault, send)

        if headers.get("authorization") != f"Bearer {self.state.settings.api_key}":
            return await _send_json(
                send,
                401,
                {
                    "action": "request",
                    "status": "error",
                    "code": 102,
                    "message": "API Key not valid. Verify your API Key.",
                },
            )
        refused = profiles.refusal(self.state, headers.get("profile-key", ""))
        if refused is not None:
            return await _send_json(send, refused.http_status, refused.body)
        allowed, limit_headers = self.state.take_rate_slot(headers.get("profile-key", ""))
        if not allowed:
            return await _send_json(
                send,
                429,
                TOO_MANY_REQUESTS,
                limit_headers,
            )

        async def send_with_limits(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                if fault and fault.kind == "late_answer":
                    await asyncio.sleep(fault.seconds)
                message = {
                    **message,
                    "headers": [
                        *message.get("headers", []),
                        *((k.encode(), v.encode()) for k, v in limit_headers.items()),
                    ],
                }
            if fault is None or fault.kind != "apply_then_drop":
                await send(message)

        await self.app(scope, receive, send_with_limits)
        if fault and fault.kind == "apply_then_drop":
            await self._inject(fault, send)

    @staticmethod
    async def _inject(fault: Fault, send: Any) -> None:
        if fault.kind == "error_html":
            body = _HTML_PAGE.format(status=fault.status).encode()
            await send(
                {
                    "type": "http.response.start",
                    "status": fault.status,
                    "headers": [
                        (b"content-type", b"text/html"),
                        (b"content-length", str(len(body)).encode()),
                    ],
                }
            )
            return await send({"type": "http.response.body", "body": body})
        if fault.kind == "unavailable":
            return await _send_json(
                send, 503, {"status": "error", "code": 503, "message": "Service temporarily unavailable."}
            )
        if fault.kind == "rate_limit":
            return await _send_json(
                send,
                429,
                TOO_MANY_REQUESTS,
            )
        # drop / apply_then_drop: promise a body, then close the connection without it.
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"64")]})
        raise DroppedConnection()


async def _send_json(
    send: Any, status: int, body: dict[str, Any], headers: dict[str, str] | None = None
) -> None:
    data = json.dumps(body).encode()
    raw = [(b"content-type", b"application/json"), (b"content-length", str(len(data)).encode())]
    raw += [(k.encode(), v.encode()) for k, v in (headers or {}).items()]
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": data})


def _profile(request: Request) -> str:
    return request.headers.get("profile-key", "")


def _networks_of(state: State, profile: str) -> list[str]:
    """The networks a profile posts to: what the emulator shows as its linked (active) social accounts."""
    return sorted({p for post in state.history(profile) for p in post.record.get("platforms") or []})


def _platforms_param(request: Request) -> list[str]:
    values = request.query_params.getlist("platforms") + request.query_params.getlist("platforms[]")
    return [name.strip() for value in values for name in value.split(",") if name.strip()]


def _int_param(request: Request, name: str, default: int | None) -> int | None:
    value = request.query_params.get(name)
    if value is None:
        return default
    try:
        return int(value)
    except ValueError:
        raise ApiError(400, 101, f"{name} must be a whole number, got {value!r}", action="request") from None


def _date_param(request: Request, name: str) -> datetime | None:
    value = request.query_params.get(name)
    if value is None:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise ApiError(
            400, 101, f"{name} must be an ISO 8601 date, got {value!r}", action="request"
        ) from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


# What a created record keeps of its request besides text and platforms: what changes what is published.
_KEPT_FIELDS = ("isVideo", "firstComment", "autoHashtag", "shortenLinks")


def _idempotency_key(body: dict[str, Any]) -> str | None:
    """The request's ``idempotencyKey``, or ``None`` without one; any other value is Ayrshare's 400."""
    if "idempotencyKey" not in body:
        return None
    key = body["idempotencyKey"]
    if not isinstance(key, str) or not key:
        raise ApiError(400, 101, "idempotencyKey must be a non-empty string.")
    return key


def _sent_fields(body: dict[str, Any], key_in_record: bool) -> dict[str, Any]:
    """The request's media, per-network options (``instagramOptions``, ...) and flags, for the record."""
    kept = {name: value for name, value in body.items() if name in _KEPT_FIELDS or name.endswith("Options")}
    if key_in_record and "idempotencyKey" in body:
        kept["idempotencyKey"] = body["idempotencyKey"]
    if isinstance(body.get("mediaUrls"), list):  # else the record keeps its default, an empty list
        kept["mediaUrls"] = body["mediaUrls"]
    return kept


def _publish(state: State, request: Request, body: dict[str, Any]) -> tuple[StoredPost, int]:
    """A new post as the networks answer it, and its HTTP status: 400 when any network failed."""
    platforms: list[str] = body["platforms"]
    if repeated := state.duplicate_of(_profile(request), body["post"], platforms):
        raise ApiError(
            400,
            DUPLICATE_CONTENT_CODE,
            "Duplicate content: the same post was sent to this profile and network within 48 hours.",
            platform=repeated,
        )
    fail = set(body.get("_emulator_fail", []))  # which networks fail: the emulator's own extension
    errors = {p: scenarios.TRANSIENT for p in platforms if p in fail}
    if any(p in X_PLATFORMS for p in platforms) and not has_x_credentials(request.headers):
        errors.update(
            {
                p: (272, "X/Twitter requires your own X API key and secret.")
                for p in platforms
                if p in X_PLATFORMS
            }
        )
    post = scenarios.add_failed(
        state,
        _profile(request),
        platforms,
        errors,
        text=body["post"],
        age_days=0,
        published=[p for p in platforms if p not in errors],
        status="error" if errors else "success",
        **_sent_fields(body, state.settings.idempotency_key_in_records),
    )
    return post, 400 if errors else 200


def create_app(state: State, faults: Faults) -> Any:
    """The emulator as an ASGI app (FastAPI inside :class:`ServiceRules`)."""
    uvicorn_errors = logging.getLogger("uvicorn.error")
    if not any(isinstance(existing, _QuietDrops) for existing in uvicorn_errors.filters):
        uvicorn_errors.addFilter(_QuietDrops())
    api = FastAPI(
        title="Ayrshare emulator", docs_url="/_emulator/docs", openapi_url="/_emulator/openapi.json"
    )

    @api.exception_handler(ApiError)
    async def api_error(_: Request, error: ApiError) -> JSONResponse:
        return JSONResponse(error.body, status_code=error.http_status)

    @api.post("/api/post")
    async def create_post(request: Request, body: dict[str, Any] = Body(...)) -> JSONResponse:
        platforms = body.get("platforms")
        if not isinstance(body.get("post"), str) or not isinstance(platforms, list) or not platforms:
            raise ApiError(400, 101, "post (text) and platforms (list) are required.")
        post, status = state.create_once(
            _profile(request), _idempotency_key(body), lambda: _publish(state, request, body)
        )
        return JSONResponse(state.view(post), status_code=status)

    @api.get("/api/post/{post_id}")
    @api.get("/api/history/{post_id}")
    async def get_post(post_id: str, request: Request) -> dict[str, Any]:
        post = state.find(post_id, _profile(request))
        with state.lock:
            state.post_reads[post_id] += 1
        return state.view(post)

    @api.put("/api/post/retry")
    async def retry_post(request: Request, body: dict[str, Any] = Body(...)) -> dict[str, Any]:
        post_id = body.get("id")
        if not isinstance(post_id, str) or not post_id:
            raise ApiError(400, 101, "id of the post is required.")
        return state.retry(post_id, _profile(request), has_x_credentials(request.headers))

    @api.get("/api/history")
    async def history(request: Request) -> dict[str, Any]:
        status = request.query_params.get("status")
        if status is not None and status not in STATUSES:
            raise ApiError(400, 101, f"status must be one of {sorted(STATUSES)}.", action="request")
        limit = _int_param(request, "limit", _int_param(request, "lastRecords", 25))
        if limit is None or not 1 <= limit <= 1000:
            raise ApiError(400, 101, "limit must be between 1 and 1000.", action="request")
        last_days = _int_param(request, "lastDays", 30)
        start, end = _date_param(request, "startDate"), _date_param(request, "endDate")
        post_type = request.query_params.get("type")
        platforms = set(_platforms_param(request))
        since = None if last_days == 0 else days_ago(last_days or 30)
        if start and end:
            since = None

        def listing() -> dict[str, Any]:
            selected = []
            for post in state.history(_profile(request)):
                record, published = post.record, publish_date_of(post.record)
                # Deleted posts are listed only when asked for by status.
                if record.get("status") != status and (status or record.get("status") == "deleted"):
                    continue
                if since and published < since or start and end and not start <= published <= end:
                    continue
                if post_type and (record.get("type") == "scheduled") != (post_type == "scheduled"):
                    continue
                if platforms and not platforms & set(record.get("platforms") or []):
                    continue
                selected.append(state.view(post))
            return {"history": selected[:limit]}

        query = tuple(sorted(request.query_params.multi_items()))
        return state.cached_history((_profile(request), query), limit, listing)

    @api.get("/api/user")
    async def user(request: Request) -> dict[str, Any]:
        profile = _profile(request)
        return {
            "activeSocialAccounts": _networks_of(state, profile),
            "displayNames": [],
            "email": "emulator@example.com",
            "monthlyApiCalls": sum(state.requests.values()),
            **profiles.names_of(state, profile),
            "created": iso(days_ago(365)),
        }

    @api.get("/api/profiles")
    async def list_profiles(request: Request) -> dict[str, Any]:
        """The Primary Profile's User Profiles, a page at a time (``limit``, ``cursor``); never their keys."""
        if _profile(request):
            raise ApiError(403, 403, "Profiles are listed with the Primary Profile's API key alone.")
        limit = _int_param(request, "limit", 25)
        if limit is None or not 1 <= limit <= 100:
            raise ApiError(400, 101, "limit must be between 1 and 100.", action="request")
        cursor = request.query_params.get("cursor") or ""
        title, ref_id = request.query_params.get("title"), request.query_params.get("refId")
        active_only = request.query_params.get("hasActiveSocialAccounts") == "true"
        with state.lock:
            listed = []
            for profile in sorted(state.profiles.values(), key=lambda profile: profile.ref_id):
                if title and profile.title != title or ref_id and profile.ref_id != ref_id:
                    continue
                networks = _networks_of(state, profile.key)
                if active_only and not networks:
                    continue
                if profile.ref_id > cursor:
                    listed.append(profile.listing(networks))
        page = listed[:limit]
        more = len(listed) > limit
        return {
            "profiles": page,
            "count": len(page),
            "pagination": {
                "hasMore": more,
                "nextCursor": page[-1]["refId"] if more else None,
                "limit": limit,
            },
        }

    # -- webhooks -------------------------------------------------------------------------

    @api.post("/api/hook/webhook")
    async def register_webhook(request: Request, body: dict[str, Any] = Body(...)) -> dict[str, Any]:
        action, url = body.get("action"), body.get("url")
        if action not in WEBHOOK_ACTIONS:
            raise ApiError(400, 101, f"action must be one of {sorted(WEBHOOK_ACTIONS)}.", action="webhook")
        if not isinstance(url, str) or not url.startswith(("https://", "http://")):
            raise ApiError(400, 101, "url must be an http(s):// URL.", action="webhook")
        secret = body.get("secret")
        with state.lock:
            state.webhooks[(_profile(request), action)] = {
                "url": url,
                **({"secret": secret} if isinstance(secret, str) and secret else {}),
            }
        return {"status": "success", "action": action, "url": url}

    @api.post("/api/hook/webhook/secret")
    async def rotate_webhook_secret(request: Request, body: dict[str, Any] = Body(...)) -> dict[str, Any]:
        """A new signing secret; for ``webhook_rotation_overlap`` deliveries are signed with both."""
        secret = body.get("secret")
        if not isinstance(secret, str) or not secret:
            raise ApiError(400, 101, "secret must be a non-empty string.", action="webhook")
        with state.lock:
            hooks = [hook for (owner, _), hook in state.webhooks.items() if owner == _profile(request)]
            if not hooks:
                raise ApiError(404, 404, "No webhook registered for this profile.", action="webhook")
            for hook in hooks:
                hook.update(previous_secret=hook.get("secret"), secret=secret, rotated_at=state.clock())
        return {"status": "success"}

    @api.delete("/api/hook/webhook")
    async def unregister_webhook(request: Request, body: dict[str, Any] = Body(...)) -> dict[str, Any]:
        action = body.get("action")
        with state.lock:
            removed = state.webhooks.pop((_profile(request), str(action)), None)
        if removed is None:
            raise ApiError(404, 404, f"No webhook registered for action {action!r}.", action="webhook")
        return {"status": "success", "action": action}

    @api.get("/api/hook/webhook")
    async def list_webhooks(request: Request) -> dict[str, Any]:
        profile = _profile(request)
        with state.lock:
            listed = [
                {"action": action, "url": hook["url"]}
                for (owner, action), hook in state.webhooks.items()
                if owner == profile
            ]
        return {"webhooks": listed}

    # -- control API ----------------------------------------------------------------------

    @api.get("/_emulator/counters")
    async def counters() -> dict[str, Any]:
        return {**state.counters(), "faults_injected": dict(faults.injected)}

    @api.post("/_emulator/reset-counters")
    async def reset_counters() -> dict[str, Any]:
        state.reset_counters()
        faults.injected.clear()
        return {"status": "ok"}

    @api.post("/_emulator/forget-idempotency-keys")
    async def forget_idempotency_keys() -> dict[str, Any]:
        """As if the keys' retention had passed: a repeated ``idempotencyKey`` makes a new post."""
        state.forget_idempotency_keys()
        return {"status": "ok"}

    @api.post("/_emulator/faults")
    async def add_faults(rules: list[dict[str, Any]] = Body(...)) -> dict[str, Any]:
        try:
            for rule in rules:
                faults.add(rule)
        except (TypeError, ValueError) as err:
            raise ApiError(400, 101, f"bad fault rule: {err}", action="emulator") from None
        return {"rules": len(faults.rules)}

    @api.delete("/_emulator/faults")
    async def clear_faults() -> dict[str, Any]:
        faults.clear()
        return {"rules": 0}

    @api.post("/_emulator/posts")
    async def seed_posts(body: dict[str, Any] = Body(...)) -> dict[str, Any]:
        """
        Seed posts in any state: ``{"profile_key": "", "posts": [record + "_fails_again": {platform:
        [code, msg]}, "_already_retried": bool, "_processes_in": seconds]}``. With ``_processes_in``
        the post is a scheduled post being processed: ``pending`` until then, then the seeded record
        (its final status is pushed to a registered webhook).
        """
        ids = []
        for raw in body.get("posts", []):
            record = {key: value for key, value in raw.items() if not key.startswith("_")}
            record.setdefault("id", state.new_id())
            record.setdefault("created", iso(days_ago(0)))
            fails_again = {
                platform: tuple(error) for platform, error in (raw.get("_fails_again") or {}).items()
            }
            post = StoredPost(
                record,
                body.get("profile_key", ""),
                retry_failures=fails_again,
                already_retried=bool(raw.get("_already_retried")),
            )
            if raw.get("_processes_in") is not None:
                post.becomes = dict(record)
                post.due_at = state.clock() + float(raw["_processes_in"])
                post.record = {**record, "status": "pending", "errors": [], "postIds": []}
            state.add(post)
            ids.append(record["id"])
        return {"ids": ids}

    @api.post("/_emulator/scenario")
    async def load_scenario(body: dict[str, Any] = Body(...)) -> dict[str, Any]:
        before = set(state.posts)
        try:
            scenarios.load(
                body.get("name", "demo"), state, body.get("profile_key", ""), int(body.get("count", 0))
            )
        except ValueError as err:
            raise ApiError(400, 101, str(err), action="emulator") from None
        return {"ids": [post_id for post_id in state.posts if post_id not in before]}

    @api.post("/_emulator/profiles")
    async def add_profiles(body: dict[str, Any] = Body(...)) -> dict[str, Any]:
        """
        Create User Profiles: ``{"profiles": [{"title", "key"?, "status"?}]}``, or an agency:
        ``{"agency": N, "failed_posts": M, "suspended": S}``. Answers each profile with its key.
        """
        try:
            if "agency" in body:
                made = profiles.agency(
                    state,
                    int(body["agency"]),
                    int(body.get("failed_posts", 0)),
                    suspended=int(body.get("suspended", 0)),
                )
            else:
                made = [
                    profiles.add_profile(
                        state,
                        str(entry["title"]),
                        key=entry.get("key"),
                        status=entry.get("status", profiles.ACTIVE),
                    )
                    for entry in body.get("profiles", [])
                ]
        except (KeyError, TypeError, ValueError) as err:
            raise ApiError(400, 101, f"bad profile: {err}", action="emulator") from None
        return {
            "profiles": [
                {"title": p.title, "refId": p.ref_id, "status": p.status, "key": p.key} for p in made
            ]
        }

    @api.get("/_emulator/posts")
    async def dump_posts() -> dict[str, Any]:
        with state.lock:
            return {
                "posts": [
                    {"profile_key": post.profile, "record": state.view(post)} for post in state.posts.values()
                ]
            }

    @api.post("/_emulator/settings")
    async def settings(body: dict[str, Any] = Body(...)) -> dict[str, Any]:
        for name, kind in (
            ("retry_delay", float),
            ("retry_delay_max", float),
            ("rate_limit", int),
            ("rate_window", float),
            ("history_cache", float),
            ("webhook_timeout", float),
            ("idempotency_key_retention", float),
            ("idempotency_key_in_records", bool),
            ("duplicate_check", str),
            ("webhook_digest", str),
            ("webhook_delivery_ids", bool),
            ("webhook_rotation_overlap", float),
        ):
            if name in body:
                setattr(state.settings, name, None if body[name] is None else kind(body[name]))
        if "webhook_retry_delays" in body:
            state.settings.webhook_retry_delays = tuple(
                float(delay) for delay in body["webhook_retry_delays"]
            )
        return vars(state.settings) | {"api_key": "***"}

    return ServiceRules(api, state, faults)
