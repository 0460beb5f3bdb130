"""FailedPostsTrigger against the emulator: new failures fire once, old ones never, a restart fires nothing again."""

from __future__ import annotations

import asyncio
import contextlib
import json
from typing import Any

import pytest

from ayrshare_emulator.scenarios import REJECTED, TRANSIENT, add_failed
from ayrshare_provider.exceptions import AyrshareAuthError
from ayrshare_provider.triggers.failed_posts import SEEN_KEY, FailedPostsTrigger
from tests.helpers import API_KEY, PROFILE_KEY, SECRETS, X_KEY, X_SECRET, connection_json

INTERVAL = 0.2  # seconds; Ayrshare's 60 s, time-scaled


class StateStore:
    """Airflow 3.3's asset state store as a watcher's trigger sees it (``aget``/``aset``), kept in a dict.

    The real one answers through the triggerer's supervisor; the full-stack test uses it.
    """

    def __init__(self) -> None:
        self.values: dict[str, Any] = {}

    async def aget(self, key: str, default: Any = None) -> Any:
        return self.values.get(key, default)

    async def aset(self, key: str, value: Any) -> None:
        self.values[key] = json.loads(json.dumps(value))  # stored as JSON, as Airflow stores it


@pytest.fixture
def watched(emulator, monkeypatch):
    """The emulator with two posts that failed before the watcher, no history cache, and the connection."""
    emulator.state.settings.history_cache = 0
    old = [
        add_failed(
            emulator.state, PROFILE_KEY, ["linkedin"], {"linkedin": TRANSIENT}, text=f"old {n}", age_days=1
        ).id
        for n in range(2)
    ]
    monkeypatch.setenv(
        "AIRFLOW_CONN_AYRSHARE_DEFAULT",
        connection_json(
            emulator.url, profile_key=PROFILE_KEY, x_twitter_api_key=X_KEY, x_twitter_api_secret=X_SECRET
        ),
    )
    return emulator, old


def new_failure(emulator, text: str) -> str:
    return add_failed(
        emulator.state, PROFILE_KEY, ["facebook"], {"facebook": REJECTED}, text=text, age_days=0.01
    ).id


def trigger(store: StateStore | None, poll_interval: float | None = INTERVAL) -> FailedPostsTrigger:
    made = FailedPostsTrigger(poll_interval=poll_interval, hook_params={"backoff": 0.05, "max_backoff": 0.2})
    made.asset_state_store = store
    return made


class Running:
    """A trigger's ``run()`` consumed in the background, as the triggerer does; its events' payloads."""

    def __init__(self, watcher: FailedPostsTrigger) -> None:
        self.payloads: list[dict[str, Any]] = []
        self.task = asyncio.ensure_future(self._collect(watcher))

    async def _collect(self, watcher: FailedPostsTrigger) -> None:
        async for event in watcher.run():
            self.payloads.append(event.payload)

    async def stop(self) -> list[dict[str, Any]]:
        """Cancel it, as a triggerer that stops does; what it yielded (or the error it ended with)."""
        if self.task.done():
            self.task.result()  # a trigger that ended on its own ended with an error: raise it here
        self.task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self.task
        return self.payloads


def fired_ids(payloads: list[dict[str, Any]]) -> list[str]:
    return [post["id"] for payload in payloads for post in payload["posts"]]


def test_new_failures_fire_once_and_old_ones_never(watched):
    emulator, old = watched
    store = StateStore()

    async def scenario() -> tuple[list[dict[str, Any]], list[dict[str, Any]], str]:
        running = Running(trigger(store))
        await asyncio.sleep(INTERVAL * 3)  # the first look and two more: only old failures
        first = list(running.payloads)
        fresh = new_failure(emulator, "fails after the watcher started")
        await asyncio.sleep(INTERVAL * 5)  # several looks: the new failure once
        return first, await running.stop(), fresh

    first, payloads, fresh = asyncio.run(scenario())
    assert first == []
    assert payloads == [{"posts": [{"id": fresh, "platforms": ["facebook"]}]}]
    assert set(store.values[SEEN_KEY]) == {*old, fresh}
    assert not any(secret in json.dumps(payloads) for secret in SECRETS)


