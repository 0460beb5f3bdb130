"""A call that gets no answer says which URL, and what failed: DNS, refused, TLS or timeout."""

from __future__ import annotations

import asyncio
import socket
import time

import pytest
import requests

from ayrshare_provider.exceptions import AyrshareConfigError, AyrshareConnectionError
from ayrshare_provider.hooks.answers import connection_error
from ayrshare_provider.hooks.ayrshare import AyrshareHook
from tests.helpers import SECRETS, connection_json

ONE_ATTEMPT = {"max_attempts": 1, "backoff": 0.01, "max_backoff": 0.05}


def closed_port() -> int:
    """A loopback port nothing listens on (bound, then closed)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.mark.parametrize("host", ["127.0.0.1:43969", "api.ayrshare.com"])
def test_a_host_without_a_scheme_is_refused_at_once_with_the_fix(monkeypatch, host):
    monkeypatch.setenv("AIRFLOW_CONN_AYRSHARE_DEFAULT", connection_json(host))
    started = time.monotonic()
    with pytest.raises(
        AyrshareConfigError, match=rf"without a scheme: write https://{host} \(or http://{host}"
    ):
        AyrshareHook(**ONE_ATTEMPT).get_user()
    assert time.monotonic() - started < 1  # refused before any request


def test_a_refused_connection_names_the_url_both_sync_and_async(monkeypatch):
    url = f"http://127.0.0.1:{closed_port()}"
    monkeypatch.setenv("AIRFLOW_CONN_AYRSHARE_DEFAULT", connection_json(url))
    with pytest.raises(
        AyrshareConnectionError, match=f"GET /api/user failed: no answer: connection refused by {url}"
    ):
        AyrshareHook(**ONE_ATTEMPT).get_user()

    async def read() -> None:
        hook = AyrshareHook(**ONE_ATTEMPT)
        try:
            await hook.aget_post("p1")
        finally:
            await hook.aclose()

    with pytest.raises(AyrshareConnectionError, match=f"connection refused by {url}"):
        asyncio.run(read())


def test_https_to_a_plain_http_server_says_tls_failed_and_how_to_fix_it(monkeypatch, httpserver):
    url = httpserver.url_for("/").rstrip("/").replace("http://", "https://")
    monkeypatch.setenv("AIRFLOW_CONN_AYRSHARE_DEFAULT", connection_json(url))
    with pytest.raises(
        AyrshareConnectionError, match=f"TLS failed with {url}.*write http:// in Host"
    ) as caught:
        AyrshareHook(**ONE_ATTEMPT).get_user()
    assert caught.value.url == url and not any(secret in str(caught.value) for secret in SECRETS)


def test_an_answer_that_does_not_come_in_time_is_a_timeout(monkeypatch, httpserver):
    httpserver.expect_request("/api/user").respond_with_handler(lambda request: time.sleep(1.0))
    url = httpserver.url_for("/").rstrip("/")
    monkeypatch.setenv("AIRFLOW_CONN_AYRSHARE_DEFAULT", connection_json(url))
    with pytest.raises(AyrshareConnectionError, match=f"no answer in time from {url} \\(timeout\\)"):
        AyrshareHook(timeout=0.3, **ONE_ATTEMPT).get_user()


def test_a_failed_name_lookup_is_said_as_such():
    """DNS cannot be failed on loopback without sending a query out: the exception chain requests raises is built here."""
    from urllib3.exceptions import MaxRetryError, NameResolutionError

    lookup = NameResolutionError("api.ayrshare.com", None, socket.gaierror(-2, "Name or service not known"))
    raised = requests.ConnectionError(MaxRetryError(None, "/api/user", reason=lookup))
    error = connection_error(raised, url="https://api.ayrshare.com", call="GET /api/user", post_id=None)
    assert "DNS lookup failed for api.ayrshare.com: check the connection's Host" in str(error)


def test_a_host_with_a_password_in_it_is_refused_without_repeating_it(monkeypatch):
    monkeypatch.setenv(
        "AIRFLOW_CONN_AYRSHARE_DEFAULT", connection_json("https://user:hunter2-secret@api.ayrshare.com")
    )
    with pytest.raises(AyrshareConfigError, match="user name or password in its host") as caught:
        AyrshareHook(**ONE_ATTEMPT).get_user()
    assert "hunter2" not in str(caught.value)


def test_a_key_with_characters_no_header_can_carry_is_a_clear_error(monkeypatch):
    from airflow.models.connection import Connection

    conn = Connection(conn_type="ayrshare", host="http://127.0.0.1:9", password="kéy-pasted-from-a-pdf")
    monkeypatch.setenv("AIRFLOW_CONN_AYRSHARE_DEFAULT", conn.as_json())
    with pytest.raises(AyrshareConfigError, match="sent as Authorization has characters that are not ASCII"):
        AyrshareHook(**ONE_ATTEMPT).get_user()


def test_a_profile_key_with_a_line_break_inside_is_refused_without_quoting_it(monkeypatch):
    from airflow.models.connection import Connection

    key = "PROFILEKEY-half\nPROFILEKEY-other-half-secret"  # two lines pasted as one
    conn = Connection(
        conn_type="ayrshare", host="http://127.0.0.1:9", password="k" * 8, extra={"profile_key": key}
    )
    monkeypatch.setenv("AIRFLOW_CONN_AYRSHARE_DEFAULT", conn.as_json())
    with pytest.raises(AyrshareConfigError, match="sent as Profile-Key has a line break") as caught:
        AyrshareHook(**ONE_ATTEMPT).get_user()
    assert "other-half" not in str(caught.value)


def test_a_history_filter_that_is_not_a_number_is_a_clear_error(monkeypatch):
    monkeypatch.setenv("AIRFLOW_CONN_AYRSHARE_DEFAULT", connection_json("http://127.0.0.1:9"))
    with pytest.raises(AyrshareConfigError, match="limit must be a whole number, got 'ten'"):
        AyrshareHook(**ONE_ATTEMPT).get_history(limit="ten")  # type: ignore[arg-type]
