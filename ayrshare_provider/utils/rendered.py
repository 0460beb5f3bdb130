"""Templated settings as a template renders them (text such as ``"30"`` or ``"False"``), read back as values."""

from __future__ import annotations

from typing import Any

from ayrshare_provider.exceptions import AyrshareConfigError


def seconds(name: str, value: Any) -> float:
    """
    A number of seconds, or a clear error naming the setting.

    :param name: the setting, for the error.
    :param value: its rendered value.
    """
    try:
        return float(value)
    except (TypeError, ValueError):
        raise AyrshareConfigError(f"{name} must be a number of seconds, got {value!r}") from None


def interval(name: str, value: Any) -> float:
    """A number of seconds above 0 (a wait between two reads), or a clear error naming the setting."""
    number = seconds(name, value)
    if not number > 0:
        raise AyrshareConfigError(f"{name} must be above 0 seconds, got {value!r}")
    return number


def flag(name: str, value: Any) -> bool:
    """
    True or False (also from ``"true"``/``"false"`` in any case), or a clear error naming the setting.

    :param name: the setting, for the error.
    :param value: its rendered value.
    """
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        value = value.strip().lower() == "true"
    if not isinstance(value, bool):
        raise AyrshareConfigError(f"{name} must be True or False, got {value!r}")
    return value
