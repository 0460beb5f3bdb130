"""Airflow discovers the provider, its connection type and form, and can test a connection."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from importlib.metadata import distribution

import pytest

from ayrshare_provider import connection_form, get_provider_info
from tests.airflow_compat import airflow_version
from tests.helpers import SECRETS, connection_json


def airflow_cli(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "airflow", *args],
        capture_output=True,
        text=True,
        env={**os.environ, **env},
        timeout=120,
    )


def test_provider_info_names_the_installed_distribution():
    info = get_provider_info()
    assert info["package-name"] == distribution("airflow-provider-ayrshare").metadata["Name"]
    assert info["versions"][0] == distribution("airflow-provider-ayrshare").version


def test_airflow_lists_the_provider_and_its_connection_type():
    providers = airflow_cli("providers", "list")
    assert "airflow-provider-ayrshare" in providers.stdout, providers.stderr
    hooks = airflow_cli("providers", "hooks")
    assert "ayrshare" in hooks.stdout and "AyrshareHook" in hooks.stdout, hooks.stderr


def test_the_connection_form_has_secret_extra_fields_and_hides_the_rest():
    from airflow.providers_manager import ProvidersManager

    if (3, 0) <= airflow_version() < (3, 2) and importlib.util.find_spec("flask_appbuilder") is None:
        pytest.skip(
            "Airflow 3.0 and 3.1 build every provider's connection form with Flask-AppBuilder "
            "(apache-airflow-providers-fab), which this venv does not have"
        )
    manager = ProvidersManager()
    widgets = {
        name: widget
        for name, widget in manager.connection_form_widgets.items()
        if name.startswith("extra__ayrshare__")
    }
    secrets = {
        f"extra__ayrshare__{f}"
        for f in ("profile_key", "x_twitter_api_key", "x_twitter_api_secret", "webhook_secret")
    }
    tuning = {f"extra__ayrshare__{f}" for f in connection_form.FORM_TUNING_FIELDS}  # the README's form fields
    assert "extra__ayrshare__history_max_age" not in tuning  # Ayrshare's cache time, not a user's choice
    assert set(widgets) == secrets | tuning
    assert {name for name, widget in widgets.items() if widget.is_sensitive} == secrets
    behaviour = manager.field_behaviours["ayrshare"]
    assert set(behaviour["hidden_fields"]) == {"login", "schema", "port", "extra"}
    assert behaviour["relabeling"]["password"] == "API Key"
    assert {
        name: behaviour["placeholders"][f"extra__ayrshare__{name}"]
        for name in connection_form.FORM_TUNING_FIELDS
    } == {
        "timeout": "30",
        "max_attempts": "5",
        "backoff": "1",
        "max_backoff": "60",
        "rate_headroom": "0.98",
        "webhook_grace": "300",
    }


def test_airflow_connections_test_reaches_ayrshare_and_says_who_we_are(ayrshare_conn):
    conn = connection_json(ayrshare_conn.url, profile_key=SECRETS[1])
    result = airflow_cli(
        "connections",
        "test",
        "ayrshare_default",
        AIRFLOW_CONN_AYRSHARE_DEFAULT=conn,
        AIRFLOW__CORE__TEST_CONNECTION="Enabled",
    )
    assert "Connection success!" in result.stdout, result.stdout + result.stderr
    assert ayrshare_conn.calls["GET /api/user"] == 1
    assert ayrshare_conn.headers_seen[-1]["Profile-Key"] == SECRETS[1]
    failed = airflow_cli(
        "connections",
        "test",
        "ayrshare_default",
        AIRFLOW_CONN_AYRSHARE_DEFAULT=conn.replace(SECRETS[0], "wrong-key-000"),
        AIRFLOW__CORE__TEST_CONNECTION="Enabled",
    )
    assert "Connection failed" in failed.stdout and "401" in failed.stdout, failed.stdout + failed.stderr
    assert not any(
        secret in result.stdout + result.stderr + failed.stdout + failed.stderr for secret in SECRETS
    )


def plugin_with_setting(option: str, setting: str | None, plugin: str, shown: str) -> str:
    """What ``shown`` (an expression of the plugin class ``P``) prints in a fresh Python whose ``[ayrshare] <option>`` is ``setting``."""
    variable = f"AIRFLOW__AYRSHARE__{option.upper()}"
    env = {key: value for key, value in os.environ.items() if key != variable}
    if setting is not None:
        env[variable] = setting
    module, name = plugin.rsplit(".", 1)
    printed = subprocess.run(
        [sys.executable, "-c", f"from {module} import {name} as P; print({shown})"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=True,
    )
    return printed.stdout.strip().splitlines()[-1]  # after any log lines


@pytest.mark.parametrize(("setting", "apps"), [(None, 0), ("False", 0), ("True", 1)])
def test_the_webhook_receiver_is_mounted_only_when_the_airflow_setting_asks_for_it(setting, apps):
    """``[ayrshare] webhook_receiver``, declared in the provider's config (default false)."""
    declared = airflow_cli("config", "get-value", "ayrshare", "webhook_receiver")
    assert declared.stdout.strip().splitlines()[-1] == "False", declared.stderr  # after any log lines
    plugin = "ayrshare_provider.plugins.webhook_plugin.AyrshareWebhookPlugin"
    assert plugin_with_setting("webhook_receiver", setting, plugin, "len(P.fastapi_apps)") == str(apps)


@pytest.mark.parametrize("setting", [None, "False", "True"])
def test_the_recoveries_page_is_added_only_when_asked_for_on_airflow_3_1_and_later(setting):
    """``[ayrshare] recoveries_page`` (default false): the page's app and its Browse entry, or nothing."""
    plugin = "ayrshare_provider.plugins.recoveries_plugin.AyrshareRecoveriesPlugin"
    shown = "[app['url_prefix'] for app in P.fastapi_apps], [view['href'] for view in P.external_views]"
    offered = setting == "True" and airflow_version() >= (3, 1)
    expected = "['/ayrshare-recoveries'] ['ayrshare-recoveries/']" if offered else "[] []"
    assert plugin_with_setting("recoveries_page", setting, plugin, shown) == expected
