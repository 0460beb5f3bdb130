"""FailedPostsTrigger: an asset watcher's trigger that fires for posts that failed since it last looked."""

from __future__ import annotations

import asyncio
from functools import partial
from typing import TYPE_CHECKING, Any

from airflow.providers.common.compat.triggers import BaseEventTrigger
from airflow.triggers.base import TriggerEvent

from ayrshare_provider.assets import WATCHER_SEEN_KEY, pushed_key
from ayrshare_provider.exceptions import AyrshareError, is_transient
from ayrshare_provider.triggers.metadata_calls import patiently
from ayrshare_provider.triggers.trigger_hook import hook_from_kwargs

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from ayrshare_provider.hooks.ayrshare import AyrshareHook

#: The asset state store key under which :class:`FailedPostsTrigger` keeps the ids it has reported.
SEEN_KEY = WATCHER_SEEN_KEY
#: The watcher's poll interval when the connection has a webhook secret: the safety net for a lost
#: delivery, not the way failures are found (1,440 listings a day become 144).
SAFETY_NET_POLL = 600.0
_SEEN_CAP = 5000  # ids kept, newest last: far more than one listing (at most 1,000) can show


class FailedPostsTrigger(BaseEventTrigger):
    """
    Fires for posts that failed since it last looked: the trigger of an ``AssetWatcher``.

    Every ``poll_interval`` it lists ``GET /api/history?status=error`` for one connection and
    Profile Key and yields one event with the failed posts it has not reported before (ids and
    networks, never a credential). It is edge-triggered: a post that stays failed, or fails again
    after its retry, is reported once, so a watcher on it does not start endless runs. At its very
    first look it reports nothing: posts that failed before the watcher existed are the
    scheduled recovery's. The ids reported so far are kept in Airflow 3.3's asset state store,
    which survives a triggerer restart; on Airflow 3.0 to 3.2 they live in memory, so a restarted
    triggerer starts with a fresh first look (posts that failed while no triggerer ran are left
    to the scheduled recovery). An id is stored after its event is handed over: a triggerer that
    dies in between reports it again, which is harmless: the run's plan reads each post again, and
    a post retried meanwhile is no longer planned for a retry (and a second retry meets code 329).
    Transient errors and 429 are logged and waited out, never fired.

    :param ayrshare_conn_id: the Ayrshare connection; read in the triggerer.
    :param poll_interval: seconds between two listings; by default the connection's
        ``history_max_age`` (60 s: Ayrshare caches the answer that long, so looking more often
        reads the same answer and spends the profile's rate limit for nothing).
    :param profile_key: a Profile Key instead of the connection's.
    :param last_days: how far back the listing looks (days).
    :param limit: at most this many failed posts per listing (1 to 1000).
    :param hook_params: keyword arguments for the hook (plain values: timeouts, attempts, backoff).
    """

    def __init__(
        self,
        ayrshare_conn_id: str = "ayrshare_default",
        poll_interval: float | None = None,
        profile_key: str | None = None,
        last_days: int = 7,
        limit: int = 100,
        hook_params: dict[str, Any] | None = None,
    ) -> None:
        super().__init__()
        self.ayrshare_conn_id = ayrshare_conn_id
        self.poll_interval = None if poll_interval is None else float(poll_interval)
        self.profile_key = profile_key
        self.last_days = int(last_days)
        self.limit = int(limit)
        self.hook_params = hook_params or {}
        if profile_key:
            from airflow.providers.common.compat.sdk import mask_secret

            mask_secret(profile_key)

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            f"{type(self).__module__}.{type(self).__qualname__}",
            {
                "ayrshare_conn_id": self.ayrshare_conn_id,
                "poll_interval": self.poll_interval,
                "profile_key": self.profile_key,
                "last_days": self.last_days,
                "limit": self.limit,
                "hook_params": self.hook_params,
            },
        )

    def __repr__(self) -> str:
        return f"<FailedPostsTrigger conn_id={self.ayrshare_conn_id!r} last_days={self.last_days} limit={self.limit}>"

    async def run(self) -> AsyncIterator[TriggerEvent]:
        hook = hook_from_kwargs(self.serialize()[1])
        seen = await self._load_seen()
        try:
            pushes = await hook.apushes_expected()
            while True:
                try:
                    records = await hook.aget_history(
                        status="error", last_days=self.last_days, limit=self.limit
                    )
                except AyrshareError as err:
                    if not is_transient(err):
                        raise
                    self.log.warning("Listing failed posts failed for now; looking again later: %s", err)
                else:
                    failed = [record for record in records if isinstance(record.get("id"), str)]
                    if seen is None:
                        seen = [record["id"] for record in failed]  # the first look: all of it is old
                        await self._store_seen(seen)
                    known = set(seen)
                    if new := [record for record in failed if record["id"] not in known]:
                        if unpushed := [
                            record for record in new if not await self._pushed_failure(record["id"])
                        ]:
                            yield TriggerEvent({"posts": [_failure(record) for record in unpushed]})
                        seen = (seen + [record["id"] for record in new])[-_SEEN_CAP:]
                        await self._store_seen(seen)
                await asyncio.sleep(await self._interval(hook, pushes))
        finally:
            await hook.aclose()

    async def _interval(self, hook: AyrshareHook, pushes: bool) -> float:
        """The poll interval: as given; else, with webhooks, the safety net's; else the history cache time."""
        if self.poll_interval is not None:
            interval = self.poll_interval
        elif pushes:
            interval = SAFETY_NET_POLL
        else:
            interval = (await hook.asettings()).history_max_age
        return max(1.0, interval)  # a history_max_age of 0 (an emulator without a cache) must not spin

    # The asset state store answers through the metadata database, which a burst can keep busy:
    # its errors are this watcher's, waited out or said, never the triggerer's.

    async def _pushed_failure(self, post_id: str) -> bool:
        """The webhook receiver reported this failure already (Airflow 3.3: the asset's state store)."""
        store = getattr(self, "asset_state_store", None)
        if store is None:
            return False
        try:
            pushed = await patiently(
                partial(store.aget, pushed_key(post_id)), what="Reading pushed failures", log=self.log
            )
        except Exception as err:  # noqa: BLE001 - reported once more rather than lost
            self.log.warning(
                "Post %s is reported: whether a webhook reported it is unknown (%s)", post_id, err
            )
            return False
        record = pushed.get("record") if isinstance(pushed, dict) else None
        return isinstance(record, dict) and record.get("status") == "error"

    async def _load_seen(self) -> list[str] | None:
        store = getattr(self, "asset_state_store", None)  # Airflow 3.3+, set by the triggerer
        if store is None:
            return None
        # Until the ids it reported are read, the watcher cannot tell new failures from old: it waits,
        # then starts as at its first look (what failed meanwhile is the scheduled recovery's).
        try:
            stored = await patiently(
                partial(store.aget, SEEN_KEY), what="Reading the reported post ids", log=self.log
            )
        except Exception as err:  # noqa: BLE001 - the watcher goes on; the triggerer never ends on it
            self.log.warning("The reported post ids cannot be read (%s): this look counts as the first", err)
            return None
        return [str(post_id) for post_id in stored] if isinstance(stored, list) else None

    async def _store_seen(self, seen: list[str]) -> None:
        store = getattr(self, "asset_state_store", None)
        if store is None:
            return
        try:
            await patiently(
                partial(store.aset, SEEN_KEY, seen), what="Storing the reported post ids", log=self.log
            )
        except Exception as err:  # noqa: BLE001 - kept in memory, stored with the next new failure
            self.log.warning(
                "The reported post ids are not stored for now (%s); this watcher keeps them", err
            )


def _failure(record: dict[str, Any]) -> dict[str, Any]:
    """What an event says about one failed post: its id and networks (the task reads the rest)."""
    platforms = record.get("platforms")
    return {
        "id": record["id"],
        "platforms": [str(p) for p in platforms] if isinstance(platforms, list) else [],
    }
