"""AyrshareHook against a real HTTP server on 127.0.0.1."""

from __future__ import annotations

import asyncio
import json

import pytest
from airflow.providers.common.compat.sdk import AirflowFailException

from ayrshare_provider.exceptions import (
    AyrshareAuthError,
    AyrshareConfigError,
    AyrshareNotFoundError,
    AyrshareRateLimitError,
    AyrshareServerError,
    AyrshareWriteRefusedError,
)
from ayrshare_provider.hooks.ayrshare import AyrshareHook
from tests.fake_ayrshare import Fault
from tests.helpers import API_KEY, PROFILE_KEY, SECRETS, X_KEY, X_SECRET, connection_json, error_post

HTML_502 = Fault(502, "<html><head><title>502 Bad Gateway</title></head></html>", content_type="text/html")
OVERLOADED = Fault(503, json.dumps({"status": "error", "code": 503, "message": "Service unavailable"}))


def fast_hook(**kwargs) -> AyrshareHook:
    return AyrshareHook(backoff=0.01, max_backoff=0.05, **kwargs)


def test_every_call_carries_the_four_credentials_as_ayrshare_headers(ayrshare_conn):
    ayrshare_conn.add_post(error_post("p1"))
    hook = fast_hook()
    assert hook.get_post("p1")["status"] == "error"
    sent = ayrshare_conn.headers_seen[-1]
    assert sent["Authorization"] == f"Bearer {API_KEY}"
    assert sent["Profile-Key"] == PROFILE_KEY
    assert sent["X-Twitter-Oauth1-Api-Key"] == X_KEY
    assert sent["X-Twitter-Oauth1-Api-Secret"] == X_SECRET
    # HttpHook would send raw extra fields as headers; none of them leaves under its field name.
    assert not {"profile_key", "x_twitter_api_key", "x_twitter_api_secret"} & {h.lower() for h in sent}


def test_a_profile_key_given_to_the_hook_wins_over_the_connection(ayrshare_conn):
    ayrshare_conn.add_post(error_post("p1"))
    fast_hook(profile_key="OTHER-PROFILE-KEY").get_post("p1")
    assert ayrshare_conn.headers_seen[-1]["Profile-Key"] == "OTHER-PROFILE-KEY"


def test_one_session_serves_every_call(ayrshare_conn):
    ayrshare_conn.add_post(error_post("p1"))
    hook = fast_hook()
    session = hook.get_conn()
    hook.get_post("p1")
    hook.get_user()
    assert hook.get_conn() is session


def test_reads_are_retried_through_5xx_and_html_pages(ayrshare_conn):
    ayrshare_conn.add_post(error_post("p1"))
    ayrshare_conn.fail_next("GET /api/post", HTML_502, OVERLOADED)
    assert fast_hook().get_post("p1")["id"] == "p1"
    assert ayrshare_conn.calls["GET /api/post"] == 3


def test_reads_give_up_after_max_attempts_with_a_typed_error(ayrshare_conn):
    ayrshare_conn.fail_next("GET /api/post", *[HTML_502] * 3)
    with pytest.raises(AyrshareServerError, match="502 Bad Gateway"):
        fast_hook(max_attempts=3).get_post("p1")
    assert ayrshare_conn.calls["GET /api/post"] == 3


def test_a_429_read_waits_as_told_then_succeeds(ayrshare_conn):
    ayrshare_conn.add_post(error_post("p1"))
    limited = Fault(
        429,
        json.dumps({"status": "error", "code": 429, "message": "Too many"}),
        headers={"x-ratelimit-reset": "20"},
    )
    ayrshare_conn.fail_next("GET /api/post", limited)
    assert fast_hook().get_post("p1")["id"] == "p1"
    assert ayrshare_conn.calls["GET /api/post"] == 2


def test_a_bad_api_key_fails_at_once_and_is_never_retried(fake, monkeypatch):
    monkeypatch.setenv(
        "AIRFLOW_CONN_AYRSHARE_DEFAULT", connection_json(fake.url).replace(API_KEY, "wrong-key-123")
    )
    with pytest.raises(AyrshareAuthError, match="HTTP 401.*API Key not valid") as refused:
        fast_hook().get_post("p1")
    assert fake.calls["GET /api/post"] == 1
    # One message to read: which connection to fix, and no retry machinery's frames above it.
    assert "the Airflow connection 'ayrshare_default' under Admin > Connections" in str(refused.value)
    frames = [entry.path for entry in refused.traceback]
    assert not [path for path in frames if "tenacity" in str(path) or "concurrent" in str(path)]
    assert refused.value.__cause__ is None and refused.value.__suppress_context__


