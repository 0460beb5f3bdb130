"""The emulator keeps every rule of ../shared/ayrshare-api.md that the provider relies on.

Plain ``requests`` calls, as any client would make them: no provider code in between.
"""

from __future__ import annotations

import threading
import time

import pytest
import requests

from ayrshare_emulator.server import Emulator
from ayrshare_emulator.state import StoredPost
from tests.helpers import API_KEY, X_KEY, X_SECRET, failed_post, seed_posts

pytestmark = pytest.mark.any_airflow  # the same on every Airflow: CI runs it once, on 3.3

AUTH = {"Authorization": f"Bearer {API_KEY}"}
X_HEADERS = {"X-Twitter-OAuth1-Api-Key": X_KEY, "X-Twitter-OAuth1-Api-Secret": X_SECRET}
RECORD_FIELDS = {
    "id",
    "status",
    "type",
    "created",
    "scheduleDate",
    "platforms",
    "post",
    "errors",
    "postIds",
    "mediaUrls",
    "refId",
    "profileTitle",
}


def api(
    emulator: Emulator, method: str, path: str, headers: dict | None = None, **kwargs
) -> requests.Response:
    return requests.request(
        method, emulator.url + path, headers={**AUTH, **(headers or {})}, timeout=10, **kwargs
    )


def wait_final(emulator: Emulator, post_id: str, headers: dict | None = None) -> dict:
    for _ in range(100):
        record = api(emulator, "GET", f"/api/post/{post_id}", headers).json()
        if record["status"] not in ("pending", "processing"):
            return record
        time.sleep(0.05)
    raise AssertionError(f"post {post_id} never settled")


# -- authentication and profiles -------------------------------------------------------------


@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer wrong"}, {"Authorization": API_KEY}])
def test_a_missing_or_wrong_api_key_is_401(emulator, headers):
    answer = requests.get(f"{emulator.url}/api/user", headers=headers, timeout=10)
    assert answer.status_code == 401
    assert answer.json()["status"] == "error" and answer.json()["code"] == 102


def test_posts_are_scoped_to_their_profile_key(emulator):
    [mine] = seed_posts(emulator, failed_post(), profile_key="PROFILE-A")
    assert api(emulator, "GET", f"/api/post/{mine}", {"Profile-Key": "PROFILE-A"}).status_code == 200
    assert api(emulator, "GET", f"/api/post/{mine}", {"Profile-Key": "PROFILE-B"}).status_code == 404
    assert (
        api(emulator, "GET", f"/api/post/{mine}").status_code == 404
    )  # the Primary Profile is another profile
    assert (
        api(emulator, "PUT", "/api/post/retry", {"Profile-Key": "PROFILE-B"}, json={"id": mine}).status_code
        == 404
    )


# -- posts and the retry ---------------------------------------------------------------------


def test_get_post_has_the_documented_shape_and_404_for_unknown_ids():
    with Emulator(API_KEY, scenario="demo") as emulator:
        post_id = next(iter(emulator.state.posts))
        record = api(emulator, "GET", f"/api/post/{post_id}").json()
        assert set(record) >= RECORD_FIELDS
        assert api(emulator, "GET", f"/api/history/{post_id}").json() == record
        missing = api(emulator, "GET", "/api/post/doesnotexist")
        assert missing.status_code == 404 and missing.json()["status"] == "error"


def test_a_retry_goes_pending_then_processing_then_final_with_post_urls(emulator):
    [post_id] = seed_posts(emulator, failed_post())
    answer = api(emulator, "PUT", "/api/post/retry", json={"id": post_id, "source": "pypi"})
    assert answer.status_code == 200 and answer.json() == {"status": "pending", "id": post_id}
    seen = [api(emulator, "GET", f"/api/post/{post_id}").json()["status"]]
    time.sleep(0.12)
    seen.append(api(emulator, "GET", f"/api/post/{post_id}").json()["status"])
    final = wait_final(emulator, post_id)
    assert seen == ["pending", "processing"]
    assert final["status"] == "success" and final["errors"] == []
    assert final["postIds"][0]["postUrl"].startswith("https://linkedin.")


