"""Each entry of ayrshare_provider.version_compat answers as this Airflow should: run on every Airflow in CI."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from ayrshare_provider import version_compat


def _running() -> tuple[int, int]:
    from airflow import __version__

    major, minor = __version__.split(".")[:2]
    return int(major), int(minor)


def test_the_version_flags_are_this_airflows():
    running = _running()
    assert running == version_compat.AIRFLOW_VERSION
    assert version_compat.AIRFLOW_V_3_0_PLUS is (running >= (3, 0))
    assert version_compat.AIRFLOW_V_3_1_PLUS is (running >= (3, 1))
    assert version_compat.AIRFLOW_V_3_3_PLUS is (running >= (3, 3))


def test_each_building_block_is_there_exactly_on_the_versions_that_have_it():
    running = _running()
    hitl = version_compat.hitl_operator()
    assert (hitl is not None) is (running >= (3, 1))
    if hitl is not None:
        assert hitl.__name__ == "HITLOperator"
    policy = version_compat.retry_policy_classes()
    assert (policy is not None) is (running >= (3, 3))
    watchers = version_compat.asset_watcher_classes()
    assert (watchers is not None) is (running >= (3, 0))
    if watchers is not None:
        assert [cls.__name__ for cls in watchers] == ["Asset", "AssetWatcher"]
    assert version_compat.triggers_read_asset_state() is (running >= (3, 3))


@pytest.mark.skipif(_running() < (3, 0), reason="the webhook receiver runs in the API server of Airflow 3")
def test_the_receivers_metadata_calls_run_on_this_airflow(airflow_db):
    from airflow.utils.session import create_session

    with create_session() as session:
        assert version_compat.locked_active_asset("no_dag_declares_this_asset", session) is None
        assert version_compat.asset_event_extras_since(-1, datetime.now(UTC), session) == []
        store = version_compat.AssetStateStore.of(-1)
        assert (store is not None) is version_compat.AIRFLOW_V_3_3_PLUS
