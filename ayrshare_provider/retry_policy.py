"""Which failures of an Ayrshare task another attempt can fix: a retry policy for Airflow 3.3+.

What no attempt can change (a refused key, a post that cannot or must not be retried, one whose
one retry is spent, one that is gone, one that must wait past the task's timeout) is decided once,
in :mod:`ayrshare_provider.exceptions`: those errors are ``AirflowFailException``, which every
Airflow fails at once, without the task's retries and without asking a retry policy. So the policy
only adds what Airflow cannot know: a rate limit (429) is retried once the profile's window has
turned (Ayrshare's windows last 5 minutes) instead of after the task's ``retry_delay``. Anything
else keeps the task's own ``retries`` and ``retry_delay``.

Use it as ``RetryPostOperator(..., **retry_policy_args())``: on Airflow before 3.3 that adds nothing.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from ayrshare_provider.exceptions import AyrshareRateLimitError

#: Ayrshare's rate-limit window: a task retried this long after a 429 meets a new window.
RATE_LIMIT_WINDOW = timedelta(minutes=5)


def ayrshare_retry_policy(rate_limit_delay: timedelta = RATE_LIMIT_WINDOW) -> Any:
    """
    The policy (an ``ExceptionRetryPolicy``), or None on Airflow before 3.3, which has no retry policies.

    :param rate_limit_delay: how long after a 429 the task is tried again (default: one rate-limit window).
    """
    from ayrshare_provider.version_compat import retry_policy_classes

    classes = retry_policy_classes()
    if classes is None:
        return None
    ExceptionRetryPolicy, RetryAction, RetryRule = classes
    return ExceptionRetryPolicy(
        rules=[
            RetryRule(
                exception=AyrshareRateLimitError,
                action=RetryAction.RETRY,
                retry_delay=rate_limit_delay,
                reason="Ayrshare rate limit: retrying once the profile's window has turned",
            ),
        ]
    )


def retry_policy_args() -> dict[str, Any]:
    """``{"retry_policy": ...}`` for a task's arguments on Airflow 3.3+, ``{}`` before."""
    policy = ayrshare_retry_policy()
    return {"retry_policy": policy} if policy is not None else {}