def test_a_retry_can_fail_again_with_the_networks_errors(emulator):
    [post_id] = seed_posts(
        emulator, {**failed_post("instagram"), "_fails_again": {"instagram": [138, "rejected"]}}
    )
    api(emulator, "PUT", "/api/post/retry", json={"id": post_id})
    final = wait_final(emulator, post_id)
    assert final["status"] == "error"
    assert final["errors"] == [
        {"action": "post", "status": "error", "code": 138, "message": "rejected", "platform": "instagram"}
    ]


def test_a_second_retry_is_400_with_code_329(emulator):
    [post_id] = seed_posts(emulator, failed_post())
    api(emulator, "PUT", "/api/post/retry", json={"id": post_id})
    wait_final(emulator, post_id)
    again = api(emulator, "PUT", "/api/post/retry", json={"id": post_id})
    assert again.status_code == 400
    assert again.json() == {
        "action": "post",
        "status": "error",
        "code": 329,
        "message": "This post was already retried and cannot be retried again.",
    }
    counters = requests.get(f"{emulator.url}/_emulator/counters", timeout=10).json()
    assert counters["retry_puts"][post_id] == 2 and counters["retries_applied"][post_id] == 1


@pytest.mark.parametrize(
    "status", ["success", "pending", "processing", "paused", "awaiting approval", "deleted"]
)
def test_only_error_posts_can_be_retried(emulator, status):
    [post_id] = seed_posts(emulator, {**failed_post(), "status": status})
    answer = api(emulator, "PUT", "/api/post/retry", json={"id": post_id})
    assert answer.status_code == 400 and answer.json()["status"] == "error"
    assert api(emulator, "GET", f"/api/post/{post_id}").json()["status"] == status


def test_x_posts_need_both_x_headers(emulator):
    [post_id] = seed_posts(emulator, failed_post("twitter"))
    refused = api(
        emulator, "PUT", "/api/post/retry", {"X-Twitter-OAuth1-Api-Key": X_KEY}, json={"id": post_id}
    )
    assert refused.status_code == 400 and refused.json()["code"] == 272
    assert api(emulator, "PUT", "/api/post/retry", X_HEADERS, json={"id": post_id}).status_code == 200


def test_create_post_fails_the_networks_the_request_names_and_accepts_unknown_fields(emulator):
    answer = api(
        emulator,
        "POST",
        "/api/post",
        X_HEADERS,
        json={
            "post": "hello",
            "platforms": ["twitter", "facebook"],
            "source": "pypi",
            "_emulator_fail": ["facebook"],
        },
    )
    body = answer.json()
    assert answer.status_code == 400 and body["status"] == "error"
    assert [e["platform"] for e in body["errors"]] == ["facebook"]
    assert [p["platform"] for p in body["postIds"]] == ["twitter"]
    assert api(emulator, "GET", f"/api/post/{body['id']}").json()["status"] == "error"


def counters_of(emulator: Emulator) -> dict:
    return requests.get(f"{emulator.url}/_emulator/counters", timeout=10).json()


def test_the_same_idempotency_key_twice_creates_one_post_and_answers_it_again(emulator):
    sent = {
        "post": "hello",
        "platforms": ["facebook"],
        "_emulator_fail": ["facebook"],
        "idempotencyKey": "k1",
    }
    first = api(emulator, "POST", "/api/post", json=sent)
    again = api(emulator, "POST", "/api/post", json=sent)
    assert first.status_code == again.status_code == 400  # a network failed: the first answer's status
    assert again.json() == first.json() and "idempotencyKey" not in again.json()  # as Ayrshare's records
    assert len(emulator.state.posts) == 1
    counters = counters_of(emulator)
    assert counters["posts_created"] == {"k1": 1} and counters["idempotent_replays"] == {"k1": 1}
    requests.post(f"{emulator.url}/_emulator/reset-counters", timeout=10)
    assert counters_of(emulator)["posts_created"] == counters_of(emulator)["idempotent_replays"] == {}
    assert api(emulator, "POST", "/api/post", json=sent).json()["id"] == first.json()["id"]  # still known


