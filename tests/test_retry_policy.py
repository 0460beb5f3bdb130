"""What fails an Ayrshare task at once, and the retry policy that waits out a rate limit."""

from __future__ import annotations

from datetime import timedelta

import pytest

from ayrshare_provider.exceptions import (
    AyrshareAlreadyRetriedError,
    AyrshareAuthError,
    AyrshareConfigError,
    AyrshareConnectionError,
    AyrshareInvalidPostIdError,
    AyrshareNotFoundError,
    AyrshareNotRetryableError,
    AyrsharePostFailedError,
    AyrshareRateLimitError,
    AyrshareRetryLaterError,
    AyrshareServerError,
    AyrshareWaitTimeoutError,
)
from ayrshare_provider.retry_policy import ayrshare_retry_policy, retry_policy_args

policy = ayrshare_retry_policy()
needs_policies = pytest.mark.skipif(policy is None, reason="retry policies came with Airflow 3.3")


FINAL = [
    AyrshareAuthError,
    AyrshareConfigError,
    AyrshareInvalidPostIdError,
    AyrshareNotFoundError,
    AyrshareAlreadyRetriedError,
    AyrsharePostFailedError,
    AyrshareNotRetryableError,
    AyrshareRetryLaterError,
]


def test_what_no_attempt_can_fix_is_final_by_one_mark_that_every_airflow_honours():
    """AirflowFailException fails a task at once on every Airflow, before any retry policy is asked."""
    from airflow.providers.common.compat.sdk import AirflowFailException

    assert all(issubclass(error, AirflowFailException) for error in FINAL)
    transient = [
        AyrshareServerError,
        AyrshareConnectionError,
        AyrshareRateLimitError,
        AyrshareWaitTimeoutError,
    ]
    assert not any(issubclass(error, AirflowFailException) for error in transient)


@needs_policies
def test_a_rate_limit_is_retried_after_the_window_turns():
    from airflow.providers.common.compat.sdk import RetryAction

    decision = policy.evaluate(AyrshareRateLimitError("429"), try_number=1, max_tries=3)
    assert decision.action is RetryAction.RETRY and decision.retry_delay == timedelta(minutes=5)


@needs_policies
def test_anything_else_keeps_the_tasks_own_retries_and_the_policy_serializes():
    from airflow.providers.common.compat.sdk import RetryAction

    assert (
        policy.evaluate(AyrshareServerError("502"), try_number=1, max_tries=3).action is RetryAction.DEFAULT
    )
    assert policy.serialize()  # a DAG that uses it can be serialized


def test_the_policy_arguments_are_empty_where_airflow_has_no_retry_policies():
    args = retry_policy_args()
    if policy is None:
        assert args == {}
    else:
        assert list(args) == ["retry_policy"] and args["retry_policy"].serialize() == policy.serialize()
