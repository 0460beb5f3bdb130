"""What an Ayrshare post record means: the one owner of ``record["status"]``.

Hook, operator, sensor, trigger and the example DAG ask this module whether a post is final,
published, worth retrying, and what its XCom summary looks like. Records are read tolerantly:
a missing field or an unknown status never crashes, it just means "not final yet".
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from enum import Enum
from typing import TYPE_CHECKING, Any

from ayrshare_provider.exceptions import (
    ALREADY_RETRIED_CODE,
    AyrshareInvalidPostIdError,
    AyrshareNotRetryableError,
    AyrsharePostFailedError,
    network_error_text,
)

if TYPE_CHECKING:
    import logging
    from collections.abc import Callable

SUCCESS = "success"
ERROR = "error"
PENDING = "pending"
PROCESSING = "processing"
PAUSED = "paused"
AWAITING_APPROVAL = "awaiting approval"
DELETED = "deleted"
KNOWN_STATUSES = frozenset({SUCCESS, ERROR, PENDING, PROCESSING, PAUSED, AWAITING_APPROVAL, DELETED})
#: a retry (or a scheduled send) is under way: wait, never PUT again.
IN_FLIGHT_STATUSES = frozenset({PENDING, PROCESSING})

#: Ayrshare's own duplicate check: the same (or nearly the same) text on this profile and network
#: within 48 hours. A repost of unchanged text can meet it; only a new text gets past it.
DUPLICATE_CONTENT_CODE = 137

# Error codes after which a retry cannot help until a person acts: relink or link a network,
# re-authorize X, change duplicate text, unlock an account, replace refused media.
PERMANENT_ERROR_CODES = frozenset({107, 110, DUPLICATE_CONTENT_CODE, 156, 161, 182, 272, 349, 436})

# What a person does about each of those codes, per network ("{network}": its display name).
_FIXES = {
    107: "change the text: {network} refuses a duplicate of an earlier post",
    110: "change the text: {network} refuses a duplicate of an earlier post",
    DUPLICATE_CONTENT_CODE: "change the text: Ayrshare refuses the same text on this profile and {network} "
    "within 48 hours (duplicate content)",
    156: "link {network} to this profile in Ayrshare",
    161: "relink {network} for this profile",
    182: "replace the media file {network} refused",
    272: "check the X consumer key and secret of the Ayrshare connection",
    349: "unlock the {network} account, then relink it",
    436: "replace the media file {network} refused",
}
#: Each network as people know it, by the name Ayrshare gives it (``twitter`` is X).
NETWORK_NAMES = {
    "bluesky": "Bluesky",
    "facebook": "Facebook",
    "gmb": "Google Business Profile",
    "instagram": "Instagram",
    "linkedin": "LinkedIn",
    "pinterest": "Pinterest",
    "reddit": "Reddit",
    "snapchat": "Snapchat",
    "telegram": "Telegram",
    "threads": "Threads",
    "tiktok": "TikTok",
    "twitter": "X",
    "youtube": "YouTube",
}

# Network throttles whose error carries the seconds to wait in ``details`` (Meta's Retry-After,
# passed through): Instagram's 435 (50 API posts per rolling 24 hours), Facebook's 444.
WAIT_HINT_CODES = frozenset({435, 444})
# Keys under which any error may pass a Retry-After value through, in seconds.
_RETRY_AFTER_KEYS = ("retryAfter", "retry_after", "Retry-After", "retry-after")

# Ayrshare ids are short alphanumeric strings; anything else could reach another URL.
_POST_ID = re.compile(r"[A-Za-z0-9_-]{1,128}")


class WaitState(str, Enum):
    """Where a post stands for someone waiting on it."""

    SUCCESS = "success"
    FAILED = "failed"
    WAITING = "waiting"


class Plan(str, Enum):
    """What a recovery should do with a post, decided before any write."""

    RETRY = "retry"
    RETRY_LATER = "retry_later"
    ALREADY_PUBLISHED = "already_published"
    IN_FLIGHT = "in_flight"
    NOT_RETRYABLE = "not_retryable"
    RETRY_SPENT = "retry_spent"
    WRONG_STATUS = "wrong_status"


class Action(str, Enum):
    """What this task did to the post; part of the XCom summary."""

    RETRIED = "retried"
    IN_FLIGHT = "in_flight"
    ALREADY_PUBLISHED = "already_published"
    ALREADY_RETRIED = "already_retried"
    WATCHED = "watched"
    NOT_RETRIED = "not_retried"
    REPOSTED = "reposted"
    REPOSTED_EARLIER = "reposted_earlier"


def validate_post_id(post_id: Any) -> str:
    """
    Return ``post_id`` as a string that is safe to put in a URL path, or raise.

    :param post_id: an Ayrshare post id; an int is accepted (templates sometimes render one), and
        white space around it is dropped (ids are pasted from dashboards and logs).
    """
    if isinstance(post_id, int) and not isinstance(post_id, bool):
        post_id = str(post_id)
    if not isinstance(post_id, str):
        raise AyrshareInvalidPostIdError(f"post_id must be a string, got {type(post_id).__name__}")
    post_id = post_id.strip()
    if not _POST_ID.fullmatch(post_id):
        shown = post_id if len(post_id) <= 40 else f"{post_id[:40]}... ({len(post_id)} characters)"
        raise AyrshareInvalidPostIdError(
            f"post_id {shown!r} is not an Ayrshare post id (1 to 128 letters, digits, '_' or '-')"
        )
    return post_id


def status_of(record: dict[str, Any]) -> str | None:
    """The record's status, lower-cased, or None when the record has none."""
    status = record.get("status")
    return status.strip().lower() if isinstance(status, str) else None


