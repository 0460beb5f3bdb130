"""The recoveries page: the last recovery runs at a glance, in the Airflow UI (Airflow 3.1+).

``GET /ayrshare-recoveries/`` (mounted by :mod:`~ayrshare_provider.plugins.recoveries_plugin`)
answers a signed-in Airflow user with one HTML page, and anyone else with 401. The page's script
reads Airflow's public REST API with that user's own login (the UI's session cookie), so it shows
only the runs they may read: each run's counts, which the report task pushed
(:mod:`ayrshare_provider.run_stats`), and the requests waiting for a person
(``/api/v2/dags/~/dagRuns/~/hitlDetails``), with links to Required Actions. Read-only: it has no
route that writes, and it never calls Ayrshare.

Imported by the API server only, on the page's first request.
"""

from __future__ import annotations

import json
import logging
from functools import cache
from importlib.resources import files
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse

from ayrshare_provider.posts import NETWORK_NAMES
from ayrshare_provider.recovery import OUTCOMES
from ayrshare_provider.run_stats import RUN_STATS_XCOM_KEY, STATS_VERSION

_log = logging.getLogger(__name__)
_REFUSED = (
    "<!doctype html><title>Ayrshare recoveries</title>"
    "<p>Log in to Airflow first: this page shows what your Airflow login may read.</p>"
)


def create_app(url_prefix: str) -> FastAPI:
    """
    The page's FastAPI app.

    :param url_prefix: where Airflow mounts it (``/ayrshare-recoveries``): the page finds Airflow's
        UI and REST API at its own path less this.
    """
    app = FastAPI(title="Ayrshare recoveries", docs_url=None, redoc_url=None, openapi_url=None)

    @app.get("/", response_class=HTMLResponse)
    async def recoveries(request: Request) -> HTMLResponse:
        if await _reader(request) is None:
            return HTMLResponse(_REFUSED, status_code=401, headers={"WWW-Authenticate": "Bearer"})
        return HTMLResponse(_page(_airflow_root(request, url_prefix)), headers={"Cache-Control": "no-store"})

    return app


async def _reader(request: Request) -> Any | None:
    """The signed-in user, as Airflow's auth manager reads the request's token; None for anyone else."""
    from airflow.api_fastapi.app import get_auth_manager
    from airflow.api_fastapi.auth.managers.base_auth_manager import COOKIE_NAME_JWT_TOKEN

    header = request.headers.get("authorization", "")
    scheme, _, credentials = header.partition(" ")
    token = credentials if scheme.lower() == "bearer" else request.cookies.get(COOKIE_NAME_JWT_TOKEN)
    if not token:
        return None
    try:
        return await get_auth_manager().get_user_from_token(token)
    except Exception as err:  # noqa: BLE001 - expired, forged or of another deployment: not signed in
        _log.info("Ayrshare recoveries page: a token was refused (%s)", type(err).__name__)
        return None


def _airflow_root(request: Request, url_prefix: str) -> str:
    """Where Airflow's UI and REST API are, as the page's own path says (it holds behind a base URL)."""
    mounted_at = str(request.scope.get("root_path", ""))
    return mounted_at[: -len(url_prefix)] if mounted_at.endswith(url_prefix) else ""


def _page(airflow_root: str) -> str:
    settings = {
        "airflowRoot": airflow_root,
        "statsKey": RUN_STATS_XCOM_KEY,
        "statsVersion": STATS_VERSION,
        "outcomes": OUTCOMES,
        "networks": {**NETWORK_NAMES, "other": "other"},
    }
    # JSON inside a <script>: "</" written as "<\/" cannot end the element.
    return _template().replace("__SETTINGS__", json.dumps(settings).replace("</", "<\\/"))


@cache
def _template() -> str:
    return files("ayrshare_provider.plugins").joinpath("recoveries.html").read_text(encoding="utf-8")
