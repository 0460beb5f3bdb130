"""What a scheduled-action webhook delivery is: its signatures, its identity, its payload.

Ayrshare signs each delivery with the webhook secret: ``X-Authorization-Content-SHA256`` is the
HMAC-SHA256 of the raw body keyed with the secret. Its docs do not say how the digest is
encoded, so a hex digest and a base64 one are both read. For a day after a secret is rotated a
delivery is signed with both secrets, the second signature in ``X-Authorization-Content-SHA256-V2``:
a delivery is taken when any signature header it carries matches the connection's secret (each
compared in constant time). The signed string is the body alone, so ``X-Authorization-Timestamp``
authenticates nothing, and a redelivery or a dashboard resend may carry the original one: it is
logged, never a reason to refuse. A delivery is known again by its ``hookId``, its
``X-Ayrshare-Delivery-Id`` or its signed body, whichever it carries.

Pure Python, for the receiver in Airflow's API server.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import math
import re
from dataclasses import dataclass
from typing import Any

TIMESTAMP_HEADER = "X-Authorization-Timestamp"
SIGNATURE_HEADER = "X-Authorization-Content-SHA256"
#: The second signature, during the day after a secret rotation.
SIGNATURE_HEADER_V2 = "X-Authorization-Content-SHA256-V2"
SIGNATURE_HEADERS = (SIGNATURE_HEADER, SIGNATURE_HEADER_V2)
#: What a newer reading of Ayrshare's docs says a delivery carries to deduplicate on.
DELIVERY_ID_HEADER = "X-Ayrshare-Delivery-Id"
#: Largest body accepted; a scheduled-action payload is a few kilobytes.
MAX_BODY = 64 * 1024
SCHEDULED_ACTION = "scheduled"
_HEX_DIGEST = re.compile(r"[0-9a-fA-F]{64}")
_BASE64_DIGEST = re.compile(r"[A-Za-z0-9+/]{43}=")
_DELIVERY_ID = re.compile(r"[\w.:\-]{1,200}")
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
    :param signature: the hex HMAC of its body, which names the body among the deliveries taken.
    :param ids: every name the delivery is known by: its signed body, and its ``hookId`` and
        ``X-Ayrshare-Delivery-Id`` where it carries them. Taken before if any was taken before.
    """

    post_id: str
    status: str
    record: dict[str, Any]
    signature: str
    ids: tuple[str, ...] = ()

    @property
    def platforms(self) -> list[str]:
        """The networks the delivery names, published or failed."""
        seen: dict[str, None] = {}
        for key in ("postIds", "errors"):
            for item in self.record.get(key) or []:
                if isinstance(item, dict) and isinstance(item.get("platform"), str):
                    seen[item["platform"]] = None
        return list(seen)


def digest(secret: str, body: bytes) -> bytes:
    """The HMAC-SHA256 of ``body`` keyed with ``secret``: what every signature header encodes."""
    return hmac.new(secret.encode(), body, hashlib.sha256).digest()


def check_headers(headers: Any) -> list[bytes]:
    """
    The digests the delivery's signature headers carry, once at least one is there and each reads as
    a SHA-256 digest in hex or base64: cheap checks, made before the secret is looked up.

    :param headers: the request's headers (a case-insensitive mapping).
    :raises DeliveryRefused: 401 when no signature header is there, or none is a digest.
    """
    present = [value.strip() for name in SIGNATURE_HEADERS if (value := headers.get(name))]
    if not present:
        raise DeliveryRefused(401, "the delivery is not signed (no signature header)")
    digests = []
    for value in present:  # one unreadable header (an empty -V2, say) does not spoil a good one
        if _HEX_DIGEST.fullmatch(value):
            digests.append(bytes.fromhex(value))
        elif _BASE64_DIGEST.fullmatch(value):
            digests.append(base64.b64decode(value))
    if not digests:
        raise DeliveryRefused(401, "no signature header is a SHA-256 digest in hex or base64")
    return digests


def sent_at(headers: Any) -> float | None:
    """The delivery's timestamp, for the log (never a gate: the signature does not cover it); None if unreadable."""
    try:
        stamp = float(headers.get(TIMESTAMP_HEADER) or "")
    except ValueError:
        return None
    return stamp if math.isfinite(stamp) else None


def verify(secret: str, body: bytes, headers: Any) -> str:
    """
    Check the delivery's signature headers (:func:`check_headers`) against the secret; return the
    body's signature (the hex digest) when any of them matches.

    :param secret: the webhook secret of the connection the delivery is for.
    :param body: the raw body, as received.
    :param headers: the request's headers (a case-insensitive mapping).
    :raises DeliveryRefused: 401 for bad headers, and when no signature matches this secret and body.
    """
    expected = digest(secret, body)
    matches = [hmac.compare_digest(expected, given) for given in check_headers(headers)]  # each one compared
    if not any(matches):
        raise DeliveryRefused(401, "the delivery's signature does not match the webhook secret")
    return expected.hex()


def delivery_ids(payload: dict[str, Any], headers: Any, signature: str) -> tuple[str, ...]:
    """Every name of a delivery: its signed body, and the ``hookId`` and delivery id it carries."""
    names = [f"body:{signature}"]
    hook_id = payload.get("hookId")
    if isinstance(hook_id, (str, int)) and _DELIVERY_ID.fullmatch(str(hook_id)):
        names.append(f"hook:{hook_id}")
    delivery_id = (headers.get(DELIVERY_ID_HEADER) or "").strip() if headers is not None else ""
    if _DELIVERY_ID.fullmatch(delivery_id):
        names.append(f"delivery:{delivery_id}")
    return tuple(names)


def parse(body: bytes, signature: str, headers: Any = None) -> ScheduledDelivery:
    """
    The verified body as a :class:`ScheduledDelivery`.

    :param body: the raw body.
    :param signature: its signature (:func:`verify`).
    :param headers: the request's headers, for the delivery id it may carry.

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
    return ScheduledDelivery(
        post_id=post_id,
        status=status,
        record=record,
        signature=signature,
        ids=delivery_ids(payload, headers, signature),
    )