def test_different_idempotency_keys_or_none_create_a_post_each(emulator):
    emulator.state.settings.duplicate_check = "off"  # the same text four times: not what this pins
    ids = {
        api(emulator, "POST", "/api/post", json={"post": "hi", "platforms": ["linkedin"], **key}).json()["id"]
        for key in ({"idempotencyKey": "a"}, {"idempotencyKey": "b"}, {}, {})
    }
    assert len(ids) == 4
    counters = counters_of(emulator)
    assert counters["posts_created"] == {"a": 1, "b": 1, "": 2} and counters["idempotent_replays"] == {}


def test_an_idempotency_key_counts_within_its_profile(emulator):
    sent = {"post": "hi", "platforms": ["linkedin"], "idempotencyKey": "shared"}
    mine = api(emulator, "POST", "/api/post", {"Profile-Key": "PROFILE-A"}, json=sent)
    theirs = api(emulator, "POST", "/api/post", {"Profile-Key": "PROFILE-B"}, json=sent)
    assert mine.status_code == theirs.status_code == 200 and mine.json()["id"] != theirs.json()["id"]
    assert counters_of(emulator)["posts_created"] == {"shared": 2}


def test_a_post_repeated_with_its_key_after_a_lost_answer_is_not_made_twice(emulator):
    sent = {"post": "hello", "platforms": ["linkedin"], "idempotencyKey": "lost-1"}
    emulator.faults.add({"endpoint": "POST /api/post", "sequence": ["apply_then_drop"]})
    with pytest.raises(requests.exceptions.RequestException):
        api(emulator, "POST", "/api/post", json=sent)
    [made] = emulator.state.posts
    again = api(emulator, "POST", "/api/post", json=sent)
    assert again.status_code == 200 and again.json()["id"] == made and again.json()["status"] == "success"
    assert list(emulator.state.posts) == [made]
    counters = counters_of(emulator)
    assert counters["posts_created"]["lost-1"] == 1 and counters["idempotent_replays"]["lost-1"] == 1


def test_a_created_post_keeps_its_media_and_network_options(emulator):
    options = {"reels": True, "shareReelsFeed": False}
    answer = api(
        emulator,
        "POST",
        "/api/post",
        json={
            "post": "reel",
            "platforms": ["instagram"],
            "mediaUrls": ["https://example.com/reel.mp4"],
            "instagramOptions": options,
            "isVideo": True,
        },
    )
    record = api(emulator, "GET", f"/api/post/{answer.json()['id']}").json()
    assert record["mediaUrls"] == ["https://example.com/reel.mp4"] and record["instagramOptions"] == options
    assert record["isVideo"] is True and "idempotencyKey" not in record


def test_an_idempotency_key_is_forgotten_after_its_retention_and_then_makes_a_new_post(emulator):
    """Ayrshare does not say how long it keeps a key: the emulator forgets it after a day, or on request."""
    emulator.state.settings.duplicate_check = "off"  # the same text made again: not what this pins
    sent = {"post": "hello", "platforms": ["linkedin"], "idempotencyKey": "kept-a-while"}
    first = api(emulator, "POST", "/api/post", json=sent).json()["id"]
    assert api(emulator, "POST", "/api/post", json=sent).json()["id"] == first
    assert requests.post(f"{emulator.url}/_emulator/forget-idempotency-keys", timeout=10).status_code == 200
    second = api(emulator, "POST", "/api/post", json=sent).json()["id"]
    assert second != first and len(emulator.state.posts) == 2
    emulator.state.settings.idempotency_key_retention = 0.2  # seconds, time-scaled from a day
    assert api(emulator, "POST", "/api/post", json=sent).json()["id"] == second
    time.sleep(0.3)
    assert api(emulator, "POST", "/api/post", json=sent).json()["id"] not in (first, second)


@pytest.mark.parametrize("in_records", [False, True], ids=["documented", "0.2-emulator"])
def test_whether_a_record_carries_its_idempotency_key_is_a_reading_the_emulator_plays(emulator, in_records):
    requests.post(
        f"{emulator.url}/_emulator/settings", json={"idempotency_key_in_records": in_records}, timeout=10
    )
    sent = {"post": "hello", "platforms": ["linkedin"], "idempotencyKey": "k-read"}
    made = api(emulator, "POST", "/api/post", json=sent).json()
    record = api(emulator, "GET", f"/api/post/{made['id']}").json()
    assert ("idempotencyKey" in record) is in_records and ("idempotencyKey" in made) is in_records


