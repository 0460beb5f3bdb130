"""What a post record means: the decisions every other module relies on."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta

import pytest

from ayrshare_emulator.records import failed_record
from ayrshare_provider.exceptions import AyrshareInvalidPostIdError
from ayrshare_provider.posts import (
    Action,
    Plan,
    StatusWatch,
    WaitState,
    is_published,
    network_results,
    parse_date,
    plan_retry,
    retry_not_before,
    retry_possible,
    summarize,
    validate_post_id,
    wait_state,
)
from tests.helpers import error_post

pytestmark = pytest.mark.any_airflow  # the same on every Airflow: CI runs it once, on 3.3


@pytest.mark.parametrize(
    ("status", "plan"),
    [
        ("success", Plan.ALREADY_PUBLISHED),
        ("pending", Plan.IN_FLIGHT),
        ("processing", Plan.IN_FLIGHT),
        ("error", Plan.RETRY),
        ("paused", Plan.WRONG_STATUS),
        ("awaiting approval", Plan.WRONG_STATUS),
        ("deleted", Plan.WRONG_STATUS),
        ("brand-new-status", Plan.WRONG_STATUS),
    ],
)
def test_plan_for_each_status(status, plan):
    record = {**error_post("p1"), "status": status}
    assert plan_retry(record)[0] is plan


def test_an_error_post_that_every_network_published_is_not_retried():
    record = error_post(
        "p1", errors=[], postIds=[{"platform": "twitter", "status": "success", "postUrl": "https://x.test/1"}]
    )
    assert is_published(record)
    assert plan_retry(record) == (Plan.ALREADY_PUBLISHED, "already published on every network")


def test_a_half_published_post_is_retried():
    record = error_post("p1", platform="twitter")
    record["platforms"] = ["twitter", "linkedin"]
    record["postIds"] = [{"platform": "linkedin", "status": "success", "postUrl": "https://li.test/1"}]
    assert not is_published(record)
    assert plan_retry(record)[0] is Plan.RETRY


@pytest.mark.parametrize(
    ("changes", "possible"),
    [
        ({"retryAvailable": False}, False),
        ({"retryAvailable": True}, True),
        ({"errors": [{"code": 136, "platform": "twitter", "retryAvailable": False}]}, False),
        ({"errors": [{"code": 136, "platform": "twitter", "retryAvailable": True}]}, True),
        ({"errors": [{"code": 161, "platform": "facebook", "message": "relink"}]}, False),
        ({"errors": [{"code": 136, "platform": "twitter"}]}, True),
        ({"errors": []}, True),
    ],
)
def test_retry_possible_reads_retry_available_at_either_place_then_codes(changes, possible):
    assert retry_possible(error_post("p1", **changes))[0] is possible


@pytest.mark.parametrize(
    ("status", "state"),
    [
        ("success", WaitState.SUCCESS),
        ("error", WaitState.FAILED),
        ("deleted", WaitState.FAILED),
        ("pending", WaitState.WAITING),
        ("processing", WaitState.WAITING),
        ("paused", WaitState.WAITING),
        ("awaiting approval", WaitState.WAITING),
        ("something-new", WaitState.WAITING),
        (None, WaitState.WAITING),
    ],
)
def test_wait_state_for_each_status(status, state):
    assert wait_state({"id": "p1", "status": status}) is state


def test_a_record_missing_fields_is_read_without_crashing():
    assert wait_state({}) is WaitState.WAITING
    assert network_results({"postIds": "nonsense", "errors": [None, 3]}) == []
    summary = summarize({}, Action.WATCHED, post_id="p9")
    assert summary["id"] == "p9" and summary["status"] is None and summary["networks"] == []


def test_unknown_status_is_logged_once(caplog):
    watch = StatusWatch("p1", lambda: logging.getLogger("test"))
    with caplog.at_level(logging.WARNING):
        for _ in range(3):
            assert watch.observe({"status": "queued-somewhere"}) is WaitState.WAITING
    assert sum("does not know" in record.message for record in caplog.records) == 1


def test_dates_in_both_formats():
    expected = datetime(2020, 11, 5, 12, 21, 29, tzinfo=UTC)
    assert parse_date("2020-11-05T12:21:29Z") == expected
    assert parse_date({"_seconds": 1604578889, "_nanoseconds": 0, "utc": "2020-11-05T12:21:29Z"}) == expected
    assert parse_date({"utc": "2020-11-05T12:21:29Z"}) == expected
    assert parse_date("not a date") is None and parse_date(None) is None


def test_summary_merges_published_and_failed_networks():
    record = error_post("p1", platform="facebook", code=161)
    record["platforms"] = ["facebook", "linkedin"]
    record["postIds"] = [
        {"platform": "linkedin", "status": "success", "id": "7", "postUrl": "https://li.test/7"}
    ]
    summary = summarize(record, Action.RETRIED)
    assert summary["retried"] is True and summary["published"] is False
    assert summary["post_url"] == "https://li.test/7"
    assert summary["networks"] == [
        {
            "platform": "facebook",
            "status": "error",
            "post_url": None,
            "code": 161,
            "message": "Network hiccup.",
        },
        {
            "platform": "linkedin",
            "status": "success",
            "post_url": "https://li.test/7",
            "code": None,
            "message": None,
        },
    ]


@pytest.mark.parametrize(
    "bad",
    [
        None,
        "",
        "   ",
        "a/b",
        "..",
        "../user",
        "a?b=1",
        "a#b",
        "a%2Fb",
        "pöst",
        "x" * 10_000,
        3.5,
        True,
        ["p1"],
    ],
)
def test_post_ids_that_could_reach_another_url_are_refused(bad):
    with pytest.raises(AyrshareInvalidPostIdError):
        validate_post_id(bad)


def test_a_numeric_post_id_is_accepted_as_text():
    assert validate_post_id(12345) == "12345"
    assert validate_post_id("8tNTr73VV8Y66bHwC2322") == "8tNTr73VV8Y66bHwC2322"


SENT = datetime(2026, 11, 20, 10, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("error_fields", "wait"),
    [
        ({"code": 435, "details": 3600}, 3600),  # Instagram's limit, Meta's Retry-After in details
        ({"code": 435, "details": "7200"}, 7200),
        ({"code": 444, "details": 60.5}, 60.5),  # Facebook's throttle
        ({"code": 435, "details": {"retryAfter": 900}}, 900),
        ({"code": 138, "retry_after": "120"}, 120),  # any error may pass a Retry-After through
        ({"code": 138, "details": 3600}, None),  # a number in details means a wait only for throttles
        ({"code": 435, "details": "wait a bit"}, None),
        ({"code": 435, "details": True}, None),
        ({"code": 435}, None),
    ],
)
def test_wait_hints_are_read_from_the_networks_errors(error_fields, wait):
    record = error_post("p1", platform="instagram", scheduleDate=SENT.isoformat())
    record["errors"][0].update(error_fields)
    hint = retry_not_before(record)
    assert (hint[0] if hint else None) == (SENT + timedelta(seconds=wait) if wait else None)


def test_the_latest_wait_hint_wins_and_counts_from_the_send_date_in_either_form():
    record = error_post("p1", created={"_seconds": int(SENT.timestamp()), "_nanoseconds": 0})
    record["errors"] = [
        {"platform": "instagram", "code": 435, "details": 60},
        {"platform": "facebook", "code": 444, "details": 600},
    ]
    moment, why = retry_not_before(record)
    assert moment == SENT + timedelta(seconds=600) and why.startswith(
        "facebook asked to wait 600 s (code 444)"
    )


def test_a_post_is_planned_for_later_until_its_wait_hint_is_over():
    record = error_post("p1", platform="instagram", code=435, scheduleDate=SENT.isoformat())
    record["errors"][0]["details"] = 3600
    plan, reason = plan_retry(record, now=SENT + timedelta(minutes=59))
    assert plan is Plan.RETRY_LATER and "retry not before 2026-11-20T11:00:00+00:00" in reason
    assert plan_retry(record, now=SENT + timedelta(minutes=61))[0] is Plan.RETRY


def test_a_repost_goes_only_to_the_networks_whose_error_the_record_shows_with_what_is_published():
    from ayrshare_provider.posts import repost_body

    record = failed_record(
        ["linkedin", "facebook", "instagram"],
        {"facebook": (136, "timeout")},
        text="Launch",
        published={"linkedin": "1"},
        post_id="orig",
        mediaUrls=["https://img.example.com/a.png"],
        instagramOptions={"shareReelsFeed": False},
        scheduleDate="2026-11-20T10:00:00Z",
        profileKey="never-sent",
    )
    body = repost_body(record, "orig")
    # Instagram's outcome is unknown (in neither postIds nor errors): not reposted, nor is LinkedIn.
    assert body == {
        "post": "Launch",
        "platforms": ["facebook"],
        "mediaUrls": ["https://img.example.com/a.png"],
        "instagramOptions": {"shareReelsFeed": False},
        "idempotencyKey": "airflow-repost-orig-facebook",
    }


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"status": "pending"}, "its status is 'pending', not 'error', so it may still publish"),
        ({"idempotencyKey": "airflow-repost-older-facebook"}, "it is itself a repost"),
        ({"post": None}, r"no text \('post'\) to send"),
    ],
)
def test_a_post_that_may_still_publish_or_is_a_repost_is_never_reposted(fields, message):
    from ayrshare_provider.exceptions import AyrshareNotRetryableError
    from ayrshare_provider.posts import repost_body

    record = {**failed_record(["facebook"], {"facebook": (136, "timeout")}, text="t", post_id="p"), **fields}
    with pytest.raises(AyrshareNotRetryableError, match=message):
        repost_body(record, "p")


def test_a_post_refused_as_duplicate_content_needs_a_person_to_change_the_text():
    """Code 137: Ayrshare's own duplicate check; a retry of the same text meets it again."""
    from ayrshare_provider.posts import person_request, retry_possible

    record = error_post("p1", platform="linkedin", code=137)
    assert retry_possible(record)[0] is False
    [network] = person_request(record, "p1")["networks"]
    assert network["fix"] == (
        "change the text: Ayrshare refuses the same text on this profile and LinkedIn within 48 hours "
        "(duplicate content)"
    )
