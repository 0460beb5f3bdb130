"""The hook a trigger builds from its serialized kwargs, in the triggerer."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ayrshare_provider.hooks.ayrshare import AyrshareHook


def hook_from_kwargs(kwargs: dict[str, Any]) -> AyrshareHook:
    """The hook of a trigger's serialized kwargs; a trigger only uses the async session."""
    from ayrshare_provider.hooks.ayrshare import AyrshareHook

    return AyrshareHook(
        kwargs["ayrshare_conn_id"],
        profile_key=kwargs.get("profile_key"),
        tcp_keep_alive=False,  # the sync session's socket options
        **(kwargs.get("hook_params") or {}),
    )
