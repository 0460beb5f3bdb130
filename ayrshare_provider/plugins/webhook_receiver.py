"""Ayrshare's scheduled-action webhook, received in Airflow's API server (Airflow 3).

The provider registers :class:`AyrshareWebhookPlugin`, whose FastAPI app Airflow mounts under
``/ayrshare``. ``POST /ayrshare/webhook?conn_id=<connection>`` (``ayrshare_default`` when left
out) is the one route. A delivery is checked (size, signatures with the connection's
``webhook_secret``, JSON), answered 2xx without recording anything when it was taken before (by
its ``hookId``, delivery id or signed body: Ayrshare delivers at least once), else recorded on the connection's
failed-posts asset (:mod:`ayrshare_provider.assets`): a failed post becomes an asset event, which
starts the DAGs scheduled on that asset; every final status is kept in the asset's state store
(Airflow 3.3), where waits for the post read it. A delivery of another User Profile's post
(its ``refId``) is filed under that profile's connection, or nowhere
(:mod:`~ayrshare_provider.plugins.profile_routing`). Nothing else: no Airflow login is asked
(Ayrshare cannot send one), and none is given.

Imported by the API server only, on the first delivery (see
:mod:`ayrshare_provider.plugins.webhook_plugin`).
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from fastapi import FastAPI, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse

from ayrshare_provider import assets, metrics, version_compat, webhook_delivery
from ayrshare_provider.assets import DEFAULT_CONN_ID, WATCHER_SEEN_KEY
from ayrshare_provider.connection_form import webhook_secret_of
from ayrshare_provider.metrics import Metric
from ayrshare_provider.plugins import profile_routing
from ayrshare_provider.version_compat import AssetStateStore
from ayrshare_provider.webhook_delivery import DeliveryRefused, ScheduledDelivery

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

_CONN_ID = re.compile(r"[A-Za-z0-9_.\-]{1,250}")  # what Airflow allows in a connection id
#: Before Airflow 3.3 (no asset state store), how far back the asset's events are searched for a
#: post's earlier deliveries; on 3.3 they are kept with the post's pushed status, for good.
_EVENT_MEMORY = timedelta(days=7)
_NAMES_KEPT = 60  # per post, the names of its deliveries taken (three each): far more than one post gets

_BATCH = 200  # deliveries per transaction at most: a 1,000-post burst takes about five

_log = logging.getLogger(__name__)


def create_app() -> FastAPI:
    """The receiver's FastAPI app (mounted by Airflow under ``/ayrshare``)."""
    app = FastAPI(title="Ayrshare webhook receiver", docs_url=None, redoc_url=None, openapi_url=None)
    recorder = _Recorder()

    @app.post("/webhook")
    async def webhook(request: Request, conn_id: str = DEFAULT_CONN_ID) -> JSONResponse:
        started = time.monotonic()
        try:
            body = await _capped_body(request)
            signed_for, delivery = await run_in_threadpool(_verified, conn_id, body, request.headers)
            owner = await run_in_threadpool(_owner, conn_id, signed_for, delivery)
            if owner is None:  # another profile's post, whose connection Airflow does not have
                _log.warning(
                    "Ayrshare webhook for connection %r: post %s is profile refId %r's, which no Ayrshare "
                    "connection here acts as; not filed",
                    conn_id,
                    delivery.post_id,
                    delivery.record.get("refId"),
                )
                metrics.count(Metric.WEBHOOK_ACCEPTED, profile=conn_id)
                return JSONResponse({"status": "accepted", "post": delivery.post_id, "outcome": "not filed"})
            outcome = await recorder.record(owner, delivery)
            if owner != conn_id:
                outcome = f"{outcome}, for connection {owner!r} (profile {delivery.record.get('refId')})"
        except DeliveryRefused as refused:
            _log.warning(
                "Ayrshare webhook for connection %r refused (%s): %s",
                conn_id,
                refused.http_status,
                refused.reason,
            )
            # Untagged: the connection id of a refused delivery is the sender's word, not a checked name.
            metrics.count(Metric.WEBHOOK_REFUSED)
            # A 401 does not say why: whether a connection exists or has a secret is not the sender's business.
            reason = "not authenticated" if refused.http_status == 401 else refused.reason
            return JSONResponse({"status": "refused", "reason": reason}, refused.http_status)
        metrics.count(Metric.WEBHOOK_ACCEPTED, profile=conn_id)
        stamp = webhook_delivery.sent_at(request.headers)  # logged: the signature does not cover it
        _log.info(
            "Ayrshare webhook for connection %r: post %s is %s; %s (%.0f ms; stamped %s)",
            conn_id,
            delivery.post_id,
            delivery.status,
            outcome,
            (time.monotonic() - started) * 1000,
            "without a timestamp" if stamp is None else f"{time.time() - stamp:.0f} s before it arrived",
        )
        return JSONResponse({"status": "accepted", "post": delivery.post_id, "outcome": outcome})

    return app


