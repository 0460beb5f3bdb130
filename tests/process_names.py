"""Airflow's ``[core] hostname_callable`` for the production stack's processes.

All of them run on one machine; each worker and triggerer reports its own name instead, so that a
task instance's ``hostname`` tells which worker ran it and a trigger's triggerer which one holds it.
"""

from __future__ import annotations

import os
import socket


def process_name() -> str:
    return os.environ.get("AYRSHARE_STACK_PROCESS") or socket.getfqdn()
