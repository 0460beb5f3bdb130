"""One rate-limit budget per Ayrshare profile, shared by every hook on this machine that acts for it.

Ayrshare counts requests per User Profile in a fixed window (300 per 5 minutes) and suspends a
profile after 1,000 answers 429 in a day. A recovery spreads its calls over many processes: a
fresh process per task, and a triggerer with hundreds of waits. Each answer's ``x-ratelimit-*``
headers carry the server's count; the processes of one machine pool that knowledge in a small
memory-mapped file and count each call as they claim it, so that together they stop just short of
the limit instead of each finding out on its own (the first call of a fresh task would otherwise
go out blind). Calls from other machines or other apps show up in the next answer's count; the
headroom leaves room for the few that are in flight meanwhile.

Answers arrive late and out of order (hundreds of waits share one event loop), so no answer ever
lowers the count of a window: the count starts again only when the window's announced end has
passed, and an answer sent before that end says nothing of the next window.

The triggerer's event loop never blocks on the file's lock: :meth:`ProfileBudget.atake` and
:meth:`ProfileBudget.asettle` try the lock and, when another process holds it, yield to the
loop and try again. The lock is held for a few microseconds (a handful of numbers in shared
memory, no file I/O).
"""

from __future__ import annotations

import asyncio
import fcntl
import hashlib
import logging
import math
import mmap
import operator
import os
import stat
import struct
import tempfile
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple, TypeVar

if TYPE_CHECKING:
    from collections.abc import Callable

_T = TypeVar("_T")
_log = logging.getLogger(__name__)

# Wake this long after the announced reset, so that the first call surely lands in the new window.
_RESET_MARGIN = 0.25
# An answer whose reset comes this close after the end of the window that just ended belongs to it
# (it was sent before that end and came back late): at least this, at most the longest an answer
# can be late, and in between half a window.
_SAME_WINDOW = 1.0
_LATEST_ANSWER = 60.0
# Ayrshare's window, for answers that announce a limit but no reset, and the longest reset believed.
_DEFAULT_WINDOW = 300.0
_LONGEST_WINDOW = 3600.0
# How long an async caller waits before it tries a lock another process holds.
_LOCK_RETRY = 0.001
# Without a known limit, one call at a time; a call that neither ended nor came back within this
# many seconds (its process died) no longer holds the others back.
_PROBE_TIMEOUT = 30.0

# The shared state: doubles. Version first, so that a file of another layout is started anew.
_FIELDS = (
    "version",
    "generation",
    "count",
    "claims",
    "answers",
    "carried_open",
    "limit",
    "reset_at",
    "ended",
    "window",
    "window_seen",
    "announced",
    "probe_at",
)
_LAYOUT = struct.Struct(f"<{len(_FIELDS)}d")
_VERSION = 5.0
_values_of = operator.attrgetter(*_FIELDS)


class Claim(NamedTuple):
    """
    The answer to a claim of one call: granted, or the seconds to wait before claiming again.

    :param granted: the call may go now; settle it (:meth:`ProfileBudget.settle`) with this claim once it ends.
    :param wait: seconds to wait before claiming again, when not granted.
    :param first_waiter: the first claim of this window to wait (for one log line per window).
    :param generation: the window the call was claimed in, so that its end is counted in the right one.
    """

    granted: bool
    wait: float = 0.0
    first_waiter: bool = False
    generation: float = 0.0


def reset_seconds(headers: Any) -> float | None:
    """Seconds until the rate-limit window resets, from ``x-ratelimit-reset`` (milliseconds)."""
    try:
        reset_ms = float(headers.get("x-ratelimit-reset"))
    except (TypeError, ValueError):
        return None
    if reset_ms > 1e12:  # an epoch in ms, not a duration
        reset_ms -= time.time() * 1000
    return max(0.0, reset_ms / 1000)


