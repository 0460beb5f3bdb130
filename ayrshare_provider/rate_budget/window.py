"""A profile's rate-limit window as the clients that share a budget know it, and the budget's interface.

Ayrshare counts requests per User Profile in a fixed window (300 per 5 minutes) and suspends a
profile after 1,000 answers 429 in a day. Each answer's ``x-ratelimit-*`` headers carry the
server's count; the clients of one budget pool that knowledge and count each call as they claim
it, so that together they stop just short of the limit instead of each finding out on its own.

Answers arrive late and out of order (hundreds of waits share one event loop), so no answer ever
lowers the count of a window: the count starts again only when the window's announced end has
passed, and an answer sent before that end says nothing of the next window.

Calls the budget did not claim (another host with a budget of its own, another app) show up in the
server's count. Once they do, the profile is shared: the budget lets one call out at a time, each
learning the server's count, and stops short by the most the others did between two answers.
"""

from __future__ import annotations

import math
import operator
import struct
import time
from abc import ABC, abstractmethod
from typing import TYPE_CHECKING, Any, NamedTuple, TypeVar

if TYPE_CHECKING:
    from collections.abc import Callable

_T = TypeVar("_T")

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
# How long a call waits for the one call out of a shared profile to come back.
_SHARED_PAUSE = 0.05
# Without a known limit, one call at a time; a call that neither ended nor came back within this
# many seconds (its process died) no longer holds the others back.
_PROBE_TIMEOUT = 30.0
# Once the server counted calls this machine did not send (other hosts, other apps), the profile is
# shared for this many windows: one call at a time, stopping short by the others' pace.
_SHARED_WINDOWS = 2.0

# The shared state: doubles. Version first, so that a record of another layout is started anew.
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
    "foreign",
    "foreign_step",
    "foreign_seen",
    "late",
    "carried_late",
)
_LAYOUT = struct.Struct(f"<{len(_FIELDS)}d")
#: The bytes of one stored window.
RECORD_SIZE = _LAYOUT.size
_VERSION = 7.0
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
    What the clients of one budget (one machine's processes, or every host sharing a Redis) know of
    one profile's window; "here" below is them (0 stands for "not known").

    ``generation``: the window's number here; ``count``: calls of the window, the
    server's count or ours, whichever is more, plus the calls
    claimed since; ``claims`` and ``answers``: the calls claimed here in the window and the
    ones of them that ended (answered or lost); ``carried_open``: calls claimed in the last window
    and still open when it ended, which count in this one; ``limit``: the window's limit (-1:
    answers announce none); ``reset_at``: when it ends (wall clock, margin included); ``ended``:
    when the last one ended; ``window``: the last window's length as its answers told it, and
    ``window_seen`` this one's so far; ``announced``: the end already logged as waited for;
    ``probe_at``: when the last call went out one at a time (no limit known yet, or a shared
    profile); ``foreign``: the fewest calls of the window the server counted that were not sent from
    here (hosts without this budget, other apps); ``foreign_step``: the most of those that came between two answers here in the window
    (how far the others move while one call of ours is out); ``foreign_seen``: when such calls were
    last seen; ``late``: this window's calls answered after the server's reset but before the
    window's end here (the margin), which the server may count in its next window, and
    ``carried_late`` the last window's: neither is another client's.
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
    foreign: float
    foreign_step: float
    foreign_seen: float
    late: float
    carried_late: float

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
            self.carried_late, self.late = self.late, 0.0
            self.claims = self.answers = self.reset_at = self.foreign = self.foreign_step = 0.0
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

    def shared(self, now: float) -> bool:
        """Other clients used the profile lately: this machine's count may lag the server's."""
        return bool(self.foreign_seen) and now - self.foreign_seen < _SHARED_WINDOWS * (
            self.window or _DEFAULT_WINDOW
        )

    def take(self, now: float, headroom: float, fallback: float) -> Claim:
        self.roll(now)
        shared = self.limit > 0 and self.shared(now)
        # Shared with clients this machine cannot see, stop short by what they did between two of our answers.
        reserve = self.foreign_step if shared else 0.0
        if self.limit > 0 and self.count + reserve >= self.limit * headroom:
            end = self.reset_at or (self.ended + (self.window or _DEFAULT_WINDOW) if self.ended else 0.0)
            first = self.announced != self.generation + 1  # + 1: 0 stands for "none announced yet"
            self.announced = self.generation + 1
            return Claim(False, end - now if end > now else fallback, first, self.generation)
        open_calls = self.claims - self.answers + self.carried_open
        # No limit known yet, or a profile shared with others: one call at a time, each learning the server's count.
        one_at_a_time = not self.limit or shared
        if one_at_a_time and open_calls > 0 and now - self.probe_at < _PROBE_TIMEOUT:
            return Claim(False, min(fallback, _SHARED_PAUSE) if shared else fallback, False, self.generation)
        if one_at_a_time:
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
                self._learn_foreign(now, float(count))
                self.count = max(self.count, float(count))  # the server's count never goes down in a window
        elif status is not None and 200 <= status < 300:
            self.limit, self.reset_at = -1.0, 0.0  # the service announces no limit: nothing to hold back for
        if claim.generation == self.generation and self.reset_at and now >= self.reset_at - _RESET_MARGIN:
            self.late += 1  # past the server's reset: it may count in the server's next window
        # The call ended: counted in the window it was claimed in (a call of an older one no longer counts).
        # (Counted after the foreign calls: this call is one of the machine's claims the server may have counted.)
        if claim.generation == self.generation:
            self.answers += 1
        elif claim.generation == self.generation - 1:
            self.carried_open = max(0.0, self.carried_open - 1)

    def _learn_foreign(self, now: float, server_count: float) -> None:
        """Count the calls the server saw that this machine cannot have sent (every claim of the window may have landed)."""
        foreign = server_count - (self.claims + self.carried_open + self.carried_late)
        if foreign > self.foreign:
            # The window's first answer here shows what others did before this machine came: no pace.
            if self.answers:
                self.foreign_step = max(self.foreign_step, foreign - self.foreign)
            self.foreign, self.foreign_seen = foreign, now


def _rate_headers(headers: Any) -> tuple[int, int, float | None] | None:
    try:
        return (
            int(headers.get("x-ratelimit-count")),
            int(headers.get("x-ratelimit-max")),
            reset_seconds(headers),
        )
    except (TypeError, ValueError):
        return None


class ProfileBudget(ABC):
    """
    One profile's window, shared by the clients of this budget: the server's latest count plus the calls claimed since.

    Where the window lives is the subclass's: :class:`~ayrshare_provider.rate_budget.machine.MachineBudget`
    (the processes of one machine), :class:`~ayrshare_provider.rate_budget.redis_store.RedisBudget`
    (every host of a deployment).
    """

    @abstractmethod
    def _apply(self, change: Callable[[_Window], _T]) -> _T:
        """Apply ``change`` to the window atomically, waiting for it (the sync path: a task's process)."""

    @abstractmethod
    async def _aapply(self, change: Callable[[_Window], _T]) -> _T:
        """Apply ``change`` to the window atomically without blocking the event loop (a triggerer)."""

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


def changed(change: Callable[[_Window], _T], before: bytes | None) -> tuple[_T, bytes | None]:
    """Apply ``change`` to a stored window (None: none yet); its result, and the record to store (None: unchanged)."""
    old = _LAYOUT.unpack(before) if before is not None and len(before) == RECORD_SIZE else None
    window = _Window(old or (0.0,) * len(_FIELDS))
    result = change(window)
    after = window.values()
    return result, (None if after == old else _LAYOUT.pack(*after))
