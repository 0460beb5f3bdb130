"""What an Ayrshare connection becomes, once: the API origin, the credential headers, the settings, the rate budget."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from airflow.providers.common.compat.sdk import mask_secret

from ayrshare_provider import PACKAGE_NAME, __version__, connection_form
from ayrshare_provider.exceptions import AyrshareConfigError
from ayrshare_provider.hooks.settings import HookSettings
from ayrshare_provider.rate_budget import ProfileBudget, budget_for

USER_AGENT = f"{PACKAGE_NAME}/{__version__}"
_LOOPBACK_NAMES = {"localhost"}


@dataclass(frozen=True)
class ConnectionTarget:
    """
    Everything a hook takes from its connection, resolved once and never changed.

    :param base_url: the API origin, such as ``https://api.ayrshare.com``.
    :param headers: the headers of every request (credentials included: never log them).
    :param settings: the hook's tuning.
    :param budget: the profile's rate-limit budget on this machine.
    :param webhook_secret: the secret Ayrshare signs webhook deliveries with, if the connection has one.
    """

    base_url: str
    headers: dict[str, str]
    settings: HookSettings
    budget: ProfileBudget
    webhook_secret: str | None = None

    @property
    def primary_budget(self) -> ProfileBudget:
        """The Primary Profile's budget at this origin: what a call made without the Profile Key counts against."""
        return budget_for(self.base_url, None)

    @property
    def pushes(self) -> bool:
        """The connection has a webhook secret: Ayrshare is expected to push final statuses."""
        return self.webhook_secret is not None

    def __repr__(self) -> str:
        return (
            f"ConnectionTarget(base_url={self.base_url!r}, settings={self.settings!r})"  # never the headers
        )


def resolve_target(
    conn_id: str, conn: Any, extra: dict[str, Any], profile_key: str | None, arguments: dict[str, Any]
) -> ConnectionTarget:
    """
    Check a connection and turn it into a :class:`ConnectionTarget`; raise what is wrong with it.

    :param conn_id: the connection's id, for error messages.
    :param conn: the Airflow connection (host, schema, port, password).
    :param extra: its extra fields (read apart: the async path has its own reader).
    :param profile_key: a Profile Key given to the hook, which wins over the connection's.
    :param arguments: the hook's tuning arguments, which win over the extra's.
    """
    settings = HookSettings.resolve(conn_id, arguments, extra)
    webhook_secret = connection_form.webhook_secret_of(extra)
    if webhook_secret is not None:
        mask_secret(webhook_secret)  # never sent to Ayrshare by a call, but never logged either
    headers = auth_headers(conn_id, conn.password, extra, profile_key)
    base_url = base_url_of(conn_id, conn.host, conn.schema, conn.port)
    return ConnectionTarget(
        base_url=base_url,
        headers={**headers, "Accept": "application/json", "User-Agent": USER_AGENT},
        settings=settings,
        budget=budget_for(base_url, headers.get("Profile-Key")),
        webhook_secret=webhook_secret,
    )


def _is_loopback(hostname: str) -> bool:
    if hostname.lower() in _LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(hostname).is_loopback
    except ValueError:
        return False


def base_url_of(conn_id: str, host: str | None, schema: str | None, port: int | None) -> str:
    """
    The API origin for a connection: host as given, or ``https://api.ayrshare.com`` when empty.

    The host needs its scheme (``https://api.ayrshare.com``, ``http://127.0.0.1:8765``) unless
    the connection's schema field gives it: ``127.0.0.1:8765`` alone is refused at once rather
    than tried as https and failed on TLS. A trailing ``/api`` is dropped (users paste the
    documented base URL); any other path is refused. Plain ``http`` is refused unless the host
    is loopback: it would send the API key in clear text.
    """
    host = (host or "").strip() or connection_form.DEFAULT_HOST
    if "://" not in host and not (schema or "").strip():
        raise AyrshareConfigError(
            f"connection {conn_id!r} has host {host!r} without a scheme: write https://{host} "
            f"(or http://{host} for an emulator on this machine)"
        )
    url = host if "://" in host else f"{(schema or '').strip()}://{host}"
    if port:
        url = f"{url}:{port}"
    url = url.rstrip("/")
    if url.endswith("/api"):
        url = url[: -len("/api")]
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises on a port that is not a number
    except ValueError as err:
        raise AyrshareConfigError(
            f"connection {conn_id!r} has host {host!r}, which is not a URL: {err}"
        ) from None
    if parts.username or parts.password:  # said without the host: it holds a secret
        raise AyrshareConfigError(
            f"connection {conn_id!r} has a user name or password in its host: give the host alone, and the "
            "API key in the API Key field"
        )
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise AyrshareConfigError(f"connection {conn_id!r} has host {host!r}, which is not an http(s) URL")
    if parts.path or parts.query or parts.fragment:
        raise AyrshareConfigError(
            f"connection {conn_id!r} has host {host!r} with a path: give the origin only, such as {connection_form.DEFAULT_HOST}"
        )
    if parts.scheme == "http" and not _is_loopback(parts.hostname):
        raise AyrshareConfigError(
            f"connection {conn_id!r} points at http://{parts.hostname}: refusing to send the API key "
            "over plain HTTP to a host other than loopback; use https://"
        )
    return url


def auth_headers(
    conn_id: str, api_key: str | None, extra: dict[str, Any], profile_key: str | None
) -> dict[str, str]:
    """
    The headers that carry the credentials, after registering each one with Airflow's masker.

    :param conn_id: the connection, for the error message.
    :param api_key: the connection's password.
    :param extra: the connection's extra fields.
    :param profile_key: a Profile Key passed to the hook, which wins over the connection's.
    """
    if not api_key or not api_key.strip():
        raise AyrshareConfigError(
            f"connection {conn_id!r} has no API key: put it in the API Key (password) field"
        )
    headers = {"Authorization": f"Bearer {api_key.strip()}"}
    optional = {
        "Profile-Key": profile_key or extra.get(connection_form.PROFILE_KEY),
        "X-Twitter-OAuth1-Api-Key": extra.get(connection_form.X_API_KEY),
        "X-Twitter-OAuth1-Api-Secret": extra.get(connection_form.X_API_SECRET),
    }
    for name, value in optional.items():
        if isinstance(value, str) and value.strip():
            headers[name] = value.strip()
    for name, value in headers.items():
        mask_secret(value.removeprefix("Bearer "))
        if not value.isascii():  # HTTP headers carry latin-1 at best; Ayrshare's keys are ASCII
            raise AyrshareConfigError(
                f"connection {conn_id!r}: the value sent as {name} has characters that are not ASCII; "
                "paste the key again from the Ayrshare dashboard"
            )
        if not value.isprintable():  # a line break or tab inside: requests would refuse it, quoting the value
            raise AyrshareConfigError(
                f"connection {conn_id!r}: the value sent as {name} has a line break or another control "
                "character inside; paste the key again from the Ayrshare dashboard"
            )
    return headers
