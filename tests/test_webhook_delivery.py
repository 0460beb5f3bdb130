"""The signature check and the payload reading of a scheduled-action delivery, as pure functions."""

from __future__ import annotations

import json

import pytest

from ayrshare_provider.webhook_delivery import (
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    DeliveryRefused,
    parse,
    sign,
    signed_headers,
    verify,
)

SECRET = "delivery-secret"
BODY = json.dumps({"action": "scheduled", "status": "error", "id": "P1", "errors": []}).encode()
NOW = 1_800_000_000.0


def test_a_good_delivery_returns_its_signature_the_hex_hmac_of_the_body():
    import hashlib
    import hmac

    signature = verify(SECRET, BODY, signed_headers(SECRET, BODY, NOW), now=NOW)
    assert signature == hmac.new(SECRET.encode(), BODY, hashlib.sha256).hexdigest() == sign(SECRET, BODY)


def test_an_upper_case_digest_and_a_timestamp_just_in_the_window_are_taken():
    headers = {TIMESTAMP_HEADER: str(NOW - 300), SIGNATURE_HEADER: sign(SECRET, BODY).upper()}
    assert verify(SECRET, BODY, headers, now=NOW) == sign(SECRET, BODY)


@pytest.mark.parametrize(
    "stamp", ["nan", "inf", "-inf", str(NOW - 301), str(NOW + 301), "", "1e309", "yesterday"]
)
def test_a_timestamp_that_is_not_a_fresh_number_is_refused(stamp):
    headers = {TIMESTAMP_HEADER: stamp, SIGNATURE_HEADER: sign(SECRET, BODY)}
    with pytest.raises(DeliveryRefused) as refused:
        verify(SECRET, BODY, headers, now=NOW)
    assert refused.value.http_status == 401


@pytest.mark.parametrize("signature", ["é" * 64, "0" * 63, sign(SECRET, BODY) + "0", sign("other", BODY)])
def test_a_signature_that_is_not_this_bodys_digest_is_refused_not_raised(signature):
    with pytest.raises(DeliveryRefused) as refused:
        verify(SECRET, BODY, {TIMESTAMP_HEADER: str(NOW), SIGNATURE_HEADER: signature}, now=NOW)
    assert refused.value.http_status == 401
    assert SECRET not in refused.value.reason


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
