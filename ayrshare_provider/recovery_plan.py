"""RecoveryPlan: what a recovery run decided for each failed post, as planning returns it and the steps read it."""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any, ClassVar

from ayrshare_provider.exceptions import AyrshareError


@dataclass
class RecoveryPlan:
    """
    Each failed post of a run on exactly one path, with its reason.

    :param to_retry: ids to retry in this run: now, or once a network's wait is over (``waits``).
    :param waits: of ``to_retry``, those retried after a wait: ``{"id", "not_before", "reason"}``.
    :param retry_later: posts whose wait is longer than the run waits, or left for the next run:
        ``{"id", "reason"}`` (and ``not_before``).
    :param needs_person: posts only a person can unblock, each with its networks' errors and fixes
        (:func:`~ayrshare_provider.posts.person_request`).
    :param spent: ids whose one retry is spent, to repost.
    :param skipped: everything else: ``{"id", "reason"}``.
    :param dry_run: decided only; what would be acted on is in ``skipped``.
    :param repost_spent: the run reposts posts whose retry is spent.
    :param records_as_of: the wall-clock moment the planned records show every post at least as of.
    :param retry_with: per post to retry, the part of its record its retry decides on; handed to
        the retry tasks as arguments, never kept in the plan's XCom.
    :param profiles: a run over many profiles: per connection, its ``conn_id``, ``label``,
        ``state`` (planned, skipped, failed), ``reason`` and ``posts``; None for one profile.
    :param failures: per post planned, each network it failed on with the error code it gave, as
        found (``{"platform", "code"}``): the report's networks and the recoveries page's codes.
    """

    to_retry: list[str] = field(default_factory=list)
    waits: list[dict[str, Any]] = field(default_factory=list)
    retry_later: list[dict[str, Any]] = field(default_factory=list)
    needs_person: list[dict[str, Any]] = field(default_factory=list)
    spent: list[str] = field(default_factory=list)
    skipped: list[dict[str, Any]] = field(default_factory=list)
    dry_run: bool = False
    repost_spent: bool = False
    records_as_of: float | None = None
    retry_with: dict[str, dict[str, Any]] = field(default_factory=dict)
    profiles: list[dict[str, Any]] | None = None
    failures: dict[str, list[dict[str, Any]]] = field(default_factory=dict)

    #: The lists of posts; ``to_retry`` and ``spent`` hold ids, the others entries with an ``id``.
    POST_LISTS: ClassVar[tuple[str, ...]] = (
        "to_retry",
        "waits",
        "retry_later",
        "needs_person",
        "spent",
        "skipped",
    )

    @staticmethod
    def entry_id(entry: Any) -> str:
        """A path's entry's post: ``to_retry`` and ``spent`` hold ids, the other paths entries with an ``id``."""
        return entry if isinstance(entry, str) else str(entry["id"])

    def post_ids(self, path: str) -> list[str]:
        """The ids of one path's posts (:data:`POST_LISTS`)."""
        return [self.entry_id(entry) for entry in getattr(self, path)]

    def describe(self) -> str:
        """One line for a log: how many posts take each path."""
        return (
            f"{len(self.to_retry)} to retry ({len(self.waits)} after a wait), "
            f"{len(self.needs_person)} for a person, {len(self.spent)} to repost, "
            f"{len(self.retry_later)} to retry later, {len(self.skipped)} skipped"
        )

    def to_xcom(self) -> dict[str, Any]:
        """The plan as JSON for XCom: without ``retry_with`` (each record travels once, in its task's arguments)."""
        value = {item.name: getattr(self, item.name) for item in fields(self) if item.name != "retry_with"}
        if self.profiles is None:
            del value["profiles"]
        return value

    @classmethod
    def from_xcom(cls, value: Any, *, source: str = "the plan's XCom") -> RecoveryPlan:
        """
        The plan a step pulled from XCom (also one pushed by 0.2, a dict of the same keys).

        :param value: what was pulled.
        :param source: where it was pulled from, for the error.
        :raises AyrshareError: when the value is not a plan (a missing or hand-edited XCom).
        """
        if not isinstance(value, dict) or "to_retry" not in value:
            shape = "a dict without to_retry" if isinstance(value, dict) else type(value).__name__
            raise AyrshareError(f"{source} holds no recovery plan (got {shape})")
        known = {item.name for item in fields(cls)}
        malformed = [name for name in cls.POST_LISTS if name in value and not isinstance(value[name], list)]
        if malformed:
            raise AyrshareError(f"{source} is not a recovery plan: {', '.join(malformed)} not lists")
        plan = cls(**{name: item for name, item in value.items() if name in known})
        plan.retry_with = dict(plan.retry_with or {})
        plan.failures = dict(plan.failures or {})
        return plan
