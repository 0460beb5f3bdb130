"""One rate-limit budget per Ayrshare profile, shared by every hook of this process that acts for it.

Ayrshare counts requests per User Profile in a fixed window (300 per 5 minutes) and suspends a
profile after 1,000 answers 429 in a day. Each answer's ``x-ratelimit-*`` headers are the only
shared truth across processes. Within one process (a triggerer with hundreds of waits, a worker
with threads) the hooks pool what they learn here, and count their own calls as they send them,
so that together they stop short of the limit instead of each finding out on its own.
"""

from __future__ import annotations

import hashlib
import threading
import time
from typing import Any

#: Use at most this share of a window: the rest is left for calls of other processes (other
#: workers, the other triggerer) that this process cannot see until their effect shows in a header.
RATE_HEADROOM = 0.9
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
    What this process knows of one profile's window: the server's latest count plus the calls sent since.

    :param headroom: the share of the window's limit this process may use.
    """

    def __init__(self, headroom: float = RATE_HEADROOM) -> None:
        self.headroom = headroom
        self._lock = threading.Lock()
        self._count = 0
        self._limit: int | None = None
        self._reset_at: float | None = None  # time.monotonic() of the window's end, when announced
        self._announced: float | None = None  # the window whose pause was logged at INFO already

    def take(self, fallback: float) -> tuple[float, bool]:
        """
        Claim one call of the window: ``(0, False)`` to go now, or ``(seconds to wait first, first waiter?)``.

        :param fallback: the wait when the window is used up but its end was not announced.
        """
        with self._lock:
            now = time.monotonic()
            if self._reset_at is not None and now >= self._reset_at:
                self._count, self._reset_at = 0, None  # a new window
            if self._limit is None or self._count < self._limit * self.headroom:
                self._count += 1
                return 0.0, False
            first = self._announced != self._reset_at
            self._announced = self._reset_at
            return (fallback if self._reset_at is None else self._reset_at - now), first

    def observe(self, headers: Any) -> None:
        """Learn the window's state from an answer's ``x-ratelimit-count``, ``-max`` and ``-reset``."""
        try:
            count, limit = int(headers.get("x-ratelimit-count")), int(headers.get("x-ratelimit-max"))
        except (TypeError, ValueError):
            return
        reset_in = reset_seconds(headers)
        with self._lock:
            self._limit = limit
            if reset_in is None:
                self._count = max(self._count, count)
                return
            reset_at = time.monotonic() + reset_in + _RESET_MARGIN
            if self._reset_at is None:
                # The first answer since the window turned: this process counted its own calls meanwhile.
                self._reset_at, self._count = reset_at, max(self._count, count)
            elif reset_at > self._reset_at + _SAME_WINDOW:
                self._reset_at, self._count = reset_at, count  # a newer window than this process knew of
            elif reset_at >= self._reset_at - _SAME_WINDOW:
                self._count = max(self._count, count)  # the same window: the server's count never goes down
            # else: a late answer from a window that has ended; it says nothing of this one


_budgets: dict[tuple[str, str], ProfileBudget] = {}
_budgets_lock = threading.Lock()


def budget_for(origin: str, profile_key: str | None) -> ProfileBudget:
    """
    The process-wide budget of one profile at one API origin.

    :param origin: the API's base URL.
    :param profile_key: the Profile Key in use ("" or None for the Primary Profile); kept only as a digest.
    """
    key = (origin, hashlib.sha256((profile_key or "").encode()).hexdigest())
    with _budgets_lock:
        return _budgets.setdefault(key, ProfileBudget())
