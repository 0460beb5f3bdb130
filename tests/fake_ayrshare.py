"""A scripted Ayrshare for unit tests, on pytest-httpserver: exact answers, exact counts.

It knows posts, applies a retry the way the service does (``error`` -> ``pending`` -> final,
once), and can be told to answer the next calls of an endpoint with a scripted fault.
"""

from __future__ import annotations

import json
import re
from collections import Counter, deque
from dataclasses import dataclass, field
from typing import Any

from werkzeug import Request, Response


@dataclass
class Fault:
    status: int
    body: str
    content_type: str = "application/json"
    apply: bool = False  # do the work, then answer with the fault (a lost response)
    headers: dict[str, str] = field(default_factory=dict)


#: A place in a fault sequence where the call is answered normally.
PASS = Fault(0, "")


def error_post(post_id: str, platform: str = "twitter", code: int = 136, **extra: Any) -> dict[str, Any]:
    """A post record that failed on one network."""
    return {
        "id": post_id,
        "status": "error",
        "type": "now",
        "created": "2026-11-20T10:00:00Z",
        "platforms": [platform],
        "post": "hello",
        "postIds": [],
        "errors": [
            {
                "action": "post",
                "status": "error",
                "code": code,
                "message": "Network hiccup.",
                "platform": platform,
            }
        ],
        **extra,
    }


class FakeAyrshare:
    """
    :param httpserver: the pytest-httpserver instance to register on.
    :param api_key: the only API key accepted.
    """

    def __init__(self, httpserver: Any, api_key: str) -> None:
        self.server = httpserver
        self.api_key = api_key
        self.url = httpserver.url_for("/").rstrip("/")
        self.posts: dict[str, dict[str, Any]] = {}
        self.outcomes: dict[str, tuple[str, int]] = {}  # id -> (final status, reads left while pending)
        self.retried: set[str] = set()
        self.calls: Counter[str] = Counter()
        self.retry_puts: Counter[str] = Counter()
        self.headers_seen: list[dict[str, str]] = []
        self.faults: dict[str, deque[Fault]] = {}
        self.user = {
            "title": "Test Profile",
            "refId": "ref123",
            "activeSocialAccounts": ["twitter", "linkedin"],
        }
        httpserver.expect_request(re.compile(r".*")).respond_with_handler(self._handle)

    # -- script ---------------------------------------------------------------------------

    def add_post(self, record: dict[str, Any], outcome: str = "success", pending_reads: int = 1) -> None:
        """Add a post; after a retry it reads ``pending`` ``pending_reads`` times, then ``outcome``."""
        self.posts[record["id"]] = record
        self.outcomes[record["id"]] = (outcome, pending_reads)

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
        response = self._route(request, path)
        if fault:
            return Response(
                fault.body, status=fault.status, content_type=fault.content_type, headers=fault.headers
            )
        return response

    def _route(self, request: Request, path: str) -> Response:
        if request.method == "PUT" and path == "/api/post/retry":
            return self._retry(request.get_json(silent=True) or {})
        if request.method == "GET" and path.startswith("/api/post/"):
            return self._get(path.removeprefix("/api/post/"))
        if request.method == "GET" and path == "/api/history":
            status = request.args.get("status")
            history = [p for p in self.posts.values() if status is None or p["status"] == status]
            return self._json(200, {"history": history[: int(request.args.get("limit", 25))]})
        if request.method == "GET" and path == "/api/user":
            return self._json(200, self.user)
        return self._json(404, {"status": "error", "code": 404, "message": "Not found."})

    def _get(self, post_id: str) -> Response:
        record = self.posts.get(post_id)
        if record is None:
            return self._json(404, {"status": "error", "code": 404, "message": f"Post {post_id} not found."})
        outcome, reads_left = self.outcomes[post_id]
        if record.get("status") in ("pending", "processing") and post_id in self.retried:
            if reads_left <= 0:
                self._settle(record, outcome)
            self.outcomes[post_id] = (outcome, reads_left - 1)
        return self._json(200, record)

    def _settle(self, record: dict[str, Any], outcome: str) -> None:
        platform = (record.get("platforms") or ["twitter"])[0]
        record["status"] = outcome
        if outcome == "success":
            record["errors"] = []
            record["postIds"] = [
                {
                    "platform": platform,
                    "status": "success",
                    "id": "99",
                    "postUrl": f"https://example.test/{platform}/99",
                }
            ]
        elif outcome == "error":
            record["errors"] = [
                {
                    "action": "post",
                    "status": "error",
                    "code": 272,
                    "message": "X authorization failed.",
                    "platform": platform,
                }
            ]

    def _retry(self, body: dict[str, Any]) -> Response:
        post_id = body.get("id")
        self.retry_puts[str(post_id)] += 1
        record = self.posts.get(str(post_id))
        if record is None:
            return self._json(404, {"status": "error", "code": 404, "message": "Post not found."})
        if post_id in self.retried:
            return self._json(
                400,
                {
                    "action": "post",
                    "status": "error",
                    "code": 329,
                    "message": "This post was already retried and cannot be retried again.",
                },
            )
        if record["status"] != "error":
            return self._json(
                400, {"action": "post", "status": "error", "code": 400, "message": "Post is not in error."}
            )
        self.retried.add(post_id)
        record["status"] = "pending"
        return self._json(200, {"status": "pending", "id": post_id})
