"""A profile's budget shared by the processes of one machine: a small memory-mapped file under its temp folder.

A recovery spreads its calls over many processes: a fresh process per task, and a triggerer with
hundreds of waits. They pool what they know in one file per profile, so that the first call of a
fresh task does not go out blind. The triggerer's event loop never blocks on the file's lock:
:meth:`MachineBudget._aapply` tries the lock and, when another process holds it, yields to the loop
and tries again. The lock is held for a few microseconds (a handful of numbers in shared memory, no
file I/O).
"""

from __future__ import annotations

import asyncio
import fcntl
import logging
import mmap
import os
import stat
import tempfile
import threading
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

from ayrshare_provider.rate_budget.window import RECORD_SIZE, ProfileBudget, changed

if TYPE_CHECKING:
    from collections.abc import Callable

    from ayrshare_provider.rate_budget.window import _Window

_T = TypeVar("_T")
_log = logging.getLogger(__name__)

# How long an async caller waits before it tries a lock another process holds.
_LOCK_RETRY = 0.001


class MachineBudget(ProfileBudget):
    """
    A profile's window in a file the processes of this machine share.

    :param path: the file; None keeps the window in this process only.
    """

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self._lock = threading.Lock()  # the file lock is per process; this one orders the threads
        self._pid = 0
        self._fd = -1
        self._memory: mmap.mmap | None = None

    def _map(self) -> mmap.mmap:
        """
        The shared memory, opened once per process (a forked child opens its own: flock is per open
        file). A file that cannot be opened safely leaves this process a budget of its own.
        """
        if self._memory is None or self._pid != os.getpid():
            self._memory = None
            if self.path is not None:
                try:
                    self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o600)
                    if os.fstat(self._fd).st_size < RECORD_SIZE:
                        os.ftruncate(self._fd, RECORD_SIZE)  # zeros: read as a new file
                    self._memory = mmap.mmap(self._fd, RECORD_SIZE)
                except OSError as err:
                    if self._fd >= 0:
                        os.close(self._fd)
                    self._fd = -1
                    _log.warning(
                        "The rate budget file %s cannot be used (%s): this process keeps its own",
                        self.path,
                        err,
                    )
                    self.path = None
            if self._memory is None:
                self._memory = mmap.mmap(-1, RECORD_SIZE)
            self._pid = os.getpid()
        return self._memory

    def _lock_files(self, blocking: bool) -> bool:
        """Take the thread lock, then the file lock; False (holding neither) when ``blocking`` is off and one is held."""
        if not self._lock.acquire(blocking=blocking):
            return False
        try:
            self._map()
            if self.path is not None:
                fcntl.flock(self._fd, fcntl.LOCK_EX if blocking else fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self._lock.release()
            return False
        except BaseException:
            self._lock.release()
            raise
        return True

    def _unlock_files(self) -> None:
        if self.path is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
        self._lock.release()

    def _apply(self, change: Callable[[_Window], _T]) -> _T:
        """Apply ``change`` to the window under both locks, waiting for them (the sync path: a task's process)."""
        self._lock_files(blocking=True)
        try:
            return self._change(change)
        finally:
            self._unlock_files()

    async def _aapply(self, change: Callable[[_Window], _T]) -> _T:
        """Apply ``change`` without blocking the event loop: while a lock is held, yield to the loop and try again."""
        while not self._lock_files(blocking=False):
            await asyncio.sleep(_LOCK_RETRY)
        try:
            return self._change(change)
        finally:
            self._unlock_files()

    def _change(self, change: Callable[[_Window], _T]) -> _T:
        memory = self._map()
        result, after = changed(change, memory[:RECORD_SIZE])
        if after is not None:
            memory[:RECORD_SIZE] = after
        return result


def machine_budget_dir() -> Path | None:
    """This user's private folder for the budgets (made so when new); None (a budget per process) when it is not."""
    folder = Path(tempfile.gettempdir()) / f"airflow-provider-ayrshare-{os.getuid()}"
    try:
        folder.mkdir(mode=0o700, exist_ok=True)
        found = folder.lstat()  # not a link to elsewhere, this user's, and only this user's
    except OSError:
        return None
    if not stat.S_ISDIR(found.st_mode) or found.st_uid != os.getuid() or stat.S_IMODE(found.st_mode) != 0o700:
        return None
    return folder
