"""A StatsD server on 127.0.0.1 for tests: it keeps every counter it receives, tags included."""

from __future__ import annotations

import socket
import threading
from collections import Counter


class StatsdListener:
    """
    Receives StatsD datagrams on a free UDP port; :meth:`counts` sums each counter.

    Names keep InfluxDB-style tags (``name,tag=value``: Airflow's ``statsd_influxdb_enabled``), so a
    test sees what a tag-aware backend sees.
    """

    def __init__(self) -> None:
        self.socket = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.socket.bind(("127.0.0.1", 0))
        self.socket.settimeout(0.2)
        self.port = self.socket.getsockname()[1]
        self.lines: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._receive, daemon=True)

    def __enter__(self) -> StatsdListener:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self.socket.close()

    def _receive(self) -> None:
        while not self._stop.is_set():
            try:
                data = self.socket.recv(65536)
            except TimeoutError:
                continue
            self.lines += data.decode().splitlines()  # a client may batch several metrics in a datagram

    def counts(self, prefix: str = "") -> Counter[str]:
        """Every counter (``name[,tags]``) whose name starts with ``prefix``, summed."""
        found: Counter[str] = Counter()
        for line in self.lines:
            name, _, rest = line.partition(":")
            value, _, kind = rest.partition("|")
            if kind.startswith("c") and name.startswith(prefix):
                found[name] += int(float(value))
        return found
