"""Named sets of posts the emulator starts with.

- ``empty``: no posts.
- ``demo``: fifteen failed posts across networks, each a case a recovery must get right.
- ``bulk``: ``count`` failed posts with seeded variety, for soak tests and benchmarks.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ayrshare_emulator.records import failed_record, iso
from ayrshare_emulator.state import State, StoredPost, days_ago

if TYPE_CHECKING:
    from collections.abc import Iterable

# (code, message) of errors the emulator uses, worded as Ayrshare words them.
TRANSIENT = (136, "The network did not respond in time. Please try again.")
INSTAGRAM_REJECTED = (138, "Instagram rejected the post. Please try again later.")
LINKEDIN_IMAGE = (254, "LinkedIn could not process the image.")
FACEBOOK_RELINK = (161, "Facebook authorization expired. Please relink Facebook.")
DUPLICATE = (110, "Status is a duplicate.")
REJECTED = (138, "The network rejected the post. Please try again later.")
NOT_LINKED = (156, "The social network is not linked to this profile. Please link it first.")
INSTAGRAM_LIMIT = (435, "Instagram rate limit: the account reached its 50 posts per 24 hours. Please wait.")
INSTAGRAM_LIMIT_WAIT = 86400  # seconds, in the error's details: Meta's Retry-After
INSTAGRAM_SHORT_WAIT = 30  # seconds: a wait a demo run outlasts


def add_failed(
    state: State,
    profile: str,
    platforms: list[str],
    errors: dict[str, tuple[int, str]],
    fails_again: dict[str, tuple[int, str]] | None = None,
    already_retried: bool = False,
    *,
    text: str,
    age_days: float,
    published: Iterable[str] = (),
    **extra: Any,
) -> StoredPost:
    """
    Add a failed post as the emulator keeps one: its ids drawn from ``state``, sent ``age_days`` ago.

    :param errors: per failed network, its error (code, message).
    :param fails_again: the networks whose error a retry meets again.
    :param published: the networks that published it anyway.
    :param extra: more record fields, or replacements (``created`` in the object form, ``retryAvailable``).
    """
    sent = days_ago(age_days)
    network_ids = {platform: state.new_network_id() for platform in published}
    record = failed_record(
        platforms,
        errors,
        text=text,
        published=network_ids,
        post_id=state.new_id(),
        **{  # the emulator's defaults; ``extra`` replaces any of them
            "created": sent,
            "schedule_date": sent,
            "mediaUrls": [],
            "refId": "emulator-ref",
            "profileTitle": "Emulator Profile",
            **extra,
        },
    )
    return state.add(
        StoredPost(record, profile, retry_failures=fails_again or {}, already_retried=already_retried)
    )


def demo(state: State, profile: str = "") -> None:
    """The demo's posts: what recovers, what fails again, and what must not be retried."""
    # Recover on retry.
    add_failed(state, profile, ["linkedin"], {"linkedin": TRANSIENT}, text="Our Q4 report is out", age_days=1)
    add_failed(
        state, profile, ["facebook"], {"facebook": TRANSIENT}, text="Black Friday opening hours", age_days=1.5
    )
    add_failed(state, profile, ["instagram"], {"instagram": TRANSIENT}, text="Behind the scenes", age_days=2)
    add_failed(state, profile, ["tiktok"], {"tiktok": TRANSIENT}, text="New tutorial video", age_days=2.5)
    add_failed(
        state,
        profile,
        ["linkedin", "facebook"],
        {"facebook": TRANSIENT},
        published=["linkedin"],
        text="We are hiring (half published)",
        age_days=3,
    )
    add_failed(state, profile, ["twitter"], {"twitter": TRANSIENT}, text="Launch thread on X", age_days=3.5)
    # Dates in Ayrshare's object form.
    add_failed(
        state,
        profile,
        ["pinterest"],
        {"pinterest": TRANSIENT},
        text="Mood board",
        age_days=4,
        created={"_seconds": int(days_ago(4).timestamp()), "_nanoseconds": 0, "utc": iso(days_ago(4))},
    )
    # Fail again on retry.
    add_failed(
        state,
        profile,
        ["instagram"],
        {"instagram": INSTAGRAM_REJECTED},
        fails_again={"instagram": INSTAGRAM_REJECTED},
        text="Carousel of the week",
        age_days=5,
    )
    add_failed(
        state,
        profile,
        ["linkedin"],
        {"linkedin": LINKEDIN_IMAGE},
        fails_again={"linkedin": LINKEDIN_IMAGE},
        text="Infographic",
        age_days=5.5,
    )
    # Retried before this run: the one retry is spent.
    add_failed(
        state,
        profile,
        ["facebook"],
        {"facebook": TRANSIENT},
        already_retried=True,
        text="Event reminder",
        age_days=6,
    )
    # Must not be retried.
    # The network reported an error, yet the post is live: status "error", every network published.
    add_failed(
        state,
        profile,
        ["youtube"],
        {},
        published=["youtube"],
        text="Published despite the error",
        age_days=6.5,
    )
    add_failed(state, profile, ["facebook"], {"facebook": FACEBOOK_RELINK}, text="Needs a relink", age_days=7)
    add_failed(
        state,
        profile,
        ["twitter"],
        {"twitter": DUPLICATE},
        text="Same text twice",
        age_days=7.5,
        retryAvailable=False,
    )
    # Instagram asked to wait a day (code 435): retrying now would spend the one retry for nothing.
    late = add_failed(
        state, profile, ["instagram"], {"instagram": INSTAGRAM_LIMIT}, text="Reel of the day", age_days=0.25
    )
    late.record["errors"][0]["details"] = INSTAGRAM_LIMIT_WAIT
    # Instagram asked to wait half a minute from now: a recovery waits it out and retries in its run.
    soon = add_failed(
        state, profile, ["instagram"], {"instagram": INSTAGRAM_LIMIT}, text="Story of the hour", age_days=0
    )
    soon.record["errors"][0]["details"] = INSTAGRAM_SHORT_WAIT
    # And one that never failed, so history has more than failures.
    add_failed(
        state,
        profile,
        ["linkedin"],
        {},
        published=["linkedin"],
        text="All good",
        age_days=0.5,
        status="success",
    )


