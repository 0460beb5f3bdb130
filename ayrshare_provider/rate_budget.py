"""One rate-limit budget per Ayrshare profile, shared by every hook on this machine that acts for it.

Ayrshare counts requests per User Profile in a fixed window (300 per 5 minutes) and suspends a
profile after 1,000 answers 429 in a day. A recovery spreads its calls over many processes: a
fresh process per task, and a triggerer with hundreds of waits. Each answer's ``x-ratelimit-*``
headers carry the server's count; the processes of one machine pool that knowledge in a small
locked file and count each call as they send it, so that together they stop just short of the
limit instead of each finding out on its own (the first call of a fresh task would otherwise go
out blind). Calls from other machines or other apps show up in the next answer's count; the
headroom leaves room for the few that are in flight meanwhile.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import tempfile
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Iterator

# Wake this long after the announced reset, so that the first call surely lands in the new window.
_RESET_MARGIN = 0.25
# Two answers whose announced resets are this close describe the same window.
_SAME_WINDOW = 1.0


def reset_seconds(headers: Any) -> float | None:
    """Seconds until the rate-limit window resets, from ``x-ratelimit-reset`` (milliseconds)."""
    try:
        reset_ms = float(headers.get("x-ratelimit-reset"))
    except (TypeError, ValueError):
        return None
    if reset_ms > 1e12:  # an epoch in ms, not a duration
        reset_ms -= time.time() * 1000
    return max(0.0, reset_ms / 1000)


class ProfileBudget:
    """
    What this machine knows of one profile's window: the server's latest count plus the calls sent since.

    :param path: the file the processes of this machine share it in; None keeps it in this process only.
    """

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._memory: dict[str, Any] = {}

    @contextlib.contextmanager
    def _state(self) -> Iterator[dict[str, Any]]:
        """The shared state, locked for this process and every other one; changes are written back."""
        with self._lock:
            if self.path is None:
                yield self._memory
                return
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX)
                raw = os.read(fd, 4096)
                try:
                    state = json.loads(raw) if raw else {}
                except ValueError:
                    state = {}  # a torn write by a killed process: start from what the next answer says
                before = dict(state)
                yield state
                if state != before:
                    data = json.dumps(state).encode()
                    os.lseek(fd, 0, os.SEEK_SET)
                    os.write(fd, data)
                    os.ftruncate(fd, len(data))
            finally:
                os.close(fd)  # releases the lock

    def take(self, headroom: float, fallback: float) -> tuple[float, bool]:
        """
        Claim one call of the window: ``(0, False)`` to go now, or ``(seconds to wait first, first waiter?)``.

        :param headroom: the share of the window's limit to use.
        :param fallback: the wait when the window is used up but its end was not announced.
        """
        with self._state() as state:
            now = time.time()
            reset_at, limit, count = state.get("reset_at"), state.get("limit"), state.get("count", 0)
            if reset_at is not None and now >= reset_at:
                state.update(count=0, reset_at=None)  # a new window
                reset_at, count = None, 0
            if limit is None or count < limit * headroom:
                state["count"] = count + 1
                return 0.0, False
            first = state.get("announced") != reset_at
            state["announced"] = reset_at
            return (fallback if reset_at is None else reset_at - now), first

    def observe(self, headers: Any) -> None:
        """Learn the window's state from an answer's ``x-ratelimit-count``, ``-max`` and ``-reset``."""
        try:
            count, limit = int(headers.get("x-ratelimit-count")), int(headers.get("x-ratelimit-max"))
        except (TypeError, ValueError):
            return
        reset_in = reset_seconds(headers)
        with self._state() as state:
            known, known_reset = state.get("count", 0), state.get("reset_at")
            state["limit"] = limit
            if reset_in is None:
                state["count"] = max(known, count)
                return
            reset_at = time.time() + reset_in + _RESET_MARGIN
            if known_reset is None:
                # The first answer since the window turned: the calls counted meanwhile stand.
                state.update(reset_at=reset_at, count=max(known, count))
            elif reset_at > known_reset + _SAME_WINDOW:
                state.update(reset_at=reset_at, count=count)  # a newer window than this machine knew of
            elif reset_at >= known_reset - _SAME_WINDOW:
                state["count"] = max(known, count)  # the same window: the server's count never goes down
            # else: a late answer from a window that has ended; it says nothing of this one


_budgets: dict[str, ProfileBudget] = {}
_budgets_lock = threading.Lock()


def _shared_dir() -> Path | None:
    folder = Path(tempfile.gettempdir()) / f"airflow-provider-ayrshare-{os.getuid()}"
    try:
        folder.mkdir(mode=0o700, exist_ok=True)
    except OSError:
        return None  # no writable temp dir: this process keeps its own budget
    return folder


def budget_for(origin: str, profile_key: str | None) -> ProfileBudget:
    """
    The budget of one profile at one API origin, shared by the processes of this machine.

    :param origin: the API's base URL.
    :param profile_key: the Profile Key in use ("" or None for the Primary Profile); kept only as a digest.
    """
    digest = hashlib.sha256(f"{origin}\0{profile_key or ''}".encode()).hexdigest()[:32]
    with _budgets_lock:
        if digest not in _budgets:
            folder = _shared_dir()
            _budgets[digest] = ProfileBudget(folder / f"{digest}.json" if folder else None)
        return _budgets[digest]
