"""A whole Airflow for tests: what every stack shares, and ``airflow standalone``.

Started on free loopback ports with a throwaway ``AIRFLOW_HOME`` and the example DAGs, and
torn down with its processes' sessions, so that no process outlives the test.
tests/production_stack.py builds the production-shaped stack on the same base.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import requests

REPO = Path(__file__).resolve().parent.parent
ADMIN = "admin"  # the simple auth manager's default user


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def session_pids(session_ids: set[int]) -> list[int]:
    """Live pids of these sessions (a process started with ``start_new_session`` leads one); zombies are dead."""
    result = subprocess.run(["ps", "-e", "-o", "pid=,sid=,stat="], capture_output=True, text=True)
    rows = (line.split() for line in result.stdout.splitlines())
    return [int(pid) for pid, sid, stat in rows if int(sid) in session_ids and not stat.startswith("Z")]


def kill_sessions(session_ids: set[int], timeout: float = 30) -> None:
    """SIGKILL every live process of these sessions until none is left (children may fork meanwhile)."""
    deadline = time.monotonic() + timeout
    while (left := session_pids(session_ids)) and time.monotonic() < deadline:
        for pid in left:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        time.sleep(0.5)


class AirflowStack:
    """
    The parts every test stack shares: a throwaway home, the API on a free loopback port, REST calls.

    :param env: extra environment (connections, poll intervals) for every Airflow process.
    """

    def __init__(self, env: dict[str, str]) -> None:
        self.home = Path(tempfile.mkdtemp(prefix="ayrshare-stack-airflow-"))
        self.port = free_port()
        self.url = f"http://localhost:{self.port}"
        bin_dir = str(Path(sys.executable).parent)
        self.env = {
            **os.environ,
            **env,
            "PATH": f"{bin_dir}:{os.environ.get('PATH', '')}",  # Airflow starts `airflow` subcommands
            "AIRFLOW_HOME": str(self.home),
            "AIRFLOW__CORE__DAGS_FOLDER": str(REPO / "example_dags"),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__API__PORT": str(self.port),
            "AIRFLOW__API__HOST": "127.0.0.1",
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{self.url}/execution/",
            "AIRFLOW__CORE__TEST_CONNECTION": "Enabled",
            "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(free_port()),
            "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": str(free_port()),
            "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "5",
            "AIRFLOW__DAG_PROCESSOR__MIN_FILE_PROCESS_INTERVAL": "5",  # an unpaused watcher's trigger is registered sooner
            "AIRFLOW__TRIGGERER__TRIGGERER_HEALTH_CHECK_THRESHOLD": "10",  # a new triggerer takes over sooner (30 s)
            "AIRFLOW__SCHEDULER__DAG_DIR_LIST_INTERVAL": "5",
        }
        self.session = requests.Session()

    def api(self, method: str, path: str, **kwargs: Any) -> Any:
        """
        One REST call. A read or a PATCH (both idempotent here) is asked again, 1 s apart and 10
        tries, on a 5xx, a timeout or a refused connection, as a person clicks again: on SQLite the
        API server can meet "database is locked" while the scheduler writes (CI met it on a GET of
        asset events). A PATCH answered 409 after a 5xx had landed: the state is read. A POST is
        sent once (it may have landed): :meth:`post_once` checks before sending it again.
        """
        tries = 1 if method == "POST" else 10
        for attempt in range(tries):
            last = attempt == tries - 1
            try:
                answer = self.session.request(method, f"{self.url}/api/v2{path}", timeout=30, **kwargs)
            except (requests.Timeout, requests.ConnectionError):
                if last:
                    raise
                time.sleep(1)
                continue
            if answer.status_code == 409 and method == "PATCH" and attempt:
                return self.api("GET", path)
            if answer.status_code < 500 or last:
                break
            time.sleep(1)
        answer.raise_for_status()
        return answer.json() if answer.content else None

    def post_once(self, path: str, json: dict[str, Any], landed: str) -> Any:
        """
        POST ``json`` to ``path``, asked again on a 5xx, a timeout or a refused connection only when
        a GET of ``landed`` shows that the earlier try did not land (so never created twice).
        """
        for _ in range(9):
            try:
                return self.api("POST", path, json=json)
            except (requests.Timeout, requests.ConnectionError, requests.HTTPError) as err:
                if isinstance(err, requests.HTTPError) and err.response.status_code < 500:
                    raise
                time.sleep(1)
                try:
                    return self.api("GET", landed)
                except requests.HTTPError as missing:
                    if missing.response.status_code != 404:
                        raise
        return self.api("POST", path, json=json)

    def healthy(self) -> bool:
        try:
            health = requests.get(f"{self.url}/api/v2/monitor/health", timeout=5).json()
        except (requests.RequestException, ValueError):
            return False
        return all(
            health.get(part, {}).get("status") == "healthy"
            for part in ("scheduler", "triggerer", "dag_processor")
        )

    def wait_for_dag(self, dag_id: str, timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            answer = self.session.get(f"{self.url}/api/v2/dags/{dag_id}", timeout=10)
            if answer.status_code == 200:
                return
            time.sleep(1)
        raise RuntimeError(f"the DAG processor never found {dag_id}")


class Standalone(AirflowStack):
    """``airflow standalone``: API server, scheduler, DAG processor and triggerer, LocalExecutor, SQLite."""

    def __init__(self, env: dict[str, str]) -> None:
        # 4 task runs of a DAG at once, as docs/production.md tells standalone users: Airflow 3 hides
        # the metadata database's URL from DAG files, so the recovery DAGs cannot cap themselves there.
        super().__init__({"AIRFLOW__CORE__MAX_ACTIVE_TASKS_PER_DAG": "4", **env})
        self.log = self.home / "standalone.log"
        self.process: subprocess.Popen[bytes] | None = None
        # Parts started beside standalone's (restart_triggerer(), start_ended_parts()).
        self.started_beside: list[subprocess.Popen[bytes]] = []
        self.restarts: Counter[str] = Counter()  # by part, by start_ended_parts()
        self.admin_password = ""

    def start(self, timeout: float = 240) -> Standalone:
        with self.log.open("wb") as out:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "airflow", "standalone"],
                env=self.env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group, killed whole at the end
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"airflow standalone exited: {self.log.read_text()[-3000:]}")
            if self.healthy():
                break
            time.sleep(1)
        else:
            raise RuntimeError(
                f"airflow standalone was not healthy in {timeout} s: {self.log.read_text()[-3000:]}"
            )
        # The simple auth manager's admin, with the password it generated at start.
        passwords = json.loads((self.home / "simple_auth_manager_passwords.json.generated").read_text())
        self.admin_password = passwords[ADMIN]
        answer = requests.post(
            f"{self.url}/auth/token", json={"username": ADMIN, "password": self.admin_password}, timeout=10
        )
        answer.raise_for_status()
        self.session.headers["Authorization"] = f"Bearer {answer.json()['access_token']}"
        return self

    def _sessions(self) -> set[int]:
        assert self.process is not None
        return {self.process.pid, *(extra.pid for extra in self.started_beside)}

    def _pids_of(self, part: str) -> list[int]:
        """Live pids of this part of the stack (``scheduler``, ``triggerer``, ``dag-processor``)."""
        return [pid for pid in session_pids(self._sessions()) if part in _cmdline(pid).split()]

    def start_ended_parts(self) -> list[str]:
        """
        Start again the parts that ended, as a deployment's process supervisor does: on SQLite,
        Airflow's scheduler, triggerer and DAG processor end when a write of their own loop waits
        past the busy timeout (docs: production, "What SQLite carries"), and ``airflow standalone``
        does not start them again. The parts started; a part that ends after 3 restarts is a failure.
        """
        ended = [part for part in ("scheduler", "triggerer", "dag-processor") if not self._pids_of(part)]
        for part in ended:
            self.restarts[part] += 1
            if self.restarts[part] > 3:
                raise RuntimeError(f"the {part} ended again after 3 restarts; see the logs in {self.home}")
            self._start_beside(part)
        return ended

    def _start_beside(self, part: str) -> None:
        command = [sys.executable, "-m", "airflow", part] + (
            ["--skip-serve-logs"] if part == "triggerer" else []
        )
        with (self.home / f"{part}-{len(self.started_beside) + 1}.log").open("wb") as log:
            self.started_beside.append(
                subprocess.Popen(
                    command, env=self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
                )
            )

    def restart_triggerer(self) -> list[int]:
        """SIGKILL the running triggerer and its children, then start a new one; the killed pids."""
        tree = {
            int(pid): int(ppid)
            for pid, ppid in (
                line.split()
                for line in subprocess.run(
                    ["ps", "-e", "-o", "pid=,ppid="], capture_output=True, text=True
                ).stdout.splitlines()
            )
        }
        roots = self._pids_of("triggerer")
        killed = [pid for pid in tree if any(_descends(pid, root, tree) for root in roots)]
        for pid in killed:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        self._start_beside("triggerer")
        return killed

    def stop(self) -> None:
        """SIGTERM to the process group, then SIGKILL to whatever of its session is still alive."""
        for extra in self.started_beside:
            extra.terminate()
        kill_sessions({extra.pid for extra in self.started_beside})
        if self.process is None:
            return
        try:
            os.killpg(self.process.pid, signal.SIGTERM)
            self.process.wait(timeout=30)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            pass
        kill_sessions(
            {self.process.pid}
        )  # children that made process groups of their own stay in the session
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)

    def processes_left(self) -> list[int]:
        """Live pids of the standalone's session (none after :meth:`stop`); zombies are already dead."""
        if self.process is None:
            return []
        return session_pids(self._sessions())


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def _descends(pid: int, root: int, parents: dict[int, int]) -> bool:
    while pid not in (root, 0, 1):
        pid = parents.get(pid, 0)
    return pid == root
