"""The emulator's User Profiles (Business plan): who a Profile Key acts for, and an agency to recover.

Until a profile is added, any Profile Key is accepted as a profile of its own (the emulator's
behaviour before it knew profiles). Once one is added, the service's rules apply: a Profile Key
it does not know, or one of a suspended profile, is refused with a 403 on every call, and
``GET /api/profiles`` lists the profiles (never their keys), as Ayrshare does.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ayrshare_emulator.records import iso
from ayrshare_emulator.state import ApiError, days_ago

if TYPE_CHECKING:
    from datetime import datetime

    from ayrshare_emulator.state import State

ACTIVE, SUSPENDED = "active", "suspended"
# The emulator's answers to a refused Profile Key. Ayrshare documents the 403, not its code: these are ours.
UNKNOWN_KEY = (403, 403, "Profile Key not valid. Verify the Profile Key.")
SUSPENDED_KEY = (403, 403, "This User Profile is suspended (too many rate-limit violations).")


@dataclass
class Profile:
    """One User Profile: its key (a secret, never listed), its names, and whether it is suspended."""

    key: str
    title: str
    ref_id: str
    status: str = ACTIVE
    created: datetime = field(default_factory=lambda: days_ago(90))

    def listing(self, networks: list[str]) -> dict[str, Any]:
        """The profile as ``GET /api/profiles`` lists it: no key."""
        return {
            "title": self.title,
            "displayTitle": self.title,
            "refId": self.ref_id,
            "status": self.status,
            "suspended": self.status == SUSPENDED,
            "activeSocialAccounts": networks,
            "created": iso(self.created),
        }


def add_profile(state: State, title: str, *, key: str | None = None, status: str = ACTIVE) -> Profile:
    """
    Create a User Profile, as Ayrshare's ``POST /api/profiles`` would: its key is only known now.

    :param title: the profile's title (unique, as on Ayrshare).
    :param key: its Profile Key (default: a new random one).
    :param status: ``active`` or ``suspended``.
    """
    if status not in (ACTIVE, SUSPENDED):
        raise ValueError(f"status must be {ACTIVE!r} or {SUSPENDED!r}, got {status!r}")
    with state.lock:
        if any(profile.title == title for profile in state.profiles.values()):
            raise ValueError(f"a profile titled {title!r} exists already")
        profile = Profile(
            key=key or f"PK-{secrets.token_hex(12)}",
            title=title,
            ref_id=f"{state.random.getrandbits(112):028x}",
            status=status,
        )
        state.profiles[profile.key] = profile
    return profile


def refusal(state: State, key: str) -> ApiError | None:
    """Why a call with this Profile Key is refused (403), or None. The Primary Profile ("") is never."""
    if not key or not state.profiles:
        return None
    profile = state.profiles.get(key)
    if profile is None:
        return ApiError(*UNKNOWN_KEY, action="request")
    if profile.status == SUSPENDED:
        return ApiError(*SUSPENDED_KEY, action="request")
    return None


def names_of(state: State, key: str) -> dict[str, str]:
    """The ``title`` and ``refId`` the emulator's records and ``GET /api/user`` show for a key."""
    profile = state.profiles.get(key)
    if profile is not None:
        return {"title": profile.title, "refId": profile.ref_id}
    return {"title": "Emulator User Profile" if key else "Emulator Profile", "refId": "emulator-ref"}


def agency(state: State, profiles: int, failed_posts: int, *, suspended: int = 0) -> list[Profile]:
    """
    ``profiles`` client profiles (``Client 01``...), each with ``failed_posts`` retryable failed posts;
    the last ``suspended`` of them suspended.
    """
    from ayrshare_emulator import scenarios

    width = len(str(profiles))
    made = []
    for index in range(1, profiles + 1):
        status = SUSPENDED if index > profiles - suspended else ACTIVE
        profile = add_profile(state, f"Client {index:0{width}d}", status=status)
        platforms = ["linkedin", "facebook", "instagram", "tiktok"]
        for number in range(failed_posts):
            platform = platforms[number % len(platforms)]
            scenarios.add_failed(
                state,
                profile.key,
                [platform],
                {platform: scenarios.TRANSIENT},
                text=f"{profile.title}: post {number}",
                age_days=0.01 * (number + 1),
                refId=profile.ref_id,
                profileTitle=profile.title,
            )
        made.append(profile)
    return made
