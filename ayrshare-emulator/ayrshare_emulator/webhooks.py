"""The emulator's webhook deliveries: final statuses pushed to the registered URLs, as Ayrshare does.

A background thread settles posts whose time has come (unread, as on the service), takes the
scheduled-action payloads they queued and POSTs each to its profile's registered URL, signed
with the registered secret (:mod:`ayrshare_emulator.signing`). A delivery that gets no
2xx within ``webhook_timeout`` is tried again after each of ``webhook_retry_delays`` (5 s, then
30 s more), then given up. Faults on the endpoint ``"WEBHOOK scheduled"``: ``drop_delivery``
(never sent), ``deliver_twice`` (the same body twice, at once), ``deliver_late`` (sent
``seconds`` late).

Counters (``/_emulator/counters`` under ``webhooks``): ``queued``, ``attempts``, ``delivered``,
``refused`` (a 4xx/5xx answer), ``unanswered`` (timeout or no connection), ``given_up``,
``dropped``, ``duplicated``, ``late``, ``unregistered`` (no URL for the profile).
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
from typing import TYPE_CHECKING, Any

from ayrshare_emulator.signing import DELIVERY_ID_HEADER, signed_headers

if TYPE_CHECKING:
    import httpx

    from ayrshare_emulator.faults import Faults
    from ayrshare_emulator.state import State

WEBHOOK_ENDPOINT = "WEBHOOK scheduled"
_TICK = 0.1  # seconds between two looks for posts that became final

_log = logging.getLogger(__name__)


class WebhookSender:
    """
    Pushes final statuses to registered webhooks from a daemon thread with its own event loop.

    :param state: the emulator's state (registrations, posts, outbox, counters).
    :param faults: the fault rules (``"WEBHOOK scheduled"`` ones apply here).
    """

    def __init__(self, state: State, faults: Faults) -> None:
        self.state, self.faults = state, faults
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=asyncio.run, args=(self._run(),), daemon=True)
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)

    async def _run(self) -> None:
        import httpx

        pending: set[asyncio.Task[None]] = set()
        async with httpx.AsyncClient() as client:
            while not self._stop.is_set():
                self.state.settle_due()
                for profile, payload in self.state.take_outbox():
                    self._count("queued")
                    task = asyncio.create_task(self._deliver(client, profile, payload))
                    pending.add(task)
                    task.add_done_callback(pending.discard)
                await asyncio.sleep(_TICK)
            for task in pending:
                task.cancel()

    async def _deliver(self, client: httpx.AsyncClient, profile: str, payload: dict[str, Any]) -> None:
        hook = self.state.webhook_of(profile, payload["action"])
        if hook is None:
            self._count("unregistered")
            return
        fault = self.faults.pick(WEBHOOK_ENDPOINT)
        kind = fault.kind if fault else "ok"
        if kind == "drop_delivery":
            self._count("dropped")
            return
        if kind == "deliver_late":
            self._count("late")
            await asyncio.sleep(fault.seconds if fault else 0)
        settings = self.state.settings
        delivery_id = None
        if settings.webhook_delivery_ids:
            with self.state.lock:
                delivery_id = f"dlv-{self.state.new_id()}"
            payload = {**payload, "hookId": delivery_id}
        body = json.dumps(payload).encode()
        copies = 2 if kind == "deliver_twice" else 1
        if copies == 2:
            self._count("duplicated")
        await asyncio.gather(
            *(self._send_with_retries(client, hook, body, delivery_id) for _ in range(copies))
        )

    def _signed(self, hook: dict[str, Any], body: bytes) -> dict[str, str]:
        """The signature headers: the digest as the run's reading writes it, both secrets during a rotation."""
        settings = self.state.settings
        rotating = hook.get("previous_secret") and (
            self.state.clock() - float(hook.get("rotated_at", 0.0)) < settings.webhook_rotation_overlap
        )
        return signed_headers(
            hook["secret"],
            body,
            encoding=settings.webhook_digest,
            second_secret=hook["previous_secret"] if rotating else None,
        )

    async def _send_with_retries(
        self, client: httpx.AsyncClient, hook: dict[str, Any], body: bytes, delivery_id: str | None
    ) -> None:
        import httpx

        settings = self.state.settings
        for attempt, delay in enumerate((0.0, *settings.webhook_retry_delays), start=1):
            await asyncio.sleep(delay)
            self._count("attempts")
            headers = {"Content-Type": "application/json"}
            if delivery_id is not None:
                headers.update({DELIVERY_ID_HEADER: delivery_id, "X-Ayrshare-Delivery-Attempt": str(attempt)})
            if hook.get("secret"):
                headers.update(self._signed(hook, body))
            try:
                answer = await client.post(
                    hook["url"], content=body, headers=headers, timeout=settings.webhook_timeout
                )
            except httpx.HTTPError as err:
                self._count("unanswered")
                _log.info("Webhook delivery to %s got no answer: %s", hook["url"], type(err).__name__)
                continue
            if answer.is_success:
                self._count("delivered")
                return
            self._count("refused")
        self._count("given_up")

    def _count(self, name: str) -> None:
        with self.state.lock:
            self.state.webhook_counts[name] += 1
