"""The Airflow asset a connection's failed posts are reported on, by poll and by push, and what it stores.

One asset per Ayrshare connection: the ``FailedPostsTrigger`` watcher and the webhook receiver
both put their events on it, so a DAG scheduled on it runs for a failure whichever saw it
first. On Airflow 3.3 its asset state store also keeps, per post, the last final status a
webhook pushed (:func:`pushed_key`), which batched and single waits read instead of Ayrshare,
and the ids the watcher reported (``failed_post_ids_seen``), which the receiver reads so that a
failure is reported once. Plain names only: DAG files import this module.
"""

from __future__ import annotations

from typing import Any

DEFAULT_CONN_ID = "ayrshare_default"
#: The state store key under which the watcher keeps the ids of the failed posts it has reported.
WATCHER_SEEN_KEY = "failed_post_ids_seen"
_NAME = "ayrshare_failed_posts"
_PUSHED_PREFIX = "pushed/"


def failed_posts_asset_name(conn_id: str = DEFAULT_CONN_ID) -> str:
    """
    The asset's name: ``ayrshare_failed_posts`` for ``ayrshare_default``, else
    ``ayrshare_failed_posts__<conn_id>``.

    :param conn_id: the Ayrshare connection whose posts the asset reports.
    """
    return _NAME if conn_id == DEFAULT_CONN_ID else f"{_NAME}__{conn_id}"


def pushed_key(post_id: str) -> str:
    """The asset state store key of the last final status a webhook pushed for ``post_id``."""
    return _PUSHED_PREFIX + post_id


def pushed_value(
    record: dict[str, Any], received_at: float, deliveries: list[str], reported: bool
) -> dict[str, Any]:
    """
    What the receiver stores under :func:`pushed_key`.

    :param record: the post's last final record as pushed.
    :param received_at: when it arrived (``time.time()``).
    :param deliveries: the names of the post's deliveries taken so far (signed body, ``hookId``,
        delivery id): one taken again is answered 2xx and recorded no more.
    :param reported: the post's failure was reported on the asset (by the receiver or the watcher).
    """
    return {"record": record, "received_at": received_at, "deliveries": deliveries, "reported": reported}
