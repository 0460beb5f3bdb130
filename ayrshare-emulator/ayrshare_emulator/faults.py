"""Fault injection: which call gets which failure, by probability or as an exact sequence, from a seed.

Kinds:
- ``latency``: answer normally after ``seconds``.
- ``late_answer``: count and answer the call at once, but hold the answer back ``seconds`` (a slow
  way back, or a busy client): its rate-limit headers are that old when they arrive.
- ``error_html``: a gateway's HTML error page with HTTP ``status`` (default 502).
- ``unavailable``: 503 in Ayrshare's JSON envelope.
- ``rate_limit``: 429 in Ayrshare's JSON envelope; ``count`` > 1 makes it a burst of that many.
- ``drop``: close the connection without an answer; nothing is done.
- ``apply_then_drop``: do the work (a retry is applied), then close the connection: the lost response.
- ``ok``: no fault (a placeholder in a sequence).

Webhook deliveries (endpoint ``"WEBHOOK scheduled"``, see :mod:`ayrshare_emulator.webhooks`):
``drop_delivery``, ``deliver_twice``, ``deliver_late`` (``seconds`` late).
"""

from __future__ import annotations

import random
import threading
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

KINDS = frozenset(
    {
        "ok",
        "latency",
        "late_answer",
        "error_html",
        "unavailable",
        "rate_limit",
        "drop",
        "apply_then_drop",
        "drop_delivery",
        "deliver_twice",
        "deliver_late",
    }
)
ANY_ENDPOINT = "*"


@dataclass
class Fault:
    kind: str
    seconds: float = 0.0
    status: int = 502


@dataclass
class Rule:
    """
    :param endpoint: ``"METHOD /path/template"`` as the counters name it (``"GET /api/post/{id}"``), or ``"*"``.
    :param kind: one of :data:`KINDS`, for a probability rule.
    :param probability: chance per matching call, for a probability rule.
    :param sequence: kinds for the next matching calls, one each, in order (then the rule is spent).
    """

    endpoint: str
    kind: str = "ok"
    probability: float = 0.0
    sequence: list[str] = field(default_factory=list)
    seconds: float = 0.0
    status: int = 502
    count: int = 1
    _burst_left: int = 0

    def __post_init__(self) -> None:
        unknown = {self.kind, *self.sequence} - KINDS
        if unknown:
            raise ValueError(f"unknown fault kind(s) {sorted(unknown)}; known: {sorted(KINDS)}")
        if not 0.0 <= self.probability <= 1.0:
            raise ValueError(f"probability must be within 0..1, got {self.probability}")


class Faults:
    """The rules in force, and how many faults of each kind were injected where."""

    def __init__(self, seed: int = 0) -> None:
        self.random = random.Random(seed)
        self.rules: list[Rule] = []
        self.injected: Counter[str] = Counter()
        self.lock = threading.Lock()

    def add(self, spec: dict[str, Any]) -> Rule:
        rule = Rule(**spec)
        with self.lock:
            self.rules.append(rule)
        return rule

    def clear(self) -> None:
        with self.lock:
            self.rules.clear()

    def pick(self, endpoint: str) -> Fault | None:
        """The fault for this call, if any; the first matching rule that fires wins."""
        with self.lock:
            for rule in self.rules:
                if rule.endpoint not in (endpoint, ANY_ENDPOINT):
                    continue
                kind = self._fire(rule)
                if kind and kind != "ok":
                    self.injected[f"{endpoint} {kind}"] += 1
                    return Fault(kind, seconds=rule.seconds, status=rule.status)
                if kind == "ok":
                    return None
        return None

    def _fire(self, rule: Rule) -> str | None:
        if rule.sequence:
            return rule.sequence.pop(0)
        if rule._burst_left > 0:
            rule._burst_left -= 1
            return rule.kind
        if rule.probability and self.random.random() < rule.probability:
            rule._burst_left = max(0, rule.count - 1)
            return rule.kind
        return None
