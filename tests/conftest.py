"""Shared fixtures: a throwaway AIRFLOW_HOME, an Ayrshare connection, and a scripted Ayrshare on 127.0.0.1."""

from __future__ import annotations

import functools
import logging
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from tests.fake_ayrshare import FakeAyrshare
from tests.helpers import API_KEY, PROFILE_KEY, X_KEY, X_SECRET, connection_json

_REPO = Path(__file__).resolve().parent.parent
_HOME = pytest.StashKey[Path]()


def pytest_configure(config: pytest.Config) -> None:
    """Point Airflow at a throwaway home before any test module imports it; removed at the end."""
    home = Path(tempfile.mkdtemp(prefix="ayrshare-tests-airflow-"))
    dags = home / "dags"
    dags.mkdir()
    for dag_file in [*(_REPO / "example_dags").glob("*.py"), *(_REPO / "tests" / "dags").glob("*.py")]:
        (dags / dag_file.name).symlink_to(dag_file)
    os.environ.update(
        AIRFLOW_HOME=str(home),
        AIRFLOW__CORE__LOAD_EXAMPLES="False",
        AIRFLOW__CORE__DAGS_FOLDER=str(dags),
        AIRFLOW__CORE__UNIT_TEST_MODE="False",
    )
    os.environ.pop("AIRFLOW_CONN_AYRSHARE_DEFAULT", None)
    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # one line per request drowns failures
    config.stash[_HOME] = home


def pytest_unconfigure(config: pytest.Config) -> None:
    home = config.stash.get(_HOME, None)
    if home is not None:
        shutil.rmtree(home, ignore_errors=True)


@pytest.fixture(scope="session", autouse=True)
def one_execution_api_per_process() -> None:
    """
    Build dag.test()'s in-process Execution API once, as Airflow 3.3 does (``lru_cache`` on
    ``in_process_api_server``): 3.0 to 3.2 build it again for every task run, a new FastAPI app and
    event-loop thread each time (a third of their dag tests' time).
    """
    try:
        from airflow.sdk.execution_time import supervisor
    except ImportError:  # Airflow 2: dag.test() runs tasks without the Task SDK
        return
    if not hasattr(supervisor.in_process_api_server, "cache_info"):
        supervisor.in_process_api_server = functools.lru_cache(maxsize=1)(supervisor.in_process_api_server)


@pytest.fixture(scope="session")
def airflow_db() -> Path:
    """A migrated SQLite metadata DB in the throwaway AIRFLOW_HOME (migrated once per run)."""
    subprocess.run([sys.executable, "-m", "airflow", "db", "migrate"], check=True, capture_output=True)
    return Path(os.environ["AIRFLOW_HOME"])


@pytest.fixture(autouse=True)
def forget_reposts(request: pytest.FixtureRequest):
    """
    After a test on the metadata DB, forget the reposts it made (the provider's ledger, Airflow
    Variables): every emulator starts with the same seeded post ids, and a later test must not find
    them reposted.
    """
    yield
    if "airflow_db" in request.fixturenames:
        from airflow.models.variable import Variable
        from airflow.utils.session import create_session

        from ayrshare_provider.repost_ledger import ENTRY_PREFIX, ORIGIN_PREFIX

        with create_session() as session:
            for prefix in (ENTRY_PREFIX, ORIGIN_PREFIX):
                session.query(Variable).filter(Variable.key.startswith(prefix)).delete(
                    synchronize_session=False
                )


@pytest.fixture
def fake(httpserver) -> FakeAyrshare:
    """A scripted Ayrshare on 127.0.0.1 (pytest-httpserver) that knows posts and counts calls."""
    return FakeAyrshare(httpserver, api_key=API_KEY)


@pytest.fixture
def ayrshare_conn(fake: FakeAyrshare, monkeypatch: pytest.MonkeyPatch) -> FakeAyrshare:
    """``ayrshare_default`` pointing at the fake, with every credential set."""
    monkeypatch.setenv(
        "AIRFLOW_CONN_AYRSHARE_DEFAULT",
        connection_json(
            fake.url, profile_key=PROFILE_KEY, x_twitter_api_key=X_KEY, x_twitter_api_secret=X_SECRET
        ),
    )
    return fake


@pytest.fixture
def emulator():
    """The built-in Ayrshare emulator on 127.0.0.1 (a free port), fresh for each test; retries settle in 0.2 s."""
    from ayrshare_emulator.server import Emulator

    with Emulator(API_KEY, retry_delay=0.2) as running:
        yield running


@pytest.fixture
def emulator_conn(emulator, monkeypatch: pytest.MonkeyPatch):
    """``ayrshare_default`` pointing at the emulator, with the X credentials (Primary Profile)."""
    monkeypatch.setenv(
        "AIRFLOW_CONN_AYRSHARE_DEFAULT",
        connection_json(emulator.url, x_twitter_api_key=X_KEY, x_twitter_api_secret=X_SECRET),
    )
    return emulator


@pytest.fixture(scope="session")
def httpserver_listen_address() -> tuple[str, int]:
    """pytest-httpserver on 127.0.0.1 (a free port), never another address."""
    return ("127.0.0.1", 0)
