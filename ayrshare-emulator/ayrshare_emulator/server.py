"""Run the emulator: in the foreground (``python -m ayrshare_emulator``) or in a thread (tests, demo)."""

from __future__ import annotations

import signal
import socket
import threading
import time
from typing import Any

import uvicorn

from ayrshare_emulator import scenarios
from ayrshare_emulator.app import create_app
from ayrshare_emulator.faults import Faults
from ayrshare_emulator.state import Settings, State
from ayrshare_emulator.webhooks import WebhookSender


class Emulator:
    """
    An emulated Ayrshare on ``host``: a uvicorn server around :func:`create_app`.

    :param api_key: the one API key accepted.
    :param host: a loopback address to listen on.
    :param port: the port; 0 picks a free one.
    :param scenario: the posts to start with (``empty``, ``demo``, ``bulk``).
    :param seed: makes ids, outcomes and probabilistic faults reproducible.
    :param count: how many posts, for the ``bulk`` scenario.
    :param profile_key: the profile the scenario's posts belong to ("" is the Primary Profile).
    :param settings: more :class:`Settings` (``retry_delay``, ``retry_delay_max``, ``rate_limit``, ``rate_window``, ``history_cache``).
    """

    def __init__(
        self,
        api_key: str,
        host: str = "127.0.0.1",
        port: int = 0,
        scenario: str = "empty",
        seed: int = 0,
        count: int = 0,
        profile_key: str = "",
        **settings: Any,
    ) -> None:
        self.state = State(Settings(api_key=api_key, **settings), seed=seed)
        self.faults = Faults(seed=seed)
        scenarios.load(scenario, self.state, profile_key, count)
        self.address = (host, port)
        self.socket: socket.socket | None = None
        config = uvicorn.Config(
            create_app(self.state, self.faults),
            log_level="warning",
            access_log=False,
            timeout_keep_alive=30,
            lifespan="off",
        )
        self.server = uvicorn.Server(config)
        self._thread: threading.Thread | None = None
        self.webhooks = WebhookSender(self.state, self.faults)

    def bind(self) -> socket.socket:
        """Take the address (port 0 picks a free one); connections queue from now on, even before serving."""
        if self.socket is None:
            self.socket = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            self.socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            self.socket.bind(self.address)
            self.socket.listen(2048)
        return self.socket

    @property
    def url(self) -> str:
        """The base URL to put in the connection's host, such as ``http://127.0.0.1:8765`` (once bound)."""
        if self.socket is None:
            raise RuntimeError("the emulator has no address yet: call bind() or start() first")
        host, port = self.socket.getsockname()[:2]
        return f"http://{host}:{port}"

    def serve_forever(self) -> None:
        """Serve in this (main) thread until SIGINT/SIGTERM, then shut down cleanly and return."""
        # uvicorn shuts down gracefully on both signals, then re-raises the signal to the handler it
        # found: a no-op one turns that into a normal return instead of death by signal.
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, lambda *_: None)
        self.webhooks.start()
        try:
            self.server.run(sockets=[self.bind()])
        finally:
            self.webhooks.stop()

    def start(self) -> Emulator:
        """Serve in a background thread; returns once the server accepts connections."""
        self._thread = threading.Thread(
            target=self.server.run, kwargs={"sockets": [self.bind()]}, daemon=True
        )
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise RuntimeError("the Ayrshare emulator did not start")
            time.sleep(0.01)
        self.webhooks.start()
        return self

    def stop(self) -> None:
        self.webhooks.stop()
        self.server.should_exit = True
        if self._thread:
            self._thread.join(timeout=10)
        if self.socket is not None:
            self.socket.close()

    def __enter__(self) -> Emulator:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()
