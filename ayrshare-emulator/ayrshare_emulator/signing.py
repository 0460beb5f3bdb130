"""How the emulator signs a webhook delivery, as Ayrshare's docs describe it.

``X-Authorization-Content-SHA256`` carries the HMAC-SHA256 of the raw body keyed with the webhook
secret; the docs do not say how the digest is written, so the emulator writes hex or base64 as its
settings say. During the overlap after a rotation the previous secret's signature goes in
``X-Authorization-Content-SHA256-V2``. The signed string is the body alone: the timestamp header
rides along unsigned.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time

TIMESTAMP_HEADER = "X-Authorization-Timestamp"
SIGNATURE_HEADER = "X-Authorization-Content-SHA256"
SIGNATURE_HEADER_V2 = "X-Authorization-Content-SHA256-V2"
DELIVERY_ID_HEADER = "X-Ayrshare-Delivery-Id"


def sign(secret: str, body: bytes, encoding: str = "hex") -> str:
    """
    The signature of ``body``.

    :param encoding: ``hex`` or ``base64``.
    """
    raw = hmac.new(secret.encode(), body, hashlib.sha256).digest()
    return base64.b64encode(raw).decode() if encoding == "base64" else raw.hex()


def signed_headers(
    secret: str,
    body: bytes,
    sent_at: float | None = None,
    *,
    encoding: str = "hex",
    second_secret: str | None = None,
) -> dict[str, str]:
    """
    The signature headers of a delivery of ``body``.

    :param sent_at: the timestamp (now by default).
    :param encoding: how the digests are written, ``hex`` or ``base64``.
    :param second_secret: during a rotation, the other secret, whose signature goes in the V2 header.
    """
    stamp = int(time.time() if sent_at is None else sent_at)
    headers = {TIMESTAMP_HEADER: str(stamp), SIGNATURE_HEADER: sign(secret, body, encoding)}
    if second_secret is not None:
        headers[SIGNATURE_HEADER_V2] = sign(second_secret, body, encoding)
    return headers
