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
