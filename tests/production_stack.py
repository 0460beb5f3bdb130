"""A production-shaped Airflow for tests: PostgreSQL, CeleryExecutor on Redis, two workers, two triggerers.

Every part runs on loopback with free ports in one throwaway directory: a fresh PostgreSQL
cluster (Debian's ``postgresql``, run as the ``postgres`` user when the tests run as root), a
Redis without persistence (Debian's ``redis-server``), and Airflow's api-server, scheduler,
dag-processor, two ``celery worker`` and two ``triggerer`` processes. Each process leads its own
session, so that one of them can be killed whole (:meth:`ProductionStack.kill`) and teardown can
check that nothing is left. Each worker and triggerer reports its own name as its host name
(``tests/process_names.py``), so that the REST API tells which one runs a task or holds a trigger.

The workers and triggerers stand for two hosts: ``worker-a`` and ``triggerer-a`` on host a,
``worker-b`` and ``triggerer-b`` on host b, each host with a temp folder of its own (``TMPDIR``), so
that they share no machine budget: only what a deployment of several machines shares (PostgreSQL,
Redis, Ayrshare). A killed process can be started again (:meth:`ProductionStack.restart`), as a
supervisor or Kubernetes would.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import pwd
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import IO

from tests.stack import REPO, AirflowStack, free_port, kill_sessions, session_pids

# Debian's postgresql puts each major version's server programs here; the newest installed is used.
PG_BIN = max(
    Path("/usr/lib/postgresql").glob("*/bin"),
    key=lambda path: int(path.parent.name),
    default=Path("/nonexistent"),
)
WORKERS = ("worker-a", "worker-b")
TRIGGERERS = ("triggerer-a", "triggerer-b")
WORKER_CONCURRENCY = 4  # 2 cores: eight task processes at once are plenty


def host_of(name: str) -> str:
    """The host a worker or triggerer stands for: the letter its name ends with."""
    return f"host-{name.rsplit('-', 1)[1]}"


def missing_parts() -> list[str]:
    """What this machine lacks to start the stack (.ci/run installs the Debian packages)."""
    missing = [] if (PG_BIN / "postgres").exists() else ["postgresql"]
    missing += [] if shutil.which("redis-server") else ["redis-server"]
    return missing + [
        f"python module {module}"
        for module in ("psycopg2", "asyncpg", "airflow.providers.celery")
        if importlib.util.find_spec(module) is None
    ]


class ProductionStack(AirflowStack):
    """
    Started by :meth:`start`, stopped by :meth:`stop`; :meth:`kill` SIGKILLs one named process whole.

    :param env: extra environment (connections, poll intervals) for every Airflow process.
    """

    def __init__(self, env: dict[str, str]) -> None:
        super().__init__(env)
        self.pg_port, self.redis_port = free_port(), free_port()
        self.pg_data = Path(tempfile.mkdtemp(prefix="ayrshare-stack-postgres-"))
        database = f"postgresql+psycopg2://postgres@127.0.0.1:{self.pg_port}/airflow"
        self.env.update(
            {
                "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": database,
                "AIRFLOW__CORE__EXECUTOR": "CeleryExecutor",
                "AIRFLOW__CELERY__BROKER_URL": f"redis://127.0.0.1:{self.redis_port}/0",
                "AIRFLOW__CELERY__RESULT_BACKEND": f"db+postgresql+psycopg2://postgres@127.0.0.1:{self.pg_port}/airflow",
                "AIRFLOW__CELERY__WORKER_CONCURRENCY": str(WORKER_CONCURRENCY),
                # A worker takes one task per free slot: a killed worker strands no backlog of messages.
                "AIRFLOW__CELERY__WORKER_PREFETCH_MULTIPLIER": "1",
                # What a dead worker held comes back within a minute instead of Airflow's production defaults
                # (5 minutes without a heartbeat, 10 minutes queued, a day for an unacknowledged message).
                "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT": "30",
                "AIRFLOW__SCHEDULER__TASK_QUEUED_TIMEOUT": "60",
                "AIRFLOW__SCHEDULER__TASK_QUEUED_TIMEOUT_CHECK_INTERVAL": "15",
                "AIRFLOW__CELERY_BROKER_TRANSPORT_OPTIONS__VISIBILITY_TIMEOUT": "60",
                # A triggerer silent for 15 s is dead: another takes its triggers (default 30 s).
                "AIRFLOW__TRIGGERER__TRIGGERER_HEALTH_CHECK_THRESHOLD": "15",
                "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "True",  # the REST calls need no login
                "AIRFLOW__CORE__HOSTNAME_CALLABLE": "tests.process_names.process_name",
                "AIRFLOW__CORE__PARALLELISM": "64",
                "AIRFLOW__CORE__MAX_ACTIVE_TASKS_PER_DAG": "64",
                "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])),
            }
        )
        self.processes: dict[str, subprocess.Popen[bytes]] = {}
        self._commands: dict[str, tuple[list[str], str | None]] = {}
        self._logs: list[IO[bytes]] = []

    # -- start and stop -------------------------------------------------------------------------

    def start(self, timeout: float = 300) -> ProductionStack:
        self._start_postgres()
        self._spawn(
            "redis",
            [
                "redis-server",
                "--port",
                str(self.redis_port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ],
        )
        self._airflow_command(["db", "migrate"])
        self._spawn("api-server", [*self._airflow, "api-server", "--port", str(self.port)])
        self._spawn("scheduler", [*self._airflow, "scheduler"])
        self._spawn("dag-processor", [*self._airflow, "dag-processor"])
        for name in WORKERS:
            self._spawn(
                name,
                [
                    *self._airflow,
                    "celery",
                    "worker",
                    "--celery-hostname",
                    f"{name}@%h",
                    "--skip-serve-logs",
                    "--without-mingle",
                    "--without-gossip",
                ],
                process_name=name,
            )
        for name in TRIGGERERS:
            self._spawn(name, [*self._airflow, "triggerer", "--skip-serve-logs"], process_name=name)
        deadline = time.monotonic() + timeout
        while not (self.healthy() and self._workers_ready()):
            if time.monotonic() > deadline:
                raise RuntimeError(f"the production stack was not healthy in {timeout} s: {self.log_tail()}")
            if exited := [name for name, process in self.processes.items() if process.poll() is not None]:
                raise RuntimeError(f"{exited} exited at start: {self.log_tail()}")
            time.sleep(2)
        return self

    def kill(self, name: str) -> list[int]:
        """SIGKILL the named process and every process of its session (its pool, its tasks); their pids."""
        pids = session_pids({self.processes[name].pid})
        for pid in pids:
            os.kill(pid, signal.SIGKILL)
        kill_sessions({self.processes[name].pid})
        self.processes[name].wait(timeout=10)
        return pids

    def restart(self, name: str) -> None:
        """Start a killed worker or triggerer again, on its host, as a supervisor would."""
        command, process_name = self._commands[name]
        self._spawn(name, command, process_name)

    def alive(self, name: str) -> bool:
        return self.processes[name].poll() is None

    def stop(self) -> None:
        """SIGTERM to every process, then SIGKILL to whatever of their sessions is still alive."""
        for process in self.processes.values():
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 30
        for process in self.processes.values():
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(timeout=max(0.1, deadline - time.monotonic()))
        kill_sessions({process.pid for process in self.processes.values()})
        for process in self.processes.values():
            if process.poll() is None:
                process.kill()
                process.wait(timeout=10)
        for log in self._logs:
            log.close()
        shutil.rmtree(self.pg_data, ignore_errors=True)
        for name in WORKERS + TRIGGERERS:
            shutil.rmtree(self.pg_data.parent / f"{self.pg_data.name}-{host_of(name)}", ignore_errors=True)

    def processes_left(self) -> list[int]:
        """Live pids of every session this stack started (none after :meth:`stop`)."""
        return session_pids({process.pid for process in self.processes.values()})

    def log_tail(self, chars: int = 3000) -> str:
        return "\n".join(
            f"--- {path.name}\n{path.read_text(errors='replace')[-chars:]}"
            for path in sorted(self.home.glob("*.out"))
        )

    def _workers_ready(self) -> bool:
        """Celery logs "<name>@<host> ready." once a worker consumes; the health endpoint does not show workers."""
        return all(
            f"{name}@" in text and " ready." in text
            for name in WORKERS
            for text in [(self.home / f"{name}.out").read_text(errors="replace")]
        )

    # -- parts ----------------------------------------------------------------------------------

    @property
    def _airflow(self) -> list[str]:
        return [sys.executable, "-m", "airflow"]

    def _as_postgres(self) -> list[str]:
        """PostgreSQL refuses to run as root: as root, run its commands as the ``postgres`` user."""
        return ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []

    def _start_postgres(self) -> None:
        if os.geteuid() == 0:
            account = pwd.getpwnam("postgres")
            os.chown(self.pg_data, account.pw_uid, account.pw_gid)
        subprocess.run(
            [
                *self._as_postgres(),
                str(PG_BIN / "initdb"),
                "-D",
                str(self.pg_data / "data"),
                "-U",
                "postgres",
                "--auth=trust",
                "-E",
                "UTF8",
            ],
            check=True,
            capture_output=True,
        )
        self._spawn(
            "postgres",
            [
                *self._as_postgres(),
                str(PG_BIN / "postgres"),
                "-D",
                str(self.pg_data / "data"),
                "-p",
                str(self.pg_port),
                "-k",
                str(self.pg_data),
                "-c",
                "listen_addresses=127.0.0.1",
                "-c",
                "fsync=off",
                "-c",
                "max_connections=300",
            ],
        )
        deadline = time.monotonic() + 60
        while (
            subprocess.run(
                [str(PG_BIN / "pg_isready"), "-h", "127.0.0.1", "-p", str(self.pg_port)], capture_output=True
            ).returncode
            != 0
        ):
            if time.monotonic() > deadline:
                raise RuntimeError(f"PostgreSQL did not start: {self.log_tail()}")
            time.sleep(0.5)
        subprocess.run(
            [
                "psql",
                "-h",
                "127.0.0.1",
                "-p",
                str(self.pg_port),
                "-U",
                "postgres",
                "-c",
                "CREATE DATABASE airflow",
            ],
            check=True,
            capture_output=True,
        )

    def _airflow_command(self, args: list[str]) -> None:
        result = subprocess.run([*self._airflow, *args], env=self.env, capture_output=True, text=True)
        if result.returncode != 0:
            raise RuntimeError(f"airflow {' '.join(args)} failed: {result.stderr[-3000:]}")

    def _spawn(self, name: str, command: list[str], process_name: str | None = None) -> None:
        env = {**self.env, "AYRSHARE_STACK_PROCESS": process_name or name}
        if name in WORKERS + TRIGGERERS:
            host_tmp = self.pg_data.parent / f"{self.pg_data.name}-{host_of(name)}"
            host_tmp.mkdir(exist_ok=True)
            env["TMPDIR"] = str(host_tmp)  # each host its own temp folder: no machine budget shared
        self._commands[name] = (command, process_name)
        log = (self.home / f"{name}.out").open("ab")
        self._logs.append(log)
        self.processes[name] = subprocess.Popen(
            command,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=self.pg_data if name == "postgres" else self.home,
            start_new_session=True,  # its own session: killed whole, checked whole
        )
