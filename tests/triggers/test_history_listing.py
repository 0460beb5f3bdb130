"""The shared listing behind batched waits: typed updates, and a connection that cannot work fails every wait clearly."""

from __future__ import annotations

import asyncio
import time

import pytest

from ayrshare_emulator.server import Emulator
from ayrshare_provider.exceptions import AyrshareConfigError
from ayrshare_provider.hooks.ayrshare import AyrshareHook
from ayrshare_provider.triggers.history_listing import HistoryListing, history_listings
from ayrshare_provider.triggers.post_status import PostStatusTrigger
from tests.helpers import API_KEY, connection_json, failed_post, seed_posts
from tests.triggerer import first_events, shared_streams_available


def test_a_listing_comes_once_per_cache_time_and_ticks_between(monkeypatch):
    with Emulator(API_KEY, history_cache=0) as emulator:
        monkeypatch.setenv("AIRFLOW_CONN_AYRSHARE_DEFAULT", connection_json(emulator.url))
        [post_id] = seed_posts(emulator, failed_post())

        async def first(count: int) -> list[HistoryListing]:
            hook = AyrshareHook(history_max_age=0.25)
            stream = history_listings(hook, poll_interval=0.1)
            try:
                return [await anext(stream) for _ in range(count)]
            finally:
                await stream.aclose()
                await hook.aclose()

        started = time.time()
        updates = asyncio.run(first(4))
        listings = emulator.state.counters()["requests"]["GET /api/history"]
    assert [update.fetched for update in updates] == [True, False, False, True] and listings == 2
    assert updates[0].records[post_id]["status"] == "error" and updates[1].records == {}
    # Each listing vouches for what it shows only as of its cache time before it was read.
    assert started - 0.25 - 0.05 <= updates[0].fresh_as_of <= started


def waits(count: int) -> list[PostStatusTrigger]:
    return [
        PostStatusTrigger(
            f"p{index}", "ayrshare_default", end_time=time.time() + 5, poll_interval=0.05, strategy="batched"
        )
        for index in range(count)
    ]


@pytest.mark.skipif(not shared_streams_available(), reason="shared trigger streams came with Airflow 3.3")
def test_a_connection_that_cannot_work_fails_every_batched_wait_with_its_reason(monkeypatch, fake):
    monkeypatch.setenv("AIRFLOW_CONN_AYRSHARE_DEFAULT", connection_json(fake.url, history_max_age="a minute"))
    with pytest.raises(AyrshareConfigError, match="history_max_age is 'a minute', which is not a number"):
        first_events(waits(3))
    assert fake.calls == {}


def test_where_waits_are_not_batched_the_same_connection_ends_each_wait_with_an_error_event(
    monkeypatch, fake
):
    """Airflow before 3.3 (and dag.test()) runs run(): each wait reads its post and ends with the error."""
    from ayrshare_provider.operators.task_mixin import run_here

    monkeypatch.setenv("AIRFLOW_CONN_AYRSHARE_DEFAULT", connection_json(fake.url, history_max_age="a minute"))
    event = run_here(waits(1)[0])
    assert event["status"] == "error" and "history_max_age is 'a minute'" in event["message"]
