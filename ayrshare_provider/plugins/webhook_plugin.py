"""The Airflow plugin that mounts the webhook receiver in the API server (Airflow 3), when asked to.

Opt-in: nothing is mounted unless the Airflow setting ``[ayrshare] webhook_receiver`` is true
(``AIRFLOW__AYRSHARE__WEBHOOK_RECEIVER=True``; declared in the provider's ``config``, default
false), so that an API server that installs the provider without wanting webhooks serves no route
of ours. Every Airflow process loads plugins; only the API server serves their apps. So this
module stays light and the receiver (:mod:`ayrshare_provider.plugins.webhook_receiver`, FastAPI
and the database) is built on the first request.
"""

from __future__ import annotations

from typing import Any

from airflow.plugins_manager import AirflowPlugin

from ayrshare_provider.plugins.lazy_app import BuiltOnFirstRequest

URL_PREFIX = "/ayrshare"


def _receiver() -> Any:
    from ayrshare_provider.plugins.webhook_receiver import create_app

    return create_app()


def receiver_apps() -> list[dict[str, Any]]:
    """The receiver's app when ``[ayrshare] webhook_receiver`` is true; none otherwise."""
    from airflow.providers.common.compat.sdk import conf

    if not conf.getboolean("ayrshare", "webhook_receiver", fallback=False):
        return []
    return [
        {"app": BuiltOnFirstRequest(_receiver), "url_prefix": URL_PREFIX, "name": "Ayrshare webhook receiver"}
    ]


class AyrshareWebhookPlugin(AirflowPlugin):
    """Mounts the Ayrshare webhook receiver in Airflow's API server under ``/ayrshare`` (Airflow 3), opt-in."""

    name = "ayrshare_webhook"
    fastapi_apps = receiver_apps()