def _items(record: dict[str, Any], key: str) -> list[dict[str, Any]]:
    value = record.get(key)
    return [item for item in value if isinstance(item, dict)] if isinstance(value, list) else []


def network_results(record: dict[str, Any]) -> list[dict[str, Any]]:
    """
    One entry per network: ``platform``, ``status``, ``post_url``, ``code``, ``message``.

    Merges ``postIds`` (what was published) with ``errors`` (what failed); a network that the
    post targets but that appears in neither is reported with status ``None``.
    """
    results: dict[str, dict[str, Any]] = {}

    def entry(platform: Any) -> dict[str, Any]:
        name = str(platform) if platform else "unknown"
        return results.setdefault(
            name, {"platform": name, "status": None, "post_url": None, "code": None, "message": None}
        )

    platforms = record.get("platforms")
    for platform in platforms if isinstance(platforms, list) else []:
        entry(platform)
    for item in _items(record, "postIds"):
        result = entry(item.get("platform"))
        result["status"] = item.get("status") or SUCCESS
        result["post_url"] = item.get("postUrl")
    for item in _items(record, "errors"):
        result = entry(item.get("platform"))
        if result["status"] != SUCCESS:
            result["status"] = ERROR
        result["code"] = item.get("code")
        result["message"] = item.get("message")
    return list(results.values())


def is_published(record: dict[str, Any]) -> bool:
    """Whether every targeted network has the post, even if Ayrshare calls the post failed."""
    if status_of(record) == SUCCESS:
        return True
    results = network_results(record)
    return bool(results) and all(result["status"] == SUCCESS for result in results)


def retry_possible(record: dict[str, Any]) -> tuple[bool, str]:
    """
    Whether a retry can help a failed post, and why.

    Ayrshare's ``retryAvailable`` decides wherever it appears (top level or in an ``errors``
    item). Without it, a post whose every error is one that needs a person (relink, duplicate
    text, locked account) is not worth the one retry it has.
    """
    top = record.get("retryAvailable")
    if isinstance(top, bool):
        return top, f"retryAvailable is {str(top).lower()}"
    errors = _items(record, "errors")
    flags = [item["retryAvailable"] for item in errors if isinstance(item.get("retryAvailable"), bool)]
    if any(flags):
        return True, "an error says retryAvailable"
    if flags and len(flags) == len(errors):
        return False, "every error says retryAvailable is false"
    codes = [item.get("code") for item in errors]
    if codes and all(code in PERMANENT_ERROR_CODES for code in codes):
        details = ", ".join(network_error_text(item) for item in errors)
        return False, f"errors need a person, not a retry ({details})"
    return True, "no error rules a retry out"


