"""The demo's person: answers the recovery's question in Airflow, through its REST API, as someone would in the UI.

``airflow dags test`` keeps a run whose person step waits for an answer until one is recorded
from outside (Airflow 3.3: the task is parked in ``awaiting_input``; 3.1 and 3.2: its trigger
polls for the answer). So the demo runs Airflow's API server beside it, on the same metadata DB,
and this person logs in, reads the request (Browse > Required Actions in the UI), relinks
Facebook (in the emulator, a relinked network publishes on retry) and ticks the posts that only
needed that relink; the others stay, theirs to fix another day.
"""

from __future__ import annotations

import json
import os
import secrets
import socket
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import requests

PERSON = "demo-person"
RELINK_CODE = 161  # Facebook authorization expired: the one fix this person makes
#: SQLite's wait for its lock, for both processes on the demo's one file: the default 5 s can
#: answer "database is locked" while ``dags test`` and the API server write at once.
SQLITE_CONNECT_ARGS = {"timeout": 60}


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class DemoPerson:
    """
    Airflow's API server beside ``airflow dags test``, and a person who answers its HITL requests.

    :param env: the demo's Airflow environment (its ``AIRFLOW_HOME`` and metadata DB), with
        :meth:`sqlite_env` (``dags test`` needs it too).
    :param home: that ``AIRFLOW_HOME``, where the API server's log and the person's password go.
    :param dag_id: the DAG whose requests the person answers.
    :param relinked: the ids of the posts whose cause the person fixes (a Facebook relink).
    """

    def __init__(self, env: dict[str, str], home: Path, dag_id: str, relinked: set[str]) -> None:
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.dag_id = dag_id
        self.relinked = relinked
        self.home = home
        self.password = secrets.token_urlsafe(16)
        self.env = {
            **env,
            "AIRFLOW__API__HOST": "127.0.0.1",
            "AIRFLOW__API__PORT": str(self.port),
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": f"{PERSON}:admin",
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(home / "passwords.json"),
        }
        self.answers: list[dict[str, Any]] = []
        self._server: subprocess.Popen[bytes] | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._answer_requests, name="demo-person", daemon=True)

    @staticmethod
    def sqlite_env() -> dict[str, str]:
        """
        The settings that give both processes the longer SQLite wait (:data:`SQLITE_CONNECT_ARGS`),
        which Airflow imports by name: so this folder goes on their ``PYTHONPATH``.
        """
        path = f"{__name__}.SQLITE_CONNECT_ARGS"
        here = str(Path(__file__).resolve().parent)
        return {
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONNECT_ARGS": path,
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONNECT_ARGS_ASYNC": path,
            "PYTHONPATH": os.pathsep.join(filter(None, [here, os.environ.get("PYTHONPATH")])),
        }

    def __enter__(self) -> DemoPerson:
        (self.home / "passwords.json").write_text(json.dumps({PERSON: self.password}))
        with (self.home / "api-server.log").open("wb") as out:
            self._server = subprocess.Popen(
                [sys.executable, "-m", "airflow", "api-server", "--port", str(self.port)],
                env=self.env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(timeout=10)
        if self._server is not None:
            self._server.terminate()
            try:
                self._server.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self._server.kill()

    def _answer_requests(self) -> None:
        session = requests.Session()
        while not self._stop.is_set():
            try:
                if "Authorization" not in session.headers:
                    token = session.post(
                        f"{self.url}/auth/token",
                        json={"username": PERSON, "password": self.password},
                        timeout=5,
                    )
                    token.raise_for_status()
                    session.headers["Authorization"] = f"Bearer {token.json()['access_token']}"
                pending = session.get(
                    f"{self.url}/api/v2/dags/{self.dag_id}/dagRuns/~/hitlDetails",
                    params={"response_received": "false"},
                    timeout=10,
                )
                pending.raise_for_status()
                for request in pending.json()["hitl_details"]:
                    # As a person would, once the task waits for the answer: an answer recorded
                    # while the task is still on its way to awaiting_input is never seen by
                    # ``dags test`` (Airflow 3.3.2), which then waits for ever.
                    if request["task_instance"].get("state") == "awaiting_input":
                        self._answer(session, request)
            except (requests.RequestException, KeyError, ValueError):
                pass  # the API server is still starting: look again
            self._stop.wait(1)

    def _answer(self, session: requests.Session, request: dict[str, Any]) -> None:
        """Tick each post the person fixed; "Retry none" when they fixed none."""
        # Options read "Retry <id> (<networks>)" (ReviewPostsOperator's option_for).
        chosen = [
            option
            for option in request["options"]
            if any(option.startswith(f"Retry {p} (") for p in self.relinked)
        ]
        task = request["task_instance"]
        answer = session.patch(
            f"{self.url}/api/v2/dags/{self.dag_id}/dagRuns/{task['dag_run_id']}/taskInstances/"
            f"{task['task_id']}/{task['map_index']}/hitlDetails",
            json={"chosen_options": chosen or ["Retry none"]},
            timeout=10,
        )
        answer.raise_for_status()
        self.answers.append({"options": request["options"], "chosen": chosen or ["Retry none"]})


def relinkable(posts: Any) -> set[str]:
    """The ids of the emulator's failed posts whose every error a Facebook relink fixes."""
    return {
        post.id
        for post in posts
        if post.record.get("status") == "error"
        and post.record.get("errors")
        and all(error.get("code") == RELINK_CODE for error in post.record["errors"])
    }
