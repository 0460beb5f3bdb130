"""The emulator's webhooks keep Ayrshare's contract: register, list, unregister; signed pushes of final statuses; retries; faults.

The receiving end is pytest-httpserver on 127.0.0.1, so every delivery is a real HTTP request.
"""

from __future__ import annotations

import json
import time

import pytest
import requests

from ayrshare_provider.webhook_delivery import SIGNATURE_HEADER, SIGNATURE_HEADER_V2, TIMESTAMP_HEADER, verify
from tests.emulator.test_contract import api
from tests.helpers import failed_post, seed_posts

pytestmark = pytest.mark.any_airflow  # the same on every Airflow: CI runs it once, on 3.3

SECRET = "emulator-webhook-secret"


def register(emulator, url: str, secret: str | None = SECRET, profile_key: str | None = None) -> None:
    headers = {"Profile-Key": profile_key} if profile_key else {}
    body = {"action": "scheduled", "url": url, **({"secret": secret} if secret else {})}
    answer = api(emulator, "POST", "/api/hook/webhook", headers, json=body)
    assert answer.status_code == 200, answer.text


def deliveries(httpserver, count: int, timeout: float = 10.0) -> list:
    """The first ``count`` requests the receiving end got, waiting for them."""
    deadline = time.monotonic() + timeout
    while len(httpserver.log) < count and time.monotonic() < deadline:
        time.sleep(0.02)
    return [request for request, _ in httpserver.log]


def webhook_counts(emulator) -> dict:
    return requests.get(f"{emulator.url}/_emulator/counters", timeout=10).json()["webhooks"]


def webhook_counts_once(emulator, name: str, value: int, timeout: float = 5.0) -> dict:
    """
    The webhook counters once ``name`` reaches ``value``: the sender counts a delivery after the
    answer it waited for, which can come after the receiving end logged the request.
    """
    deadline = time.monotonic() + timeout
    while (counts := webhook_counts(emulator)).get(name) != value and time.monotonic() < deadline:
        time.sleep(0.05)
    return counts


def test_register_list_and_unregister_per_profile(emulator):
    register(emulator, "https://airflow.example.com/ayrshare/webhook")
    register(emulator, "https://other.example.com/hook", profile_key="PK1")

    listed = api(emulator, "GET", "/api/hook/webhook").json()
    assert listed == {
        "webhooks": [{"action": "scheduled", "url": "https://airflow.example.com/ayrshare/webhook"}]
    }
    assert SECRET not in json.dumps(listed)  # a secret is never given back
    assert api(emulator, "DELETE", "/api/hook/webhook", json={"action": "scheduled"}).status_code == 200
    assert api(emulator, "GET", "/api/hook/webhook").json() == {"webhooks": []}
    assert api(emulator, "DELETE", "/api/hook/webhook", json={"action": "scheduled"}).status_code == 404
    other = api(emulator, "GET", "/api/hook/webhook", {"Profile-Key": "PK1"}).json()["webhooks"]
    assert [hook["url"] for hook in other] == ["https://other.example.com/hook"]


@pytest.mark.parametrize(
    "body", [{"action": "nope", "url": "https://x.example.com"}, {"action": "scheduled"}]
)
def test_a_registration_without_a_known_action_or_a_url_is_400(emulator, body):
    assert api(emulator, "POST", "/api/hook/webhook", json=body).status_code == 400


def test_a_retried_post_pushes_its_final_status_signed_without_being_read(emulator, httpserver):
    httpserver.expect_request("/hook", method="POST").respond_with_data("ok")
    register(emulator, httpserver.url_for("/hook"))
    [post_id] = seed_posts(emulator, failed_post("linkedin"))
    api(emulator, "PUT", "/api/post/retry", json={"id": post_id})

    [request] = deliveries(httpserver, 1)
    body = request.get_data()
    assert verify(SECRET, body, request.headers)  # raises on a bad signature or timestamp
    assert abs(float(request.headers[TIMESTAMP_HEADER]) - time.time()) < 30
    payload = json.loads(body)
    assert payload["action"] == "scheduled" and payload["id"] == post_id and payload["status"] == "success"
    assert payload["postIds"][0]["platform"] == "linkedin" and payload["errors"] == []
    assert webhook_counts_once(emulator, "delivered", 1)["delivered"] == 1
    counters = requests.get(f"{emulator.url}/_emulator/counters", timeout=10).json()
    assert counters["requests"].get("GET /api/post/{id}", 0) == 0  # pushed, never read