class BusyStateStore(StateStore):
    """A state store whose database is busy: its first ``busy`` calls, and every write from ``writes_fail_after`` on."""

    def __init__(self, busy: int, writes_fail_after: int | None = None) -> None:
        super().__init__()
        self.busy, self.calls, self.writes, self.writes_fail_after = busy, 0, 0, writes_fail_after

    def _call(self) -> None:
        self.calls += 1
        if self.calls <= self.busy:
            raise RuntimeError("(sqlite3.OperationalError) database is locked")

    async def aget(self, key: str, default: Any = None) -> Any:
        self._call()
        return await super().aget(key, default)

    async def aset(self, key: str, value: Any) -> None:
        self._call()
        self.writes += 1
        if self.writes_fail_after is not None and self.writes > self.writes_fail_after:
            raise RuntimeError("(sqlite3.OperationalError) database is locked")
        await super().aset(key, value)


def test_a_busy_metadata_database_is_the_watchers_wait_never_its_end(watched, monkeypatch):
    """The store's calls fail while SQLite is busy, then its writes fail for good: each new failure still fires once."""
    from ayrshare_provider.triggers import metadata_calls

    monkeypatch.setattr(metadata_calls, "FIRST_PAUSE", 0.01)
    emulator, old = watched
    store = BusyStateStore(busy=3, writes_fail_after=1)

    async def scenario() -> tuple[list[dict[str, Any]], list[str]]:
        running = Running(trigger(store))
        while SEEN_KEY not in store.values:  # the first look, stored after the busy spell
            await asyncio.sleep(INTERVAL / 4)
        fresh = [new_failure(emulator, "fails once the store refuses writes")]
        await asyncio.sleep(INTERVAL * 3)
        fresh.append(new_failure(emulator, "fails later"))
        await asyncio.sleep(INTERVAL * 3)
        return await running.stop(), fresh  # stop() raises if the watcher ended

    payloads, fresh = asyncio.run(scenario())
    assert sorted(fired_ids(payloads)) == sorted(
        fresh
    )  # each once: in memory, the store kept only the first look
    assert set(store.values[SEEN_KEY]) == set(old)


def test_a_restarted_trigger_with_the_stored_watermark_fires_nothing_again(watched):
    emulator, old = watched
    store = StateStore()
    store.values[SEEN_KEY] = []  # a watcher that looked before anything failed

    async def across_restarts() -> list[list[dict[str, Any]]]:
        seen: list[list[dict[str, Any]]] = []
        kwargs = trigger(store).serialize()[1]
        for downtime_failures in (0, 0, 1):
            fresh = [
                new_failure(emulator, "failed while the triggerer was down") for _ in range(downtime_failures)
            ]
            # The triggerer restarts: a new trigger from the serialized kwargs, the same state store.
            rebuilt = FailedPostsTrigger(**kwargs)
            rebuilt.asset_state_store = store
            running = Running(rebuilt)
            await asyncio.sleep(INTERVAL * 3)
            seen.append([*await running.stop(), *({"fresh": post_id} for post_id in fresh)])
        return seen

    first, second, third = asyncio.run(across_restarts())
    assert sorted(fired_ids(first)) == sorted(old)  # failed after the last look before the restart
    assert second == []  # nothing fires again
    (event, marker) = third
    assert fired_ids([event]) == [marker["fresh"]]  # only what failed while it was down