@pytest.mark.parametrize("key", [42, "", None, ["k"]])
def test_an_idempotency_key_that_is_not_a_non_empty_string_is_400(emulator, key):
    answer = api(
        emulator, "POST", "/api/post", json={"post": "hi", "platforms": ["linkedin"], "idempotencyKey": key}
    )
    assert answer.status_code == 400 and answer.json()["code"] == 101 and answer.json()["status"] == "error"
    assert emulator.state.posts == {}


# -- history ----------------------------------------------------------------------------------


def test_history_filters_and_orders_newest_first():
    with Emulator(API_KEY, scenario="demo") as emulator:
        everything = api(emulator, "GET", "/api/history", params={"lastDays": 0, "limit": 1000}).json()[
            "history"
        ]
        assert len(everything) == 16
        created = [
            record["created"] if isinstance(record["created"], str) else record["created"]["utc"]
            for record in everything
        ]
        assert created == sorted(created, reverse=True)
        errors = api(
            emulator, "GET", "/api/history", params={"status": "error", "limit": 100, "source": "pypi"}
        ).json()["history"]
        assert len(errors) == 15 and {record["status"] for record in errors} == {"error"}
        assert (
            len(
                api(emulator, "GET", "/api/history", params={"status": "error", "limit": 5}).json()["history"]
            )
            == 5
        )
        recent = api(
            emulator, "GET", "/api/history", params={"status": "error", "lastDays": 2, "limit": 100}
        ).json()["history"]
        assert len(recent) == 4  # the demo's posts of now, 6 hours, 1 and 1.5 days ago
        linked = api(
            emulator,
            "GET",
            "/api/history",
            params=[("status", "error"), ("platforms", "tiktok"), ("platforms", "pinterest")],
        ).json()
        assert {p for record in linked["history"] for p in record["platforms"]} == {"tiktok", "pinterest"}
        assert api(emulator, "GET", "/api/history", params={"type": "scheduled"}).json()["history"] == []
        window = api(
            emulator,
            "GET",
            "/api/history",
            params={"startDate": "2000-01-01T00:00:00Z", "endDate": "2000-01-02T00:00:00Z"},
        )
        assert window.json()["history"] == []
        assert api(emulator, "GET", "/api/history", params={"limit": 1001}).status_code == 400
        assert api(emulator, "GET", "/api/history", params={"status": "failed"}).status_code == 400


def test_history_with_a_limit_over_25_is_cached_for_the_cache_time_and_25_or_less_is_not():
    with Emulator(API_KEY, retry_delay=0.05, history_cache=0.6) as emulator:
        [post_id] = seed_posts(emulator, failed_post())

        def status_in(limit: int) -> str:
            listing = api(emulator, "GET", "/api/history", params={"limit": limit}).json()["history"]
            return next(record["status"] for record in listing if record["id"] == post_id)

        assert status_in(26) == status_in(25) == "error"
        assert api(emulator, "PUT", "/api/post/retry", json={"id": post_id}).status_code == 200
        wait_final(emulator, post_id)
        assert status_in(25) == "success"  # not cached
        assert status_in(26) == "error"  # the answer of before the retry, from the cache
        time.sleep(0.65)
        assert status_in(26) == "success"  # the cache expired


def test_a_retry_before_instagrams_wait_hint_is_over_meets_the_limit_again():
    with Emulator(API_KEY, retry_delay=0.05) as emulator:
        throttled = failed_post("instagram")
        throttled["errors"][0].update(code=435, details=3600, message="Instagram rate limit")
        over = {**throttled, "created": "2020-01-01T00:00:00Z", "scheduleDate": "2020-01-01T00:00:00Z"}
        too_soon, later = seed_posts(emulator, throttled, over)
        for post_id in (too_soon, later):
            assert api(emulator, "PUT", "/api/post/retry", json={"id": post_id}).status_code == 200
        assert wait_final(emulator, too_soon)["errors"][0]["code"] == 435  # the one retry, spent for nothing
        assert wait_final(emulator, later)["status"] == "success"


