"""Final statuses Ayrshare pushed to Airflow's webhook receiver, as a trigger in the triggerer reads them.

The receiver keeps each post's last pushed final record in the asset state store of its
connection's failed-posts asset (:mod:`ayrshare_provider.assets`). Airflow 3.3's triggerer serves
that store to any trigger, through the same channel as connections: a read costs the triggerer
one metadata-database query and Ayrshare nothing. Older Airflow has no asset state store, and
waits read Ayrshare as before.
"""

from __future__ import annotations

from typing import Any

from ayrshare_provider.assets import failed_posts_asset_name, pushed_key

# The receiver's clock (API server) and the task's (worker) may differ a little. Not more: the
# push of the failure that was retried arrives seconds before the retry is sent, at the earliest.
_CLOCK_SKEW = 1.0


async def pushed_record(conn_id: str, post_id: str, since: float) -> dict[str, Any] | None:
    """
    The post's final record as a webhook pushed it at or after ``since``, or None (nothing pushed yet).

    :param conn_id: the Ayrshare connection the webhook is registered for.
    :param post_id: the post.
    :param since: wall-clock time (``time.time()``) before which a push is older news: a failure
        pushed before the retry was sent says nothing of the retry.
    :raises Exception: what the triggerer answers when the store cannot be read now (a busy
        database). An asset that no DAG declares reads as nothing pushed, as a missing key does.
    """
    from ayrshare_provider.version_compat import read_asset_state

    stored = await read_asset_state(failed_posts_asset_name(conn_id), pushed_key(post_id))
    if not isinstance(stored, dict):
        return None
    record, received_at = stored.get("record"), stored.get("received_at")
    if (
        not isinstance(record, dict)
        or not isinstance(received_at, (int, float))
        or received_at < since - _CLOCK_SKEW
    ):
        return None
    return dict(record)
