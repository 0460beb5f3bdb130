"""Shared fixtures: a throwaway AIRFLOW_HOME, an Ayrshare connection, and a scripted Ayrshare on 127.0.0.1."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import tempfile
from pathlib import Path

# Airflow reads its configuration when first imported: point it at a throwaway home first.
_HOME = Path(tempfile.mkdtemp(prefix="ayrshare-tests-airflow-"))
os.environ["AIRFLOW_HOME"] = str(_HOME)
os.environ["AIRFLOW__CORE__LOAD_EXAMPLES"] = "False"
# The DAGs folder: the example DAGs users copy, and the DAGs of tests/dags, linked side by side.
_REPO = Path(__file__).resolve().parent.parent
_DAGS = _HOME / "dags"
_DAGS.mkdir()
for _dag_file in [*(_REPO / "example_dags").glob("*.py"), *(_REPO / "tests" / "dags").glob("*.py")]:
    (_DAGS / _dag_file.name).symlink_to(_dag_file)
os.environ["AIRFLOW__CORE__DAGS_FOLDER"] = str(_DAGS)
os.environ["AIRFLOW__CORE__UNIT_TEST_MODE"] = "False"
os.environ.pop("AIRFLOW_CONN_AYRSHARE_DEFAULT", None)
logging.getLogger("werkzeug").setLevel(logging.WARNING)  # one line per request drowns failures

import pytest  # noqa: E402
from airflow.models.connection import Connection  # noqa: E402

from tests.fake_ayrshare import FakeAyrshare  # noqa: E402

# Distinctive credentials, so that a test can search any output for them.
API_KEY = "APIKEY-7f3e9c1d-secret"
PROFILE_KEY = "PROFILEKEY-2b8a4e6f-secret"
X_KEY = "XCONSUMERKEY-5d1c7a9b-secret"
X_SECRET = "XCONSUMERSECRET-9e4f2a6c-secret"
SECRETS = (API_KEY, PROFILE_KEY, X_KEY, X_SECRET)


def connection_json(host: str, **extra: str) -> str:
    """An Ayrshare connection in the ``AIRFLOW_CONN_*`` JSON form."""
    return Connection(conn_type="ayrshare", host=host, password=API_KEY, extra=extra or None).as_json()


def load_dag(dag_id: str):
    """A DAG from the DAGs folder, parsed as Airflow parses it."""
    from tests.airflow_compat import dag_bag

    dag = dag_bag(str(_DAGS)).get_dag(dag_id)
    assert dag is not None, f"no DAG {dag_id!r} in {_DAGS}"
    return dag


@pytest.fixture(scope="session")
def airflow_db() -> Path:
    """A migrated SQLite metadata DB in the throwaway AIRFLOW_HOME (migrated once per run)."""
    subprocess.run([sys.executable, "-m", "airflow", "db", "migrate"], check=True, capture_output=True)
    return _HOME


@pytest.fixture
def fake(httpserver) -> FakeAyrshare:
    """A scripted Ayrshare on 127.0.0.1 (pytest-httpserver) that knows posts and counts calls."""
    return FakeAyrshare(httpserver, api_key=API_KEY)


@pytest.fixture
def ayrshare_conn(fake: FakeAyrshare, monkeypatch: pytest.MonkeyPatch) -> FakeAyrshare:
    """``ayrshare_default`` pointing at the fake, with every credential set."""
    monkeypatch.setenv(
        "AIRFLOW_CONN_AYRSHARE_DEFAULT",
        connection_json(fake.url, profile_key=PROFILE_KEY, x_twitter_api_key=X_KEY, x_twitter_api_secret=X_SECRET),
    )
    return fake


@pytest.fixture
def emulator():
    """The built-in Ayrshare emulator on 127.0.0.1 (a free port), fresh for each test; retries settle in 0.2 s."""
    from ayrshare_provider.emulator.server import Emulator

    with Emulator(API_KEY, retry_delay=0.2) as running:
        yield running


@pytest.fixture
def emulator_conn(emulator, monkeypatch: pytest.MonkeyPatch):
    """``ayrshare_default`` pointing at the emulator, with the X credentials (Primary Profile)."""
    monkeypatch.setenv(
        "AIRFLOW_CONN_AYRSHARE_DEFAULT", connection_json(emulator.url, x_twitter_api_key=X_KEY, x_twitter_api_secret=X_SECRET)
    )
    return emulator


@pytest.fixture(scope="session")
def httpserver_listen_address() -> tuple[str, int]:
    """pytest-httpserver on 127.0.0.1 (a free port), never another address."""
    return ("127.0.0.1", 0)
