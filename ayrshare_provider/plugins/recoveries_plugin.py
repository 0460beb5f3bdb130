"""The Airflow plugin that adds the recoveries page to the Airflow UI (Airflow 3.1+), when asked to.

Opt-in like the webhook receiver: nothing is mounted unless ``[ayrshare] recoveries_page`` is true
(``AIRFLOW__AYRSHARE__RECOVERIES_PAGE=True``). Then the API server serves the page
(:mod:`ayrshare_provider.plugins.recoveries_page`) under ``/ayrshare-recoveries/``, and the UI lists
it under Browse as "Ayrshare recoveries" (an ``external_views`` entry, which Airflow 3.1 brought).
The page reads Airflow's REST API with the reader's own login: it sees the runs they may see.
"""

from __future__ import annotations

from typing import Any

from airflow.plugins_manager import AirflowPlugin

from ayrshare_provider.plugins.lazy_app import BuiltOnFirstRequest
from ayrshare_provider.version_compat import AIRFLOW_V_3_1_PLUS

URL_PREFIX = "/ayrshare-recoveries"
PAGE_NAME = "Ayrshare recoveries"


def _page() -> Any:
    from ayrshare_provider.plugins.recoveries_page import create_app

    return create_app(URL_PREFIX)


def _wanted() -> bool:
    from airflow.providers.common.compat.sdk import conf

    # Before 3.1 a plugin cannot add a page to the UI (no external_views) and there is no
    # human-in-the-loop to show: the setting does nothing there.
    return AIRFLOW_V_3_1_PLUS and conf.getboolean("ayrshare", "recoveries_page", fallback=False)


def recoveries_apps() -> list[dict[str, Any]]:
    """The page's app when ``[ayrshare] recoveries_page`` is true on Airflow 3.1+; none otherwise."""
    if not _wanted():
        return []
    return [{"app": BuiltOnFirstRequest(_page), "url_prefix": URL_PREFIX, "name": PAGE_NAME}]


def recoveries_views() -> list[dict[str, Any]]:
    """The page's entry in the UI's Browse menu, shown in the UI's frame, when the page is mounted."""
    if not _wanted():
        return []
    route = URL_PREFIX.lstrip("/")
    # Relative, so that it holds behind a base URL ([api] base_url).
    return [
        {
            "name": PAGE_NAME,
            "href": f"{route}/",
            "destination": "nav",
            "category": "browse",
            "url_route": route,
        }
    ]


class AyrshareRecoveriesPlugin(AirflowPlugin):
    """Adds the read-only recoveries page to the Airflow UI (3.1+), opt-in."""

    name = "ayrshare_recoveries"
    fastapi_apps = recoveries_apps()
    external_views = recoveries_views()
