"""A whole Airflow (``airflow standalone``: API server, scheduler, DAG processor, triggerer) for tests.

Started on free loopback ports with a throwaway ``AIRFLOW_HOME`` and the example DAGs, and
torn down with its whole process group, so that no process outlives the test.
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
from pathlib import Path
from typing import Any

import requests

REPO = Path(__file__).resolve().parent.parent
ADMIN = "admin"  # the simple auth manager's default user


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class Standalone:
    """
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
            "PATH": f"{bin_dir}:{os.environ.get('PATH', '')}",  # standalone starts `airflow` subcommands
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
            "AIRFLOW__SCHEDULER__DAG_DIR_LIST_INTERVAL": "5",
        }
        self.log = self.home / "standalone.log"
        self.process: subprocess.Popen[bytes] | None = None
        self.admin_password = ""
        self.session = requests.Session()

    def start(self, timeout: float = 240) -> Standalone:
        with self.log.open("wb") as out:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "airflow", "standalone"], env=self.env, stdout=out, stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group, killed whole at the end
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"airflow standalone exited: {self.log.read_text()[-3000:]}")
            try:
                health = requests.get(f"{self.url}/api/v2/monitor/health", timeout=5).json()
                if all(health.get(part, {}).get("status") == "healthy" for part in ("scheduler", "triggerer", "dag_processor")):
                    break
            except (requests.RequestException, ValueError):
                pass
            time.sleep(1)
        else:
            raise RuntimeError(f"airflow standalone was not healthy in {timeout} s: {self.log.read_text()[-3000:]}")
        # The simple auth manager's admin, with the password it generated at start.
        passwords = json.loads((self.home / "simple_auth_manager_passwords.json.generated").read_text())
        self.admin_password = passwords[ADMIN]
        answer = requests.post(f"{self.url}/auth/token", json={"username": ADMIN, "password": self.admin_password}, timeout=10)
        answer.raise_for_status()
        self.session.headers["Authorization"] = f"Bearer {answer.json()['access_token']}"
        return self

    def api(self, method: str, path: str, **kwargs: Any) -> Any:
        answer = self.session.request(method, f"{self.url}/api/v2{path}", timeout=30, **kwargs)
        answer.raise_for_status()
        return answer.json() if answer.content else None

    def wait_for_dag(self, dag_id: str, timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            answer = self.session.get(f"{self.url}/api/v2/dags/{dag_id}", timeout=10)
            if answer.status_code == 200:
                return
            time.sleep(1)
        raise RuntimeError(f"the DAG processor never found {dag_id}")

    def stop(self) -> None:
        """SIGTERM to the process group, then SIGKILL to whatever of its session is still alive."""
        if self.process is None:
            return
        try:
            os.killpg(self.process.pid, signal.SIGTERM)
            self.process.wait(timeout=30)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            pass
        deadline = time.monotonic() + 30
        while (left := self.processes_left()) and time.monotonic() < deadline:
            for pid in left:  # children that made process groups of their own stay in the session
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            time.sleep(0.5)
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)

    def processes_left(self) -> list[int]:
        """Live pids of the standalone's session (none after :meth:`stop`); zombies are already dead."""
        if self.process is None:
            return []
        result = subprocess.run(["ps", "-e", "-o", "pid=,sid=,stat="], capture_output=True, text=True)
        rows = (line.split() for line in result.stdout.splitlines())
        return [int(pid) for pid, sid, stat in rows if int(sid) == self.process.pid and not stat.startswith("Z")]