def _seconds(value: Any) -> float | None:
    """A wait in seconds from a number or a numeric string; None for anything else."""
    if isinstance(value, bool):
        return None
    if isinstance(value, str):
        try:
            value = float(value.strip())
        except ValueError:
            return None
    return float(value) if isinstance(value, (int, float)) and value > 0 else None


def _wait_of(error: dict[str, Any]) -> float | None:
    """The seconds one network error asks to wait, if it carries a wait hint."""
    details = error.get("details")
    places = [error, details] if isinstance(details, dict) else [error]
    waits = [_seconds(place.get(key)) for place in places for key in _RETRY_AFTER_KEYS]
    if error.get("code") in WAIT_HINT_CODES:
        waits.append(_seconds(details))
    return max((wait for wait in waits if wait), default=None)


def retry_not_before(record: dict[str, Any], seen_at: datetime | None = None) -> tuple[datetime, str] | None:
    """
    The earliest moment a retry can help, from the networks' wait hints, and which network asked.

    A hint counts from when the post was sent (``scheduleDate``, else ``created``). A record with
    neither date counts it from ``seen_at``, the moment the caller first read the failure: the
    caller keeps that moment across reads, so that the wait ends (counted from each new read, it
    never would). None when no network asks to wait.

    :param record: the post record.
    :param seen_at: when the failure was first read, for a record without dates (default: now).
    """
    sent = (
        parse_date(record.get("scheduleDate"))
        or parse_date(record.get("created"))
        or seen_at
        or datetime.now(UTC)
    )
    latest: tuple[datetime, str] | None = None
    for error in _items(record, "errors"):
        wait = _wait_of(error)
        if wait is None:
            continue
        moment = sent + timedelta(seconds=wait)
        if latest is None or moment > latest[0]:
            why = (
                f"{error.get('platform') or 'a network'} asked to wait {wait:g} s (code {error.get('code')})"
            )
            latest = (moment, why)
    return latest


def plan_retry(
    record: dict[str, Any], now: datetime | None = None, seen_at: datetime | None = None
) -> tuple[Plan, str]:
    """
    Decide, before any write, what a recovery does with this post, with the reason.

    :param record: the post record.
    :param now: the moment to judge wait hints at (default: now).
    :param seen_at: when the failure was first read (see :func:`retry_not_before`).
    """
    status = status_of(record)
    if is_published(record):
        return Plan.ALREADY_PUBLISHED, "already published on every network"
    if status in IN_FLIGHT_STATUSES:
        return Plan.IN_FLIGHT, f"status is {status!r}: a retry or send is already under way"
    if status != ERROR:
        return Plan.WRONG_STATUS, f"status is {status!r}; only posts with status 'error' can be retried"
    if any(item.get("code") == ALREADY_RETRIED_CODE for item in _items(record, "errors")):
        return Plan.RETRY_SPENT, "its one retry is spent (code 329): only a new post can publish it"
    possible, reason = retry_possible(record)
    if not possible:
        return Plan.NOT_RETRYABLE, reason
    hint = retry_not_before(record, seen_at)
    if hint and hint[0] > (now or datetime.now(UTC)):
        return Plan.RETRY_LATER, f"{hint[1]}: retry not before {hint[0].isoformat()}"
    return Plan.RETRY, reason


# The fields of a post record that plan_retry reads: what a plan hands a retry task (see retry_facts).
_RETRY_FACT_FIELDS = (
    "id",
    "status",
    "platforms",
    "postIds",
    "errors",
    "retryAvailable",
    "scheduleDate",
    "created",
)


def retry_facts(record: dict[str, Any]) -> dict[str, Any]:
    """
    The part of a post record that :func:`plan_retry` decides on: what a recovery's plan hands each
    retry task, so that the task can retry without reading the post again (the text, media and
    options stay behind: a mapped task's arguments are kept in Airflow's database).

    :param record: the post record, as a listing or a read returned it.
    """
    return {name: record[name] for name in _RETRY_FACT_FIELDS if name in record}