def test_a_scheduled_post_that_fails_while_processing_pushes_error(emulator, httpserver):
    httpserver.expect_request("/hook", method="POST").respond_with_data("ok")
    register(emulator, httpserver.url_for("/hook"))
    [post_id] = seed_posts(emulator, {**failed_post("instagram"), "_processes_in": 0.3})
    assert api(emulator, "GET", f"/api/post/{post_id}").json()["status"] == "pending"

    [request] = deliveries(httpserver, 1)
    payload = json.loads(request.get_data())
    assert payload["id"] == post_id and payload["status"] == "error"
    assert payload["errors"][0]["platform"] == "instagram"
    assert api(emulator, "GET", f"/api/post/{post_id}").json()["status"] == "error"


def test_a_delivery_without_a_2xx_is_tried_twice_more_then_given_up(emulator, httpserver):
    httpserver.expect_request("/hook", method="POST").respond_with_data("busy", status=503)
    requests.post(f"{emulator.url}/_emulator/settings", json={"webhook_retry_delays": [0.2, 0.4]}, timeout=10)
    register(emulator, httpserver.url_for("/hook"))
    [post_id] = seed_posts(emulator, failed_post())
    api(emulator, "PUT", "/api/post/retry", json={"id": post_id})

    sent = deliveries(httpserver, 3)
    time.sleep(0.5)
    assert len(httpserver.log) == 3
    assert len({request.get_data() for request in sent}) == 1  # the same body each time
    counts = webhook_counts_once(emulator, "given_up", 1)
    assert counts["attempts"] == 3 and counts["refused"] == 3 and counts["given_up"] == 1


def test_a_delivery_that_times_out_is_tried_again(emulator, httpserver):
    answers = iter([lambda: time.sleep(0.6), lambda: None])

    def slow_then_fast(_request):
        from werkzeug import Response

        next(answers)()
        return Response("ok")

    httpserver.expect_request("/hook", method="POST").respond_with_handler(slow_then_fast)
    requests.post(
        f"{emulator.url}/_emulator/settings",
        json={"webhook_timeout": 0.3, "webhook_retry_delays": [0.2, 0.2]},
        timeout=10,
    )
    register(emulator, httpserver.url_for("/hook"))
    [post_id] = seed_posts(emulator, failed_post())
    api(emulator, "PUT", "/api/post/retry", json={"id": post_id})

    deliveries(httpserver, 2)
    counts = webhook_counts_once(emulator, "delivered", 1)
    assert counts["unanswered"] == 1 and counts["delivered"] == 1


@pytest.mark.parametrize("kind", ["drop_delivery", "deliver_twice", "deliver_late"])
def test_delivery_faults(emulator, httpserver, kind):
    httpserver.expect_request("/hook", method="POST").respond_with_data("ok")
    rule = {"endpoint": "WEBHOOK scheduled", "sequence": [kind], "seconds": 0.8}
    requests.post(f"{emulator.url}/_emulator/faults", json=[rule], timeout=10).raise_for_status()
    register(emulator, httpserver.url_for("/hook"))
    [post_id] = seed_posts(emulator, failed_post())
    retried_at = time.monotonic()
    api(emulator, "PUT", "/api/post/retry", json={"id": post_id})

    if kind == "drop_delivery":
        time.sleep(1.0)
        assert httpserver.log == []
        assert webhook_counts_once(emulator, "dropped", 1)["dropped"] == 1
    elif kind == "deliver_twice":
        first, second = deliveries(httpserver, 2)
        assert first.get_data() == second.get_data()
        assert first.headers[SIGNATURE_HEADER] == second.headers[SIGNATURE_HEADER]
    else:
        [request] = deliveries(httpserver, 1)
        assert time.monotonic() - retried_at >= 0.8
        assert json.loads(request.get_data())["id"] == post_id