class _Window:
    """
    What this machine knows of one profile's window (0 stands for "not known").

    ``generation``: the window's number on this machine; ``count``: calls of the window, the
    server's count or ours, whichever is more, plus the calls
    claimed since; ``claims`` and ``answers``: this machine's calls claimed in the window and the
    ones of them that ended (answered or lost); ``carried_open``: calls claimed in the last window
    and still open when it ended, which count in this one; ``limit``: the window's limit (-1:
    answers announce none); ``reset_at``: when it ends (wall clock, margin included); ``ended``:
    when the last one ended; ``window``: the last window's length as its answers told it, and
    ``window_seen`` this one's so far; ``announced``: the end already logged as waited for;
    ``probe_at``: when the last call went out while no limit was known.
    """

    __slots__ = _FIELDS
    version: float
    generation: float
    count: float
    claims: float
    answers: float
    carried_open: float
    limit: float
    reset_at: float
    ended: float
    window: float
    window_seen: float
    announced: float
    probe_at: float

    def __init__(self, values: tuple[float, ...]) -> None:
        # A sum of finite numbers is finite: one check for the whole record.
        if values[0] != _VERSION or not math.isfinite(sum(values)):
            values = (_VERSION,) + (0.0,) * (len(_FIELDS) - 1)  # a new file, or one torn by a killed process
        for name, value in zip(_FIELDS, values, strict=True):
            setattr(self, name, value)

    def values(self) -> tuple[float, ...]:
        return _values_of(self)

    def roll(self, now: float) -> None:
        """Start the next window once this one's end has passed (announced, or a window's length after the last)."""
        if self.reset_at > now + _LONGEST_WINDOW + _RESET_MARGIN or self.ended > now:
            # The wall clock stepped back: what was known lies in its future.
            self.reset_at, self.ended = 0.0, now
        end = self.reset_at or (self.ended + (self.window or _DEFAULT_WINDOW) if self.ended else 0.0)
        if end and now >= end:
            # Calls claimed here that had not ended may still reach the server in the new window: they count there.
            open_calls = max(0.0, self.claims - self.answers)
            self.generation += 1
            self.count = self.carried_open = open_calls
            self.claims = self.answers = self.reset_at = 0.0
            self.window = self.window_seen or self.window
            self.window_seen = 0.0
            if now - end < (self.window or _DEFAULT_WINDOW):
                self.ended = end
            else:
                # After an idle spell a window may start any moment, and what it is gets learned again:
                # its limit and its length (a length kept from before would take the new window's
                # answers for late ones of the last: a server with a shorter window was never believed).
                # An answer from before the spell would be believed too, but none is on its way: its
                # call was open for a whole window, and the hook's timeout is far shorter than that.
                self.ended = self.limit = self.window = 0.0

    def take(self, now: float, headroom: float, fallback: float) -> Claim:
        self.roll(now)
        if self.limit > 0 and self.count >= self.limit * headroom:
            end = self.reset_at or (self.ended + (self.window or _DEFAULT_WINDOW) if self.ended else 0.0)
            first = self.announced != self.generation + 1  # + 1: 0 stands for "none announced yet"
            self.announced = self.generation + 1
            return Claim(False, end - now if end > now else fallback, first, self.generation)
        open_calls = self.claims - self.answers + self.carried_open
        if not self.limit and open_calls > 0 and now - self.probe_at < _PROBE_TIMEOUT:
            return Claim(False, fallback, False, self.generation)  # no limit known yet: one call at a time
        if not self.limit:
            self.probe_at = now
        self.claims += 1
        self.count += 1
        return Claim(True, generation=self.generation)

    def settle(
        self, now: float, claim: Claim, status: int | None, seen: tuple[int, int, float | None] | None
    ) -> None:
        self.roll(now)
        if seen is not None:
            count, limit, reset_in = seen
            if self.limit <= 0:
                # A limit learned (again): what counts is the server's count and the calls out.
                self.count = max(0.0, self.claims - self.answers) + self.carried_open
            self.limit = float(limit)
            reset_in = min(_LONGEST_WINDOW, _DEFAULT_WINDOW if reset_in is None else reset_in)
            reset_at = now + reset_in + _RESET_MARGIN
            same = min(_LATEST_ANSWER, max(_SAME_WINDOW, (self.window or _DEFAULT_WINDOW) / 2))
            # An answer sent before the last window ended says nothing of this one.
            if not (self.ended and reset_at <= self.ended + same):
                self.window_seen = max(self.window_seen, reset_in)
                # Every answer of a window announces the same end, seen later by its latency: the earliest is closest.
                self.reset_at = min(self.reset_at, reset_at) if self.reset_at else reset_at
                self.count = max(self.count, float(count))  # the server's count never goes down in a window
        elif status is not None and 200 <= status < 300:
            self.limit, self.reset_at = -1.0, 0.0  # the service announces no limit: nothing to hold back for
        # The call ended: counted in the window it was claimed in (a call of an older one no longer counts).
        if claim.generation == self.generation:
            self.answers += 1
        elif claim.generation == self.generation - 1:
            self.carried_open = max(0.0, self.carried_open - 1)


