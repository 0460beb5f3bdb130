"""AyrsharePostLink: the "Ayrshare post" extra link of the provider's tasks."""

from __future__ import annotations

from typing import Any

from airflow.providers.common.compat.sdk import BaseOperatorLink

from ayrshare_provider.utils.xcom import POST_URL_XCOM_KEY


class AyrsharePostLink(BaseOperatorLink):
    """Opens the published post on its network (the first post URL Ayrshare returned)."""

    name = "Ayrshare post"

    # ti_key is a TaskInstanceKey, whose typed home differs between the Airflow versions supported.
    def get_link(self, operator: Any, *, ti_key: Any) -> str:
        from airflow.providers.common.compat.sdk import XCom

        return XCom.get_value(key=POST_URL_XCOM_KEY, ti_key=ti_key) or ""
