"""The provider's metrics, through Airflow's ``Stats``: StatsD or OpenTelemetry, as the deployment configured.

Every name is ``ayrshare.<what>``; tags (on backends that take them: DogStatsD, InfluxDB-style
StatsD, OpenTelemetry) are the post's networks (``x``, ``linkedin+x``...: a post counts once) and
the profile, named by its Airflow connection id. Never a key, a Profile Key or a post's text: names and tags are chosen from
this module's constants and from connection ids and network names only.
"""

from __future__ import annotations

import logging
import re
from enum import Enum
from typing import Any

_log = logging.getLogger(__name__)
PREFIX = "ayrshare"
# What StatsD and OpenTelemetry take in a tag value: anything else becomes "_".
_UNSAFE = re.compile(r"[^A-Za-z0-9_.\-]")


class Metric(str, Enum):
    """Every counter the provider emits (docs/production.md lists them with what they count)."""

    API_CALLS = "api.calls"  # every HTTP request sent to Ayrshare
    API_RATE_LIMITED = "api.rate_limited"  # answers 429
    RETRY_SENT = "retry.sent"  # PUT /api/post/retry requests sent
    RETRY_RECOVERED = "retry.recovered"  # a retried post published
    RETRY_FAILED_AGAIN = "retry.failed_again"  # a retried post failed again
    REPOST_CREATED = "repost.created"  # a spent post posted anew
    PERSON_ASKED = "person.asked"  # a post put before a person (human-in-the-loop)
    WEBHOOK_ACCEPTED = "webhook.accepted"  # a signed delivery the receiver took
    WEBHOOK_REFUSED = "webhook.refused"  # a delivery the receiver refused


def count(metric: Metric, *, profile: str | None = None, network: str | None = None, by: int = 1) -> None:
    """
    Add ``by`` to ``metric``. A metrics backend that fails never fails the caller.

    :param metric: the counter.
    :param profile: the Airflow connection id of the profile.
    :param network: the social network.
    :param by: how much to add.
    """
    tags = {
        name: _UNSAFE.sub("_", value) for name, value in (("profile", profile), ("network", network)) if value
    }
    try:
        from airflow.providers.common.compat.sdk import Stats

        Stats.incr(f"{PREFIX}.{metric.value}", by, tags=tags)
    except Exception as err:  # noqa: BLE001 - a metric is never worth a failed task
        _log.debug("Metric %s not sent: %s", metric.value, err)


def networks_of(summary: dict[str, Any]) -> str | None:
    """A post's networks as one tag value (``linkedin+x``): a post counts once, whatever its networks."""
    found = summary.get("networks") if isinstance(summary, dict) else None
    results = found if isinstance(found, list) else []
    networks = sorted({str(r["platform"]) for r in results if isinstance(r, dict) and r.get("platform")})
    return "+".join(networks) or None


def count_retry_outcome(summary: dict[str, Any], *, profile: str | None) -> None:
    """A retry this task sent, now final: recovered, or failed again (other waits count nothing)."""
    if summary.get("action") != "retried":
        return
    if summary.get("published"):
        count(Metric.RETRY_RECOVERED, profile=profile, network=networks_of(summary))
    elif summary.get("status") == "error":
        count(Metric.RETRY_FAILED_AGAIN, profile=profile, network=networks_of(summary))