def test_deleted_posts_are_listed_only_under_status_deleted():
    with Emulator(API_KEY) as emulator:
        deleted, kept = seed_posts(emulator, failed_post(status="deleted"), failed_post())
        listed = {
            record["id"]
            for record in api(emulator, "GET", "/api/history", params={"lastDays": 0}).json()["history"]
        }
        assert listed == {kept}
        only_deleted = api(emulator, "GET", "/api/history", params={"status": "deleted"}).json()["history"]
        assert [record["id"] for record in only_deleted] == [deleted]


def test_last_days_counts_by_publish_date_for_scheduled_posts():
    with Emulator(API_KEY) as emulator:
        old = "2020-01-01T00:00:00Z"
        soon = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + 3600))
        scheduled, now_post = seed_posts(
            emulator,
            failed_post(type="scheduled", created=old, scheduleDate=soon),
            failed_post(created=old, scheduleDate=soon),
        )
        listed = {
            record["id"]
            for record in api(emulator, "GET", "/api/history", params={"lastDays": 2}).json()["history"]
        }
        assert scheduled in listed and now_post not in listed


def test_retries_settle_after_a_seeded_spread_of_delays():
    with Emulator(API_KEY, retry_delay=0.1, retry_delay_max=0.6) as emulator:
        ids = seed_posts(emulator, *(failed_post() for _ in range(20)))
        for post_id in ids:
            api(emulator, "PUT", "/api/post/retry", json={"id": post_id})
        delays = [emulator.state.posts[post_id].settle_after for post_id in ids]
        assert all(0.1 <= delay <= 0.6 for delay in delays) and max(delays) - min(delays) > 0.2
        time.sleep(0.35)
        statuses = {api(emulator, "GET", f"/api/post/{post_id}").json()["status"] for post_id in ids}
        assert "success" in statuses and statuses & {"pending", "processing"}  # some settled, some not yet


def test_demo_has_dates_in_both_documented_forms():
    with Emulator(API_KEY, scenario="demo") as emulator:
        history = api(emulator, "GET", "/api/history", params={"lastDays": 0, "limit": 100}).json()["history"]
        forms = {type(record["created"]).__name__ for record in history}
        assert forms == {"str", "dict"}
        assert {"_seconds", "_nanoseconds", "utc"} <= set(
            next(r["created"] for r in history if isinstance(r["created"], dict))
        )


def test_user_proves_the_key(emulator):
    answer = api(emulator, "GET", "/api/user")
    assert answer.status_code == 200 and {"activeSocialAccounts", "title", "refId"} <= set(answer.json())


# -- rate limit -------------------------------------------------------------------------------


def test_fixed_window_rate_limit_per_profile_with_headers():
    with Emulator(API_KEY, rate_limit=3, rate_window=0.5) as emulator:
        answers = [api(emulator, "GET", "/api/user") for _ in range(4)]
        assert [a.status_code for a in answers] == [200, 200, 200, 429]
        assert answers[0].headers["x-ratelimit-max"] == "3" and answers[2].headers["x-ratelimit-count"] == "3"
        assert answers[3].json()["code"] == 429
        assert (
            api(emulator, "GET", "/api/user", {"Profile-Key": "OTHER"}).status_code == 200
        )  # its own window
        time.sleep(0.55)
        assert api(emulator, "GET", "/api/user").status_code == 200  # a new window
        # Each window's requests, the refused one included, for a benchmark to see how full each was.
        windows = emulator.state.counters()["windows_by_profile"]
        assert windows == {"primary": [4, 1], emulator.state.profile_name("OTHER"): [1]}


# -- faults and counters ----------------------------------------------------------------------


