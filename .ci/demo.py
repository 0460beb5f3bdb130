"""The failed-post recovery demo: the example DAG against the emulator, on a throwaway Airflow.

``make demo`` runs ``python .ci/demo.py``, from a clone or with the two wheels installed:
start the emulator with the ``demo`` scenario, migrate a temporary ``AIRFLOW_HOME``, point
``ayrshare_default`` at the emulator, run ``airflow dags test ayrshare_failed_post_recovery``,
print the report and the emulator's retry counts, and stop the emulator whatever happens.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from importlib import resources
from pathlib import Path
from typing import Any

DAG_ID = "ayrshare_failed_post_recovery"
# The run's conf: the demo outlasts Instagram's half-minute hint, not its day; spent retries are
# reposted; its person answers in seconds (the timeout only ends a demo whose person could not).
DEMO_CONF = {"poll_interval": 1, "max_wait_hint": 600, "repost_spent": True, "person_timeout": 300}
# The emulator's key: it never leaves this machine, and the emulator accepts nothing else.
DEMO_API_KEY = "demo-api-key-for-the-local-emulator"


def _step(message: str) -> None:
    print(f"==> {message}", flush=True)


#: The longest the demo's Airflow commands may take (the DAG run takes about a minute): past it the
#: demo fails with the log's end rather than hang a terminal or CI.
COMMAND_DEADLINE = 900


def _airflow(env: dict[str, str], log: Path, *args: str) -> int:
    with log.open("a") as out:
        try:
            return subprocess.run(
                [sys.executable, "-m", "airflow", *args],
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                timeout=COMMAND_DEADLINE,
            ).returncode
        except subprocess.TimeoutExpired:
            out.write(f"\n==> airflow {args[0]} {args[1]} did not end within {COMMAND_DEADLINE} s\n")
            return 124


def _report(home: Path, env: dict[str, str]) -> dict[str, Any] | None:
    """The report task's return value, read from the demo's metadata DB."""
    os.environ.update(env)  # before Airflow is first imported in this process
    import airflow.models.xcom as xcom_models
    from airflow.utils.session import create_session

    names = vars(xcom_models)
    XComRow = names.get("XComModel") or names["BaseXCom"]  # the table's model on Airflow 3, on 2.11

    with create_session() as session:
        row = (
            session.query(XComRow)
            .filter_by(dag_id=DAG_ID, task_id="report", key="return_value")
            .order_by(XComRow.timestamp.desc())
            .first()
        )
        value = XComRow.deserialize_value(row) if row else None
    return json.loads(value) if isinstance(value, str) else value


def _person_can_answer() -> bool:
    """
    Whether ``airflow dags test`` can take a person's answer (Airflow 3.3+), asked without
    importing Airflow yet. On 3.1 and 3.2 its in-process supervisor cannot serve the person
    step's trigger, and before 3.1 there is no person step.
    """
    from importlib.metadata import version

    major, minor = (int(part) for part in version("apache-airflow").split(".")[:2])
    return (major, minor) >= (3, 3)


def _run_dag(env: dict[str, str], home: Path, log: Path, emulator: Any) -> int:
    """``airflow dags test`` of the recovery DAG; on Airflow 3.3+ with a person who answers its question."""
    if not _person_can_answer():
        print(
            "    (before Airflow 3.3, dags test cannot ask a person: ask_person is off, those posts are skipped)"
        )
        conf = {**DEMO_CONF, "ask_person": False}
        return _airflow(env, log, "dags", "test", DAG_ID, "--conf", json.dumps(conf))
    from demo_person import PERSON, DemoPerson, relinkable

    relinked = relinkable(emulator.state.posts.values())
    env = {**env, **DemoPerson.sqlite_env()}
    with DemoPerson(env, home, DAG_ID, relinked) as person:
        code = _airflow(env, log, "dags", "test", DAG_ID, "--conf", json.dumps(DEMO_CONF))
    for answer in person.answers:
        print(f"    {PERSON} relinked Facebook, then answered in Airflow: {', '.join(answer['chosen'])}")
    return code


def installed_example_dags() -> Path:
    """The example DAGs shipped as ``ayrshare_provider.example_dags`` (the repository's example_dags/)."""
    # A real folder (Airflow parses the files in it): the wheel installs it unzipped, and the
    # editable install maps the package to the repository's folder.
    return Path(str(resources.files("ayrshare_provider.example_dags")))


def run(dags_folder: Path, keep_home: bool = False) -> int:
    from ayrshare_emulator.server import Emulator

    started = time.monotonic()
    home = Path(tempfile.mkdtemp(prefix="ayrshare-demo-airflow-"))
    log = home / "demo.log"
    _step("Starting the Ayrshare emulator (scenario: demo)")
    with Emulator(DEMO_API_KEY, scenario="demo", retry_delay=2.0) as emulator:
        try:
            print(
                f"    {emulator.url}: {sum(p.record['status'] == 'error' for p in emulator.state.posts.values())} failed posts"
            )
            connection = {
                "conn_type": "ayrshare",
                "host": emulator.url,
                "password": DEMO_API_KEY,
                "extra": {
                    "x_twitter_api_key": "demo-x-consumer-key",
                    "x_twitter_api_secret": "demo-x-consumer-secret",
                },
            }
            env = {
                **os.environ,
                "AIRFLOW_HOME": str(home),
                "AIRFLOW__CORE__DAGS_FOLDER": str(dags_folder.resolve()),
                "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
                "AIRFLOW_CONN_AYRSHARE_DEFAULT": json.dumps(connection),
            }
            _step(f"Migrating a temporary Airflow metadata DB in {home}")
            if _airflow(env, log, "db", "migrate"):
                print(log.read_text()[-3000:])
                return 1
            _step(f"Running the DAG {DAG_ID} (airflow dags test; full log: {log})")
            print(f"    conf: {json.dumps(DEMO_CONF)}")
            code = _run_dag(env, home, log, emulator)
            report = _report(home, env)
            if report is None:
                print(log.read_text()[-5000:])
                print(f"The DAG run produced no report (exit code {code}).")
                return code or 1
            from ayrshare_provider.recovery import format_report

            _step("Recovery report")
            print(format_report(report))
            counters = emulator.state.counters()
            puts = counters["retry_puts"]
            created = counters["posts_created"]
            _step("What the emulator saw")
            print(
                f"    retry PUTs: {sum(puts.values())} for {len(puts)} posts "
                f"(at most one each: {max(puts.values(), default=0) <= 1}); "
                f"new posts: {sum(created.values())} for {len(created)} reposts "
                f"(at most one each: {max(created.values(), default=0) <= 1})"
            )
            print(f"    requests: {json.dumps(counters['requests'], sort_keys=True)}")
            print(f"    done in {time.monotonic() - started:.0f} s; DAG run exit code {code}")
            return code
        finally:
            if not keep_home:
                shutil.rmtree(home, ignore_errors=True)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python .ci/demo.py", description=__doc__.split("\n")[0])
    parser.add_argument(
        "--dags-folder",
        type=Path,
        default=None,
        help="folder with the example DAGs (default: the installed ones, ayrshare_provider.example_dags)",
    )
    parser.add_argument(
        "--keep-home", action="store_true", help="keep the temporary AIRFLOW_HOME (to inspect logs)"
    )
    args = parser.parse_args(argv)
    dags_folder = args.dags_folder or installed_example_dags()
    if not (dags_folder / f"{DAG_ID}.py").exists():
        parser.error(f"{dags_folder} has no {DAG_ID}.py")
    sys.exit(run(dags_folder, keep_home=args.keep_home))


if __name__ == "__main__":
    main()
