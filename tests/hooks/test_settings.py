"""The hook's settings: resolved once, by one rule, into a frozen value; the hook's HttpHook surface is honest."""

from __future__ import annotations

import asyncio
import dataclasses

import pytest

from ayrshare_provider.exceptions import AyrshareConfigError
from ayrshare_provider.hooks.ayrshare import AyrshareHook
from ayrshare_provider.hooks.settings import HookSettings
from tests.helpers import connection_json, error_post


def test_each_setting_comes_from_the_argument_else_the_extra_else_its_default():
    settings = HookSettings.resolve(
        "c", {"timeout": 5, "backoff": None}, {"backoff": "2", "max_attempts": ""}
    )
    assert (settings.timeout, settings.backoff, settings.max_attempts) == (5.0, 2.0, 5)
    with pytest.raises(dataclasses.FrozenInstanceError):
        settings.timeout = 1  # type: ignore[misc]


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ({"timeout": "ten"}, "connection 'c''s timeout is 'ten', which is not a number"),
        ({"max_attempts": 0}, "max_attempts is 0: it must be at least 1"),  # not silently raised to 1
        ({"max_attempts": 2.5}, "max_attempts is 2.5: give a whole number"),
        ({"rate_headroom": 1.5}, "rate_headroom is 1.5: it must be above 0 and at most 1"),
        ({"timeout": 0}, "timeout is 0: it must be above 0"),
        ({"backoff": -1}, "backoff is -1: it must be at least 0"),
        ({"history_max_age": True}, "history_max_age is True, which is not a number"),
    ],
)
def test_one_rule_checks_every_setting_and_names_where_it_came_from(extra, message):
    with pytest.raises(AyrshareConfigError, match=message.replace("(", r"\(")):
        HookSettings.resolve("c", {}, extra)


def test_the_form_and_the_hook_share_the_bounds():
    from ayrshare_provider.connection_form import declarative_connection_type

    fields = declarative_connection_type()["conn-fields"]
    assert (
        fields["rate_headroom"]["schema"]["maximum"] == 1 and fields["max_attempts"]["schema"]["minimum"] == 1
    )
    assert "history_max_age" not in fields  # not in the form; still read from the extra (below)


def test_a_bad_setting_in_the_connection_fails_the_first_call_clearly(monkeypatch, fake):
    monkeypatch.setenv("AIRFLOW_CONN_AYRSHARE_DEFAULT", connection_json(fake.url, max_attempts="lots"))
    hook = AyrshareHook()
    with pytest.raises(AyrshareConfigError, match="max_attempts is 'lots'"):
        hook.get_user()
    with pytest.raises(AyrshareConfigError, match="max_attempts is 'lots'"):
        asyncio.run(hook.asettings())
    assert fake.calls == {}  # nothing was sent


def test_run_is_httphooks_call_with_ayrshares_session_budget_and_errors(ayrshare_conn):
    ayrshare_conn.add_post(error_post("p1"))
    hook = AyrshareHook()
    assert hook.run("/api/user")["title"] == "Test Profile"
    assert hook.run("api/history", data={"status": "error"})["history"][0]["id"] == "p1"
    answer = AyrshareHook(method="PUT").run("/api/post/retry", data={"id": "p1"}, headers={"X-Trace": "t1"})
    assert answer["status"] == "pending" and ayrshare_conn.headers_seen[-1]["X-Trace"] == "t1"


def test_get_conn_refuses_per_call_options_its_shared_session_would_keep(ayrshare_conn):
    with pytest.raises(AyrshareConfigError, match="pass them to run"):
        AyrshareHook().get_conn(headers={"X-Trace": "t1"})


def test_both_halves_take_every_history_filter(ayrshare_conn):
    ayrshare_conn.add_post(error_post("p1", platform="linkedin"))
    filters = {
        "status": "error",
        "last_days": 0,
        "limit": 10,
        "platforms": ["linkedin"],
        "post_type": "immediate",
    }

    async def listing() -> list:
        hook = AyrshareHook()
        try:
            return await hook.aget_history(**filters)
        finally:
            await hook.aclose()

    assert [r["id"] for r in AyrshareHook().get_history(**filters)] == [
        r["id"] for r in asyncio.run(listing())
    ]
    with pytest.raises(AyrshareConfigError, match="unknown history filter"):
        AyrshareHook().get_history(staus="error")  # type: ignore[call-arg]
