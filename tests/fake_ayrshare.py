"""A scripted Ayrshare for unit tests, on pytest-httpserver: exact answers, exact counts.

The service's memory and its retry rules are the emulator's own :class:`State` (only an ``error``
post can be retried, once; a second retry is 400 with code 329; an unknown post is 404; X posts
need the X headers; a retried post is ``pending``, then its final record with per-network
``postIds`` and ``errors``). What stays here is the scripting the emulator's model does not have:

- time is counted in reads, not seconds: after its retry a post reads ``pending`` exactly
  ``pending_reads`` times, then final (the emulator settles by clock, which would make counts
  of polls depend on timing);
- the k-th call of an endpoint can be answered with a scripted fault of any status, body and
  headers, including "apply, then lose the answer" (the emulator's fault kinds are a fixed set
  of the service's failures);
- posts are not scoped by Profile-Key (every post is found whatever key a request sends; the
  emulator's contract tests check the scoping), and network ids are a fixed ``99`` so that a
  test can name the post URL.
"""

from __future__ import annotations

import json
import math
import re
from collections import Counter, deque
from dataclasses import dataclass, field
from typing import Any

from werkzeug import Request, Response

from ayrshare_emulator.state import ApiError, Settings, State, StoredPost, has_x_credentials

#: The error a scripted ``outcome="error"`` meets again on every network the retry did not publish.
FAILS_AGAIN = (272, "X authorization failed.")
_PROFILE = ""  # every post is kept under one profile: the fake does not scope by Profile-Key


@dataclass
class Fault:
    status: int
    body: str
    content_type: str = "application/json"
    apply: bool = False  # do the work, then answer with the fault (a lost response)
    headers: dict[str, str] = field(default_factory=dict)


#: A place in a fault sequence where the call is answered normally.
PASS = Fault(0, "")


class _ScriptedState(State):
    """The emulator's state with fixed network ids: a test knows the post URL a retry gives."""

    def new_network_id(self) -> str:
        return "99"


class FakeAyrshare:
    """
    :param httpserver: the pytest-httpserver instance to register on.
    :param api_key: the only API key accepted.
    """

    def __init__(self, httpserver: Any, api_key: str) -> None:
        self.server = httpserver
        self.api_key = api_key
        self.url = httpserver.url_for("/").rstrip("/")
        # Never settles by time (retry_delay is infinite): reads settle it, see _get.
        self.state = _ScriptedState(Settings(api_key, retry_delay=math.inf, rate_limit=0, history_cache=0))
        self.pending_reads: dict[str, int] = {}  # id -> reads left while pending after the retry
        self.calls: Counter[str] = Counter()
        self.headers_seen: list[dict[str, str]] = []
        self.faults: dict[str, deque[Fault]] = {}
        self.user = {
            "title": "Test Profile",
            "refId": "ref123",
            "activeSocialAccounts": ["twitter", "linkedin"],
        }
        httpserver.expect_request(re.compile(r".*")).respond_with_handler(self._handle)

    @property
    def posts(self) -> dict[str, dict[str, Any]]:
        """Each post's record by id: the live record, which a test may change."""
        return {post_id: post.record for post_id, post in self.state.posts.items()}

    @property
    def retry_puts(self) -> Counter[str]:
        """Retry PUTs that reached the service, per post id (a fault that does not apply never does)."""
        return self.state.retry_puts

    # -- script ---------------------------------------------------------------------------

    def add_post(self, record: dict[str, Any], outcome: str = "success", pending_reads: int = 1) -> None:
        """Add a post; after a retry it reads ``pending`` ``pending_reads`` times, then ``outcome``."""
        if outcome not in ("success", "error"):
            raise ValueError(f"outcome is success or error, not {outcome!r}")
        fails_again = {platform: FAILS_AGAIN for platform in record.get("platforms") or []}
        self.state.add(
            StoredPost(
                record,
                _PROFILE,
                retry_failures=fails_again if outcome == "error" else {},
                settle_after=math.inf,
            )
        )
        self.pending_reads[record["id"]] = pending_reads

    def mark_retried(self, post_id: str) -> None:
        """Script a retry sent before the test, by an earlier attempt: none is left; pending, it settles."""
        self.state.posts[post_id].retried_at = self.state.clock()

    def fail_next(self, endpoint: str, *faults: Fault) -> None:
        """Answer the next calls of ``endpoint`` (``"PUT /api/post/retry"``, ``"GET /api/post"``, ...) with faults."""
        self.faults.setdefault(endpoint, deque()).extend(faults)

    # -- serving --------------------------------------------------------------------------

    @staticmethod
    def _json(status: int, body: Any, headers: dict[str, str] | None = None) -> Response:
        return Response(json.dumps(body), status=status, content_type="application/json", headers=headers)

    def _handle(self, request: Request) -> Response:
        path = request.path.rstrip("/")
        endpoint = f"{request.method} {'/api/post' if path.startswith('/api/post/') and path != '/api/post/retry' else path}"
        self.calls[endpoint] += 1
        self.headers_seen.append(dict(request.headers))
        if request.headers.get("Authorization") != f"Bearer {self.api_key}":
            return self._json(401, {"status": "error", "code": 102, "message": "API Key not valid."})
        fault = self.faults.get(endpoint, deque()).popleft() if self.faults.get(endpoint) else None
        if fault is PASS:
            fault = None
        if fault and not fault.apply:
            return Response(
                fault.body, status=fault.status, content_type=fault.content_type, headers=fault.headers
            )
        try:
            response = self._route(request, path)
        except ApiError as error:
            response = self._json(error.http_status, error.body)
        if fault:
            return Response(
                fault.body, status=fault.status, content_type=fault.content_type, headers=fault.headers
            )
        return response

    def _route(self, request: Request, path: str) -> Response:
        if request.method == "PUT" and path == "/api/post/retry":
            post_id = (request.get_json(silent=True) or {}).get("id")
            return self._json(
                200, self.state.retry(str(post_id), _PROFILE, has_x_credentials(request.headers))
            )
        if request.method == "GET" and path.startswith("/api/post/"):
            return self._get(path.removeprefix("/api/post/"))
        if request.method == "GET" and path == "/api/history":
            status = request.args.get("status")
            history = [
                self.state.view(post)
                for post in self.state.posts.values()
                if status is None or post.record["status"] == status
            ]
            return self._json(200, {"history": history[: int(request.args.get("limit", 25))]})
        if request.method == "GET" and path == "/api/user":
            return self._json(200, self.user)
        return self._json(404, {"status": "error", "code": 404, "message": "Not found."})

    def _get(self, post_id: str) -> Response:
        post = self.state.find(post_id, _PROFILE)
        if post.in_flight:  # counts this read; the one after the last pending read settles it
            reads_left = self.pending_reads[post_id]
            self.pending_reads[post_id] = reads_left - 1
            if reads_left <= 0:
                self.state.finish(post)
        return self._json(200, self.state.view(post))
