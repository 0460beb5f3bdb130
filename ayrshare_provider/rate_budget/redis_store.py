"""A profile's budget shared by every host of a deployment: one Redis key, changed in a transaction.

Workers and triggerers on several machines (Celery workers on many hosts, KubernetesExecutor pods)
share no temp folder, so a budget per machine would let N hosts send N times the limit. Here the
window is one Redis key per profile, read and written in a ``WATCH``/``MULTI`` transaction (tried
again when another client changed it in between): every host counts every claim. The same window
logic runs as on one machine (:mod:`~ayrshare_provider.rate_budget.window`); the hosts' wall clocks
are compared with one another, so they should be NTP-synced, as Airflow's own scheduling assumes.

Within a process, one transaction at a time per profile (a lock for the process's threads, and
one per event loop): hundreds of waits in a triggerer then contend with the other processes only, not with one
another, and a transaction is tried again only when another process changed the window meanwhile.

When Redis cannot be reached, the process falls back to its machine's budget, says so once, and
tries Redis again a minute later: calls never wait on a broken store, and the machine's budget
still slows down when the server's count shows others' calls.
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
import time
import weakref
from typing import TYPE_CHECKING, Any, TypeVar

from ayrshare_provider.rate_budget.window import ProfileBudget, changed

if TYPE_CHECKING:
    from collections.abc import Callable

    from ayrshare_provider.rate_budget.machine import MachineBudget
    from ayrshare_provider.rate_budget.window import _Window

_T = TypeVar("_T")
_log = logging.getLogger(__name__)

# A window's key outlives the longest window believed (an hour) with room: an idle profile leaves nothing behind.
_KEY_SECONDS = 7200
# After Redis failed, the machine's budget is used for this long before Redis is tried again.
_RETRY_REDIS_AFTER = 60.0
# Each call to Redis gives up after this long: a store that hangs is a store that failed.
_REDIS_TIMEOUT = 2.0


class RedisBudget(ProfileBudget):
    """
    A profile's window in Redis, shared by every host that names the same Redis.

    :param url: the Redis URL (``redis://host:6379/0``, ``rediss://`` for TLS).
    :param key: the profile's key there (a digest: no Profile Key in clear).
    :param machine: the machine's budget of the same profile, used while Redis cannot be reached.
    """

    def __init__(self, url: str, key: str, machine: MachineBudget) -> None:
        self.url = url
        self.key = key
        self.machine = machine
        self._client: Any = None
        self._client_pid = 0
        self._lock = threading.Lock()
        self._async_clients: weakref.WeakKeyDictionary[
            asyncio.AbstractEventLoop, tuple[Any, asyncio.Lock]
        ] = weakref.WeakKeyDictionary()
        self._failed_at = 0.0

    def _redis_down(self) -> bool:
        return time.monotonic() - self._failed_at < _RETRY_REDIS_AFTER if self._failed_at else False

    def _fell_back(self, err: Exception) -> None:
        self._failed_at = time.monotonic()
        _log.warning(
            "The shared rate budget in Redis cannot be used (%s): this machine's budget counts for %d s",
            type(err).__name__,
            _RETRY_REDIS_AFTER,
        )

    def _sync_client(self) -> Any:
        if self._client is None or self._client_pid != os.getpid():  # a forked child opens its own
            import redis

            self._client = _checked(
                redis.Redis.from_url(
                    self.url, socket_timeout=_REDIS_TIMEOUT, socket_connect_timeout=_REDIS_TIMEOUT
                )
            )
            self._client_pid = os.getpid()
        return self._client

    def _async_client(self) -> tuple[Any, asyncio.Lock]:
        loop = asyncio.get_running_loop()
        if loop not in self._async_clients:  # a client belongs to the loop it connected in
            import redis.asyncio

            client = _checked(
                redis.asyncio.Redis.from_url(
                    self.url, socket_timeout=_REDIS_TIMEOUT, socket_connect_timeout=_REDIS_TIMEOUT
                )
            )
            self._async_clients[loop] = (client, asyncio.Lock())
        return self._async_clients[loop]

    def _apply(self, change: Callable[[_Window], _T]) -> _T:
        import redis

        if self._redis_down():
            return self.machine._apply(change)

        def transaction(pipe: Any) -> _T:
            result, after = changed(change, pipe.get(self.key))
            pipe.multi()
            if after is not None:
                pipe.set(self.key, after, ex=_KEY_SECONDS)
            return result

        try:
            with self._lock:
                return self._sync_client().transaction(transaction, self.key, value_from_callable=True)
        except (redis.RedisError, OSError) as err:
            self._fell_back(err)
            return self.machine._apply(change)

    async def _aapply(self, change: Callable[[_Window], _T]) -> _T:
        import redis

        if self._redis_down():
            return await self.machine._aapply(change)

        async def transaction(pipe: Any) -> _T:
            result, after = changed(change, await pipe.get(self.key))
            pipe.multi()
            if after is not None:
                pipe.set(self.key, after, ex=_KEY_SECONDS)
            return result

        client, lock = self._async_client()
        try:
            async with lock:
                return await client.transaction(transaction, self.key, value_from_callable=True)
        except (redis.RedisError, OSError) as err:
            self._fell_back(err)
            return await self.machine._aapply(change)


def _checked(client: Any) -> Any:
    """The client, unless its URL asks for answers decoded to text: the window is stored as bytes."""
    if client.connection_pool.connection_kwargs.get("decode_responses"):
        from ayrshare_provider.exceptions import AyrshareConfigError

        raise AyrshareConfigError(
            "[ayrshare] rate_budget_url must not set decode_responses: the rate budget is stored as bytes"
        )
    return client
