"""The emulator's User Profiles keep Ayrshare's contract: listed without keys, paginated, refused when unknown or suspended."""

from __future__ import annotations

import pytest
import requests

from ayrshare_emulator import profiles
from tests.emulator.test_contract import api

pytestmark = pytest.mark.any_airflow  # the same on every Airflow: CI runs it once, on 3.3


def test_profiles_are_listed_a_page_at_a_time_without_their_keys(emulator):
    made = profiles.agency(emulator.state, 5, 1, suspended=1)
    seen, cursor, pages = [], None, 0
    while True:
        answer = api(
            emulator, "GET", "/api/profiles", params={"limit": 2, **({"cursor": cursor} if cursor else {})}
        )
        assert answer.status_code == 200, answer.text
        body, pages = answer.json(), pages + 1
        seen += body["profiles"]
        if not body["pagination"]["hasMore"]:
            break
        cursor = body["pagination"]["nextCursor"]
    assert pages == 3 and sorted(p["title"] for p in seen) == [f"Client {n}" for n in range(1, 6)]
    assert {p["title"]: p["status"] for p in seen}["Client 5"] == "suspended"
    assert all(p["activeSocialAccounts"] == ["linkedin"] for p in seen)
    listed = str(seen)
    assert not any(profile.key in listed for profile in made)
    only = api(emulator, "GET", "/api/profiles", params={"title": "Client 2"}).json()["profiles"]
    assert [p["refId"] for p in only] == [made[1].ref_id]


def test_profiles_are_listed_by_the_primary_profile_only(emulator):
    [profile] = profiles.agency(emulator.state, 1, 0)
    answer = api(emulator, "GET", "/api/profiles", {"Profile-Key": profile.key})
    assert answer.status_code == 403 and "Primary Profile" in answer.json()["message"]


def test_an_unknown_or_suspended_profile_key_is_refused_on_every_call_and_posts_stay_in_their_profile(
    emulator,
):
    active, suspended = (
        profiles.add_profile(emulator.state, "Acme"),
        profiles.add_profile(emulator.state, "Bloom", status=profiles.SUSPENDED),
    )
    user = api(emulator, "GET", "/api/user", {"Profile-Key": active.key}).json()
    assert (user["title"], user["refId"]) == ("Acme", active.ref_id)
    for key, says in (("not-a-profile-key", "not valid"), (suspended.key, "suspended")):
        for method, path in (("GET", "/api/user"), ("GET", "/api/history"), ("PUT", "/api/post/retry")):
            answer = api(emulator, method, path, {"Profile-Key": key}, json={"id": "x"})
            assert answer.status_code == 403 and says in answer.json()["message"], (method, path)
    # The Primary Profile still works, and counters name profiles by title, never by key.
    assert api(emulator, "GET", "/api/user").status_code == 200
    counters = requests.get(f"{emulator.url}/_emulator/counters", timeout=10).json()
    assert counters["requests_by_profile"] == {"Acme": 1, "primary": 1}
    assert active.key not in str(counters)


def test_the_control_api_creates_an_agency_and_answers_each_key_once(emulator):
    answer = requests.post(
        f"{emulator.url}/_emulator/profiles",
        json={"agency": 3, "failed_posts": 2, "suspended": 1},
        timeout=10,
    ).json()
    assert [(p["title"], p["status"]) for p in answer["profiles"]] == [
        ("Client 1", "active"),
        ("Client 2", "active"),
        ("Client 3", "suspended"),
    ]
    first = answer["profiles"][0]
    history = api(emulator, "GET", "/api/history", {"Profile-Key": first["key"]}, params={"status": "error"})
    records = history.json()["history"]
    assert len(records) == 2 and {r["profileTitle"] for r in records} == {"Client 1"}
    assert {r["refId"] for r in records} == {first["refId"]}
    bad = requests.post(
        f"{emulator.url}/_emulator/profiles", json={"profiles": [{"title": "Client 1"}]}, timeout=10
    )
    assert bad.status_code == 400 and "exists already" in bad.text