class ProfileBudget:
    """
    One profile's window as this machine knows it: the server's latest count plus the calls claimed since.

    :param path: the file the processes of this machine share it in; None keeps it in this process only.
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
                    if os.fstat(self._fd).st_size < _LAYOUT.size:
                        os.ftruncate(self._fd, _LAYOUT.size)  # zeros: read as a new file
                    self._memory = mmap.mmap(self._fd, _LAYOUT.size)
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
                self._memory = mmap.mmap(-1, _LAYOUT.size)
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
        before = _LAYOUT.unpack_from(memory)
        window = _Window(before)
        result = change(window)
        after = window.values()
        if after != before:
            _LAYOUT.pack_into(memory, 0, *after)
        return result

    def take(self, headroom: float, fallback: float) -> Claim:
        """
        Claim one call of the window: granted, or how long to wait before claiming again.

        :param headroom: the share of the window's limit to use.
        :param fallback: the wait when no end is known to wait for.
        """
        return self._apply(lambda window: window.take(time.time(), headroom, fallback))

    async def atake(self, headroom: float, fallback: float) -> Claim:
        """:meth:`take` for the event loop: never blocks it on a lock another process holds."""
        return await self._aapply(lambda window: window.take(time.time(), headroom, fallback))

    def settle(self, claim: Claim, status: int | None = None, headers: Any = None) -> None:
        """
        End a granted claim, once: learn the window from its answer's ``x-ratelimit-count``,
        ``-max`` and ``-reset``. No status and headers: no answer came.

        :param claim: what :meth:`take` granted.
        :param status: the answer's HTTP status; a 2xx without rate headers means no limit is announced.
        :param headers: the answer's headers.
        """
        seen = _rate_headers(headers) if headers is not None else None
        self._apply(lambda window: window.settle(time.time(), claim, status, seen))

    async def asettle(self, claim: Claim, status: int | None = None, headers: Any = None) -> None:
        """:meth:`settle` for the event loop."""
        seen = _rate_headers(headers) if headers is not None else None
        await self._aapply(lambda window: window.settle(time.time(), claim, status, seen))


def _rate_headers(headers: Any) -> tuple[int, int, float | None] | None:
    try:
        return (
            int(headers.get("x-ratelimit-count")),
            int(headers.get("x-ratelimit-max")),
            reset_seconds(headers),
        )
    except (TypeError, ValueError):
        return None


_budgets: dict[str, ProfileBudget] = {}
_budgets_lock = threading.Lock()


def _shared_dir() -> Path | None:
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
            _budgets[digest] = ProfileBudget(folder / f"{digest}.bin" if folder else None)
        return _budgets[digest]