def test_without_a_registered_webhook_nothing_is_pushed_and_posts_settle_when_read(emulator, httpserver):
    [post_id] = seed_posts(emulator, failed_post())
    api(emulator, "PUT", "/api/post/retry", json={"id": post_id})
    time.sleep(0.5)
    assert emulator.state.posts[post_id].record["status"] == "pending"  # nobody looked yet
    assert api(emulator, "GET", f"/api/post/{post_id}").json()["status"] == "success"
    assert webhook_counts(emulator) == {}


@pytest.mark.parametrize("digest", ["hex", "base64"])
def test_the_digest_is_written_as_the_run_reads_the_docs(emulator, httpserver, digest):
    httpserver.expect_request("/hook", method="POST").respond_with_data("ok")
    requests.post(f"{emulator.url}/_emulator/settings", json={"webhook_digest": digest}, timeout=10)
    register(emulator, httpserver.url_for("/hook"))
    [post_id] = seed_posts(emulator, failed_post())
    api(emulator, "PUT", "/api/post/retry", json={"id": post_id})
    [request] = deliveries(httpserver, 1)
    assert len(request.headers[SIGNATURE_HEADER]) == (64 if digest == "hex" else 44)
    assert verify(SECRET, request.get_data(), request.headers)


def test_after_a_rotation_deliveries_carry_both_signatures_for_the_overlap_then_one(emulator, httpserver):
    httpserver.expect_request("/hook", method="POST").respond_with_data("ok")
    register(emulator, httpserver.url_for("/hook"))
    answer = api(emulator, "POST", "/api/hook/webhook/secret", json={"secret": "the-new-secret"})
    assert answer.status_code == 200, answer.text
    first, second = seed_posts(emulator, failed_post(), failed_post())
    api(emulator, "PUT", "/api/post/retry", json={"id": first})
    [during] = deliveries(httpserver, 1)
    assert verify("the-new-secret", during.get_data(), {SIGNATURE_HEADER: during.headers[SIGNATURE_HEADER]})
    assert verify(SECRET, during.get_data(), {SIGNATURE_HEADER: during.headers[SIGNATURE_HEADER_V2]})
    requests.post(f"{emulator.url}/_emulator/settings", json={"webhook_rotation_overlap": 0}, timeout=10)
    api(emulator, "PUT", "/api/post/retry", json={"id": second})
    after = deliveries(httpserver, 2)[1]
    assert SIGNATURE_HEADER_V2 not in after.headers
    assert verify("the-new-secret", after.get_data(), after.headers)


def test_the_newer_reading_names_each_delivery_the_same_on_every_attempt(emulator, httpserver):
    httpserver.expect_request("/hook", method="POST").respond_with_data("busy", status=503)
    requests.post(
        f"{emulator.url}/_emulator/settings",
        json={"webhook_delivery_ids": True, "webhook_retry_delays": [0.1]},
        timeout=10,
    )
    register(emulator, httpserver.url_for("/hook"))
    [post_id] = seed_posts(emulator, failed_post())
    api(emulator, "PUT", "/api/post/retry", json={"id": post_id})
    first, second = deliveries(httpserver, 2)
    hook_id = json.loads(first.get_data())["hookId"]
    assert hook_id == json.loads(second.get_data())["hookId"]
    assert first.headers["X-Ayrshare-Delivery-Id"] == second.headers["X-Ayrshare-Delivery-Id"] == hook_id
    assert [first.headers["X-Ayrshare-Delivery-Attempt"], second.headers["X-Ayrshare-Delivery-Attempt"]] == [
        "1",
        "2",
    ]


def test_a_user_profile_without_its_own_webhook_delivers_to_the_primarys_with_its_own_ref_id(
    emulator, httpserver
):
    from ayrshare_emulator import profiles

    httpserver.expect_request("/primary", method="POST").respond_with_data("ok")
    client = profiles.add_profile(emulator.state, "Client A")
    register(emulator, httpserver.url_for("/primary"))  # the Primary Profile's only
    [post_id] = seed_posts(emulator, failed_post("linkedin", refId=client.ref_id), profile_key=client.key)
    api(emulator, "PUT", "/api/post/retry", {"Profile-Key": client.key}, json={"id": post_id})
    [request] = deliveries(httpserver, 1)
    payload = json.loads(request.get_data())
    assert payload["id"] == post_id and payload["refId"] == client.ref_id != "emulator-ref"
