"""Real Airflow runs: dag.test() on a migrated throwaway AIRFLOW_HOME, sync and deferrable."""

from __future__ import annotations

import pytest

from tests.airflow_compat import TRIGGER_RAN_INLINE, stored_xcoms
from tests.helpers import SECRETS, error_post, load_dag

pytestmark = pytest.mark.dag


def task_states(dag_run) -> dict[str, str]:
    return {ti.task_id: ti.state for ti in dag_run.get_task_instances()}


@pytest.mark.parametrize("deferrable", [False, True], ids=["sync", "deferrable"])
def test_a_dag_recovers_a_failed_post_with_one_retry(airflow_db, ayrshare_conn, deferrable, capfd, caplog):
    ayrshare_conn.add_post(error_post("p1"), outcome="success", pending_reads=3)
    dag = load_dag(f"test_recover_one_{'deferrable' if deferrable else 'sync'}")
    dag_run = dag.test()
    assert dag_run.state == "success", task_states(dag_run)
    assert task_states(dag_run) == {"retry_post": "success", "post_is_published": "success"}
    assert ayrshare_conn.retry_puts["p1"] == 1
    output = "".join(capfd.readouterr()) + caplog.text
    assert (TRIGGER_RAN_INLINE in output) is deferrable
    assert "XCom not found" not in output

    values = {
        (task, key): value for (task, key, _), value in stored_xcoms(dag.dag_id, dag_run.run_id).items()
    }
    summary = values[("retry_post", "return_value")]
    assert summary["status"] == "success" and summary["retried"] is True
    assert values[("retry_post", "ayrshare_post_url")] == "https://twitter.example.com/posts/99"
    # Airflow stores the extra link's target when the task ends: the published post.
    if ("retry_post", "_link_AyrsharePostLink") in values or _is_airflow_3():
        assert values[("retry_post", "_link_AyrsharePostLink")] == "https://twitter.example.com/posts/99"
    assert not any(secret in str(values) for secret in SECRETS)


def _is_airflow_3() -> bool:
    from airflow import __version__

    return __version__.startswith("3.")


def test_a_dag_whose_post_fails_again_fails_the_task(airflow_db, ayrshare_conn):
    ayrshare_conn.add_post(error_post("p1"), outcome="error")
    dag_run = load_dag("test_recover_one_sync").test()
    assert dag_run.state == "failed"
    assert task_states(dag_run)["retry_post"] == "failed"
    assert ayrshare_conn.retry_puts["p1"] == 1


def test_the_single_post_example_dag_retries_then_waits_deferred(
    airflow_db, emulator_conn, capfd, caplog, monkeypatch
):
    # Still in flight when the sensor first looks, so that it defers: each task run of dag.test()
    # takes about 2 s to start on Airflow 3.0 to 3.2.
    emulator_conn.state.settings.retry_delay = 8.0
    from ayrshare_emulator.scenarios import TRANSIENT, add_failed

    post_id = add_failed(
        emulator_conn.state, "", ["linkedin"], {"linkedin": TRANSIENT}, text="one post", age_days=1
    ).id
    dag = load_dag("ayrshare_retry_single_post")
    dag.get_task("wait_until_published").poke_interval = 0.2  # the DAG's 15 s, for a test
    dag_run = dag.test(run_conf={"post_id": post_id})
    assert dag_run.state == "success", task_states(dag_run)
    assert task_states(dag_run) == {"retry_post": "success", "wait_until_published": "success"}
    assert TRIGGER_RAN_INLINE in "".join(capfd.readouterr()) + caplog.text
    assert emulator_conn.state.counters()["retry_puts"] == {post_id: 1}
    assert emulator_conn.state.posts[post_id].record["status"] == "success"


def test_example_dags_parse_cleanly_without_heavy_imports():
    import subprocess
    import sys

    from tests.helpers import dags_folder

    code = (
        "import sys, runpy, glob\n"
        # What any DAG file costs: Airflow's own imports for a DAG with a task (Airflow 3.0's
        # own chain imports FastAPI and aiohttp, for one); the example DAGs may add nothing heavy to it.
        "from airflow.providers.common.compat.sdk import DAG, Param, task\n"
        "def noop():\n    return None\n"
        "with DAG('baseline', schedule=None, params={'p': Param(1)}):\n"
        "    task(noop)()\n"
        "baseline = set(sys.modules)\n"
        f"for path in sorted(glob.glob({str(dags_folder())!r} + '/*.py')): runpy.run_path(path)\n"
        "heavy = ('aiohttp', 'fastapi', 'uvicorn', 'ayrshare_emulator', 'ayrshare_provider.hooks.ayrshare',\n"
        "         'airflow.providers.http.hooks.http')\n"
        "print(sorted(m for m in heavy if m in sys.modules and m not in baseline))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == "[]"


def test_the_watcher_dag_is_scheduled_on_failed_posts_or_says_why_not(airflow_db, caplog, capfd):
    import runpy

    from ayrshare_provider.triggers.failed_posts import FailedPostsTrigger
    from tests.airflow_compat import airflow_version
    from tests.helpers import dags_folder

    names = runpy.run_path(str(dags_folder() / "ayrshare_recover_on_failure.py"))
    if airflow_version() < (3, 0):  # no asset watchers: no DAG, a message instead of an import error
        assert "failed_posts" not in names
        assert "needs Airflow 3.0+" in caplog.text + "".join(capfd.readouterr())
        return
    (watcher,) = names["failed_posts"].watchers
    assert isinstance(watcher.trigger, FailedPostsTrigger)
    assert watcher.trigger.serialize()[1]["ayrshare_conn_id"] == "ayrshare_default"
    dag = load_dag("ayrshare_recover_on_failure")
    from ayrshare_provider.recovery_steps import ASKS_PEOPLE

    person_steps = {"ask_person", "route_chosen", "retry_chosen_post"} if ASKS_PEOPLE else set()
    assert set(dag.task_ids) == {
        "plan_failed_posts",
        "retry_post",
        "choose_reposts",
        "repost_post",
        "report",
        *person_steps,
    }


def test_the_recovery_dags_params_are_what_a_user_decides():
    """At most 8 params, none of them a switch of how the steps work (those are recover()'s arguments)."""
    from tests.airflow_compat import dag_bag
    from tests.helpers import dags_folder

    dags = dag_bag(str(dags_folder())).dags
    recovery = list(dags["ayrshare_failed_post_recovery"].params)
    assert recovery == [
        "ayrshare_conn_ids",
        "last_days",
        "platforms",
        "dry_run",
        "max_wait_hint",
        "ask_person",
        "person_timeout",
        "repost_spent",
    ]
    if "ayrshare_recover_on_failure" in dags:  # Airflow 3: asset watchers
        assert list(dags["ayrshare_recover_on_failure"].params) == recovery[4:]
