"""The shared listing behind batched waits: one ``GET /api/history`` per profile and interval, fanned out.

:class:`~ayrshare_provider.triggers.post_status.PostStatusTrigger` with ``batch_wait`` opens this
stream once per group (Airflow 3.3's shared trigger streams) and each wait in the group picks its
post from what it yields. It only fetches and passes on; what a record means stays in
:mod:`ayrshare_provider.posts`.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ayrshare_provider.exceptions import AyrshareError

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Mapping

    from ayrshare_provider.hooks.ayrshare import AyrshareHook

LISTING_LIMIT = 1000  # Ayrshare's largest page

_log = logging.getLogger(__name__)


@dataclass(frozen=True)
class HistoryListing:
    """
    What the stream yields each poll interval.

    :param fetched: a listing was read for this interval; False on the ticks between two listings,
        when only deadlines are due.
    :param records: the listed posts by id (empty on a tick, and when the listing failed).
    :param fresh_as_of: wall-clock moment the listing shows every post at least as of: Ayrshare may
        serve it from a cache up to ``history_max_age`` seconds old.
    :param failure: why the listing failed; each wait then reads its post alone.
    """

    fetched: bool
    records: Mapping[str, dict[str, Any]] = field(default_factory=dict)
    fresh_as_of: float = 0.0
    failure: str | None = None


TICK = HistoryListing(fetched=False)


async def history_listings(hook: AyrshareHook, poll_interval: float) -> AsyncIterator[HistoryListing]:
    """
    A listing, then a tick each interval until the next listing is due; forever.

    Listing more often than Ayrshare's cache time would only read the same cached answer again,
    so listings come every ``max(poll_interval, history_max_age)``. A connection that cannot work
    raises (every wait of the group then fails with that error); a failed listing is yielded as such.

    :param hook: the hook of the group's connection and Profile Key.
    :param poll_interval: seconds between two yields.
    """
    settings = await hook.asettings()
    next_listing = 0.0
    while True:
        if time.monotonic() < next_listing:
            yield TICK
        else:
            yield await _list(hook, settings.history_max_age)
            next_listing = time.monotonic() + max(poll_interval, settings.history_max_age)
        await asyncio.sleep(poll_interval)


async def _list(hook: AyrshareHook, history_max_age: float) -> HistoryListing:
    fetched_at = time.time()
    try:
        records = await hook.aget_history(last_days=0, limit=LISTING_LIMIT)
    except AyrshareError as err:
        _log.warning("Listing posts for the batched waits failed; each reads its post alone: %s", err)
        return HistoryListing(fetched=True, failure=str(err))
    by_id = {record["id"]: record for record in records if isinstance(record.get("id"), str)}
    return HistoryListing(fetched=True, records=by_id, fresh_as_of=fetched_at - history_max_age)
