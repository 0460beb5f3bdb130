"""Every bad input gets a clear, typed error or a tolerant reading: one row each.

Rows run through the public classes against a real server on 127.0.0.1, and the emulator's
counters prove that no bad id reached any endpoint.
"""

from __future__ import annotations

import json

import pytest
from airflow.providers.common.compat.sdk import AirflowNotFoundException

from ayrshare_provider.exceptions import (
    AyrshareConfigError,
    AyrshareInvalidPostIdError,
    AyrshareNotFoundError,
    AyrshareNotRetryableError,
    AyrshareServerError,
)
from ayrshare_provider.hooks.ayrshare import AyrshareHook
from ayrshare_provider.operators.ayrshare import RetryPostOperator
from ayrshare_provider.posts import Plan, WaitState, parse_date, plan_retry, retry_possible, wait_state
from tests.context import make_context
from tests.fake_ayrshare import Fault
from tests.helpers import error_post

FAST = {"backoff": 0.01, "max_backoff": 0.02, "max_attempts": 2}

BAD_POST_IDS = [
    ("None", None),
    ("empty", ""),
    ("blanks", "   "),
    ("slash", "abc/def"),
    ("dot-dot", ".."),
    ("dot-dot path", "../user"),
    ("question mark", "abc?status=error"),
    ("hash", "abc#x"),
    ("percent escape", "abc%2Fuser"),
    ("unicode", "pöst-ïd"),
    ("10 kB", "a" * 10_240),
    ("float", 1.5),
    ("newline", "abc\nHost: evil"),
    ("list", ["abc"]),
]


@pytest.mark.parametrize(("case", "post_id"), BAD_POST_IDS, ids=[case for case, _ in BAD_POST_IDS])
def test_bad_post_ids_are_refused_before_any_request(emulator_conn, case, post_id):
    hook = AyrshareHook(**FAST)
    for call in (hook.get_post, hook.retry_post):
        with pytest.raises(AyrshareInvalidPostIdError, match="post_id"):
            call(post_id)
    with pytest.raises(AyrshareInvalidPostIdError):
        RetryPostOperator(task_id="t", post_id=post_id, hook_params=FAST).execute(make_context())
    assert emulator_conn.state.counters()["requests"] == {}  # no input reached any endpoint


def test_a_number_is_read_as_an_id(emulator_conn):
    with pytest.raises(AyrshareNotFoundError, match="'12345'"):
        AyrshareHook(**FAST).get_post(12345)
    assert emulator_conn.state.counters()["requests"] == {"GET /api/post/{id}": 1}


def test_a_missing_connection_names_the_connection(monkeypatch):
    with pytest.raises(AirflowNotFoundException, match="ayrshare_nowhere"):
        AyrshareHook("ayrshare_nowhere").get_post("abc")


@pytest.mark.parametrize(
    ("connection", "message"),
    [
        ('{"conn_type": "ayrshare", "host": "http://127.0.0.1:9"}', "no API key"),
        ('{"conn_type": "ayrshare", "password": "   "}', "no API key"),
        (
            '{"conn_type": "ayrshare", "password": "k1234567", "host": "https://api.ayrshare.com/v2/proxy"}',
            "with a path",
        ),
        (
            '{"conn_type": "ayrshare", "password": "k1234567", "host": "ftp://api.ayrshare.com"}',
            "not an http",
        ),
        (
            '{"conn_type": "ayrshare", "password": "k1234567", "host": "http://api.ayrshare.com"}',
            "plain HTTP",
        ),
        (
            '{"conn_type": "ayrshare", "password": "k1234567", "host": "http://127.0.0.1:notaport"}',
            "not a URL",
        ),
        ('{"conn_type": "ayrshare", "password": "k1234567", "extra": {"timeout": "soon"}}', "not a number"),
    ],
    ids=[
        "no key",
        "blank key",
        "host with a path",
        "not http",
        "plain http to a remote host",
        "bad port",
        "bad tuning",
    ],
)
def test_bad_connections_are_config_errors(monkeypatch, connection, message):
    monkeypatch.setenv("AIRFLOW_CONN_AYRSHARE_DEFAULT", connection)
    with pytest.raises(AyrshareConfigError, match=message):
        AyrshareHook(**FAST).get_post("abc")


@pytest.mark.parametrize(
    ("body", "content_type"),
    [
        ("[1, 2, 3]", "application/json"),
        ('"just a string"', "application/json"),
        ("", "application/json"),
        ("<html><head><title>Oops</title></head></html>", "text/html"),
        ("{not json", "application/json"),
    ],
    ids=["array", "string", "empty", "html", "broken json"],
)
def test_bodies_that_are_not_a_json_object_are_server_errors(ayrshare_conn, body, content_type):
    ayrshare_conn.fail_next("GET /api/post", *[Fault(200, body, content_type=content_type)] * 2)
    with pytest.raises(AyrshareServerError, match="GET /api/post/{id} for post 'abc'"):
        AyrshareHook(**FAST).get_post("abc")


@pytest.mark.parametrize("missing", ["postIds", "errors", "platforms", "created"])
def test_records_missing_optional_fields_are_read_tolerantly(ayrshare_conn, missing):
    record = error_post("p1")
    del record[missing]
    ayrshare_conn.add_post(record)
    summary = RetryPostOperator(
        task_id="t", post_id="p1", poll_interval=0.01, timeout=10, hook_params=FAST, deferrable=False
    ).execute(make_context())
    assert summary["status"] == "success" and ayrshare_conn.retry_puts["p1"] == 1


def test_a_record_without_status_is_not_retried_and_says_why(ayrshare_conn):
    record = error_post("p1")
    del record["status"]
    ayrshare_conn.add_post(record)
    with pytest.raises(AyrshareNotRetryableError, match="status is None"):
        RetryPostOperator(task_id="t", post_id="p1", hook_params=FAST).execute(make_context())
    assert wait_state(record) is WaitState.WAITING  # a waiter keeps waiting on it


def test_unknown_status_keeps_waiting():
    assert wait_state({"status": "queued-for-review"}) is WaitState.WAITING
    assert plan_retry({"status": "queued-for-review"})[0] is Plan.WRONG_STATUS


def test_schedule_date_in_both_forms_and_retry_available_in_both_places():
    assert parse_date("2020-11-05T12:21:29Z") == parse_date({"_seconds": 1604578889, "_nanoseconds": 0})
    assert retry_possible(error_post("p", retryAvailable=False))[0] is False
    assert retry_possible(error_post("p", errors=[{"code": 1, "retryAvailable": False}]))[0] is False


def test_a_json_error_without_message_still_names_call_and_post(ayrshare_conn):
    ayrshare_conn.fail_next("GET /api/post", Fault(400, json.dumps({"status": "error"})))
    with pytest.raises(Exception, match=r"GET /api/post/\{id\} for post 'abc' failed, HTTP 400: no message"):
        AyrshareHook(**FAST).get_post("abc")
