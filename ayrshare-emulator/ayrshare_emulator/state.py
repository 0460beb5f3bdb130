"""The emulator's memory: posts per profile, how a retry plays out, rate-limit windows, counters.

Pure Python, no web framework: the app translates HTTP to these calls. Time comes from an
injectable clock so that tests and benchmarks can run the service's minutes in seconds.
"""

from __future__ import annotations

import copy
import hashlib
import random
import string
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from ayrshare_emulator.records import network_error, network_post, scheduled_payload

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

X_PLATFORMS = frozenset({"twitter", "x"})
#: Ayrshare's duplicate-content check (code 137): how far back it looks, and the networks it skips.
DUPLICATE_WINDOW = timedelta(hours=48)
_NOT_DUPLICATE_CHECKED = frozenset({"pinterest", "reddit", "telegram"})
X_AUTH_CODE = 272
ALREADY_RETRIED_CODE = 329
DUPLICATE_CONTENT_CODE = 137
X_HEADERS = ("x-twitter-oauth1-api-key", "x-twitter-oauth1-api-secret")


def has_x_credentials(headers: Mapping[str, str]) -> bool:
    """Whether a request carries both X headers; ``headers``: a request's (case-insensitive) headers."""
    return all(headers.get(name) for name in X_HEADERS)


@dataclass
class StoredPost:
    """One post and what the scenario says happens to it when retried."""

    record: dict[str, Any]
    profile: str
    #: per platform: the error a retry still meets (code, message), or absent when the retry publishes there.
    retry_failures: dict[str, tuple[int, str]] = field(default_factory=dict)
    retried_at: float | None = None
    #: seconds from the retry to its final status (drawn when the retry is applied).
    settle_after: float = 0.0
    #: retried before the emulator started (the demo's "already retried" post).
    already_retried: bool = False
    #: a scheduled post being processed: the record it becomes, and when (the clock's time).
    becomes: dict[str, Any] | None = None
    due_at: float | None = None

    @property
    def id(self) -> str:
        return str(self.record["id"])

    def targets_x(self) -> bool:
        return bool(X_PLATFORMS & set(self.record.get("platforms") or []))

    @property
    def in_flight(self) -> bool:
        """Retried and not final yet."""
        return self.retried_at is not None and self.record.get("status") in ("pending", "processing")


@dataclass
class Settings:
    """
    :param api_key: the one API key the emulator accepts.
    :param retry_delay: seconds a retried post stays ``pending`` then ``processing`` before its final status.
    :param retry_delay_max: when set, each retry takes a seeded random time between ``retry_delay`` and this.
    :param rate_limit: requests per window per profile; 0 turns the limit off.
    :param rate_window: the fixed window, in seconds.
    :param history_cache: seconds a ``GET /api/history`` answer with ``limit`` > 25 is served from cache
        (Ayrshare documents one minute); 0 turns the cache off.
    :param idempotency_key_retention: seconds an ``idempotencyKey`` is remembered after its post was
        made (not documented by Ayrshare; a day here); then a repeat makes a new post. 0: forever.
    :param idempotency_key_in_records: post records carry the ``idempotencyKey`` they were made with.
        Ayrshare's docs show no such field (the default); the emulator of 0.2 added it.
    :param duplicate_check: what ``POST /api/post`` answers with code 137 (duplicate content): the
        same text as a post of the profile on one of the networks within 48 hours, counting posts
        *published* on that network (the default), *any* post that targeted it (a failed original
        too, so a repost of unchanged text meets it), or ``off``. Ayrshare documents the check, not
        which posts it counts.
    """

    api_key: str
    retry_delay: float = 2.0
    retry_delay_max: float | None = None
    rate_limit: int = 300
    rate_window: float = 300.0
    history_cache: float = 60.0
    idempotency_key_retention: float = 86400.0
    idempotency_key_in_records: bool = False
    duplicate_check: str = "published"
    #: Webhook deliveries: a 2xx within ``webhook_timeout`` seconds, else tried again after each delay.
    webhook_timeout: float = 10.0
    webhook_retry_delays: tuple[float, ...] = (5.0, 30.0)
    #: How a delivery's digest is written: Ayrshare does not say (``hex``, or ``base64`` as public
    #: code that checks the header reads it).
    webhook_digest: str = "hex"
    #: The newer reading of the docs: each delivery carries a ``hookId`` in its payload and the
    #: ``X-Ayrshare-Delivery-Id`` / ``-Attempt`` headers (the same id on every attempt).
    webhook_delivery_ids: bool = False
    #: For this long after ``POST /api/hook/webhook/secret`` rotated a secret, deliveries are signed
    #: with both: the new one in ``X-Authorization-Content-SHA256``, the previous one in ``-V2``.
    webhook_rotation_overlap: float = 86400.0


