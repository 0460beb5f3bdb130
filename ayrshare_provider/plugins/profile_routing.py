"""Whose post a webhook delivery is: the User Profile its ``refId`` names, and that profile's connection.

A User Profile without a webhook of its own inherits the Primary Profile's (Ayrshare documents
it), so one URL can receive several profiles' posts; the payload's ``refId`` says whose. A
delivery is filed only under the connection of that profile: the connection named in the URL
when it acts as that profile, else another Ayrshare connection of Airflow's that does, else none
(the receiver answers 2xx and logs the refId). A connection's refId is what ``GET /api/user``
answers with its credentials, asked once an hour per API server process.

Airflow cannot list the connections of a secrets backend: a profile whose connection lives only
there is found through its own webhook URL (``?conn_id=``), never through the Primary's.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time

_log = logging.getLogger(__name__)

#: How long a connection's refId is trusted before it is asked again, and how long a failed ask
#: stands before the next (seconds): a burst of deliveries asks once.
REF_ID_KEPT_FOR = 3600.0
UNKNOWN_KEPT_FOR = 60.0
_CONN_ENV_PREFIX = "AIRFLOW_CONN_"

#: How long the one ask may take (seconds): a delivery waits for it, and Ayrshare waits 10 s for the answer.
_ASK_TIMEOUT = 5.0

_ref_ids: dict[str, tuple[str | None, float]] = {}
_asking: dict[str, threading.Lock] = {}  # per connection: a burst of deliveries asks once
_lock = threading.Lock()


def ref_id_of(conn_id: str) -> str | None:
    """The refId of the profile ``conn_id`` acts as; None when it cannot be told now (logged)."""
    if (known := _known(conn_id)) is not None:
        return known[0]
    with _lock:
        asking = _asking.setdefault(conn_id, threading.Lock())
    with asking:
        if (known := _known(conn_id)) is not None:  # another delivery asked meanwhile
            return known[0]
        from ayrshare_provider.hooks.ayrshare import AyrshareHook

        try:
            # One try: the next delivery asks again after a minute.
            ref_id = AyrshareHook(conn_id, max_attempts=1, timeout=_ASK_TIMEOUT).get_user().get("refId")
        except Exception as err:  # noqa: BLE001 - a connection that cannot say is no owner, not a failed delivery
            _log.warning(
                "Ayrshare webhook: the profile of connection %r is unknown for now: %s", conn_id, err
            )
            ref_id = None
        ref_id = ref_id if isinstance(ref_id, str) and ref_id else None
        with _lock:
            _ref_ids[conn_id] = (ref_id, time.monotonic())
        return ref_id


def _known(conn_id: str) -> tuple[str | None, float] | None:
    """What was learned of ``conn_id`` and is still fresh, or None."""
    with _lock:
        known = _ref_ids.get(conn_id)
    if known is None or time.monotonic() - known[1] >= (REF_ID_KEPT_FOR if known[0] else UNKNOWN_KEPT_FOR):
        return None
    return known


def ayrshare_connections() -> list[str]:
    """The Ayrshare connections Airflow can list: its metadata database's and its environment's."""
    from airflow.models.connection import Connection
    from airflow.utils.session import create_session

    with create_session() as session:
        stored = [
            conn.conn_id for conn in session.query(Connection).filter(Connection.conn_type == "ayrshare")
        ]
    from_env = []
    for name, value in os.environ.items():
        if name.startswith(_CONN_ENV_PREFIX) and _is_ayrshare(value):
            from_env.append(name[len(_CONN_ENV_PREFIX) :].lower())
    return sorted({*stored, *from_env})


def connections_of_profile(ref_id: str, besides: str) -> list[str]:
    """The listed Ayrshare connections, other than ``besides``, that act as the profile ``ref_id``."""
    return [
        conn_id for conn_id in ayrshare_connections() if conn_id != besides and ref_id_of(conn_id) == ref_id
    ]


def owner_of(conn_id: str, ref_id: str | None) -> str | None:
    """
    The connection a delivery of profile ``ref_id`` that came to ``conn_id``'s URL is filed under.

    :param conn_id: the connection the URL names.
    :param ref_id: the delivery's refId; without one, the URL's connection.
    :return: ``conn_id`` when it acts as that profile (or cannot tell now), another connection that
        does, or None: no connection of that profile here.
    """
    if not ref_id:
        return conn_id
    own = ref_id_of(conn_id)
    if own is None or own == ref_id:
        return conn_id
    others = connections_of_profile(ref_id, besides=conn_id)
    return others[0] if others else None


def _is_ayrshare(value: str) -> bool:
    """Whether an ``AIRFLOW_CONN_*`` value (JSON or URI) is an Ayrshare connection."""
    value = value.strip()
    if value.startswith("{"):
        try:
            return json.loads(value).get("conn_type") == "ayrshare"
        except (ValueError, AttributeError):
            return False
    return value.startswith("ayrshare://")
