"""A trigger's calls to Airflow's metadata database, made patiently: a busy database is that trigger's wait.

A trigger reaches the metadata database through the triggerer (XComs, the asset state store). On
SQLite one writer holds the database at a time, and a burst of task runs can keep a write waiting
past SQLite's busy timeout: the triggerer then answers the trigger's call with an error. Such an
error belongs to the one trigger that made the call, so the call is tried again after a pause
(the database frees up within seconds), and what still fails is the trigger's to report; it never
escapes into the triggerer.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, TypeVar

import tenacity

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

_T = TypeVar("_T")

#: Tries of one call; the first pause (seconds), doubled after each try up to the longest: 15 to
#: 19 s of pauses in all (1, 2, 4, 8 s and jitter), three times SQLite's busy timeout (5 s).
ATTEMPTS = 5
FIRST_PAUSE = 1.0
LONGEST_PAUSE = 10.0


async def patiently(
    call: Callable[[], Awaitable[_T]], *, what: str, log: Any, attempts: int = ATTEMPTS
) -> _T:
    """
    Await ``call()``, tried again after a growing pause (1, 2, 4, 8 s, with up to 1 s of jitter) when it raises.

    :param call: the metadata call, made anew on each try (so it must be safe to repeat: XCom and
        state store writes set a value, which a second try sets again).
    :param what: what the call does, for the log line of each failed try.
    :param log: the trigger's logger.
    :param attempts: tries in all.
    :raises Exception: the last try's error, once ``attempts`` tries failed.
    """

    def log_retry(state: tenacity.RetryCallState) -> None:
        error = state.outcome.exception() if state.outcome else None
        pause = state.next_action.sleep if state.next_action else 0.0
        log.warning(
            "%s failed (try %d), trying again in %.1f s: %s", what, state.attempt_number, pause, error
        )

    retrying = tenacity.AsyncRetrying(
        stop=tenacity.stop_after_attempt(attempts),
        wait=tenacity.wait_exponential(multiplier=FIRST_PAUSE, max=LONGEST_PAUSE)
        + tenacity.wait_random(0, FIRST_PAUSE),
        before_sleep=log_retry,
        reraise=True,
    )

    async def attempt() -> _T:  # a coroutine function, which tenacity awaits (a partial it would only call)
        return await call()

    return await retrying(attempt)