class ApiError(Exception):
    """An answer in Ayrshare's error envelope."""

    def __init__(self, http_status: int, code: int, message: str, **extra: Any) -> None:
        super().__init__(message)
        self.http_status = http_status
        self.body = {
            "action": extra.pop("action", "post"),
            "status": "error",
            "code": code,
            "message": message,
            **extra,
        }


class State:
    """Everything the emulator knows; thread-safe, since uvicorn and the control API share it."""

    def __init__(self, settings: Settings, seed: int = 0, clock: Any = time.monotonic) -> None:
        self.settings = settings
        self.clock = clock
        self.random = random.Random(seed)
        self.lock = threading.RLock()
        self.posts: dict[str, StoredPost] = {}
        self.requests: Counter[str] = Counter()
        self.retry_puts: Counter[str] = Counter()
        self.post_reads: Counter[str] = Counter()  # GET /api/post/{id} answered, by post
        self.retries_applied: Counter[str] = Counter()
        self.retries_refused: Counter[str] = Counter()  # answered 329
        self.rate_limited = 0
        self.rate_limited_by: Counter[str] = Counter()  # by profile title ("primary" for the Primary Profile)
        self.requests_by: Counter[str] = Counter()  # /api calls let through, by profile title
        self.clients: set[tuple[str, int]] = set()
        self.posts_created: Counter[str] = Counter()  # by idempotency key; "" for posts sent without one
        self.idempotent_replays: Counter[str] = Counter()  # by idempotency key
        # (profile, idempotency key) -> (post id, HTTP status of the first answer, when): what a repeat answers.
        self._idempotent: dict[tuple[str, str], tuple[str, int, float]] = {}
        self._windows: dict[str, tuple[float, int]] = {}
        # Every window's requests (let through or not), by profile title, from the last counter reset:
        # how well a client filled each window, which totals cannot tell.
        self.windows_by: dict[str, list[int]] = {}
        self._history_answers: dict[Any, tuple[float, dict[str, Any]]] = {}
        # Webhooks: (profile, action) -> {"url", "secret"}; final statuses waiting to be pushed.
        self.webhooks: dict[tuple[str, str], dict[str, Any]] = {}
        self.outbox: list[tuple[str, dict[str, Any]]] = []
        self.webhook_counts: Counter[str] = Counter()
        # Profile Key -> emulator.profiles.Profile; empty: any Profile Key acts as a profile of its own.
        self.profiles: dict[str, Any] = {}

    # -- ids and posts --------------------------------------------------------------------

    def new_id(self) -> str:
        return "".join(self.random.choices(string.ascii_letters + string.digits, k=20))

    def new_network_id(self) -> str:
        """The id a network gives a post it published."""
        return str(self.random.randrange(10**17, 10**18))

    def add(self, post: StoredPost) -> StoredPost:
        with self.lock:
            self.posts[post.id] = post
        return post

    def find(self, post_id: str, profile: str) -> StoredPost:
        """A post of this profile, or the service's 404 (another profile's post is not found either)."""
        with self.lock:
            post = self.posts.get(post_id)
            if post is None or post.profile != profile:
                raise ApiError(404, 404, f"Post not found: {post_id}", action="request")
            self._settle(post)
            return post

    def view(self, post: StoredPost) -> dict[str, Any]:
        return copy.deepcopy(post.record)

    def history(self, profile: str) -> list[StoredPost]:
        """This profile's posts, newest first."""
        with self.lock:
            posts = [post for post in self.posts.values() if post.profile == profile]
            for post in posts:
                self._settle(post)
        return sorted(posts, key=lambda post: created_of(post.record), reverse=True)

    def cached_history(self, key: Any, limit: int, build: Any) -> dict[str, Any]:
        """
        A history answer, from Ayrshare's one-minute cache when ``limit`` is over the default 25.

        :param key: the profile and the query, as the cache tells answers apart.
        :param limit: the query's ``limit``.
        :param build: makes a fresh answer.
        """
        ttl = self.settings.history_cache
        if limit <= 25 or ttl <= 0:
            return build()
        with self.lock:
            now = self.clock()
            cached = self._history_answers.get(key)
            if cached is None or now - cached[0] >= ttl:
                cached = (now, build())
                self._history_answers[key] = cached
            return copy.deepcopy(cached[1])

    def create_once(
        self, profile: str, key: str | None, create: Callable[[], tuple[StoredPost, int]]
    ) -> tuple[StoredPost, int]:
        """
        ``POST /api/post``'s post and HTTP status: made by ``create``, or the one made before under ``key``.

        :param profile: the Profile Key; an idempotency key counts within its profile only.
        :param key: the request's ``idempotencyKey``; ``None`` always creates a new post.
        :param create: makes the post and tells the status of its answer (run under the lock).
        """
        with self.lock:  # check and remember at once: two concurrent repeats must not both create
            remembered = self._idempotent.get((profile, key)) if key is not None else None
            retention = self.settings.idempotency_key_retention
            if remembered is not None and (not retention or self.clock() - remembered[2] < retention):
                self.idempotent_replays[key or ""] += 1
                return self.find(remembered[0], profile), remembered[1]
            post, status = create()
            self.posts_created[key or ""] += 1
            if key is not None:
                self._idempotent[(profile, key)] = (post.id, status, self.clock())
            return post, status

    def duplicate_of(self, profile: str, text: str, platforms: list[str]) -> str | None:
        """
        The first of ``platforms`` where ``text`` repeats a post of ``profile`` from the last 48 hours
        (code 137, :attr:`Settings.duplicate_check`); None when none does. Pinterest, Reddit and
        Telegram are not checked, as on Ayrshare.
        """
        reading = self.settings.duplicate_check
        if reading == "off":
            return None
        since = datetime.now(UTC) - DUPLICATE_WINDOW
        checked = [platform for platform in platforms if platform not in _NOT_DUPLICATE_CHECKED]
        with self.lock:
            for post in self.posts.values():
                record = post.record
                if post.profile != profile or record.get("post") != text or publish_date_of(record) < since:
                    continue
                published = {
                    item.get("platform")
                    for item in record.get("postIds") or []
                    if item.get("status") == "success"
                }
                counted = published if reading == "published" else set(record.get("platforms") or [])
                if hit := next((platform for platform in checked if platform in counted), None):
                    return hit
        return None

    def forget_idempotency_keys(self) -> None:
        """Forget every ``idempotencyKey``, as Ayrshare does once its (undocumented) retention has passed."""
        with self.lock:
            self._idempotent.clear()

    # -- the retry ------------------------------------------------------------------------

    def retry(self, post_id: str, profile: str, has_x_credentials: bool) -> dict[str, Any]:
        """``PUT /api/post/retry``: once per post, only from ``error``; X posts need the X headers."""
        with self.lock:
            self.retry_puts[post_id] += 1
            post = self.find(post_id, profile)
            if post.retried_at is not None or post.already_retried:
                self.retries_refused[post_id] += 1
                raise ApiError(
                    400, ALREADY_RETRIED_CODE, "This post was already retried and cannot be retried again."
                )
            if post.record.get("status") != "error":
                raise ApiError(
                    400,
                    400,
                    f"Only a post with status error can be retried; this one is {post.record.get('status')}.",
                )
            if post.targets_x() and not has_x_credentials:
                raise ApiError(
                    400,
                    X_AUTH_CODE,
                    "X/Twitter requires the X-Twitter-OAuth1-Api-Key and X-Twitter-OAuth1-Api-Secret headers.",
                    platform="twitter",
                )
            post.retry_failures.update(_still_throttled(post.record))
            post.retried_at = self.clock()
            low, high = self.settings.retry_delay, self.settings.retry_delay_max
            post.settle_after = self.random.uniform(low, high) if high and high > low else low
            post.record["status"] = "pending"
            self.retries_applied[post_id] += 1
            return {"status": "pending", "id": post_id}

    def _settle(self, post: StoredPost) -> None:
        """Move a retried or scheduled post along with time: pending, processing, then final."""
        if post.due_at is not None and self.clock() >= post.due_at:
            post.record.update(post.becomes or {})
            post.becomes = post.due_at = None
            self._push(post)
            return
        if post.retried_at is None or not post.in_flight:
            return
        elapsed = self.clock() - post.retried_at
        if elapsed < post.settle_after / 2:
            return
        if elapsed < post.settle_after:
            post.record["status"] = "processing"
            return
        self.finish(post)

    def finish(self, post: StoredPost) -> None:
        """
        A retried post's final record, now: per network, published by the retry or its scripted error.

        Networks published before the retry stay published; status is ``error`` if any network failed.
        """
        with self.lock:
            if not post.in_flight:
                return
            published = [item for item in post.record.get("postIds") or [] if item.get("status") == "success"]
            done = {item["platform"] for item in published}
            errors = []
            for platform in post.record.get("platforms") or []:
                if platform in done:
                    continue
                if platform in post.retry_failures:
                    errors.append(network_error(platform, *post.retry_failures[platform]))
                else:
                    published.append(network_post(platform, self.new_network_id()))
            post.record.update(status="error" if errors else "success", errors=errors, postIds=published)
            self._push(post)

    def settle_due(self) -> None:
        """Settle every post whose time has come, read or not, once a webhook waits for final statuses."""
        with self.lock:
            if not self.webhooks:
                return  # unread posts settle when read, as before
            for post in self.posts.values():
                if post.due_at is not None or post.in_flight:
                    self._settle(post)

    # -- webhooks ---------------------------------------------------------------------------

    def webhook_of(self, profile: str, action: str) -> dict[str, Any] | None:
        """
        Where a profile's deliveries go: its own webhook, else the Primary Profile's, which a User
        Profile without one inherits (documented): one URL then receives several profiles' posts.
        """
        with self.lock:
            return self.webhooks.get((profile, action)) or self.webhooks.get(("", action))

    def _push(self, post: StoredPost) -> None:
        """Queue the scheduled-action payload of a post that just became final, for its profile's webhook."""
        if self.webhook_of(post.profile, "scheduled") is None:
            return
        self.outbox.append((post.profile, scheduled_payload(post.id, post.record)))

    def take_outbox(self) -> list[tuple[str, dict[str, Any]]]:
        """The final statuses queued since the last call, with their profile."""
        with self.lock:
            taken, self.outbox = self.outbox, []
            return taken

    # -- rate limit and counting ----------------------------------------------------------

    def count_request(self, endpoint: str, client: tuple[str, int] | None) -> None:
        with self.lock:
            self.requests[endpoint] += 1
            if client:
                self.clients.add(client)

    def profile_name(self, key: str) -> str:
        """How counters name a profile: its title, never its key."""
        profile = self.profiles.get(key)
        if profile is not None:
            return str(profile.title)
        return "primary" if not key else "profile " + hashlib.sha256(key.encode()).hexdigest()[:8]

    def take_rate_slot(self, profile: str) -> tuple[bool, dict[str, str]]:
        """Count one request in the profile's fixed window; say whether it is allowed, and the headers."""
        limit, window = self.settings.rate_limit, self.settings.rate_window
        with self.lock:
            self.requests_by[self.profile_name(profile)] += 1
        if limit <= 0:
            return True, {}
        with self.lock:
            now = self.clock()
            start, count = self._windows.get(profile, (now, 0))
            if now - start >= window:
                start, count = now, 0
            in_windows = self.windows_by.setdefault(self.profile_name(profile), [])
            if count == 0 or not in_windows:  # a new window, or the first request since a counter reset
                in_windows.append(0)
            in_windows[-1] += 1
            count += 1
            self._windows[profile] = (start, count)
            allowed = count <= limit
            if not allowed:
                self.rate_limited += 1
                self.rate_limited_by[self.profile_name(profile)] += 1
        reset_ms = max(0, int((start + window - now) * 1000))
        return allowed, {
            "x-ratelimit-max": str(limit),
            "x-ratelimit-count": str(min(count, limit)),
            "x-ratelimit-reset": str(reset_ms),
        }

    def counters(self) -> dict[str, Any]:
        with self.lock:
            return {
                "requests": dict(self.requests),
                "retry_puts": dict(self.retry_puts),
                "post_reads": dict(self.post_reads),
                "retries_applied": dict(self.retries_applied),
                "retries_refused": dict(self.retries_refused),
                "rate_limited": self.rate_limited,
                "rate_limited_by_profile": dict(self.rate_limited_by),
                "requests_by_profile": dict(self.requests_by),
                "windows_by_profile": {name: list(counts) for name, counts in self.windows_by.items()},
                "connections_opened": len(self.clients),
                "posts_created": dict(self.posts_created),
                "idempotent_replays": dict(self.idempotent_replays),
                "webhooks": dict(self.webhook_counts),
            }

    def reset_counters(self) -> None:
        with self.lock:
            self.requests.clear()
            self.retry_puts.clear()
            self.post_reads.clear()
            self.retries_applied.clear()
            self.retries_refused.clear()
            self.rate_limited = 0
            self.rate_limited_by.clear()
            self.requests_by.clear()
            self.windows_by.clear()
            self.clients.clear()
            self.posts_created.clear()
            self.idempotent_replays.clear()
            self.webhook_counts.clear()


