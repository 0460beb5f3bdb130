"""The Ayrshare connection form: one definition for every Airflow version.

Airflow 3.2+ reads it declaratively from ``get_provider_info()``; older versions call the
hook's ``get_connection_form_widgets``/``get_ui_field_behaviour``, which are built from the
same data. Plain data only: this module is imported at provider discovery.
"""

from __future__ import annotations

from typing import Any

CONN_TYPE = "ayrshare"
DEFAULT_HOST = "https://api.ayrshare.com"

# Extra fields; names with "api_key"/"secret" are masked by Airflow, profile_key is masked
# by the hook. All four credentials are secrets.
PROFILE_KEY = "profile_key"
X_API_KEY = "x_twitter_api_key"
X_API_SECRET = "x_twitter_api_secret"

EXTRA_FIELDS: dict[str, dict[str, str]] = {
    PROFILE_KEY: {
        "label": "Profile Key",
        "description": "Optional. Acts on behalf of one User Profile (Business plans). Sent as the Profile-Key header.",
    },
    X_API_KEY: {
        "label": "X API Key (Consumer Key)",
        "description": "Needed for X/Twitter posts since 2026-03-31. Sent as X-Twitter-OAuth1-Api-Key.",
    },
    X_API_SECRET: {
        "label": "X API Key Secret (Consumer Secret)",
        "description": "The matching X consumer secret. Sent as X-Twitter-OAuth1-Api-Secret.",
    },
}

HIDDEN_FIELDS = ["login", "schema", "port", "extra"]
RELABELING = {"password": "API Key", "host": "Host (optional)"}
PLACEHOLDERS = {
    "host": DEFAULT_HOST,
    "password": "API key of the Primary Profile (Ayrshare dashboard > API Key)",
    PROFILE_KEY: "leave empty to act as the Primary Profile",
    X_API_KEY: "X consumer key, for X/Twitter posts",
    X_API_SECRET: "X consumer secret, for X/Twitter posts",
}


def declarative_connection_type() -> dict[str, Any]:
    """The ``connection-types`` entry of ``get_provider_info()`` (Airflow 3.2+)."""
    return {
        "connection-type": CONN_TYPE,
        "hook-class-name": "ayrshare_provider.hooks.ayrshare.AyrshareHook",
        "hook-name": "Ayrshare",
        "conn-fields": {
            name: {**field, "schema": {"type": ["string", "null"], "format": "password"}}
            for name, field in EXTRA_FIELDS.items()
        },
        "ui-field-behaviour": {
            "hidden-fields": HIDDEN_FIELDS,
            "relabeling": RELABELING,
            "placeholders": PLACEHOLDERS,
        },
    }


def legacy_ui_field_behaviour() -> dict[str, Any]:
    """What ``get_ui_field_behaviour()`` returns on Airflow 2.11 to 3.1."""
    return {"hidden_fields": HIDDEN_FIELDS, "relabeling": RELABELING, "placeholders": PLACEHOLDERS}


def legacy_form_widgets() -> dict[str, Any]:
    """What ``get_connection_form_widgets()`` returns on Airflow 2.11 to 3.1 (needs the webserver's wtforms)."""
    from flask_appbuilder.fieldwidgets import BS3PasswordFieldWidget
    from flask_babel import lazy_gettext
    from wtforms import PasswordField

    return {
        name: PasswordField(lazy_gettext(field["label"]), widget=BS3PasswordFieldWidget(), description=field["description"])
        for name, field in EXTRA_FIELDS.items()
    }