def bulk(state: State, profile: str = "", count: int = 50) -> None:
    """``count`` failed posts: most recover, some fail again, some are published or not retryable."""
    platforms = ["linkedin", "facebook", "instagram", "tiktok", "pinterest", "twitter"]
    for index in range(count):
        roll = state.random.random()
        platform = platforms[index % len(platforms)]
        kwargs: dict[str, Any] = {"text": f"Bulk post {index}", "age_days": 0.01 * (index + 1)}
        if roll < 0.65:
            add_failed(state, profile, [platform], {platform: TRANSIENT}, **kwargs)
        elif roll < 0.85:
            add_failed(
                state, profile, [platform], {platform: REJECTED}, fails_again={platform: REJECTED}, **kwargs
            )
        elif roll < 0.93:
            add_failed(state, profile, [platform], {}, published=[platform], **kwargs)
        else:
            add_failed(state, profile, [platform], {platform: NOT_LINKED}, **kwargs)


SCENARIOS = {
    "empty": lambda state, profile="", count=0: None,
    "demo": lambda state, profile="", count=0: demo(state, profile),
    "bulk": lambda state, profile="", count=50: bulk(state, profile, count or 50),
}


def load(name: str, state: State, profile: str = "", count: int = 0) -> None:
    """Fill ``state`` with the named scenario."""
    if name not in SCENARIOS:
        raise ValueError(f"unknown scenario {name!r}; choose one of {sorted(SCENARIOS)}")
    SCENARIOS[name](state, profile, count)
