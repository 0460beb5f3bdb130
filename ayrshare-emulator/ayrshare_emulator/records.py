"""What an Ayrshare post record looks like: the one place that builds one.

The emulator's scenarios and its retry, the tests' scripted posts and the benchmarks' seeds all
build their records here, so that the shape changes in one place.
"""

from __future__ import annotations

import copy
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def post_url(platform: str, network_id: str) -> str:
    return f"https://{platform}.example.com/posts/{network_id}"


def network_error(platform: str, code: int, message: str) -> dict[str, Any]:
    """One entry of a record's ``errors``: a network that refused the post."""
    return {"action": "post", "status": "error", "code": code, "message": message, "platform": platform}


def network_post(platform: str, network_id: str) -> dict[str, Any]:
    """One entry of a record's ``postIds``: a network that published the post."""
    return {
        "platform": platform,
        "status": "success",
        "id": network_id,
        "postUrl": post_url(platform, network_id),
    }


def scheduled_payload(post_id: str, record: Mapping[str, Any]) -> dict[str, Any]:
    """The scheduled-action webhook's payload for a post whose ``record`` just became final."""
    return {
        "action": "scheduled",
        "status": record.get("status"),
        "id": post_id,
        "code": 200 if record.get("status") == "success" else 400,
        "errors": copy.deepcopy(record.get("errors") or []),
        "postIds": copy.deepcopy(record.get("postIds") or []),
        "refId": record.get("refId") or "emulator-ref",  # whose post: a User Profile's own refId
        "created": datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
    }


def failed_record(
    platforms: Iterable[str],
    failures: Mapping[str, tuple[int, str]],
    *,
    text: str,
    published: Mapping[str, str] | None = None,
    post_id: str | None = None,
    created: datetime | str | dict[str, Any] | None = None,
    schedule_date: datetime | str | None = None,
    **fields: Any,
) -> dict[str, Any]:
    """
    A post record with status ``error``.

    :param platforms: the networks the post was sent to.
    :param failures: per failed network, its error (code, message).
    :param text: the post's text.
    :param published: per network that published it anyway, its post id there.
    :param post_id: the record's ``id``; left out when absent (the emulator's seeding gives one).
    :param created: ``created`` (a datetime is written in Ayrshare's ISO form; a dict is its object
        form); left out when absent.
    :param schedule_date: ``scheduleDate``, as ``created``; left out when absent.
    :param fields: more fields, or replacements of the ones built here (they win).
    """
    dates = {"created": created, "scheduleDate": schedule_date}
    return {
        **({"id": post_id} if post_id is not None else {}),
        "status": "error",
        "type": "now",
        **{
            name: iso(value) if isinstance(value, datetime) else value
            for name, value in dates.items()
            if value is not None
        },
        "platforms": list(platforms),
        "post": text,
        "errors": [network_error(platform, code, message) for platform, (code, message) in failures.items()],
        "postIds": [network_post(platform, network_id) for platform, network_id in (published or {}).items()],
        **fields,
    }