async def _capped_body(request: Request) -> bytes:
    """The raw body, refused (413) past :data:`~ayrshare_provider.webhook_delivery.MAX_BODY` bytes."""
    limit = webhook_delivery.MAX_BODY
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise DeliveryRefused(413, f"the body is over {limit} bytes")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise DeliveryRefused(413, f"the body is over {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def _verified(conn_id: str, body: bytes, headers: Any) -> tuple[str, ScheduledDelivery]:
    """
    The delivery, once its headers and a signature check out, with the connection whose secret
    matched: the one the URL names or, failing that, a connection of the profile the body says it
    is for (a User Profile that inherits the Primary's webhook may sign with its own secret).
    """
    if not _CONN_ID.fullmatch(conn_id):  # nothing else reaches the secrets backends
        raise DeliveryRefused(401, "the conn_id is not a connection id")
    webhook_delivery.check_headers(headers)  # before any secrets backend is asked
    secret = _webhook_secret(conn_id)
    try:
        if secret is None:
            raise DeliveryRefused(
                401, f"no webhook secret to check the delivery with (connection {conn_id!r})"
            )
        signed_for, signature = conn_id, webhook_delivery.verify(secret, body, headers)
    except DeliveryRefused:
        signed_for, signature = _verified_for_its_profile(conn_id, body, headers)
    return signed_for, webhook_delivery.parse(body, signature, headers)


def _verified_for_its_profile(conn_id: str, body: bytes, headers: Any) -> tuple[str, str]:
    """The connection and signature, checked with the secret of a connection of the profile the (unverified) body names."""
    claimed = _claimed_ref_id(body)  # only picks which secrets to try: nothing is believed unsigned
    try:
        candidates = profile_routing.connections_of_profile(claimed, besides=conn_id) if claimed else []
    except Exception as err:  # noqa: BLE001 - a busy database: this delivery is not authenticated now
        _log.warning("Ayrshare webhook: the connections of profile %r could not be listed: %s", claimed, err)
        candidates = []
    for other in candidates:
        if (secret := _webhook_secret(other)) is not None:
            try:
                return other, webhook_delivery.verify(secret, body, headers)
            except DeliveryRefused:
                continue
    raise DeliveryRefused(401, "the delivery's signature matches no webhook secret of its profile")


def _owner(conn_id: str, signed_for: str, delivery: ScheduledDelivery) -> str | None:
    """The connection the delivery is filed under: the one whose secret signed it when not the URL's, else by its refId."""
    if signed_for != conn_id:
        return signed_for
    try:
        return profile_routing.owner_of(conn_id, delivery.record.get("refId"))
    except Exception as err:  # noqa: BLE001 - kept nowhere now; Ayrshare sends it again
        _log.warning("Ayrshare webhook: whose post %s is could not be told: %s", delivery.post_id, err)
        raise DeliveryRefused(503, "not recorded now; send it again") from None


def _claimed_ref_id(body: bytes) -> str | None:
    try:
        payload = json.loads(body)
    except (UnicodeDecodeError, ValueError, RecursionError):  # unauthenticated bytes: anything
        return None
    ref_id = payload.get("refId") if isinstance(payload, dict) else None
    return ref_id if isinstance(ref_id, str) and ref_id else None


def _webhook_secret(conn_id: str) -> str | None:
    from airflow.exceptions import AirflowNotFoundException
    from airflow.models.connection import Connection

    try:
        return webhook_secret_of(Connection.get_connection_from_secrets(conn_id).extra_dejson)
    except AirflowNotFoundException:
        return None


@dataclass(frozen=True)
class _Earlier:
    """What was taken before for a post: the names of its deliveries, and whether its failure was reported."""

    signatures: list[str]
    reported: bool


class _Recorder:
    """
    Records deliveries a batch at a time: one transaction for all that arrived while the last was written.

    A recovery run retries hundreds of posts at once, so their deliveries come in a burst, and
    Ayrshare waits 10 s for each answer. One commit per delivery, one after another, answered the
    end of a burst too late; and each waiting delivery held one of the API server's worker threads,
    which its own routes (the Execution API the tasks call) need too. Here waiting deliveries are
    coroutines, one thread writes, and a delivery is answered after the commit that keeps it.
    Checking for a replay and recording are one step per API server process: two copies of a body
    that arrive together do not both pass.
    """

    def __init__(self) -> None:
        self._waiting: list[tuple[str, ScheduledDelivery, asyncio.Future[str]]] = []
        self._writer: asyncio.Task[None] | None = None

    async def record(self, conn_id: str, delivery: ScheduledDelivery) -> str:
        """The delivery's outcome once it is committed; :class:`DeliveryRefused` if it is not taken."""
        answer: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        self._waiting.append((conn_id, delivery, answer))
        if self._writer is None or self._writer.done():
            self._writer = asyncio.create_task(self._write_while_any_wait())
        return await answer

    async def _write_while_any_wait(self) -> None:
        while self._waiting:
            batch, self._waiting = self._waiting[:_BATCH], self._waiting[_BATCH:]
            outcomes = await run_in_threadpool(_record_safely, [(conn, item) for conn, item, _ in batch])
            for (_, _, answer), outcome in zip(batch, outcomes, strict=True):
                if answer.done():  # the sender went away; what it sent is recorded all the same
                    continue
                if isinstance(outcome, DeliveryRefused):
                    answer.set_exception(outcome)
                else:
                    answer.set_result(outcome)


def _record_safely(deliveries: list[tuple[str, ScheduledDelivery]]) -> list[str | DeliveryRefused]:
    """
    The batch recorded in one transaction; if that fails, each delivery in its own, so that one the
    database cannot take fails alone. Never raises: every waiting sender gets an answer.
    """
    try:
        return _record_batch(deliveries)
    except Exception as err:  # noqa: BLE001 - nothing of the transaction was kept, whatever went wrong
        if len(deliveries) > 1:
            _log.warning("Ayrshare webhook: a batch of %d failed (%r); one by one", len(deliveries), err)
            return [outcome for delivery in deliveries for outcome in _record_safely([delivery])]
        _log.exception(
            "Ayrshare webhook: the delivery for post %s could not be recorded", deliveries[0][1].post_id
        )
        # Ayrshare sends it again after 5 s and 30 s.
        return [DeliveryRefused(503, "not recorded now; send it again")]


def _record_batch(deliveries: list[tuple[str, ScheduledDelivery]]) -> list[str | DeliveryRefused]:
    """Record the deliveries in one transaction: each one's outcome, or why it was refused."""
    from airflow.utils.session import create_session

    outcomes: dict[int, str | DeliveryRefused] = {}
    # By connection, so that API server processes lock the connections' assets in one order (no
    # deadlock); in arrival order within one, so that the first of two copies is the one taken.
    order = sorted(range(len(deliveries)), key=lambda index: deliveries[index][0])
    with create_session() as session:
        transaction = _Transaction(session)
        for index in order:
            try:
                outcomes[index] = _record(*deliveries[index], transaction)
            except DeliveryRefused as refused:
                outcomes[index] = refused
    return [outcomes[index] for index in range(len(deliveries))]


class _Transaction:
    """A batch's transaction: its session, and what each post took before it or earlier in it."""

    def __init__(self, session: Session) -> None:
        self.session = session
        self.taken: dict[tuple[str, str], _Earlier] = {}  # recorded earlier in this transaction
        self._weeks: dict[int, dict[str, list[str]]] = {}  # before 3.3: per asset, each post's deliveries

    def earlier(self, conn_id: str, post_id: str, asset_id: int, store: AssetStateStore | None) -> _Earlier:
        """On 3.3 the post's pushed entry; before, the asset's events of the last week (read once a batch)."""
        if (conn_id, post_id) in self.taken:
            return self.taken[conn_id, post_id]
        if store is not None:
            pushed = store.get(assets.pushed_key(post_id), self.session)
            pushed = pushed if isinstance(pushed, dict) else {}
            signatures = pushed.get("deliveries")
            return _Earlier(
                signatures=[str(sig) for sig in signatures] if isinstance(signatures, list) else [],
                reported=bool(pushed.get("reported")),
            )
        if asset_id not in self._weeks:
            self._weeks[asset_id] = _deliveries_of_the_week(asset_id, self.session)
        signatures = self._weeks[asset_id].get(post_id, [])
        return _Earlier(signatures=signatures, reported=bool(signatures))


def _record(conn_id: str, delivery: ScheduledDelivery, transaction: _Transaction) -> str:
    """Keep the post's final status and, for a failure not reported before, create the asset event."""
    session = transaction.session
    asset = _asset(conn_id, session)
    store = AssetStateStore.of(asset.id)
    earlier = transaction.earlier(conn_id, delivery.post_id, asset.id, store)
    known = set(earlier.signatures)  # names; 0.2 kept the bare signature
    if delivery.signature in known or known.intersection(delivery.ids):
        # Answered 2xx: another answer would only make Ayrshare send it again.
        return "taken before: nothing recorded"
    failed = delivery.status == "error"
    # A post is reported once, as the watcher reports it: a retry that fails again starts no run.
    reported = earlier.reported or (
        failed and store is not None and delivery.post_id in (store.get(WATCHER_SEEN_KEY, session) or [])
    )
    signatures = [*earlier.signatures, *delivery.ids][-_NAMES_KEPT:]
    transaction.taken[conn_id, delivery.post_id] = _Earlier(
        signatures=signatures, reported=reported or failed
    )
    if store is not None:
        value = assets.pushed_value(delivery.record, time.time(), signatures, reported or failed)
        store.set(assets.pushed_key(delivery.post_id), value, session)
    if failed and not reported:
        _add_event(asset, delivery, session)
        return f"asset event on {asset.name}"
    if failed:
        return "reported before"
    return "kept for the waits" if store is not None else "nothing to start"


def _asset(conn_id: str, session: Session) -> Any:
    """The connection's failed-posts asset, locked for this delivery where the database can lock a row."""
    name = assets.failed_posts_asset_name(conn_id)
    # Locked: two API server processes taking copies of one body do not both pass the replay check.
    asset = version_compat.locked_active_asset(name, session)
    if asset is None:
        raise DeliveryRefused(404, f"no DAG declares the asset {name!r}: deploy ayrshare_recover_on_failure")
    return asset


def _deliveries_of_the_week(asset_id: int, session: Session) -> dict[str, list[str]]:
    """Before 3.3 (no state store): the names of the deliveries each post's events of the last week hold."""
    extras = version_compat.asset_event_extras_since(asset_id, datetime.now(UTC) - _EVENT_MEMORY, session)
    found: dict[str, list[str]] = {}
    for extra in extras:
        if isinstance(extra, dict) and extra.get("post_id"):
            names = extra.get("deliveries")
            names = [str(name) for name in names] if isinstance(names, list) else []
            found.setdefault(str(extra["post_id"]), []).extend([str(extra.get("delivery")), *names])
    return found


def _add_event(asset: Any, delivery: ScheduledDelivery, session: Session) -> None:
    platforms = delivery.platforms
    extra = {
        "source": "webhook",
        "post_id": delivery.post_id,
        "status": delivery.status,
        "platforms": platforms,
        "delivery": delivery.signature,
        "deliveries": list(delivery.ids),
        # The shape of the watcher's events, so that one DAG reads both.
        "payload": {"posts": [{"id": delivery.post_id, "platforms": platforms}]},
    }
    version_compat.add_asset_event(asset, extra, session)