def wait_state(record: dict[str, Any]) -> WaitState:
    """The one decision every waiter uses: published, failed for good, or keep waiting."""
    status = status_of(record)
    if is_published(record):
        return WaitState.SUCCESS
    if status in (ERROR, DELETED):
        return WaitState.FAILED
    return WaitState.WAITING  # pending, processing, paused, awaiting approval, unknown


class StatusWatch:
    """
    Applies :func:`wait_state` to successive reads of one post and logs what a person needs.

    :param post_id: the post being watched, for the log lines.
    :param log: returns the logger to log to. A triggerer starts hundreds of waits in one turn of
        its loop, and building a trigger's logger is the costliest part of its start (about 0.1 ms):
        it is built only when there is something to log.
    """

    def __init__(self, post_id: str, log: Callable[[], logging.Logger | Any]) -> None:
        self.post_id = post_id
        self._log = log
        self._last_status: str | None = None
        self._unknown_seen: set[str | None] = set()

    @property
    def log(self) -> Any:
        return self._log()

    def observe(self, record: dict[str, Any]) -> WaitState:
        status = status_of(record)
        if status not in KNOWN_STATUSES and status not in self._unknown_seen:
            self._unknown_seen.add(status)
            self.log.warning(
                "Post %s has a status this provider does not know: %r; still waiting", self.post_id, status
            )
        if status != self._last_status:
            self._last_status = status
            self.log.info("Post %s is %r", self.post_id, status)
        return wait_state(record)


def parse_date(value: Any) -> datetime | None:
    """Read a date in either of Ayrshare's forms: ISO 8601, or ``{"_seconds", "_nanoseconds", "utc"}``."""
    if isinstance(value, dict):
        if isinstance(value.get("_seconds"), (int, float)):
            seconds = value["_seconds"] + (value.get("_nanoseconds") or 0) / 1e9
            return datetime.fromtimestamp(seconds, tz=UTC)
        value = value.get("utc")
    if not isinstance(value, str) or not value.strip():
        return None
    try:
        parsed = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def summarize(record: dict[str, Any], action: Action, *, post_id: str | None = None) -> dict[str, Any]:
    """
    The XCom summary of a post: small, JSON-friendly, and free of anything secret.

    :param record: the post record as Ayrshare returned it.
    :param action: what this task did to the post.
    :param post_id: the id asked for, used when the record lacks one.
    """
    created = parse_date(record.get("created"))
    scheduled = parse_date(record.get("scheduleDate"))
    networks = network_results(record)
    return {
        "id": record.get("id") or post_id,
        "status": status_of(record),
        "published": is_published(record),
        "action": action.value,
        "retried": action is Action.RETRIED,
        "post_url": next((result["post_url"] for result in networks if result["post_url"]), None),
        "networks": networks,
        "created": created.isoformat() if created else None,
        "schedule_date": scheduled.isoformat() if scheduled else None,
    }


def failed_networks(summary: dict[str, Any]) -> list[dict[str, Any]]:
    """Each network that failed, from a post's summary: ``platform``, ``code`` and ``message``."""
    return [
        {"platform": network["platform"], "code": network["code"], "message": network["message"]}
        for network in summary.get("networks", [])
        if network.get("status") == ERROR
    ]


def failures_of(record: dict[str, Any]) -> list[dict[str, Any]]:
    """Each network a post failed on, with the error code it gave (``{"platform", "code"}``; no message)."""
    return [
        {"platform": error["platform"], "code": error["code"]}
        for error in failed_networks({"networks": network_results(record)})
    ]


def network_name(platform: Any) -> str:
    """A network's name as people know it (``twitter`` is X)."""
    return NETWORK_NAMES.get(str(platform), str(platform or "a network"))


def fix_for(error: dict[str, Any]) -> str:
    """
    What a person does so that a retry of this network can work, from one network error.

    :param error: one network's error: ``platform``, ``code``, ``message``.
    """
    network = network_name(error.get("platform"))
    if error.get("code") in _FIXES:
        return _FIXES[error["code"]].format(network=network)
    return f"fix what {network} reports ({error.get('message') or 'no message'}), then retry"