def _still_throttled(record: dict[str, Any]) -> dict[str, tuple[int, str]]:
    """The networks whose throttle (code 435/444 with the seconds to wait in ``details``) is not over yet."""
    sent = created_of(record, "scheduleDate") if record.get("scheduleDate") else created_of(record)
    throttled = {}
    for error in record.get("errors") or []:
        try:
            wait = float(error.get("details"))
        except (TypeError, ValueError):
            continue
        if error.get("code") in (435, 444) and datetime.now(UTC) < sent + timedelta(seconds=wait):
            throttled[str(error.get("platform"))] = (int(error["code"]), str(error.get("message")))
    return throttled


def publish_date_of(record: dict[str, Any]) -> datetime:
    """When a post is published, which ``lastDays`` counts by: ``scheduleDate`` for a scheduled post."""
    if record.get("type") == "scheduled" and record.get("scheduleDate"):
        return created_of(record, "scheduleDate")
    return created_of(record)


def created_of(record: dict[str, Any], field_name: str = "created") -> datetime:
    """A record's creation time (or another date field), from either date form; records without one sort last."""
    value = record.get(field_name)
    if isinstance(value, dict):
        if isinstance(value.get("_seconds"), (int, float)):
            return datetime.fromtimestamp(value["_seconds"], tz=UTC)
        value = value.get("utc")
    try:
        return datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        return datetime.min.replace(tzinfo=UTC)


def days_ago(days: float) -> datetime:
    return datetime.now(UTC) - timedelta(days=days)