def test_an_unknown_post_is_not_found(ayrshare_conn):
    with pytest.raises(AyrshareNotFoundError, match="'nope'.*HTTP 404"):
        fast_hook().get_post("nope")
    assert ayrshare_conn.calls["GET /api/post"] == 1


def test_after_a_5xx_the_put_is_sent_again_only_because_the_post_still_reads_error(ayrshare_conn):
    ayrshare_conn.add_post(error_post("p1"))
    ayrshare_conn.fail_next("PUT /api/post/retry", OVERLOADED)
    assert fast_hook().retry_post("p1") == {"status": "pending", "id": "p1"}
    assert ayrshare_conn.calls["PUT /api/post/retry"] == 2 and ayrshare_conn.calls["GET /api/post"] == 1
    assert ayrshare_conn.retry_puts["p1"] == 1  # applied once


def test_a_lost_answer_after_the_retry_landed_is_not_followed_by_a_second_put(ayrshare_conn):
    ayrshare_conn.add_post(error_post("p1"))
    ayrshare_conn.fail_next(
        "PUT /api/post/retry", Fault(502, "<html>bad gateway</html>", content_type="text/html", apply=True)
    )
    assert fast_hook().retry_post("p1") == {"status": "pending", "id": "p1"}
    assert ayrshare_conn.calls["PUT /api/post/retry"] == 1


def test_a_lost_answer_and_an_unreadable_post_is_unconfirmed_and_not_sent_again(ayrshare_conn):
    from ayrshare_provider.exceptions import AyrshareRetryUnconfirmedError

    ayrshare_conn.add_post(error_post("p1"))
    ayrshare_conn.fail_next(
        "PUT /api/post/retry", Fault(502, "<html>bad gateway</html>", content_type="text/html", apply=True)
    )
    ayrshare_conn.fail_next("GET /api/post", *[OVERLOADED] * 5)
    with pytest.raises(AyrshareRetryUnconfirmedError, match="whether the retry landed is unknown"):
        fast_hook().retry_post("p1")
    assert ayrshare_conn.calls["PUT /api/post/retry"] == 1


def test_the_put_is_never_repeated_after_another_4xx(ayrshare_conn):
    ayrshare_conn.add_post({**error_post("p1"), "status": "paused"})
    # Final (AirflowFailException): no later attempt of the task sends the refused write again.
    with pytest.raises(AyrshareWriteRefusedError, match="HTTP 400") as refused:
        fast_hook().retry_post("p1")
    assert isinstance(refused.value, AirflowFailException)
    assert ayrshare_conn.calls["PUT /api/post/retry"] == 1


def test_the_retry_put_is_repeated_once_after_a_429(ayrshare_conn):
    ayrshare_conn.add_post(error_post("p1"))
    limited = Fault(429, json.dumps({"status": "error", "code": 429, "message": "Too many"}))
    ayrshare_conn.fail_next("PUT /api/post/retry", limited, limited, limited)
    with pytest.raises(AyrshareRateLimitError):
        fast_hook().retry_post("p1")
    assert ayrshare_conn.calls["PUT /api/post/retry"] == 2


def test_retry_post_sends_the_id_and_returns_pending(ayrshare_conn):
    ayrshare_conn.add_post(error_post("p1"))
    assert fast_hook().retry_post("p1") == {"status": "pending", "id": "p1"}
    assert ayrshare_conn.posts["p1"]["status"] == "pending"


def test_history_filters_and_validates(ayrshare_conn):
    ayrshare_conn.add_post(error_post("p1"))
    ayrshare_conn.add_post({**error_post("p2"), "status": "success"})
    hook = fast_hook()
    assert [
        r["id"] for r in hook.get_history(status="error", last_days=7, limit=10, platforms=["twitter"])
    ] == ["p1"]
    with pytest.raises(AyrshareConfigError, match="limit"):
        hook.get_history(limit=5000)
    with pytest.raises(AyrshareConfigError, match="status"):
        hook.get_history(status="failed")


def test_test_connection_reports_the_profile_and_a_clear_failure(ayrshare_conn, monkeypatch):
    ok, message = fast_hook().test_connection()
    assert ok and "Test Profile" in message and "twitter" in message
    monkeypatch.setenv(
        "AIRFLOW_CONN_AYRSHARE_DEFAULT", connection_json(ayrshare_conn.url).replace(API_KEY, "wrong-key-123")
    )
    ok, message = fast_hook().test_connection()
    assert not ok and "401" in message
    assert not any(secret in message for secret in SECRETS)


