"""The reposts this provider made, remembered across runs in Airflow's metadata database (Variables).

Ayrshare keeps a post's ``idempotencyKey`` for a time it does not document, and no post record
(GET post, history) carries it: a day later neither can say that a failed post was reposted, nor
that a post is one of our reposts. So :class:`~ayrshare_provider.operators.repost.RepostOperator`
writes each repost down, in Airflow Variables (the store every supported Airflow offers tasks
through its public API):

- ``ayrshare_repost__<original id>``: ``{"state": "sending", ...}`` just before the ``POST``, then
  ``{"state": "made", "new_id": ..., ...}`` once Ayrshare answered with the new post;
- ``ayrshare_repost_of__<new id>``: the original's id, so that the new post is known as a repost.

A post with an entry is never posted again: "made" is reported as reposted earlier; "refused" (a
4xx answer, such as code 137, duplicate content) needs a person; "sending" (an attempt that died
between the POST and its answer) is sent again with the same ``idempotencyKey`` only while Ayrshare
surely still remembers it, else a person is asked to look (the repost may exist). A person who
fixed things deletes the original's Variable to allow one more repost.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any, Literal

#: Variable key prefixes: the original's entry, and the new post's origin.
ENTRY_PREFIX = "ayrshare_repost__"
ORIGIN_PREFIX = "ayrshare_repost_of__"
#: How long after a POST whose answer was lost its ``idempotencyKey`` is trusted to make no second
#: post when sent again (seconds). Ayrshare does not say how long it keeps a key; the same task's
#: own retries come within minutes, a later run may come days later.
KEY_TRUSTED_FOR = 600.0

State = Literal["sending", "made", "refused"]


@dataclass(frozen=True)
class RepostEntry:
    """
    What the ledger knows of one original post's repost.

    :param post_id: the original (failed) post.
    :param state: ``"sending"`` (the POST may or may not have made a post), ``"made"``, or
        ``"refused"`` (Ayrshare answered the POST with a 4xx: it made nothing).
    :param idempotency_key: the key the POST carried.
    :param at: when it was written (``time.time()``).
    :param new_id: the repost's id, once made.
    :param conn_id: the connection it was sent with.
    :param refusal: what Ayrshare said when it refused the POST.
    :param fix: what a person does about it (code 137: change the text).
    """

    post_id: str
    state: State
    idempotency_key: str
    at: float
    new_id: str | None = None
    conn_id: str | None = None
    refusal: str | None = None
    fix: str | None = None

    def key_still_trusted(self, now: float | None = None) -> bool:
        """A "sending" entry young enough that the same ``idempotencyKey`` makes no second post."""
        return (time.time() if now is None else now) - self.at <= KEY_TRUSTED_FOR

    def to_value(self) -> dict[str, Any]:
        return {
            "state": self.state,
            "idempotency_key": self.idempotency_key,
            "at": self.at,
            "new_id": self.new_id,
            "conn_id": self.conn_id,
            "refusal": self.refusal,
            "fix": self.fix,
        }

    @classmethod
    def from_value(cls, post_id: str, value: Any) -> RepostEntry:
        """
        The entry a Variable holds.

        :raises AyrshareConfigError: for a value that is no entry (a person edited it): something was
            written down for this post, so it is never read as "not reposted".
        """
        if not isinstance(value, dict) or value.get("state") not in ("sending", "made", "refused"):
            raise _unreadable(post_id)
        new_id = value.get("new_id")
        if value["state"] == "made" and not (isinstance(new_id, str) and new_id):
            raise _unreadable(post_id)
        return cls(
            post_id=post_id,
            state=value["state"],
            idempotency_key=str(value.get("idempotency_key") or ""),
            at=float(value.get("at") or 0.0),
            new_id=new_id if isinstance(new_id, str) and new_id else None,
            conn_id=value.get("conn_id"),
            refusal=value.get("refusal"),
            fix=value.get("fix"),
        )


def entry_key(post_id: str) -> str:
    """The Variable that holds ``post_id``'s entry (what a person deletes to allow a repost again)."""
    return f"{ENTRY_PREFIX}{post_id}"


def entry_of(post_id: str) -> RepostEntry | None:
    """The ledger's entry for the original ``post_id``, or None: never reposted by this provider."""
    value = _get(entry_key(post_id), post_id)
    return None if value is None else RepostEntry.from_value(post_id, value)


def original_of(post_id: str) -> str | None:
    """The original post ``post_id`` is a repost of, or None: not a repost this provider made."""
    original = _get(f"{ORIGIN_PREFIX}{post_id}", post_id)
    return original if isinstance(original, str) and original else None


def note_sending(post_id: str, idempotency_key: str, conn_id: str) -> RepostEntry:
    """Write down, before the POST, that a repost of ``post_id`` is being sent."""
    entry = RepostEntry(post_id, "sending", idempotency_key, time.time(), conn_id=conn_id)
    _set(entry_key(post_id), entry.to_value(), f"Ayrshare: a repost of {post_id} is being sent")
    return entry


def note_made(entry: RepostEntry, new_id: str) -> RepostEntry:
    """Write down the repost Ayrshare made, both ways (the original's entry, the new post's origin)."""
    made = RepostEntry(entry.post_id, "made", entry.idempotency_key, time.time(), new_id, entry.conn_id)
    _set(f"{ORIGIN_PREFIX}{new_id}", entry.post_id, f"Ayrshare: a repost of {entry.post_id}")
    _set(entry_key(entry.post_id), made.to_value(), f"Ayrshare: {entry.post_id} was reposted as {new_id}")
    return made


def note_refused(entry: RepostEntry, refusal: str, fix: str) -> RepostEntry:
    """Write down that Ayrshare refused the POST (a 4xx): nothing was made, and the same POST is never sent again."""
    refused = RepostEntry(
        entry.post_id,
        "refused",
        entry.idempotency_key,
        time.time(),
        conn_id=entry.conn_id,
        refusal=refusal,
        fix=fix,
    )
    _set(entry_key(entry.post_id), refused.to_value(), f"Ayrshare refused a repost of {entry.post_id}")
    return refused


def _get(key: str, post_id: str) -> Any:
    from airflow.providers.common.compat.sdk import Variable

    # Read as text, decoded here: the Task SDK reads a value that is not JSON as no Variable at all.
    # The default positionally: Airflow 2.11 names it default_var, the Task SDK default.
    raw = Variable.get(key, None)
    if raw is None:
        return None
    try:
        return json.loads(raw)
    except ValueError:  # a person edited it
        raise _unreadable(post_id) from None


def _unreadable(post_id: str) -> Exception:
    from ayrshare_provider.exceptions import AyrshareConfigError

    return AyrshareConfigError(
        f"the repost ledger's Airflow Variable {entry_key(post_id)!r} (or its new post's) is not what this "
        "provider writes: delete it to allow a repost, or restore it",
        post_id=post_id,
    )


def _set(key: str, value: Any, description: str) -> None:
    from airflow.providers.common.compat.sdk import Variable

    Variable.set(key, value, description=description, serialize_json=True)
