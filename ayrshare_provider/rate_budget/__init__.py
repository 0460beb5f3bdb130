"""
One rate-limit budget per Ayrshare profile, shared by every hook that acts for it.

Where it is shared: by the processes of one machine (:mod:`.machine`, a memory-mapped file), or by
every host of the deployment when a Redis is named (:mod:`.redis_store`): the ``[ayrshare]
rate_budget_url`` setting, else the Celery broker when it is a Redis (a Celery deployment's hosts
all reach it). ``rate_budget_url = local`` keeps the budget per machine. How a window is counted:
:mod:`.window`.
"""

from __future__ import annotations

import hashlib
import threading

from ayrshare_provider.exceptions import AyrshareConfigError
from ayrshare_provider.rate_budget.machine import MachineBudget, machine_budget_dir
from ayrshare_provider.rate_budget.window import Claim, ProfileBudget, reset_seconds

__all__ = ["Claim", "MachineBudget", "ProfileBudget", "budget_for", "reset_seconds", "shared_store_url"]

_REDIS_SCHEMES = ("redis://", "rediss://", "unix://")
#: The value of ``[ayrshare] rate_budget_url`` that keeps each machine's budget its own.
LOCAL = "local"

_budgets: dict[tuple[str, str | None], ProfileBudget] = {}
_budgets_lock = threading.Lock()


def shared_store_url() -> str | None:
    """
    The Redis every host shares the budgets in, or None (each machine its own).

    ``[ayrshare] rate_budget_url`` when set (``local``: None); else the Celery broker's URL when
    the executor is Celery's and its broker is a Redis.
    """
    from airflow.providers.common.compat.sdk import conf

    configured = (conf.get("ayrshare", "rate_budget_url", fallback="") or "").strip()
    if configured.lower() == LOCAL:
        return None
    if configured:
        if not _redis_installed():
            raise AyrshareConfigError(
                "[ayrshare] rate_budget_url names a Redis, but the redis package is not installed: "
                "pip install 'airflow-provider-ayrshare[redis]'"
            )
        return configured
    if "celery" not in (conf.get("core", "executor", fallback="") or "").lower():
        return None
    broker = (conf.get("celery", "broker_url", fallback="") or "").strip()
    return broker if broker.startswith(_REDIS_SCHEMES) and _redis_installed() else None


def _redis_installed() -> bool:
    import importlib.util

    return importlib.util.find_spec("redis") is not None


def budget_for(origin: str, profile_key: str | None) -> ProfileBudget:
    """
    The budget of one profile at one API origin: every host's when a Redis is shared, else this machine's.

    :param origin: the API's base URL.
    :param profile_key: the Profile Key in use ("" or None for the Primary Profile); kept only as a digest.
    """
    digest = hashlib.sha256(f"{origin}\0{profile_key or ''}".encode()).hexdigest()[:32]
    url = shared_store_url()
    with _budgets_lock:
        if (digest, url) not in _budgets:
            folder = machine_budget_dir()
            machine = MachineBudget(folder / f"{digest}.bin" if folder else None)
            budget: ProfileBudget = machine
            if url:
                from ayrshare_provider.rate_budget.redis_store import RedisBudget

                budget = RedisBudget(url, f"airflow-provider-ayrshare:budget:{digest}", machine)
            _budgets[(digest, url)] = budget
        return _budgets[(digest, url)]
