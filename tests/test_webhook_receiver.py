"""The webhook receiver over real HTTP (uvicorn on 127.0.0.1) and a real metadata DB: what it takes, what it refuses.

Each refused delivery must create nothing (no asset event, no pushed status) and log one line
without the body or the secret.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from typing import Any

import pytest
import requests

from tests.airflow_compat import airflow_version
from tests.helpers import connection_json, declare_asset

pytestmark = pytest.mark.skipif(airflow_version() < (3, 0), reason="the receiver is an Airflow 3 plugin")

WEBHOOK_SECRET = "WEBHOOKSECRET-3c9d1e7a-secret"
ASSET = "ayrshare_failed_posts"
PUSHED_STATES = airflow_version() >= (3, 3)  # the asset state store


def delivery(post_id: str = "Pwh1", status: str = "error", **fields: Any) -> dict[str, Any]:
    """A scheduled-action payload as Ayrshare sends it."""
    errors = [{"action": "post", "platform": "linkedin", "code": 136, "message": "timeout"}]
    return {
        "action": "scheduled",
        "status": status,
        "id": post_id,
        "code": 200 if status == "success" else 400,
        "errors": errors if status == "error" else [],
        "postIds": [] if status == "error" else [{"platform": "linkedin", "status": "success", "id": "77"}],
        "refId": "emulator-ref",
        "created": "2026-11-30T10:00:00Z",
        **fields,
    }


@pytest.fixture
def receiver(airflow_db, monkeypatch: pytest.MonkeyPatch):
    """The receiver app on a free loopback port, the default connection with its secret, the asset in the DB."""
    monkeypatch.setenv(
        "AIRFLOW_CONN_AYRSHARE_DEFAULT",
        connection_json("http://127.0.0.1:9", webhook_secret=WEBHOOK_SECRET),
    )
    yield from _serving_receiver()


CLIENT_SECRET = "WEBHOOKSECRET-client-5e1b-secret"
CLIENT_ASSET = "ayrshare_failed_posts__ayrshare_client"


@pytest.fixture
def agency_receiver(airflow_db, emulator, monkeypatch: pytest.MonkeyPatch):
    """
    The receiver, with two connections on the emulator: the Primary Profile's (``ayrshare_default``,
    whose webhook URL every profile without its own inherits) and a User Profile's
    (``ayrshare_client``), each with its secret and its failed-posts asset. Yields the URL and the client.
    """
    from ayrshare_emulator import profiles

    client = profiles.add_profile(emulator.state, "Client A")
    monkeypatch.setenv(
        "AIRFLOW_CONN_AYRSHARE_DEFAULT", connection_json(emulator.url, webhook_secret=WEBHOOK_SECRET)
    )
    monkeypatch.setenv(
        "AIRFLOW_CONN_AYRSHARE_CLIENT",
        connection_json(emulator.url, profile_key=client.key, webhook_secret=CLIENT_SECRET),
    )
    declare_asset(CLIENT_ASSET)
    _clear_asset(CLIENT_ASSET)
    for url in _serving_receiver():
        yield url, client


def _serving_receiver():
    """The receiver app on a free loopback port, the default asset in the DB; yields the webhook's URL."""
    import uvicorn

    from ayrshare_provider.plugins import profile_routing
    from ayrshare_provider.plugins.webhook_receiver import create_app

    profile_routing._ref_ids.clear()  # each test's connections are new
    declare_asset(ASSET)
    _clear_asset(ASSET)
    server = uvicorn.Server(uvicorn.Config(create_app(), host="127.0.0.1", port=0, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.01)
    port = server.servers[0].sockets[0].getsockname()[1]
    yield f"http://127.0.0.1:{port}/webhook"
    server.should_exit = True
    thread.join(timeout=10)


def _clear_asset(name: str) -> None:
    from airflow.models.asset import AssetEvent, AssetModel
    from airflow.utils.session import create_session

    with create_session() as session:
        asset = session.query(AssetModel).filter(AssetModel.name == name).one()
        session.query(AssetEvent).filter(AssetEvent.asset_id == asset.id).delete()
        if PUSHED_STATES:
            from airflow.models.asset_state_store import AssetStateStoreModel

            session.query(AssetStateStoreModel).filter(AssetStateStoreModel.asset_id == asset.id).delete()


def events(asset_name: str = ASSET) -> list[dict[str, Any]]:
    """The extras of the asset's events."""
    from airflow.models.asset import AssetEvent, AssetModel
    from airflow.utils.session import create_session

    with create_session() as session:
        asset = session.query(AssetModel).filter(AssetModel.name == asset_name).one()
        return [e.extra for e in session.query(AssetEvent).filter(AssetEvent.asset_id == asset.id)]


def pushed() -> dict[str, Any]:
    """The asset state store's entries (Airflow 3.3), decoded."""
    if not PUSHED_STATES:
        return {}
    from airflow.models.asset import AssetModel
    from airflow.models.asset_state_store import AssetStateStoreModel
    from airflow.utils.session import create_session

    with create_session() as session:
        asset = session.query(AssetModel).filter(AssetModel.name == ASSET).one()
        rows = session.query(AssetStateStoreModel).filter(AssetStateStoreModel.asset_id == asset.id)
        return {row.key: json.loads(row.value) for row in rows}


def send(
    url: str,
    body: bytes,
    secret: str = WEBHOOK_SECRET,
    sent_at: float | None = None,
    signing: dict[str, Any] | None = None,
    **headers: str,
):
    from ayrshare_emulator.signing import signed_headers

    signed = signed_headers(secret, body, sent_at, **(signing or {}))
    return requests.post(
        url, data=body, headers={**signed, "Content-Type": "application/json", **headers}, timeout=10
    )


def as_body(payload: Any) -> bytes:
    return json.dumps(payload).encode()


def test_a_signed_failure_becomes_one_asset_event_with_the_post_and_its_networks(receiver, caplog):
    caplog.set_level(logging.INFO)
    answer = send(receiver, as_body(delivery("Pgood1")))

    assert answer.status_code == 200, answer.text
    assert answer.elapsed.total_seconds() < 10  # Ayrshare's limit; it is milliseconds
    [extra] = events()
    assert extra["post_id"] == "Pgood1"
    assert extra["status"] == "error"
    assert extra["platforms"] == ["linkedin"]
    assert extra["payload"] == {"posts": [{"id": "Pgood1", "platforms": ["linkedin"]}]}
    assert WEBHOOK_SECRET not in json.dumps(extra)
    if PUSHED_STATES:
        assert pushed()["pushed/Pgood1"]["record"]["status"] == "error"
    assert WEBHOOK_SECRET not in caplog.text


def test_a_success_starts_nothing_and_is_kept_for_the_waits(receiver):
    answer = send(receiver, as_body(delivery("Pok1", status="success")))

    assert answer.status_code == 200, answer.text
    assert events() == []
    if PUSHED_STATES:
        kept = pushed()["pushed/Pok1"]
        assert kept["record"]["status"] == "success"
        assert kept["record"]["postIds"][0]["platform"] == "linkedin"
        assert abs(kept["received_at"] - time.time()) < 60


def _one_byte_changed(body: bytes) -> tuple[bytes, dict[str, str]]:
    from ayrshare_emulator.signing import signed_headers

    headers = signed_headers(WEBHOOK_SECRET, body)
    return body.replace(b"Pbad", b"Pbae"), headers


@pytest.mark.parametrize(
    ("case", "status"),
    [
        ("wrong secret", 401),
        ("body changed by one byte", 401),
        ("a rotation's two signatures, neither the connection's", 401),
        ("signature neither hex nor base64", 401),
        ("no headers", 401),
        ("1 MB body", 413),
        ("invalid JSON", 400),
        ("a JSON list", 422),
        ("another action", 422),
        ("no post id", 422),
        ("status not final", 422),
    ],
)
def test_a_bad_delivery_is_refused_and_creates_nothing(receiver, caplog, case: str, status: int):
    caplog.set_level(logging.INFO)
    body = as_body(delivery("Pbad1"))
    if case == "wrong secret":
        answer = send(receiver, body, secret="not-the-secret")
    elif case == "body changed by one byte":
        changed, headers = _one_byte_changed(body)
        answer = requests.post(receiver, data=changed, headers=headers, timeout=10)
    elif case == "a rotation's two signatures, neither the connection's":
        answer = send(receiver, body, secret="old-secret", signing={"second_secret": "other-secret"})
    elif case == "signature neither hex nor base64":
        answer = send(receiver, body, **{"X-Authorization-Content-SHA256": "é" * 64})
    elif case == "no headers":
        answer = requests.post(receiver, data=body, timeout=10)
    elif case == "1 MB body":
        big = as_body(delivery("Pbad1", padding="x" * 1_000_000))
        answer = send(receiver, big)
    elif case == "invalid JSON":
        answer = send(receiver, b'{"action": "scheduled", "id": ')
    elif case == "a JSON list":
        answer = send(receiver, as_body([delivery("Pbad1")]))
    elif case == "another action":
        answer = send(receiver, as_body(delivery("Pbad1", action="social")))
    elif case == "no post id":
        answer = send(receiver, as_body({**delivery(), "id": None}))
    else:
        answer = send(receiver, as_body(delivery("Pbad1", status="processing")))

    assert answer.status_code == status, answer.text
    assert events() == []
    assert pushed() == {}
    refusals = [r for r in caplog.records if "refused" in r.getMessage()]
    assert len(refusals) == 1
    assert "Pbad" not in refusals[0].getMessage()  # nothing of the body
    assert WEBHOOK_SECRET not in caplog.text


def test_a_delivery_taken_before_is_answered_2xx_and_starts_no_second_run(receiver):
    """Delivery is at least once: another answer than 2xx only makes Ayrshare send it again."""
    body = as_body(delivery("Preplay1"))
    assert send(receiver, body).status_code == 200
    again = send(receiver, body, sent_at=time.time() + 5)  # a fresh timestamp changes nothing

    assert again.status_code == 200 and again.json()["outcome"] == "taken before: nothing recorded"
    assert len(events()) == 1


@pytest.mark.parametrize(
    "signing",
    [{"encoding": "base64"}, {"encoding": "hex", "second_secret": "the-new-secret"}],
    ids=["base64 digest", "a rotation's V2 signature"],
)
def test_genuine_deliveries_are_taken_whatever_their_encoding_timestamp_or_rotation(receiver, signing):
    body = as_body(delivery("Pgenuine"))
    if "second_secret" in signing:  # the connection already has the new secret; V2 carries its signature
        answer = send(
            receiver, body, secret="the-old-secret", signing={**signing, "second_secret": WEBHOOK_SECRET}
        )
    else:
        answer = send(receiver, body, sent_at=time.time() - 7200, signing=signing)  # two hours old
    assert answer.status_code == 200, answer.text
    assert [extra["post_id"] for extra in events()] == ["Pgenuine"]


def test_the_same_hook_id_or_delivery_id_is_taken_once_even_with_another_body(receiver):
    first = send(receiver, as_body(delivery("Phook", hookId="hook-1")), **{"X-Ayrshare-Delivery-Id": "d-9"})
    # A resend whose body differs (Ayrshare added a field) is still the same delivery.
    by_hook = send(receiver, as_body(delivery("Phook", hookId="hook-1", attempt=2)))
    by_id = send(receiver, as_body(delivery("Phook", attempt=3)), **{"X-Ayrshare-Delivery-Id": "d-9"})
    assert [answer.status_code for answer in (first, by_hook, by_id)] == [200, 200, 200]
    assert [answer.json()["outcome"] for answer in (by_hook, by_id)] == ["taken before: nothing recorded"] * 2
    assert len(events()) == 1


def test_a_burst_is_recorded_in_a_few_transactions_and_each_copy_is_taken_once(receiver):
    import sqlite3
    from concurrent.futures import ThreadPoolExecutor

    from airflow import settings
    from sqlalchemy import event

    bodies = [as_body(delivery(f"Pburst{index}")) for index in range(60)]
    copies = bodies[:10]  # Ayrshare sent these twice, at the same moment
    commits: list[float] = []

    def count_commit(_connection: Any) -> None:
        commits.append(time.monotonic())

    # The scheduler holds SQLite's write lock while the burst comes in (as in a recovery run), so
    # that what arrives meanwhile waits together, whatever this machine's pace.
    scheduler = sqlite3.connect(settings.engine.url.database, timeout=30, isolation_level=None)
    event.listen(settings.engine, "commit", count_commit)
    try:
        with ThreadPoolExecutor(max_workers=len(bodies) + len(copies)) as pool:
            scheduler.execute("BEGIN IMMEDIATE")
            pending = pool.map(lambda body: send(receiver, body), bodies + copies)
            time.sleep(2)  # within the 5 s SQLite lets a writer wait
            scheduler.execute("ROLLBACK")
            answers = list(pending)
    finally:
        event.remove(settings.engine, "commit", count_commit)
        scheduler.close()

    codes: dict[bytes, list[int]] = {}
    for body, answer in zip(bodies + copies, answers, strict=True):
        codes.setdefault(body, []).append(answer.status_code)
    assert all(codes[body] == [200, 200] for body in copies), codes
    assert all(codes[body] == [200] for body in bodies[10:])
    assert sorted(extra["post_id"] for extra in events()) == sorted(f"Pburst{index}" for index in range(60))
    # One transaction per delivery was what kept the end of a burst waiting past Ayrshare's 10 s.
    assert len(commits) <= 5, f"{len(commits)} commits for {len(bodies) + len(copies)} deliveries"


@pytest.mark.parametrize("status", ["error", "success"])
def test_two_copies_in_one_batch_are_taken_once(airflow_db, status):
    from ayrshare_provider.plugins.webhook_receiver import _record_batch
    from ayrshare_provider.webhook_delivery import DeliveryRefused, parse

    declare_asset(ASSET)
    _clear_asset(ASSET)
    body = as_body(delivery("Pcopies", status=status))
    copy = parse(body, "signature-of-the-body")
    other = parse(as_body(delivery("Pcopies", status=status, created="later")), "signature-of-another-body")

    outcomes = _record_batch(
        [("ayrshare_default", copy), ("ayrshare_default", copy), ("ayrshare_default", other)]
    )

    assert outcomes[1] == "taken before: nothing recorded"
    assert not any(isinstance(outcome, DeliveryRefused) for outcome in outcomes)
    assert len(events()) == (1 if status == "error" else 0)  # a post is reported once


def test_a_delivery_the_db_cannot_take_is_answered_503_keeps_nothing_and_is_taken_when_sent_again(
    receiver, caplog
):
    from concurrent.futures import ThreadPoolExecutor

    from airflow.utils.session import create_session
    from sqlalchemy import text

    bodies = [as_body(delivery(f"Pdown{index}")) for index in range(3)]
    with create_session() as session:  # the DB fails every write of an asset event, as a broken DB does
        session.execute(text("ALTER TABLE asset_event RENAME TO asset_event_away"))
    try:
        with ThreadPoolExecutor(max_workers=3) as pool:
            down = list(pool.map(lambda body: send(receiver, body), bodies))
    finally:
        with create_session() as session:
            session.execute(text("ALTER TABLE asset_event_away RENAME TO asset_event"))

    assert [(answer.status_code, answer.json()["reason"]) for answer in down] == [
        (503, "not recorded now; send it again")
    ] * 3
    assert pushed() == {}  # nothing of them was kept
    assert "could not be recorded" in caplog.text
    again = [send(receiver, body) for body in bodies]  # Ayrshare sends again after 5 s
    assert [answer.status_code for answer in again] == [200] * 3
    assert sorted(extra["post_id"] for extra in events()) == ["Pdown0", "Pdown1", "Pdown2"]


def test_a_post_is_reported_once_even_when_it_fails_again_after_its_retry(receiver):
    assert send(receiver, as_body(delivery("Pagain1"))).status_code == 200
    later = send(receiver, as_body(delivery("Pagain1", created="2026-11-30T10:05:00Z")))  # another body

    assert later.status_code == 200 and later.json()["outcome"] == "reported before"
    assert len(events()) == 1  # as the watcher: a post that fails again starts no second run
    if PUSHED_STATES:  # the waits still see the new failure
        assert pushed()["pushed/Pagain1"]["record"]["created"] == "2026-11-30T10:05:00Z"


def test_a_body_streamed_past_the_cap_is_refused_while_it_arrives(receiver):
    chunks = (b"x" * 16384 for _ in range(10))  # chunked: no Content-Length to refuse it by
    answer = requests.post(receiver, data=chunks, headers=_signed_for(b"x"), timeout=10)

    assert answer.status_code == 413
    assert events() == []


def _signed_for(body: bytes) -> dict[str, str]:
    from ayrshare_emulator.signing import signed_headers

    return signed_headers(WEBHOOK_SECRET, body)


def test_a_connection_without_a_webhook_secret_takes_nothing(receiver, monkeypatch):
    monkeypatch.setenv("AIRFLOW_CONN_AYRSHARE_OTHER", connection_json("http://127.0.0.1:9"))
    body = as_body(delivery("Pnosecret"))
    no_secret = send(receiver + "?conn_id=ayrshare_other", body)
    unknown = send(receiver + "?conn_id=nope", body)
    not_an_id = send(receiver + "?conn_id=../../x%0Ay", body)
    wrong_secret = send(receiver, body, secret="not-the-secret")

    # One answer for all: the route does not tell which connections exist or have a secret.
    answers = [no_secret, unknown, not_an_id, wrong_secret]
    assert {(answer.status_code, answer.text) for answer in answers} == {
        (401, '{"status":"refused","reason":"not authenticated"}')
    }
    assert events() == []


@pytest.mark.skipif(not PUSHED_STATES, reason="the watcher's memory is in the asset state store on 3.3")
def test_a_failure_the_watcher_reported_already_starts_nothing(receiver):
    from airflow.models.asset import AssetModel
    from airflow.utils.session import create_session

    from ayrshare_provider.version_compat import AssetStateStore

    with create_session() as session:
        asset = session.query(AssetModel).filter(AssetModel.name == ASSET).one()
        AssetStateStore(asset.id).set("failed_post_ids_seen", ["Pseen1"], session)
    answer = send(receiver, as_body(delivery("Pseen1")))

    assert answer.status_code == 200
    assert answer.json()["outcome"] == "reported before"
    assert events() == []


@pytest.mark.parametrize("signed_by", ["the Primary's secret", "the User Profile's own secret"])
def test_a_user_profiles_post_delivered_to_the_primarys_url_is_filed_under_its_own_connection(
    agency_receiver, signed_by
):
    """A User Profile without its own webhook inherits the Primary's URL; its refId says whose post it is."""
    url, client = agency_receiver
    body = as_body(delivery("Pclient", refId=client.ref_id))
    secret = WEBHOOK_SECRET if signed_by == "the Primary's secret" else CLIENT_SECRET
    answer = send(url, body, secret=secret)
    assert answer.status_code == 200, answer.text
    assert "for connection 'ayrshare_client'" in answer.json()["outcome"]
    assert [extra["post_id"] for extra in events(CLIENT_ASSET)] == ["Pclient"]
    assert events() == []  # never filed under the Primary's connection


def test_a_post_of_a_profile_no_connection_acts_as_is_answered_2xx_and_filed_nowhere(agency_receiver, caplog):
    caplog.set_level(logging.INFO)
    url, client = agency_receiver
    answer = send(url, as_body(delivery("Pstranger", refId="a-profile-airflow-does-not-know")))
    assert answer.status_code == 200 and answer.json()["outcome"] == "not filed"
    assert events() == [] and events(CLIENT_ASSET) == [] and pushed() == {}
    assert "a-profile-airflow-does-not-know" in caplog.text  # logged with its refId, never a key
    assert client.key not in caplog.text and WEBHOOK_SECRET not in caplog.text


def test_a_delivery_signed_with_no_secret_of_its_claimed_profile_is_refused(agency_receiver):
    url, client = agency_receiver
    answer = send(url, as_body(delivery("Pforged", refId=client.ref_id)), secret="a-forger's-secret")
    assert answer.status_code == 401
    assert events() == [] and events(CLIENT_ASSET) == []


def test_a_hostile_unsigned_body_is_refused_401_never_a_500(agency_receiver):
    """The claimed refId is read before any signature matched: deep nesting must not crash it."""
    url, _ = agency_receiver
    answer = send(url, b"[" * 60_000, secret="a-forger's-secret")
    assert answer.status_code == 401, answer.text
    assert events() == [] and events(CLIENT_ASSET) == []