def test_a_connection_without_api_key_is_a_config_error(monkeypatch):
    monkeypatch.setenv("AIRFLOW_CONN_AYRSHARE_DEFAULT", '{"conn_type": "ayrshare"}')
    with pytest.raises(AyrshareConfigError, match="no API key"):
        fast_hook().get_post("p1")


def test_plain_http_to_a_remote_host_is_refused_before_any_request(monkeypatch):
    monkeypatch.setenv("AIRFLOW_CONN_AYRSHARE_DEFAULT", connection_json("http://api.example.test"))
    with pytest.raises(AyrshareConfigError, match="api.example.test.*plain HTTP"):
        fast_hook().get_post("p1")


@pytest.mark.parametrize(
    ("host", "base_url"),
    [
        (None, "https://api.ayrshare.com"),
        ("https://api.ayrshare.com/api/", "https://api.ayrshare.com"),
        ("http://127.0.0.1:8765", "http://127.0.0.1:8765"),
    ],
)
def test_host_is_optional_and_forgiving(monkeypatch, host, base_url):
    monkeypatch.setenv("AIRFLOW_CONN_AYRSHARE_DEFAULT", connection_json(host))
    hook = fast_hook()
    hook.get_conn()
    assert hook.base_url == base_url


def test_aget_post_reads_through_transient_errors_with_the_same_headers(ayrshare_conn):
    ayrshare_conn.add_post(error_post("p1"))
    ayrshare_conn.fail_next("GET /api/post", HTML_502)

    async def read():
        hook = fast_hook()
        try:
            return await hook.aget_post("p1")
        finally:
            await hook.aclose()

    assert asyncio.run(read())["id"] == "p1"
    assert ayrshare_conn.calls["GET /api/post"] == 2
    sent = ayrshare_conn.headers_seen[-1]
    assert sent["Authorization"] == f"Bearer {API_KEY}" and sent["Profile-Key"] == PROFILE_KEY


def test_post_ids_are_validated_before_any_request(ayrshare_conn):
    from ayrshare_provider.exceptions import AyrshareInvalidPostIdError

    for bad in ("../user", "a?b", "", "a/b"):
        with pytest.raises(AyrshareInvalidPostIdError):
            fast_hook().get_post(bad)
    assert sum(ayrshare_conn.calls.values()) == 0


def test_no_credential_reaches_logs_or_errors_even_when_calls_fail(ayrshare_conn, caplog, capfd):
    import logging

    ayrshare_conn.add_post(error_post("p1"))
    ayrshare_conn.fail_next("GET /api/post", HTML_502, OVERLOADED)
    ayrshare_conn.fail_next("PUT /api/post/retry", OVERLOADED)
    messages = []
    with caplog.at_level(logging.DEBUG):
        hook = fast_hook()
        hook.get_post("p1")
        for call in (lambda: hook.retry_post("p1"), lambda: hook.get_post("ghost")):
            try:
                call()
            except Exception as err:  # noqa: BLE001 - collecting every message
                messages.append(repr(err) + str(err))
    output = caplog.text + "".join(messages) + "".join(capfd.readouterr())
    assert messages and "Attempt 1 of 5 failed" in output
    assert not any(secret in output for secret in SECRETS)


# -- webhooks -----------------------------------------------------------------------------------

WEBHOOK_URL = "https://airflow.example.com/ayrshare/webhook?conn_id=ayrshare_default"


def test_register_list_and_unregister_a_webhook_with_the_connections_secret(emulator, monkeypatch):
    monkeypatch.setenv(
        "AIRFLOW_CONN_AYRSHARE_DEFAULT", connection_json(emulator.url, webhook_secret="hook-secret-1")
    )
    hook = fast_hook()
    ok, before = hook.test_connection()
    assert ok and "no scheduled-action webhook registered" in before

    hook.register_webhook(WEBHOOK_URL)
    assert emulator.state.webhooks[("", "scheduled")] == {"url": WEBHOOK_URL, "secret": "hook-secret-1"}
    assert hook.list_webhooks() == {"scheduled": WEBHOOK_URL}
    ok, after = hook.test_connection()
    assert ok and "scheduled-action webhook registered to airflow.example.com" in after
    assert "hook-secret-1" not in after
    hook.unregister_webhook()
    assert hook.list_webhooks() == {}


