"""How Ayrshare's answers become results or typed errors."""

from __future__ import annotations

import json

import pytest

from ayrshare_provider.exceptions import (
    AyrshareAlreadyRetriedError,
    AyrshareAuthError,
    AyrshareError,
    AyrshareNotFoundError,
    AyrshareRateLimitError,
    AyrshareServerError,
)
from ayrshare_provider.hooks.answers import parse_response

pytestmark = pytest.mark.any_airflow  # the same on every Airflow: CI runs it once, on 3.3

CALL = "PUT /api/post/retry"


def test_a_failed_post_record_is_a_result_not_an_error():
    record = {"id": "p1", "status": "error", "errors": [{"code": 136, "platform": "twitter"}]}
    assert parse_response(200, json.dumps(record), call="GET /api/post/{id}") == record


def test_already_retried_is_its_own_error_with_the_documented_code_and_advice():
    body = {
        "action": "post",
        "status": "error",
        "code": 329,
        "message": "This post was already retried and cannot be retried again.",
    }
    with pytest.raises(AyrshareAlreadyRetriedError) as caught:
        parse_response(400, json.dumps(body), call=CALL, post_id="p1")
    err = caught.value
    assert (err.http_status, err.code, err.post_id, err.call) == (400, 329, "p1", CALL)
    assert "already retried" in str(err) and "'p1'" in str(err) and "PUT /api/post/retry" in str(err)


def test_the_errors_list_envelope_keeps_every_network_error():
    body = {
        "status": "error",
        "message": "Post failed",
        "errors": [
            {
                "action": "post",
                "status": "error",
                "code": 161,
                "message": "Facebook auth expired",
                "platform": "facebook",
            },
            {
                "action": "post",
                "status": "error",
                "code": 110,
                "message": "Status is a duplicate.",
                "platform": "twitter",
            },
        ],
    }
    with pytest.raises(AyrshareError) as caught:
        parse_response(400, json.dumps(body), call=CALL, post_id="p2")
    err = caught.value
    assert [e["platform"] for e in err.errors] == ["facebook", "twitter"]
    assert "relink Facebook" in str(err) and "twitter: code 110" in str(err)


def test_an_error_envelope_with_http_200_is_still_an_error():
    with pytest.raises(AyrshareError, match="Something went wrong"):
        parse_response(
            200, json.dumps({"status": "error", "code": 101, "message": "Something went wrong"}), call=CALL
        )


@pytest.mark.parametrize(
    ("status", "error_class"),
    [
        (401, AyrshareAuthError),
        (403, AyrshareAuthError),
        (404, AyrshareNotFoundError),
        (429, AyrshareRateLimitError),
        (500, AyrshareServerError),
        (503, AyrshareServerError),
    ],
)
def test_http_status_picks_the_error_class(status, error_class):
    with pytest.raises(error_class) as caught:
        parse_response(status, json.dumps({"status": "error", "code": 1, "message": "nope"}), call=CALL)
    assert caught.value.http_status == status


def test_an_html_gateway_page_becomes_a_server_error_naming_the_page():
    page = "<html><head><title>502 Bad Gateway</title></head><body>nginx</body></html>"
    with pytest.raises(AyrshareServerError, match="HTML page instead of JSON.*502 Bad Gateway"):
        parse_response(502, page, call=CALL, post_id="p1")
    with pytest.raises(AyrshareServerError, match="HTML page"):
        parse_response(200, page, call=CALL)


@pytest.mark.parametrize("text", ["", "[1, 2]", '"text"', "null"])
def test_a_body_that_is_not_an_object_is_a_clear_error(text):
    with pytest.raises(AyrshareServerError, match="expected a JSON object"):
        parse_response(200, text, call=CALL)


def test_rate_limit_error_carries_the_wait():
    with pytest.raises(AyrshareRateLimitError) as caught:
        parse_response(
            429,
            json.dumps({"status": "error", "code": 429, "message": "slow down"}),
            call=CALL,
            retry_after=2.5,
        )
    assert caught.value.retry_after == 2.5
