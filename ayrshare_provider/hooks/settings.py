"""The hook's tuning, resolved once from its arguments and its connection into one frozen value."""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from typing import Any

from ayrshare_provider import connection_form
from ayrshare_provider.exceptions import AyrshareConfigError


@dataclass(frozen=True)
class HookSettings:
    """
    How an :class:`~ayrshare_provider.hooks.ayrshare.AyrshareHook` calls Ayrshare; each value is
    described, with its default and bounds, in :data:`ayrshare_provider.connection_form.TUNING_FIELDS`.

    :param timeout: seconds to wait for one answer (connecting waits at most 10).
    :param max_attempts: attempts of one call before its error is raised.
    :param backoff: first wait between two attempts, in seconds; it doubles up to ``max_backoff``.
    :param max_backoff: longest wait between two attempts, in seconds.
    :param rate_headroom: the share of the profile's rate-limit window this machine uses.
    :param history_max_age: how old a cached history answer can be, in seconds.
    :param webhook_grace: with a webhook secret, seconds a wait relies on pushed statuses alone.
    """

    timeout: float = connection_form.TUNING_FIELDS["timeout"]["default"]
    max_attempts: int = connection_form.TUNING_FIELDS["max_attempts"]["default"]
    backoff: float = connection_form.TUNING_FIELDS["backoff"]["default"]
    max_backoff: float = connection_form.TUNING_FIELDS["max_backoff"]["default"]
    rate_headroom: float = connection_form.TUNING_FIELDS["rate_headroom"]["default"]
    history_max_age: float = connection_form.TUNING_FIELDS["history_max_age"]["default"]
    webhook_grace: float = connection_form.TUNING_FIELDS["webhook_grace"]["default"]

    def __post_init__(self) -> None:
        for field in fields(self):  # frozen: store the checked (converted) value past __setattr__
            object.__setattr__(self, field.name, _check(field.name, getattr(self, field.name), field.name))

    @classmethod
    def resolve(cls, conn_id: str, arguments: dict[str, Any], extra: dict[str, Any]) -> HookSettings:
        """
        Each value from the hook's arguments, else the connection's extra, else its default.

        :param conn_id: the connection, for the error message.
        :param arguments: the hook's tuning arguments (None: not given).
        :param extra: the connection's extra fields (an empty form field counts as not given).
        :raises AyrshareConfigError: a value that is not a number or is out of its bounds, naming where it came from.
        """
        values: dict[str, Any] = {}
        for field in fields(cls):
            name = field.name
            if arguments.get(name) is not None:
                value, where = arguments[name], f"the hook argument {name}"
            elif extra.get(name) not in (None, ""):
                value, where = extra[name], f"connection {conn_id!r}'s {name}"
            else:
                continue
            values[name] = _check(name, value, where)
        return cls(**values)


def _check(name: str, value: Any, where: str) -> Any:
    """The one rule for every setting: a number (a whole one where the field says so) within the field's bounds."""
    field = connection_form.TUNING_FIELDS[name]
    try:
        number = float(value.strip() if isinstance(value, str) else value)
    except (TypeError, ValueError):
        number = math.nan
    if isinstance(value, bool) or not math.isfinite(number):
        raise AyrshareConfigError(f"{where} is {value!r}, which is not a number")
    if field.get("integer"):
        if not number.is_integer():
            raise AyrshareConfigError(f"{where} is {value!r}: give a whole number")
        number = int(number)
    bounds = field["bounds"]
    if (
        ("minimum" in bounds and number < bounds["minimum"])
        or ("exclusiveMinimum" in bounds and number <= bounds["exclusiveMinimum"])
        or ("maximum" in bounds and number > bounds["maximum"])
    ):
        raise AyrshareConfigError(f"{where} is {value!r}: it must be {_describe(bounds)}")
    return number


def _describe(bounds: dict[str, float]) -> str:
    words = {"minimum": "at least", "exclusiveMinimum": "above", "maximum": "at most"}
    return " and ".join(f"{words[key]} {limit:g}" for key, limit in bounds.items())
