"""SQLite's wait for its lock in the bench's Airflow stacks, which Airflow imports by name.

Two hundred task processes write to one SQLite file: the default 5 s wait can answer "database is
locked". ``env()`` gives Airflow the name of :data:`CONNECT_ARGS` and the repository on its path.
"""

from __future__ import annotations

import os
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
CONNECT_ARGS = {"timeout": 60}


def env() -> dict[str, str]:
    name = f"{__name__}.CONNECT_ARGS"
    return {
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONNECT_ARGS": name,
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONNECT_ARGS_ASYNC": name,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])),
    }