def test_without_a_state_store_a_restart_starts_with_a_fresh_first_look(watched, monkeypatch):
    emulator, _ = watched
    # The interval the example DAG uses: the connection's history_max_age.
    monkeypatch.setenv(
        "AIRFLOW_CONN_AYRSHARE_DEFAULT",
        connection_json(emulator.url, profile_key=PROFILE_KEY, history_max_age=str(INTERVAL)),
    )

    async def restart() -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        running = Running(trigger(None, poll_interval=None))
        await asyncio.sleep(INTERVAL * 3)
        first = await running.stop()
        new_failure(emulator, "failed while the triggerer was down")
        running = Running(trigger(None, poll_interval=None))
        await asyncio.sleep(INTERVAL * 3)
        return first, await running.stop()

    assert asyncio.run(restart()) == ([], [])  # Airflow 3.0-3.2: left to the scheduled recovery


@pytest.mark.parametrize(
    "fault",
    [
        {"kind": "unavailable"},
        {"kind": "error_html", "status": 502},
        {"kind": "rate_limit"},
    ],
)
def test_5xx_and_429_fire_nothing_and_are_waited_out(watched, fault):
    emulator, old = watched
    store = StateStore()
    store.values[SEEN_KEY] = []

    async def scenario() -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        emulator.faults.add({"endpoint": "GET /api/history", "sequence": [fault["kind"]] * 1000, **fault})
        running = Running(trigger(store))
        await asyncio.sleep(INTERVAL * 4)
        during = list(running.payloads)
        emulator.faults.clear()
        await asyncio.sleep(INTERVAL * 6)
        return during, await running.stop()

    during, payloads = asyncio.run(scenario())
    assert during == []
    assert emulator.faults.injected  # the faults were met
    assert sorted(fired_ids(payloads)) == sorted(old)  # once the listing answers, once each


def test_a_refused_key_ends_the_watcher_with_a_typed_error(watched, monkeypatch):
    emulator, _ = watched
    monkeypatch.setenv(
        "AIRFLOW_CONN_AYRSHARE_DEFAULT", connection_json(emulator.url).replace(API_KEY, "wrong-key-000")
    )

    async def first_event() -> Any:
        return await anext(trigger(StateStore()).run())

    with pytest.raises(AyrshareAuthError):
        asyncio.run(first_event())


# -- with webhooks: the watcher is the safety net ------------------------------------------------


def test_a_failure_the_webhook_reported_first_is_not_reported_again_but_one_it_lost_is(watched):
    from ayrshare_provider.assets import pushed_key

    emulator, old = watched
    store = StateStore()
    store.values[SEEN_KEY] = list(old)

    async def scenario() -> list[dict[str, Any]]:
        running = Running(trigger(store))
        pushed = new_failure(emulator, "its webhook arrived")
        store.values[pushed_key(pushed)] = {"record": {"id": pushed, "status": "error"}, "received_at": 1.0}
        lost = new_failure(emulator, "its webhook was lost")
        await asyncio.sleep(INTERVAL * 4)
        return [await running.stop(), pushed, lost]

    payloads, pushed, lost = asyncio.run(scenario())
    assert fired_ids(payloads) == [lost]
    assert {pushed, lost} <= set(store.values[SEEN_KEY])  # neither is looked at again


def test_with_a_webhook_secret_the_watcher_polls_as_a_safety_net(watched, monkeypatch):
    from ayrshare_provider.hooks.ayrshare import AyrshareHook
    from ayrshare_provider.triggers.failed_posts import SAFETY_NET_POLL

    emulator, _ = watched
    monkeypatch.setenv("AIRFLOW_CONN_AYRSHARE_DEFAULT", connection_json(emulator.url, webhook_secret="s"))
    hook = AyrshareHook()

    async def intervals() -> tuple[float, float, float]:
        pushes = await hook.apushes_expected()
        return (
            await trigger(None, poll_interval=None)._interval(hook, pushes),
            await trigger(None, poll_interval=None)._interval(hook, False),
            await trigger(None, poll_interval=30)._interval(hook, pushes),
        )

    assert asyncio.run(intervals()) == (SAFETY_NET_POLL, 60.0, 30.0)