def test_faults_by_exact_sequence(emulator):
    emulator.faults.add(
        {"endpoint": "GET /api/user", "sequence": ["error_html", "unavailable", "rate_limit", "ok"]}
    )
    first, second, third, fourth = (api(emulator, "GET", "/api/user") for _ in range(4))
    assert (
        first.status_code == 502 and "text/html" in first.headers["content-type"] and "<title>" in first.text
    )
    assert second.status_code == 503 and second.json()["status"] == "error"
    assert third.status_code == 429
    assert fourth.status_code == 200


def test_a_dropped_connection_answers_nothing(emulator):
    emulator.faults.add({"endpoint": "GET /api/user", "sequence": ["drop"]})
    with pytest.raises(requests.exceptions.RequestException):
        api(emulator, "GET", "/api/user")
    assert api(emulator, "GET", "/api/user").status_code == 200


def test_apply_then_drop_retries_the_post_but_loses_the_answer(emulator):
    [post_id] = seed_posts(emulator, failed_post())
    emulator.faults.add({"endpoint": "PUT /api/post/retry", "sequence": ["apply_then_drop"]})
    with pytest.raises(requests.exceptions.RequestException):
        api(emulator, "PUT", "/api/post/retry", json={"id": post_id})
    assert api(emulator, "GET", f"/api/post/{post_id}").json()["status"] in ("pending", "processing")
    assert emulator.state.retries_applied[post_id] == 1


def test_latency_delays_the_answer(emulator):
    emulator.faults.add({"endpoint": "GET /api/user", "sequence": ["latency"], "seconds": 0.3})
    started = time.monotonic()
    assert api(emulator, "GET", "/api/user").status_code == 200
    assert time.monotonic() - started >= 0.3


def test_a_late_answer_is_counted_at_once_and_arrives_late_with_its_old_headers(emulator):
    emulator.state.settings.rate_limit, emulator.state.settings.rate_window = 10, 60.0
    emulator.faults.add({"endpoint": "GET /api/user", "sequence": ["late_answer"], "seconds": 0.5})
    late: dict = {}
    worker = threading.Thread(target=lambda: late.update(answer=api(emulator, "GET", "/api/user")))
    started = time.monotonic()
    worker.start()
    time.sleep(0.2)
    second = api(emulator, "GET", "/api/user")  # sent after the late one, answered before it
    worker.join()
    assert time.monotonic() - started >= 0.5 and second.headers["x-ratelimit-count"] == "2"
    assert late["answer"].status_code == 200 and late["answer"].headers["x-ratelimit-count"] == "1"


def test_probabilistic_faults_are_reproducible_from_the_seed():
    def statuses(seed: int) -> list[int]:
        with Emulator(API_KEY, seed=seed) as emulator:
            emulator.faults.add({"endpoint": "*", "kind": "unavailable", "probability": 0.3})
            return [api(emulator, "GET", "/api/user").status_code for _ in range(30)]

    assert statuses(7) == statuses(7)
    assert 503 in statuses(7) and 200 in statuses(7)


def test_a_429_burst_lasts_count_calls(emulator):
    emulator.faults.add({"endpoint": "GET /api/user", "kind": "rate_limit", "probability": 1.0, "count": 3})
    emulator.faults.rules[0].probability = 0.0  # fire once: the burst then runs its course
    emulator.faults.rules[0]._burst_left = 3
    assert [api(emulator, "GET", "/api/user").status_code for _ in range(4)] == [429, 429, 429, 200]


def test_control_api_seeds_any_state_and_counts_calls_and_connections(emulator):
    fault = requests.post(
        f"{emulator.url}/_emulator/faults",
        json=[{"endpoint": "GET /api/user", "sequence": ["unavailable"]}],
        timeout=10,
    )
    assert fault.json() == {"rules": 1}
    assert (
        requests.post(
            f"{emulator.url}/_emulator/faults", json=[{"endpoint": "*", "kind": "boom"}], timeout=10
        ).status_code
        == 400
    )
    [post_id] = seed_posts(emulator, {**failed_post(), "_already_retried": True})
    with requests.Session() as session:
        session.headers.update(AUTH)
        for _ in range(5):
            session.get(f"{emulator.url}/api/user", timeout=10)
        session.get(f"{emulator.url}/api/post/{post_id}", timeout=10)
        assert (
            session.put(f"{emulator.url}/api/post/retry", json={"id": post_id}, timeout=10).json()["code"]
            == 329
        )
    counters = requests.get(f"{emulator.url}/_emulator/counters", timeout=10).json()
    assert counters["requests"] == {"GET /api/user": 5, "GET /api/post/{id}": 1, "PUT /api/post/retry": 1}
    assert counters["retry_puts"] == {post_id: 1} and counters["retries_applied"] == {}
    assert counters["connections_opened"] == 1  # one keep-alive session, one TCP connection
    assert counters["faults_injected"] == {"GET /api/user unavailable": 1}


