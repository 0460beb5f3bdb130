"""What a scheduled-action webhook delivery is: its signature, its freshness, its payload.

Ayrshare signs each delivery with the webhook secret: ``X-Authorization-Content-SHA256`` is the
HMAC-SHA256 of the raw body keyed with the secret, as a hex digest, and
``X-Authorization-Timestamp`` is the Unix time of sending. The signed string is the body alone
(Ayrshare's docs say "an HMAC-SHA256 of the payload"), so the timestamp cannot be trusted to be
the sender's: a replayed body is refused by its signature, remembered by the receiver.

Pure Python: the receiver (in Airflow's API server) and the emulator (which signs) both use it.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import time
from dataclasses import dataclass
from typing import Any

TIMESTAMP_HEADER = "X-Authorization-Timestamp"
SIGNATURE_HEADER = "X-Authorization-Content-SHA256"
#: Deliveries stamped further than this from the receiver's clock are refused, either way.
MAX_SKEW = 300.0
#: Largest body accepted; a scheduled-action payload is a few kilobytes.
MAX_BODY = 64 * 1024
SCHEDULED_ACTION = "scheduled"
_HEX_DIGEST = re.compile(r"[0-9a-fA-F]{64}")
FINAL_STATUSES = frozenset({"success", "error"})


class DeliveryRefused(Exception):
    """
    A delivery that must not be acted on.

    :param http_status: what the receiver answers (4xx; 503 when it could not be recorded now).
    :param reason: why, in a few words; never the body, a header's value or the secret.
    """

    def __init__(self, http_status: int, reason: str) -> None:
        super().__init__(reason)
        self.http_status = http_status
        self.reason = reason


@dataclass(frozen=True)
class ScheduledDelivery:
    """
    One verified scheduled-action delivery: a post reached its final status.

    :param post_id: the Ayrshare post.
    :param status: ``success`` or ``error``.
    :param record: the payload as a post record (``id``, ``status``, ``errors``, ``postIds``, ...),
        the fields :mod:`ayrshare_provider.posts` reads.
    :param signature: the delivery's signature, which names it for the replay check.
    """

    post_id: str
    status: str
    record: dict[str, Any]
    signature: str

    @property
    def platforms(self) -> list[str]:
        """The networks the delivery names, published or failed."""
        seen: dict[str, None] = {}
        for key in ("postIds", "errors"):
            for item in self.record.get(key) or []:
                if isinstance(item, dict) and isinstance(item.get("platform"), str):
                    seen[item["platform"]] = None
        return list(seen)


def sign(secret: str, body: bytes) -> str:
    """The signature Ayrshare sends for ``body``: hex HMAC-SHA256 keyed with ``secret``."""
    return hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def signed_headers(secret: str, body: bytes, sent_at: float | None = None) -> dict[str, str]:
    """The two headers of a delivery of ``body`` (the emulator sends them; tests forge them)."""
    stamp = int(time.time() if sent_at is None else sent_at)
    return {TIMESTAMP_HEADER: str(stamp), SIGNATURE_HEADER: sign(secret, body)}


def check_headers(headers: Any, now: float | None = None) -> str:
    """
    The delivery's signature header, once both headers are there, well formed, and the timestamp is
    fresh: cheap checks, made before the secret is looked up.

    :param headers: the request's headers (a case-insensitive mapping).
    :param now: the receiver's clock, ``time.time()`` by default.
    :raises DeliveryRefused: 401 for a missing, stale or unreadable timestamp or signature.
    """
    stamp, signature = headers.get(TIMESTAMP_HEADER), headers.get(SIGNATURE_HEADER)
    if not stamp or not signature:
        raise DeliveryRefused(401, "the delivery is not signed (timestamp or signature header missing)")
    try:
        sent_at = float(stamp)
    except ValueError:
        raise DeliveryRefused(401, "the delivery's timestamp is not a number") from None
    skew = abs((time.time() if now is None else now) - sent_at)
    if not skew <= MAX_SKEW:  # also refuses NaN and infinities
        raise DeliveryRefused(401, f"the delivery's timestamp is {skew:.0f} s off (at most {MAX_SKEW:.0f})")
    if not _HEX_DIGEST.fullmatch(signature.strip()):
        raise DeliveryRefused(401, "the delivery's signature is not a SHA-256 hex digest")
    return signature.strip().lower()


def verify(secret: str, body: bytes, headers: Any, now: float | None = None) -> str:
    """
    Check a delivery's headers (:func:`check_headers`) and its signature; return the signature.

    :param secret: the webhook secret of the connection the delivery is for.
    :param body: the raw body, as received.
    :param headers: the request's headers (a case-insensitive mapping).
    :param now: the receiver's clock, ``time.time()`` by default.
    :raises DeliveryRefused: 401 for bad headers and for a signature made with another secret or body.
    """
    signature = check_headers(headers, now)
    expected = sign(secret, body)
    if not hmac.compare_digest(expected, signature):
        raise DeliveryRefused(401, "the delivery's signature does not match the webhook secret")
    return expected


def parse(body: bytes, signature: str) -> ScheduledDelivery:
    """
    The verified body as a :class:`ScheduledDelivery`.

    :raises DeliveryRefused: 400 for a body that is not JSON; 422 for JSON that is not a
        scheduled-action payload with a post id and a final status.
    """
    try:
        payload = json.loads(body)
    except (UnicodeDecodeError, ValueError):
        raise DeliveryRefused(400, "the body is not JSON") from None
    if not isinstance(payload, dict):
        raise DeliveryRefused(422, f"the body is a JSON {type(payload).__name__}, not an object")
    if payload.get("action") != SCHEDULED_ACTION:
        raise DeliveryRefused(422, "not a scheduled-action delivery")
    post_id, status = payload.get("id"), payload.get("status")
    if not isinstance(post_id, str) or not post_id or len(post_id) > 100:
        raise DeliveryRefused(422, "the delivery names no post id")
    if status not in FINAL_STATUSES:
        raise DeliveryRefused(422, "the delivery's status is neither success nor error")
    record = {
        key: payload[key]
        for key in ("id", "status", "errors", "postIds", "refId", "created", "code", "subAction")
        if key in payload
    }
    return ScheduledDelivery(post_id=post_id, status=status, record=record, signature=signature)
