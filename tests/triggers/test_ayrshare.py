"""PostStatusTrigger: serialization, polling through transient errors, deadlines, clean events."""

from __future__ import annotations

import importlib
import json
import time

import pytest

from ayrshare_provider.exceptions import AyrshareError, AyrshareWaitTimeoutError
from ayrshare_provider.operators.task_mixin import run_here
from ayrshare_provider.triggers.events import PostStatusEvent
from ayrshare_provider.triggers.post_status import PostStatusTrigger
from ayrshare_provider.triggers.wait_strategy import WaitStrategy, choose_wait_strategy
from ayrshare_provider.version_compat import AIRFLOW_V_3_3_PLUS
from tests.fake_ayrshare import Fault
from tests.helpers import SECRETS, error_post

FAST = {"backoff": 0.01, "max_backoff": 0.05, "max_attempts": 2}


first_event = run_here  # the trigger, run in this process until its one event


def trigger(post_id="p1", timeout=5.0, **kwargs) -> PostStatusTrigger:
    return PostStatusTrigger(
        post_id=post_id,
        ayrshare_conn_id="ayrshare_default",
        end_time=time.time() + timeout,
        poll_interval=0.01,
        hook_params=FAST,
        **kwargs,
    )


def test_serialize_round_trip_gives_an_equal_trigger_with_plain_kwargs():
    original = trigger(profile_key="PK-123456", action="retried")
    classpath, kwargs = original.serialize()
    json.dumps(kwargs)  # plain data only
    module, name = classpath.rsplit(".", 1)
    rebuilt = getattr(importlib.import_module(module), name)(**kwargs)
    assert rebuilt.serialize() == (classpath, kwargs)
    assert "PK-123456" not in repr(rebuilt)


def test_a_rebuilt_trigger_keeps_the_original_deadline(ayrshare_conn):
    ayrshare_conn.add_post({**error_post("p1"), "status": "pending"})
    original = trigger(timeout=0.3)
    time.sleep(0.35)  # the triggerer restarted; the deadline is wall-clock and has passed
    _, kwargs = original.serialize()
    event = first_event(PostStatusTrigger(**kwargs))
    assert event["status"] == "timeout"
    assert ayrshare_conn.calls["GET /api/post"] == 1


def test_polls_through_transient_errors_until_the_post_is_final(ayrshare_conn):
    ayrshare_conn.add_post(error_post("p1"), pending_reads=2)
    ayrshare_conn.posts["p1"]["status"] = "pending"
    ayrshare_conn.mark_retried("p1")
    ayrshare_conn.fail_next("GET /api/post", *[Fault(503, "<html>down</html>", content_type="text/html")] * 4)
    event = first_event(trigger())
    assert (
        event["status"] == "success"
        and event["summary"]["post_url"] == "https://twitter.example.com/posts/99"
    )
    assert not any(secret in json.dumps(event) for secret in SECRETS)


def test_a_non_transient_error_ends_the_wait_at_once_and_stays_final_in_the_task(ayrshare_conn):
    from airflow.providers.common.compat.sdk import AirflowFailException

    from ayrshare_provider.exceptions import AyrshareNotFoundError

    event = first_event(trigger(post_id="ghost"))
    assert event["status"] == "error" and "HTTP 404" in event["message"]
    with pytest.raises(
        AyrshareNotFoundError, match=r"GET /api/post/\{id\} for post 'ghost' failed, HTTP 404"
    ) as caught:
        PostStatusEvent.from_payload(event, post_id="ghost").result()
    # The task fails at once, as it would without deferring.
    assert isinstance(caught.value, AirflowFailException)
    assert not str(caught.value).startswith("Post ")  # said once, as the call's error


def test_timeout_event_becomes_a_timeout_error(ayrshare_conn):
    ayrshare_conn.add_post({**error_post("p1"), "status": "processing"})
    event = first_event(trigger(timeout=0.2))
    with pytest.raises(AyrshareWaitTimeoutError, match="deadline"):
        PostStatusEvent.from_payload(event, post_id="p1").result()


