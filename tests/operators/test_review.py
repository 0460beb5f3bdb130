"""The person step (Airflow 3.1+): what it asks, what it makes of the answer, and a timeout in a real run."""

from __future__ import annotations

import pytest

from tests.airflow_compat import airflow_version, stored_xcoms
from tests.context import make_context
from tests.helpers import load_dag

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


@pytest.mark.dag
@pytest.mark.skipif(
    airflow_version() >= (3, 3),
    reason="on 3.3 the step waits in awaiting_input, which only the scheduler times out; dag.test() has "
    "none (the full-stack tests answer it over REST and let it time out)",
)
def test_no_answer_in_time_retries_nothing_and_the_notifier_was_told(airflow_db, tmp_path, monkeypatch):
    notified = tmp_path / "notified.txt"
    monkeypatch.setenv("AYRSHARE_TEST_NOTIFIED", str(notified))
    dag = load_dag("test_ask_person")
    dag_run = dag.test(run_conf={"person_timeout": 1})
    assert dag_run.state == "success"
    values = {
        (task, key): value for (task, key, _), value in stored_xcoms(dag.dag_id, dag_run.run_id).items()
    }
    assert values[("ask_person", "return_value")] == []
    answer = values[("ask_person", "ayrshare_person_answer")]
    assert answer["timed_out"] is True and answer["responded_by"] is None
    assert [left["id"] for left in answer["left"]] == ["relinkme"]
    text = notified.read_text()
    assert text.startswith("Failed Ayrshare posts: which ones did you fix?")
    assert "relink Facebook for this profile" in text
