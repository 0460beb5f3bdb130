"""An ASGI app built on its first request: every Airflow process loads plugins, only the API server serves them."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Callable


class BuiltOnFirstRequest:
    """
    Calls ``build`` (which imports FastAPI and what the app needs) when the app is first called,
    so that a plugin's module stays light for the schedulers, workers and triggerers that load it.

    :param build: returns the ASGI app.
    """

    def __init__(self, build: Callable[[], Any]) -> None:
        self._build = build
        self._app: Any = None

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if self._app is None:
            self._app = self._build()
        await self._app(scope, receive, send)
