"""Batched waits: one history listing per interval for every wait of a profile (Airflow 3.3 shared streams).

Triggers run as the triggerer runs them (``tests.triggerer``) against the emulator, whose
history answers are cached as Ayrshare's are. What the listing cannot settle is read post by post.
"""

from __future__ import annotations

import json
import time

import pytest

from ayrshare_emulator.server import Emulator
from ayrshare_provider.hooks.ayrshare import AyrshareHook
from ayrshare_provider.operators.task_mixin import run_here
from ayrshare_provider.triggers.post_status import PostStatusTrigger
from tests.helpers import API_KEY, SECRETS, connection_json, failed_post, seed_posts
from tests.triggerer import first_events, shared_streams_available

needs_shared_streams = pytest.mark.skipif(
    not shared_streams_available(), reason="shared trigger streams came with Airflow 3.3"
)

CACHE = 0.4  # the emulator's history cache, time-scaled: Ayrshare's is 60 s
HOOK = {"backoff": 0.01, "max_backoff": 0.05, "max_attempts": 2, "history_max_age": CACHE}
READS, LISTINGS = "GET /api/post/{id}", "GET /api/history"


@pytest.fixture
def service(monkeypatch):
    """The emulator with a time-scaled history cache, as ``ayrshare_default``."""
    with Emulator(API_KEY, retry_delay=0.3, history_cache=CACHE) as emulator:
        monkeypatch.setenv("AIRFLOW_CONN_AYRSHARE_DEFAULT", connection_json(emulator.url))
        yield emulator


def seed(emulator: Emulator, count: int, profile_key: str = "", **fields) -> list[str]:
    """``count`` failed posts of the profile."""
    return seed_posts(emulator, *(failed_post(**fields) for _ in range(count)), profile_key=profile_key)


def retry_all(post_ids: list[str], profile_key: str | None = None) -> None:
    hook = AyrshareHook(profile_key=profile_key, **HOOK)
    for post_id in post_ids:
        hook.retry_post(post_id)


def batched(post_id: str, timeout: float = 10.0, **kwargs) -> PostStatusTrigger:
    return PostStatusTrigger(
        post_id=post_id,
        ayrshare_conn_id="ayrshare_default",
        end_time=time.time() + timeout,
        poll_interval=0.05,
        hook_params=HOOK,
        strategy="batched",
        action="retried",
        **kwargs,
    )


def calls(emulator: Emulator) -> dict[str, int]:
    return emulator.state.counters()["requests"]


@needs_shared_streams
def test_many_waits_share_one_listing_per_interval_and_read_no_post_alone(service):
    post_ids = seed(service, 30)
    retry_all(post_ids)
    assert service.state.counters()["retries_applied"] == dict.fromkeys(post_ids, 1)
    service.state.reset_counters()
    events = first_events([batched(post_id) for post_id in post_ids])
    assert [event["status"] for event in events] == ["success"] * 30
    assert {event["post_id"] for event in events} == set(post_ids)
    assert all(event["summary"]["published"] and event["summary"]["action"] == "retried" for event in events)
    counted = calls(service)
    assert counted.get(READS, 0) == 0  # the listing settled every post
    assert 1 <= counted[LISTINGS] <= 4  # one listing per cache time, not one read per post and interval
    assert service.state.counters()["retry_puts"] == {}  # waiting never retries
    assert not any(secret in json.dumps(events) for secret in SECRETS)


@needs_shared_streams
def test_a_cached_listing_from_before_the_retry_does_not_end_the_wait_as_failed(service):
    [post_id] = seed(service, 1)
    hook = AyrshareHook(**HOOK)
    assert hook.get_history(last_days=0, limit=1000)[0]["status"] == "error"  # now cached as "error"
    hook.retry_post(post_id)
    [event] = first_events([batched(post_id)])
    assert event["status"] == "success"


@needs_shared_streams
def test_a_post_that_fails_again_ends_failed_once_a_listing_is_fresh_enough_to_say_so(service):
    [post_id] = seed(service, 1, _fails_again={"linkedin": [138, "rejected"]})
    retry_all([post_id])
    started = time.time()
    [event] = first_events([batched(post_id)])
    assert event["status"] == "failed" and event["summary"]["networks"][0]["code"] == 138
    assert time.time() - started >= 0.3  # the retry's own time: no stale "error" was taken for the outcome


@needs_shared_streams
def test_a_failing_listing_falls_back_to_reading_each_post(service):
    post_ids = seed(service, 3)
    retry_all(post_ids)
    service.faults.add({"endpoint": LISTINGS, "kind": "error_html", "probability": 1.0})
    service.state.reset_counters()
    events = first_events([batched(post_id) for post_id in post_ids])
    assert [event["status"] for event in events] == ["success"] * 3
    assert calls(service)[READS] >= 3


@needs_shared_streams
def test_a_post_the_listing_does_not_show_still_ends(service):
    [deleted] = seed(service, 1, status="deleted")  # deleted posts are listed only under status=deleted
    [event] = first_events([batched(deleted)])
    assert event["status"] == "failed" and event["summary"]["status"] == "deleted"
    assert calls(service)[READS] == 1


@needs_shared_streams
def test_waits_of_two_profiles_use_a_listing_each(service):
    first, second = seed(service, 4, "PROFILE-A"), seed(service, 4, "PROFILE-B")
    retry_all(first, "PROFILE-A")
    retry_all(second, "PROFILE-B")
    service.state.reset_counters()
    events = first_events(
        [batched(post_id, profile_key="PROFILE-A") for post_id in first]
        + [batched(post_id, profile_key="PROFILE-B") for post_id in second]
    )
    assert [event["status"] for event in events] == ["success"] * 8
    assert calls(service).get(READS, 0) == 0  # each profile's listing held its own posts
    assert calls(service)[LISTINGS] >= 2


@needs_shared_streams
def test_a_batched_wait_ends_at_its_deadline(service):
    [post_id] = seed(service, 1, status="processing")
    [event] = first_events([batched(post_id, timeout=0.3)])
    assert event["status"] == "timeout"


def test_without_shared_streams_a_batched_trigger_polls_its_post(service):
    [post_id] = seed(service, 1)
    retry_all([post_id])
    event = run_here(batched(post_id))  # run(): what Airflow before 3.3 and dag.test() call
    assert event["status"] == "success" and calls(service)[READS] >= 1


def test_the_group_key_holds_no_profile_key():
    trigger = batched("p1", profile_key="PROFILEKEY-2b8a4e6f-secret")
    assert "PROFILEKEY-2b8a4e6f-secret" not in repr(trigger.shared_stream_key())
    assert (
        batched("p1", profile_key="A").shared_stream_key()
        != batched("p1", profile_key="B").shared_stream_key()
    )
    assert PostStatusTrigger("p1", "ayrshare_default", end_time=0).shared_stream_key() is None
