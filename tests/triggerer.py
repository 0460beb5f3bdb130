"""Triggers run in one event loop the way Airflow's triggerer runs them (tests and the bench use it).

A trigger whose ``shared_stream_key()`` is not None joins its group through Airflow 3.3's own
``SharedStreamManager`` (one poll loop per key, fanned out to ``filter_shared_stream``); any other
trigger runs ``run()``. On Airflow without shared streams every trigger runs ``run()``, as there.
"""

from __future__ import annotations

import asyncio
import itertools
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from airflow.triggers.base import BaseTrigger


def shared_streams_available() -> bool:
    try:
        import airflow.triggers.shared_stream  # noqa: F401
    except ImportError:
        return False
    return True


class InProcessTriggerer:
    """Fires triggers in the running event loop; one shared-stream manager for all of them, as in a triggerer."""

    def __init__(self) -> None:
        self._ids = itertools.count(1)
        self._manager: Any = None
        if shared_streams_available():
            from airflow.triggers.shared_stream import SharedStreamManager

            self._manager = SharedStreamManager()

    async def first_event(self, trigger: BaseTrigger) -> Any:
        """Run ``trigger`` until its first event and return the event's payload."""
        trigger_id = next(self._ids)
        key = trigger.shared_stream_key() if self._manager and hasattr(trigger, "shared_stream_key") else None
        if key is not None:
            events = trigger.filter_shared_stream(
                self._manager.subscribe(trigger_id=trigger_id, trigger=trigger, key=key)
            )
        else:
            events = trigger.run()
        try:
            return (await anext(events)).payload
        finally:
            await events.aclose()
            if key is not None:
                await self._manager.unsubscribe(trigger_id, key)

    async def close(self) -> None:
        if self._manager is not None:
            await self._manager.stop_all()


def first_events(triggers: list[BaseTrigger]) -> list[Any]:
    """Run ``triggers`` together, as one triggerer would, and return each one's first event payload, in order."""

    async def run_all() -> list[Any]:
        triggerer = InProcessTriggerer()
        try:
            return list(await asyncio.gather(*(triggerer.first_event(trigger) for trigger in triggers)))
        finally:
            await triggerer.close()

    return asyncio.run(run_all())
