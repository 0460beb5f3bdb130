"""The signature check and the payload reading of a scheduled-action delivery, as pure functions.

Deliveries are signed by the emulator's signing (its own reading of Ayrshare's docs), checked by the
provider's: two implementations that must agree.
"""

from __future__ import annotations

import json

import pytest

from ayrshare_emulator.signing import sign, signed_headers
from ayrshare_provider.webhook_delivery import (
    DELIVERY_ID_HEADER,
    SIGNATURE_HEADER,
    SIGNATURE_HEADER_V2,
    TIMESTAMP_HEADER,
    DeliveryRefused,
    parse,
    verify,
)

pytestmark = pytest.mark.any_airflow  # the same on every Airflow: CI runs it once, on 3.3

SECRET = "delivery-secret"
BODY = json.dumps({"action": "scheduled", "status": "error", "id": "P1", "errors": []}).encode()
NOW = 1_800_000_000.0


def test_a_good_delivery_returns_its_signature_the_hex_hmac_of_the_body():
    import hashlib
    import hmac

    signature = verify(SECRET, BODY, signed_headers(SECRET, BODY, NOW))
    assert signature == hmac.new(SECRET.encode(), BODY, hashlib.sha256).hexdigest() == sign(SECRET, BODY)


@pytest.mark.parametrize("encoding", ["hex", "base64"])
def test_a_digest_in_hex_or_base64_is_taken_since_ayrshare_does_not_say_which(encoding):
    headers = signed_headers(SECRET, BODY, NOW, encoding=encoding)
    assert (len(headers[SIGNATURE_HEADER]) == 64) is (encoding == "hex")
    assert verify(SECRET, BODY, headers) == sign(SECRET, BODY)


def test_an_upper_case_hex_digest_is_taken():
    assert verify(SECRET, BODY, {SIGNATURE_HEADER: sign(SECRET, BODY).upper()}) == sign(SECRET, BODY)


@pytest.mark.parametrize(
    "stamp", ["nan", "inf", str(NOW - 7200), str(NOW + 301), "", "yesterday", None], ids=repr
)
def test_the_timestamp_is_no_gate_the_signature_does_not_cover_it(stamp):
    """A redelivery or a dashboard resend can carry the original timestamp, hours old."""
    headers = {
        SIGNATURE_HEADER: sign(SECRET, BODY),
        **({TIMESTAMP_HEADER: stamp} if stamp is not None else {}),
    }
    assert verify(SECRET, BODY, headers) == sign(SECRET, BODY)


@pytest.mark.parametrize("encoding", ["hex", "base64"])
@pytest.mark.parametrize("connection_has", ["previous", "new"])
def test_during_a_secret_rotation_either_signature_header_matching_the_connection_is_enough(
    encoding, connection_has
):
    headers = signed_headers("previous-secret", BODY, encoding=encoding, second_secret="new-secret")
    assert SIGNATURE_HEADER_V2 in headers
    assert verify(f"{connection_has}-secret", BODY, headers) == sign(f"{connection_has}-secret", BODY)
    with pytest.raises(DeliveryRefused):
        verify("a-third-secret", BODY, headers)


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {TIMESTAMP_HEADER: str(NOW)},
        {SIGNATURE_HEADER: "é" * 64},
        {SIGNATURE_HEADER: "0" * 63},
        {SIGNATURE_HEADER: sign(SECRET, BODY) + "0"},
        {SIGNATURE_HEADER: sign("other", BODY)},
        {SIGNATURE_HEADER: sign("other", BODY, "base64")},
        {SIGNATURE_HEADER: sign(SECRET, BODY, "base64")[:-1]},
        {SIGNATURE_HEADER: sign("other", BODY), SIGNATURE_HEADER_V2: "not a digest"},
        {SIGNATURE_HEADER_V2: sign("other", BODY)},
    ],
)
def test_a_signature_that_is_not_this_bodys_digest_is_refused_not_raised(headers):
    with pytest.raises(DeliveryRefused) as refused:
        verify(SECRET, BODY, headers)
    assert refused.value.http_status == 401
    assert SECRET not in refused.value.reason


def test_a_delivery_is_named_by_its_body_hook_id_and_delivery_id():
    payload = {"action": "scheduled", "status": "error", "id": "P1", "hookId": "h-77"}
    body = json.dumps(payload).encode()
    delivery = parse(body, sign(SECRET, body), {DELIVERY_ID_HEADER: "d-1"})
    assert delivery.ids == (f"body:{sign(SECRET, body)}", "hook:h-77", "delivery:d-1")
    assert parse(BODY, "sig").ids == ("body:sig",)  # without them, the signed body alone


def test_parse_keeps_the_record_fields_and_names_the_networks():
    payload = {
        "action": "scheduled",
        "status": "success",
        "id": "P2",
        "postIds": [{"platform": "linkedin", "status": "success", "id": "9"}],
        "errors": [{"platform": "instagram", "code": 136}],
        "refId": "r",
        "created": "2026-11-30T10:00:00Z",
        "unexpected": {"big": "x" * 100},
    }
    delivery = parse(json.dumps(payload).encode(), "sig")
    assert delivery.post_id == "P2" and delivery.status == "success" and delivery.signature == "sig"
    assert delivery.platforms == ["linkedin", "instagram"]
    assert "unexpected" not in delivery.record and delivery.record["refId"] == "r"


@pytest.mark.parametrize(
    ("body", "status"),
    [
        (b"\xff\xfe", 400),
        (b"{", 400),
        (b"[]", 422),
        (b'"text"', 422),
        (json.dumps({"action": "scheduled", "status": "error", "id": ""}).encode(), 422),
        (json.dumps({"action": "scheduled", "status": "error", "id": "x" * 101}).encode(), 422),
        (json.dumps({"action": "scheduled", "status": "pending", "id": "P"}).encode(), 422),
    ],
)
def test_parse_refuses_what_is_not_a_final_status_of_a_post(body, status):
    with pytest.raises(DeliveryRefused) as refused:
        parse(body, "sig")
    assert refused.value.http_status == status


def test_an_empty_or_unreadable_second_header_does_not_spoil_a_good_signature():
    for v2 in ("", "   ", "not a digest"):
        headers = {SIGNATURE_HEADER: sign(SECRET, BODY), SIGNATURE_HEADER_V2: v2}
        assert verify(SECRET, BODY, headers) == sign(SECRET, BODY)
