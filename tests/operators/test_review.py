"""The person step (Airflow 3.1+): what it asks, whom it tells, what it makes of an answer or a timeout."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from tests.context import make_context

review = pytest.importorskip(
    "ayrshare_provider.operators.review", reason="human-in-the-loop needs Airflow 3.1+", exc_type=ImportError
)

RELINK = {
    "id": "relinkme",
    "text": "Needs a relink | with a pipe",
    "networks": [
        {"platform": "facebook", "code": 161, "message": "Authorization expired.", "fix": "relink Facebook"}
    ],
    "reason": "errors need a person",
}
DUPLICATE = {
    "id": "dupe",
    "text": "Same text twice",
    "networks": [{"platform": "twitter", "code": 110, "message": "Duplicate.", "fix": "change the text"}],
    "reason": "retryAvailable is false",
}


def step(**kwargs):
    return review.ReviewPostsOperator(task_id="ask_person", posts=[RELINK, DUPLICATE], **kwargs)


def test_the_request_lists_each_post_with_its_errors_and_fixes_and_a_retry_none_default():
    task = step(timeout="60")
    posts = task._prepare()
    assert [post["id"] for post in posts] == ["relinkme", "dupe"]
    assert task.options == ["Retry none", "Retry relinkme (Facebook)", "Retry dupe (X)"]
    assert task.defaults == ["Retry none"] and task.multiple is True
    assert task.response_timeout.total_seconds() == 60
    rows = task.body.splitlines()
    assert (
        "| `relinkme` | Needs a relink \\| with a pipe | Facebook | 161 Authorization expired. | relink Facebook |"
        in rows
    )
    assert "| `dupe` | Same text twice | X | 110 Duplicate. | change the text |" in rows


def test_in_a_run_over_many_profiles_each_post_says_whose_it_is():
    task = review.ReviewPostsOperator(
        task_id="ask_person", posts=[{**RELINK, "profile": "Acme Bakery (ayrshare_acme)"}, DUPLICATE]
    )
    posts = task._prepare()
    assert task.options[1:] == ["Retry relinkme of Acme Bakery (ayrshare_acme) (Facebook)", "Retry dupe (X)"]
    assert "| `relinkme` (Acme Bakery (ayrshare_acme)) | Needs a relink" in task.body
    chosen = task._answer(
        make_context(), posts, chosen_options=[task.options[1]], responded_by="Ada", responded_at=None
    )
    assert chosen == ["relinkme"]


def test_the_answer_retries_only_the_chosen_posts_and_retry_none_wins():
    task, context = step(), make_context()
    task._prepare()
    chosen = task._answer(
        context,
        task._prepare(),
        chosen_options=["Retry dupe (X)"],
        responded_by="Ada",
        responded_at="2026-11-30T10:00:00+00:00",
    )
    assert chosen == ["dupe"]
    answer = context["ti"].xcoms["ayrshare_person_answer"]
    assert answer["left"] == [{"id": "relinkme", "networks": RELINK["networks"], "by": "Ada"}]
    assert answer["timed_out"] is False
    both = ["Retry none", "Retry dupe (X)"]
    assert (
        task._answer(context, task._prepare(), chosen_options=both, responded_by="Ada", responded_at=None)
        == []
    )


@pytest.mark.parametrize(
    ("posts", "message"),
    [
        ("abc", "posts must be a list"),
        (["abc"], "must be a dict with an 'id'"),
        ([{"id": "../x"}], "not an Ayrshare post id"),
    ],
)
def test_posts_that_are_not_posts_are_clear_errors(posts, message):
    with pytest.raises(Exception, match=message):
        review.ReviewPostsOperator(task_id="t", posts=posts)._prepare()


def test_options_it_sets_itself_are_refused():
    with pytest.raises(ValueError, match="sets 'options' itself"):
        review.ReviewPostsOperator(task_id="t", posts=[], options=["a"])


class FileNotifier:
    """Stands for a Slack or email notifier: writes what the person would be told."""

    def __init__(self, path) -> None:
        self.path = path

    def __call__(self, context: dict) -> None:
        task = context["task"]
        self.path.write_text(f"{task.subject}\n{task.body}")


def test_the_request_is_written_the_notifier_told_and_a_timeout_retries_nothing(tmp_path, monkeypatch):
    """
    The step's own half: what it writes for Airflow, whom it tells, and what it makes of the events
    Airflow resumes it with. The waiting itself is Airflow's: answered over REST and timed out on a
    real scheduler in tests/test_full_stack.py (3.3). ``dag.test()`` cannot run it: 3.1 and 3.2's
    in-process supervisor does not serve the trigger's requests, and on 3.3 only a scheduler ends
    the wait. So Airflow's write of the request is recorded here instead of sent.
    """
    from airflow.providers.standard.operators import hitl

    from tests.context import RecordingTI

    written: dict = {}
    monkeypatch.setattr(hitl, "upsert_hitl_detail", lambda **request: written.update(request))
    notified = tmp_path / "notified.txt"
    task = step(timeout="2", notifiers=[FileNotifier(notified)])
    ti = RecordingTI()
    ti.id = "ti-1"
    context = {"ti": ti, "task_instance": ti, "task": task}
    with pytest.raises(BaseException) as waiting:  # deferred (3.1, 3.2) or awaiting input (3.3)
        task.execute(context)
    assert type(waiting.value).__name__ in ("TaskDeferred", "TaskAwaitingInput")
    assert written["options"] == ["Retry none", "Retry relinkme (Facebook)", "Retry dupe (X)"]
    assert written["defaults"] == ["Retry none"] and written["multiple"] is True
    assert "relink Facebook" in written["body"]
    assert notified.read_text().startswith("Failed Ayrshare posts: which ones did you fix?\n")

    # Resumed by a timeout (Airflow writes the defaults), then by a person's answer.
    timed_out = {
        "chosen_options": ["Retry none"],
        "params_input": {},
        "responded_at": datetime.now(UTC),
        "responded_by_user": None,
        "timedout": True,
    }
    fresh = step(timeout="2")  # a resumed task is built anew from the DAG
    assert fresh.execute_complete(context, timed_out) == []
    answer = ti.xcoms["ayrshare_person_answer"]
    assert answer["timed_out"] is True and [left["id"] for left in answer["left"]] == ["relinkme", "dupe"]
    answered = {**timed_out, "chosen_options": ["Retry relinkme (Facebook)"], "timedout": False}
    answered["responded_by_user"] = {"id": "7", "name": "Ada"}
    assert step(timeout="2").execute_complete(context, answered) == ["relinkme"]
    assert ti.xcoms["ayrshare_person_answer"]["responded_by"] == "Ada"