def test_the_test_button_warns_of_a_webhook_whose_deliveries_airflow_cannot_check(emulator, monkeypatch):
    monkeypatch.setenv("AIRFLOW_CONN_AYRSHARE_DEFAULT", connection_json(emulator.url))
    fast_hook().register_webhook(WEBHOOK_URL, secret="set-elsewhere")
    ok, message = fast_hook().test_connection()
    assert ok and "no webhook secret" in message and "set-elsewhere" not in message


def test_webhooks_that_cannot_be_listed_do_not_fail_the_test_button(ayrshare_conn):
    ok, message = fast_hook().test_connection()  # the scripted Ayrshare has no webhook endpoint
    assert ok and "webhooks could not be listed" in message


def test_get_profiles_reads_every_page_as_the_primary_profile(emulator, monkeypatch):
    from ayrshare_emulator import profiles
    from ayrshare_provider.hooks import ayrshare

    made = profiles.agency(emulator.state, 5, 0, suspended=1)
    monkeypatch.setenv(
        "AIRFLOW_CONN_AYRSHARE_DEFAULT", connection_json(emulator.url, profile_key=made[0].key)
    )
    monkeypatch.setattr(ayrshare, "PROFILES_PAGE", 2)
    hook = fast_hook()
    listed = hook.get_profiles()
    assert sorted((p["title"], p["status"]) for p in listed) == [
        ("Client 1", "active"),
        ("Client 2", "active"),
        ("Client 3", "active"),
        ("Client 4", "active"),
        ("Client 5", "suspended"),
    ]
    assert [p["title"] for p in hook.get_profiles(ref_id=made[2].ref_id)] == ["Client 3"]
    # Sent without the connection's Profile Key (the emulator refuses a listing with one), and counted
    # against the Primary Profile; the profile's own calls are its own.
    assert hook.get_user()["title"] == "Client 1"
    assert emulator.state.counters()["requests_by_profile"] == {"primary": 4, "Client 1": 1}


def test_a_profiles_answer_that_pages_forever_or_has_no_list_is_a_clear_error(httpserver, monkeypatch):
    monkeypatch.setenv("AIRFLOW_CONN_AYRSHARE_DEFAULT", connection_json(httpserver.url_for("/").rstrip("/")))
    page = {"profiles": [{"title": "A"}], "pagination": {"hasMore": True, "nextCursor": "same"}}
    httpserver.expect_request("/api/profiles").respond_with_json(page)
    with pytest.raises(AyrshareServerError, match="GET /api/profiles.*cursor 'same' repeats"):
        fast_hook().get_profiles()
    httpserver.clear()
    httpserver.expect_request("/api/profiles").respond_with_json({"status": "ok"})
    with pytest.raises(AyrshareServerError, match="no 'profiles' list"):
        fast_hook().get_profiles()


def test_a_new_post_ayrshare_refuses_is_final_and_sent_once(emulator_conn):
    """Code 137, Ayrshare's duplicate-content check: a 4xx answer to a write, never sent again."""
    emulator_conn.state.settings.duplicate_check = "any"
    body = {"post": "Same words", "platforms": ["linkedin"], "idempotencyKey": "k-first"}
    fast_hook().create_post(body)
    with pytest.raises(AyrshareWriteRefusedError, match="code 137") as refused:
        fast_hook().create_post({**body, "idempotencyKey": "k-second"})
    assert isinstance(refused.value, AirflowFailException)
    assert emulator_conn.state.counters()["requests"]["POST /api/post"] == 2  # one each


def test_a_resend_refused_after_a_lost_answer_leaves_the_first_send_unknown(emulator_conn):
    """
    The first POST made the post and its answer was lost; Ayrshare already forgot the key, and
    refuses the resend as a duplicate of that very post: not a refusal of the post, an unknown.
    """
    from ayrshare_provider.exceptions import AyrshareWriteUncertainError

    emulator_conn.state.settings.duplicate_check = "any"
    emulator_conn.state.settings.idempotency_key_retention = 0.001  # seconds
    emulator_conn.faults.add({"endpoint": "POST /api/post", "sequence": ["apply_then_drop"]})
    body = {"post": "Sent twice", "platforms": ["linkedin"], "idempotencyKey": "k-lost"}
    with pytest.raises(AyrshareWriteUncertainError, match="whether the first send made something is unknown"):
        fast_hook().create_post(body)
    assert len(emulator_conn.state.posts) == 1
    assert emulator_conn.state.counters()["requests"]["POST /api/post"] == 2  # nothing after the refusal