def test_scenario_loading_through_the_control_api(emulator):
    ids = requests.post(
        f"{emulator.url}/_emulator/scenario", json={"name": "bulk", "count": 20}, timeout=10
    ).json()["ids"]
    assert len(ids) == 20
    assert (
        requests.post(f"{emulator.url}/_emulator/scenario", json={"name": "nope"}, timeout=10).status_code
        == 400
    )


def test_the_command_line_prints_its_url_and_stops_on_sigterm(tmp_path):
    import signal
    import subprocess
    import sys

    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "ayrshare_emulator",
            "--port",
            "0",
            "--api-key",
            API_KEY,
            "--scenario",
            "demo",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        line = process.stdout.readline()
        assert line.startswith("Ayrshare emulator serving http://127.0.0.1:") and "16 posts" in line
        url = line.split()[3]
        # Then the failed posts it serves, one line each, as the API lists them: a first DAG's post ids.
        assert process.stdout.readline().strip() == "15 failed posts (id, networks, why):"
        listed = [process.stdout.readline().split() for _ in range(15)]
        history = requests.get(
            f"{url}/api/history", params={"status": "error", "lastDays": 0}, headers=AUTH, timeout=10
        ).json()["history"]
        assert [words[0] for words in listed] == [post["id"] for post in history]
        assert sum("code" in words for words in listed) == 14  # the post published despite "error" has none
        assert requests.get(f"{url}/api/user", headers=AUTH, timeout=10).status_code == 200
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=10) == 0
    finally:
        process.kill()


def test_stored_posts_keep_their_profile():
    post = StoredPost({"id": "abc", "platforms": ["x"]}, profile="P")
    assert post.id == "abc" and post.targets_x()


@pytest.mark.parametrize(
    ("reading", "first_fails", "refused"),
    [
        ("published", False, True),  # the same text published on the network: refused
        ("published", True, False),  # the first never reached the network: not a duplicate there
        ("any", True, True),  # every post that targeted the network counts, a failed one too
        ("off", False, False),
    ],
)
def test_code_137_refuses_a_repeated_text_on_a_network_within_48_hours(
    emulator, reading, first_fails, refused
):
    requests.post(f"{emulator.url}/_emulator/settings", json={"duplicate_check": reading}, timeout=10)
    first = {
        "post": "Same words",
        "platforms": ["linkedin"],
        **({"_emulator_fail": ["linkedin"]} if first_fails else {}),
    }
    api(emulator, "POST", "/api/post", json=first)
    again = api(emulator, "POST", "/api/post", json={"post": "Same words", "platforms": ["linkedin"]})
    if refused:
        assert again.status_code == 400 and again.json()["code"] == 137 and "id" not in again.json()
        assert again.json()["platform"] == "linkedin" and len(emulator.state.posts) == 1
    else:
        assert again.status_code == 200 and len(emulator.state.posts) == 2
    # Other text, another network, or Pinterest (not checked) always pass.
    assert api(emulator, "POST", "/api/post", json={"post": "Other words", "platforms": ["linkedin"]}).ok
    assert api(emulator, "POST", "/api/post", json={"post": "Same words", "platforms": ["pinterest"]}).ok


def test_code_137_looks_back_48_hours_only(emulator):
    requests.post(f"{emulator.url}/_emulator/settings", json={"duplicate_check": "any"}, timeout=10)
    seed_posts(emulator, failed_post("linkedin", post="Old words", created="2020-01-01T00:00:00Z"))
    assert api(emulator, "POST", "/api/post", json={"post": "Old words", "platforms": ["linkedin"]}).ok