def person_request(record: dict[str, Any], post_id: str) -> dict[str, Any]:
    """
    A post that only a person can unblock, as the recovery asks about it: its networks, errors and fixes.

    :param record: the post record.
    :param post_id: its validated id.
    """
    text: str = record["post"] if isinstance(record.get("post"), str) else ""
    errors = [
        {**error, "fix": fix_for(error)} for error in failed_networks({"networks": network_results(record)})
    ]
    return {
        "id": post_id,
        "text": text if len(text) <= 80 else f"{text[:77]}...",
        "networks": errors,
        "reason": retry_possible(record)[1],
    }


# Fields of a post record that change what a network publishes, carried into a repost: the media,
# how it is read, the first comment, hashtags, links; and every per-network ``...Options`` object.
# Never ``scheduleDate`` (a repost publishes now) or ``profileKey`` (the hook sends the profile).
_REPOST_FIELDS = ("mediaUrls", "isVideo", "firstComment", "autoHashtag", "shortenLinks")


def failed_network_names(record: dict[str, Any]) -> list[str]:
    """The networks whose error the record shows (and that do not have the post), in the record's order."""
    return [result["platform"] for result in network_results(record) if result["status"] == ERROR]


#: How every repost's ``idempotencyKey`` starts: a post that carries it is a repost, never reposted again.
REPOST_KEY_PREFIX = "airflow-repost-"


def is_repost(record: dict[str, Any]) -> bool:
    """Whether the post is a repost this provider made (its ``idempotencyKey`` says so)."""
    key = record.get("idempotencyKey")
    return isinstance(key, str) and key.startswith(REPOST_KEY_PREFIX)


def repost_key(post_id: str, networks: list[str]) -> str:
    """
    The ``idempotencyKey`` of the one repost of ``post_id`` to ``networks``: the same post and
    networks always give the same key, so a second attempt gets the first repost back.
    """
    return f"{REPOST_KEY_PREFIX}{post_id}-{'-'.join(sorted(networks))}"


def repost_body(record: dict[str, Any], post_id: str) -> dict[str, Any] | None:
    """
    The ``POST /api/post`` body that publishes a failed post anew to only the networks that failed.

    None when no network shows an error (published, or nothing known to repost). Raises
    :class:`~ayrshare_provider.exceptions.AyrshareNotRetryableError` for a post whose status is
    not ``error`` (it may still publish), one that is itself a repost, or one without text to
    send (an empty string is text: Ayrshare publishes media alone).

    :param record: the original post's record.
    :param post_id: its validated id.
    """
    status = status_of(record)
    if status != ERROR:
        raise AyrshareNotRetryableError(
            f"not reposted: its status is {status!r}, not 'error', so it may still publish", post_id=post_id
        )
    if is_repost(record):
        raise AyrshareNotRetryableError(
            f"not reposted: it is itself a repost ({record['idempotencyKey']}); a person decides what follows",
            post_id=post_id,
        )
    networks = failed_network_names(record)
    if not networks:
        return None
    text = record.get("post")
    if not isinstance(text, str):
        raise AyrshareNotRetryableError(
            "not reposted: its record has no text ('post') to send", post_id=post_id
        )
    options = {
        name: value
        for name, value in record.items()
        if name in _REPOST_FIELDS or (name.endswith("Options") and isinstance(value, dict))
    }
    return {"post": text, "platforms": networks, **options, "idempotencyKey": repost_key(post_id, networks)}


def post_failed_error(summary: dict[str, Any], message: str | None = None) -> AyrsharePostFailedError:
    """
    The error for a post that ended failed, listing each network's error from its summary.

    :param summary: the post's summary (:func:`summarize`).
    :param message: what happened, when more than "it ended failed" is known.
    """
    retried_before = summary.get("action") == Action.ALREADY_RETRIED.value
    return AyrsharePostFailedError(
        message or f"the post ended with status {summary.get('status')!r}",
        post_id=summary.get("id"),
        errors=failed_networks(summary),
        code=ALREADY_RETRIED_CODE if retried_before else None,
    )
