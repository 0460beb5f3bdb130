"""A wait for a retried post settles from the status Ayrshare pushed, without reading Ayrshare (Airflow 3.3).

The triggerer serves the asset state store to a trigger through the Task SDK's supervisor
channel; a unit test has no triggerer process, so :class:`ServedStore` answers those requests
from a dict, as the triggerer answers them from the database. The full-stack test runs the
real receiver, store and triggerer.
"""

from __future__ import annotations

import time
from typing import Any

import pytest
import requests

from ayrshare_provider.assets import failed_posts_asset_name, pushed_key, pushed_value
from ayrshare_provider.operators.task_mixin import run_here
from ayrshare_provider.triggers.events import WaitOutcome
from ayrshare_provider.triggers.post_status import PostStatusTrigger
from ayrshare_provider.version_compat import triggers_read_asset_state
from tests.helpers import connection_json, failed_post, seed_posts

pytestmark = pytest.mark.skipif(
    not triggers_read_asset_state(), reason="triggers read pushed statuses on Airflow 3.3+"
)

ASSET = failed_posts_asset_name()


class ServedStore:
    """What the triggerer answers to a trigger's asset state store requests, from a dict; counts them."""

    def __init__(self) -> None:
        self.values: dict[tuple[str, str], Any] = {}
        self.reads = 0
        self.broken = False

    def asend(self, message: Any) -> Any:
        from airflow.sdk.execution_time.comms import (
            AssetStateStoreResult,
            ErrorResponse,
            GetAssetStateStoreByName,
        )

        async def answer() -> Any:
            assert isinstance(message, GetAssetStateStoreByName)
            self.reads += 1
            if self.broken:
                return ErrorResponse(error="API_SERVER_ERROR", detail={"message": "no such asset"})
            key = (message.name, message.key)
            if key not in self.values:
                return ErrorResponse(error="ASSET_STORE_NOT_FOUND")
            return AssetStateStoreResult(value=self.values[key])

        return answer()


@pytest.fixture
def served(monkeypatch) -> ServedStore:
    from airflow.sdk.execution_time import task_runner

    store = ServedStore()
    monkeypatch.setattr(task_runner, "SUPERVISOR_COMMS", store, raising=False)
    return store


@pytest.fixture
def retried(emulator, monkeypatch):
    """A post retried on the emulator (settling in 0.2 s), the connection with a webhook secret and a short grace."""
    monkeypatch.setenv(
        "AIRFLOW_CONN_AYRSHARE_DEFAULT",
        connection_json(emulator.url, webhook_secret="s", webhook_grace="1.5"),
    )
    [post_id] = seed_posts(emulator, failed_post("linkedin"))
    requests.put(
        f"{emulator.url}/api/post/retry",
        json={"id": post_id},
        headers={"Authorization": f"Bearer {emulator.state.settings.api_key}"},
        timeout=10,
    ).raise_for_status()
    requests.post(f"{emulator.url}/_emulator/reset-counters", timeout=10)
    return emulator, post_id


def wait(post_id: str, **kwargs: Any) -> PostStatusTrigger:
    return PostStatusTrigger(
        post_id=post_id,
        ayrshare_conn_id="ayrshare_default",
        end_time=time.time() + 20,
        poll_interval=0.2,
        strategy="pushed",
        **kwargs,
    )


def reads(emulator) -> int:
    counters = requests.get(f"{emulator.url}/_emulator/counters", timeout=10).json()["requests"]
    return sum(counters.values())


def push(served: ServedStore, post_id: str, status: str, received_at: float) -> None:
    record = {"id": post_id, "status": status, "errors": [], "postIds": []}
    if status == "success":
        record["postIds"] = [
            {"platform": "linkedin", "status": "success", "id": "9", "postUrl": "https://l/9"}
        ]
    else:
        record["errors"] = [{"platform": "linkedin", "code": 136, "message": "timeout"}]
    served.values[(ASSET, pushed_key(post_id))] = pushed_value(
        record, received_at, ["sig"], reported=status == "error"
    )


@pytest.mark.parametrize(
    ("status", "outcome", "post_url"),
    [("success", WaitOutcome.SUCCESS, "https://l/9"), ("error", WaitOutcome.FAILED, None)],
)
def test_a_pushed_final_status_settles_the_wait_without_a_call_to_ayrshare(
    retried, served, status, outcome, post_url
):
    emulator, post_id = retried
    trigger = wait(post_id)
    push(served, post_id, status, received_at=time.time() + 0.1)

    event = run_here(trigger)

    assert event["status"] == outcome.value
    assert event["summary"]["status"] == status and event["summary"]["post_url"] == post_url
    assert reads(emulator) == 0
    assert served.reads >= 1


def test_a_push_from_before_the_retry_is_old_news_and_the_wait_reads_after_the_grace(retried, served):
    emulator, post_id = retried
    push(served, post_id, "error", received_at=time.time() - 60)  # the failure that was retried
    started = time.monotonic()

    event = run_here(wait(post_id))

    assert event["status"] == WaitOutcome.SUCCESS.value  # what Ayrshare says when read
    assert time.monotonic() - started >= 1.4  # read only once the 1.5 s grace was over
    assert reads(emulator) >= 1


def test_a_lost_delivery_costs_the_grace_then_reads(retried, served):
    emulator, post_id = retried
    started = time.monotonic()

    event = run_here(wait(post_id))

    assert event["status"] == WaitOutcome.SUCCESS.value
    assert time.monotonic() - started >= 1.4  # the 1.5 s grace
    assert served.reads >= 3 and reads(emulator) == 1


def test_a_store_that_cannot_be_read_is_as_if_nothing_was_pushed(retried, served, capsys):
    emulator, post_id = retried
    served.broken = True
    started = time.monotonic()

    event = run_here(wait(post_id))

    assert event["status"] == WaitOutcome.SUCCESS.value
    assert (
        time.monotonic() - started >= 1.4 and served.reads >= 3
    )  # tried each interval, read after the grace
    logged = capsys.readouterr()
    assert (logged.out + logged.err).count("pushed statuses cannot be read") == 1  # once, not each interval


def test_a_push_after_the_retry_was_sent_counts_even_before_the_wait_began(retried, served):
    emulator, post_id = retried
    sent = time.time()
    push(served, post_id, "success", received_at=sent + 0.05)  # a slow worker had not deferred yet
    time.sleep(0.1)

    event = run_here(wait(post_id, retried_at=sent))

    assert event["status"] == WaitOutcome.SUCCESS.value
    assert reads(emulator) == 0
