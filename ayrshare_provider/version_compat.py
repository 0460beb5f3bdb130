"""
Every Airflow version probe of the provider, and every use of Airflow that has no public interface yet.

The rest of the provider uses ``airflow.sdk``, the common compat layer, public hooks and the
documented APIs of models. What is here is what Airflow offers no public path for (yet): each
entry names the versions it serves and why, and ``tests/test_version_compat.py`` runs each one
on every Airflow in CI. When Airflow grows a public interface for one, it changes here only.

Light at import: the version flags read the installed version; everything else imports Airflow's
modules inside the function that needs them (DAG files import this module at parse time).
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from datetime import datetime

    from sqlalchemy.orm import Session


def _airflow_version() -> tuple[int, int]:
    from airflow import __version__
    from packaging.version import Version

    major, minor = Version(__version__).release[:2]
    return major, minor


AIRFLOW_VERSION = _airflow_version()
#: 3.0: the Task SDK (XComs pushed through it), asset watchers, the API server (FastAPI plugins).
AIRFLOW_V_3_0_PLUS = AIRFLOW_VERSION >= (3, 0)
#: 3.1: human-in-the-loop operators in the standard provider.
AIRFLOW_V_3_1_PLUS = AIRFLOW_VERSION >= (3, 1)
#: 3.3: asset state stores (read by triggers), task retry policies, ``awaiting_input``.
AIRFLOW_V_3_3_PLUS = AIRFLOW_VERSION >= (3, 3)


def hitl_operator() -> type | None:
    """
    The standard provider's ``HITLOperator`` where it can ask a person with a deadline, else None.

    Airflow 3.1+; a standard provider whose operator lacks ``response_timeout`` times a request out
    by ``execution_timeout`` only (a person's deadline would be lost), so it counts as none.
    """
    import inspect

    from airflow.exceptions import AirflowException

    try:
        from airflow.providers.standard.operators.hitl import HITLOperator
    except (ImportError, AirflowException):  # AirflowException: the standard provider's "needs 3.1+"
        return None
    if "response_timeout" not in inspect.signature(HITLOperator.__init__).parameters:
        return None
    return HITLOperator


def retry_policy_classes() -> tuple[Any, Any, Any] | None:
    """``(ExceptionRetryPolicy, RetryAction, RetryRule)`` on Airflow 3.3+ (task retry policies), else None."""
    try:
        from airflow.providers.common.compat.sdk import ExceptionRetryPolicy, RetryAction, RetryRule
    except (ImportError, AttributeError):
        return None
    return ExceptionRetryPolicy, RetryAction, RetryRule


def asset_watcher_classes() -> tuple[Any, Any] | None:
    """``(Asset, AssetWatcher)`` on Airflow 3.0+ (event-driven scheduling), else None."""
    if not AIRFLOW_V_3_0_PLUS:
        return None
    from airflow.sdk import Asset, AssetWatcher

    return Asset, AssetWatcher


# -- Triggers --------------------------------------------------------------------------------


def triggers_read_asset_state() -> bool:
    """Whether a trigger can read an asset's state store (Airflow 3.3+)."""
    return AIRFLOW_V_3_3_PLUS and _asset_state_accessor() is not None


def _asset_state_accessor() -> Any:
    # Airflow 3.3 gives a trigger its own watched asset's store (``asset_state_store``) but no
    # public way to read another asset's: a retry's wait reads its connection's failed-posts
    # asset through the Task SDK's accessor, which the triggerer serves like a connection.
    try:
        from airflow.sdk.execution_time.context import AssetStateStoreAccessor
    except ImportError:
        return None
    return AssetStateStoreAccessor


async def read_asset_state(asset_name: str, key: str) -> Any:
    """
    One key of an asset's state store, read from a trigger (Airflow 3.3+); None where it is unset.

    :raises Exception: what the triggerer answers when it cannot read now (a busy database).
    """
    return await _asset_state_accessor()(name=asset_name).aget(key)


# -- The webhook receiver (inside Airflow's API server, on its metadata database session) ----------
# Airflow 3.0 to 3.3 offer a plugin no public Python API to create an asset event, to lock an asset
# row (two API server processes must not both take copies of one delivery) or to write an asset's
# state store in the caller's transaction. Their REST API does the first but not in one transaction
# with the rest, and would make the receiver log in to its own server.


def locked_active_asset(name: str, session: Session) -> Any:
    """The active asset called ``name``, its row locked until the session commits (where the database can lock); None if none."""
    from airflow.models.asset import AssetModel
    from sqlalchemy import select

    query = select(AssetModel).where(AssetModel.name == name, AssetModel.active.has()).with_for_update()
    return session.scalar(query.limit(1))


def asset_event_extras_since(asset_id: int, since: datetime, session: Session) -> list[Any]:
    """The ``extra`` of each of the asset's events at or after ``since``."""
    from airflow.models.asset import AssetEvent
    from sqlalchemy import select

    query = select(AssetEvent.extra).where(AssetEvent.asset_id == asset_id, AssetEvent.timestamp >= since)
    return list(session.scalars(query))


def add_asset_event(asset: Any, extra: dict[str, Any], session: Session) -> None:
    """An event on ``asset`` (what Airflow's ``POST /assets/events`` does), which starts the DAGs scheduled on it."""
    from airflow.assets.manager import asset_manager

    asset_manager.register_asset_change(asset=asset, extra=extra, session=session)


class AssetStateStore:
    """
    An asset's state store on Airflow 3.3+, through the configured backend, in the caller's session.

    Values are JSON, as the Task SDK's accessor reads them. :meth:`of` is None before 3.3.
    """

    def __init__(self, asset_id: int) -> None:
        from airflow._shared.state import AssetScope  # 3.3: the store's scope type, not yet public

        self.scope = AssetScope(asset_id=asset_id)

    @classmethod
    def of(cls, asset_id: int) -> AssetStateStore | None:
        """The store, or None before Airflow 3.3 (no asset state store)."""
        if not AIRFLOW_V_3_3_PLUS:
            return None
        try:
            return cls(asset_id)
        except ImportError:  # a later Airflow moved the private scope type: as before 3.3, not a 500
            return None

    def get(self, key: str, session: Session) -> Any:
        from airflow.state import get_state_backend

        value = get_state_backend().get(self.scope, key, session=session)
        return None if value is None else json.loads(value)

    def set(self, key: str, value: Any, session: Session) -> None:
        from airflow._shared.state import AssetStateStoreWriterKind
        from airflow.state import get_state_backend
        from airflow.state.metastore import MetastoreBackend

        backend, stored = get_state_backend(), json.dumps(value)
        if isinstance(backend, MetastoreBackend):  # records who wrote it, as Airflow's own API does
            backend.set_asset_state_store(
                self.scope, key, stored, kind=AssetStateStoreWriterKind.API, session=session
            )
        else:
            backend.set(self.scope, key, stored, session=session)