@pytest.mark.parametrize("event", [None, {}, {"status": "success"}, "garbage"])
def test_malformed_events_are_clear_errors(event):
    with pytest.raises(AyrshareError):
        PostStatusEvent.from_payload(event, post_id="p1").result()


def test_triggers_serialized_by_0_2_resume_under_their_old_class_path():
    """Airflow stores a deferred task's trigger by class path: 0.2 wrote ayrshare_provider.triggers.ayrshare."""
    import importlib

    from ayrshare_provider.triggers.failed_posts import FailedPostsTrigger

    old_module = importlib.import_module("ayrshare_provider.triggers.ayrshare")
    assert old_module.PostStatusTrigger is PostStatusTrigger
    assert old_module.FailedPostsTrigger is FailedPostsTrigger
    classpath, _ = PostStatusTrigger("p1", "ayrshare_default", end_time=0.0).serialize()
    assert classpath == "ayrshare_provider.triggers.post_status.PostStatusTrigger"


@pytest.mark.parametrize(
    ("flags", "expected"),
    [
        ({"batch_wait": False, "pushed": False}, WaitStrategy.ALONE),
        ({"batch_wait": True, "pushed": False}, WaitStrategy.BATCHED),
        # 0.2 waited on pushes where triggers read asset state (3.3+), and as without elsewhere
        (
            {"batch_wait": True, "pushed": True},
            WaitStrategy.PUSHED if AIRFLOW_V_3_3_PLUS else WaitStrategy.BATCHED,
        ),
    ],
)
def test_a_trigger_serialized_by_0_2_gets_the_strategy_its_flags_meant(flags, expected):
    kwargs_0_2 = {
        "post_id": "p1",
        "ayrshare_conn_id": "ayrshare_default",
        "end_time": 1000.0,
        "poll_interval": 15.0,
        "profile_key": None,
        "action": "retried",
        "hook_params": {},
        "since": 500.0,
        "known": {},
        "end_from_trigger": False,
        "push_return_value": True,
        "pushed_after": 490.0,  # when the retry was sent: a status from then on counts
        **flags,
    }
    rebuilt = PostStatusTrigger(**kwargs_0_2)
    assert rebuilt.strategy is expected
    # A listing settles a failure only once younger than the wait; a push counts from the retry.
    assert (rebuilt.since, rebuilt.retried_at) == (500.0, 490.0)
    assert rebuilt.serialize()[1]["strategy"] == expected.value
    with pytest.raises(TypeError, match="unexpected keyword arguments: poll_every"):
        PostStatusTrigger(**{**kwargs_0_2, "poll_every": 5})
    with pytest.raises(TypeError, match="not both"):
        PostStatusTrigger(**{**kwargs_0_2, "strategy": "pushed"})


def test_the_strategy_is_chosen_from_the_task_s_setting_and_what_ayrshare_pushes():
    def choose(**kwargs):
        return choose_wait_strategy(
            **{"batch_wait": False, "pushes_expected": False, "own_profile_key": False, **kwargs}
        )

    assert choose() is WaitStrategy.ALONE
    assert choose(batch_wait=True) is WaitStrategy.BATCHED
    # A retry of the task's own on a connection that receives pushes: on 3.3+, where a trigger reads them.
    pushed = WaitStrategy.PUSHED if AIRFLOW_V_3_3_PLUS else WaitStrategy.BATCHED
    assert choose(batch_wait=True, pushes_expected=True) is pushed
    # A Profile Key of the task's own may push elsewhere: that wait lists or reads.
    assert choose(batch_wait=True, pushes_expected=True, own_profile_key=True) is WaitStrategy.BATCHED
    assert choose(pushes_expected=True, own_profile_key=True) is WaitStrategy.ALONE
    # Only a batched wait shares a listing.
    assert trigger(strategy="batched").shared_stream_key() is not None
    assert trigger(strategy=WaitStrategy.ALONE).shared_stream_key() is None
    assert trigger(strategy="pushed").shared_stream_key() is None
    with pytest.raises(ValueError, match="'sometimes' is not a valid WaitStrategy"):
        trigger(strategy="sometimes")
