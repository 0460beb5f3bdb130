"""The Airflow plugin that mounts the webhook receiver in the API server (Airflow 3).

Every Airflow process loads plugins; only the API server serves their apps. So this module stays
light and the receiver (:mod:`ayrshare_provider.plugins.webhook_receiver`, FastAPI and the
database) is built on the first request.
"""

from __future__ import annotations

from typing import Any

from airflow.plugins_manager import AirflowPlugin

URL_PREFIX = "/ayrshare"


class _BuiltOnFirstRequest:
    """An ASGI app that builds the receiver when it is first called: every Airflow process loads
    plugins, and only the API server serves them."""

    def __init__(self) -> None:
        self._app: Any = None

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if self._app is None:
            from ayrshare_provider.plugins.webhook_receiver import create_app

            self._app = create_app()
        await self._app(scope, receive, send)


class AyrshareWebhookPlugin(AirflowPlugin):
    """Mounts the Ayrshare webhook receiver in Airflow's API server under ``/ayrshare`` (Airflow 3)."""

    name = "ayrshare_webhook"
    fastapi_apps = [
        {"app": _BuiltOnFirstRequest(), "url_prefix": URL_PREFIX, "name": "Ayrshare webhook receiver"}
    ]
