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
# by the hook. All five are secrets.
PROFILE_KEY = "profile_key"
X_API_KEY = "x_twitter_api_key"
X_API_SECRET = "x_twitter_api_secret"
WEBHOOK_SECRET = "webhook_secret"

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
    WEBHOOK_SECRET: {
        "label": "Webhook secret",
        "description": "Optional. The secret given to Ayrshare when registering the scheduled-action webhook: "
        "Airflow's /ayrshare/webhook checks each delivery with it, and waits expect pushed statuses.",
    },
}

# The hook's tuning, settable per connection (a task's hook_params win). Each field's default is its
# placeholder in the pre-3.2 form and ends its description in the 3.2+ form. Its bounds, in JSON
# Schema's words, are the one rule every value is checked by: the 3.2+ form's schema, and
# hooks/settings.py for a value from anywhere (extra, hook argument, environment).
TUNING_FIELDS: dict[str, dict[str, Any]] = {
    "timeout": {
        "label": "Timeout (seconds)",
        "description": "How long to wait for one answer from Ayrshare (connecting: at most 10 s).",
        "default": 30.0,
        "bounds": {"exclusiveMinimum": 0},
    },
    "max_attempts": {
        "label": "Attempts per call",
        "description": "Tries of one call on 5xx, dropped connections and 429 before its error is raised.",
        "default": 5,
        "integer": True,
        "bounds": {"minimum": 1},
    },
    "backoff": {
        "label": "First backoff (seconds)",
        "description": "Wait before the second attempt of a call; it doubles after each further one.",
        "default": 1.0,
        "bounds": {"minimum": 0},
    },
    "max_backoff": {
        "label": "Longest backoff (seconds)",
        "description": "Longest wait between two attempts of a call.",
        "default": 60.0,
        "bounds": {"minimum": 0},
    },
    "rate_headroom": {
        "label": "Share of the rate limit to use",
        "description": "0 to 1: calls wait for the next rate-limit window once this share of the profile's "
        "requests is used. Lower it when other apps post with the same profile.",
        "default": 0.98,
        "bounds": {"exclusiveMinimum": 0, "maximum": 1},
    },
    "webhook_grace": {
        "label": "Wait for a webhook (seconds)",
        "description": "With a webhook secret set, how long a wait relies on pushed statuses alone before "
        "it also reads the post (a delivery can be lost).",
        "default": 300.0,
        "bounds": {"minimum": 0},
    },
    "history_max_age": {
        "label": "History cache (seconds)",
        "description": "How old Ayrshare's cached history answers can be (60 on Ayrshare).",
        "default": 60.0,
        "bounds": {"minimum": 0},
        # Ayrshare's own cache time: not a choice for a user. A server with other clocks (a time-scaled
        # emulator) sets it in the connection's extra JSON or the hook's arguments.
        "in_form": False,
    },
}
#: The tuning fields the connection form shows.
FORM_TUNING_FIELDS = {name: field for name, field in TUNING_FIELDS.items() if field.get("in_form", True)}

HIDDEN_FIELDS = ["login", "schema", "port", "extra"]
RELABELING = {"password": "API Key", "host": "Host (optional)"}
PLACEHOLDERS = {
    "host": DEFAULT_HOST,
    "password": "API key of the Primary Profile (Ayrshare dashboard > API Key)",
    PROFILE_KEY: "leave empty to act as the Primary Profile",
    X_API_KEY: "X consumer key, for X/Twitter posts",
    X_API_SECRET: "X consumer secret, for X/Twitter posts",
    WEBHOOK_SECRET: "the secret registered with Ayrshare's scheduled-action webhook",
    **{name: f"{field['default']:g}" for name, field in FORM_TUNING_FIELDS.items()},
}


def webhook_secret_of(extra: dict[str, Any]) -> str | None:
    """The connection's webhook secret (its extra field), stripped; None when it has none."""
    secret = extra.get(WEBHOOK_SECRET)
    return secret.strip() if isinstance(secret, str) and secret.strip() else None


def tuning_description(name: str) -> str:
    """A tuning field's description, ending with its default (left empty, the default applies)."""
    field = TUNING_FIELDS[name]
    return f"{field['description']} Default: {field['default']:g}."


def declarative_connection_type() -> dict[str, Any]:
    """The ``connection-types`` entry of ``get_provider_info()`` (Airflow 3.2+)."""
    return {
        "connection-type": CONN_TYPE,
        "hook-class-name": "ayrshare_provider.hooks.ayrshare.AyrshareHook",
        "hook-name": "Ayrshare",
        "conn-fields": {
            **{
                name: {**field, "schema": {"type": ["string", "null"], "format": "password"}}
                for name, field in EXTRA_FIELDS.items()
            },
            **{
                name: {
                    "label": field["label"],
                    # Airflow 3.2+'s form shows no placeholder for extra fields: the default goes here.
                    "description": tuning_description(name),
                    "schema": {
                        "type": ["integer" if field.get("integer") else "number", "null"],
                        **field["bounds"],
                    },
                }
                for name, field in FORM_TUNING_FIELDS.items()
            },
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
    from flask_appbuilder.fieldwidgets import BS3PasswordFieldWidget, BS3TextFieldWidget
    from flask_babel import lazy_gettext
    from wtforms import PasswordField, StringField

    secrets = {
        name: PasswordField(
            lazy_gettext(field["label"]), widget=BS3PasswordFieldWidget(), description=field["description"]
        )
        for name, field in EXTRA_FIELDS.items()
    }
    tuning = {
        name: StringField(
            lazy_gettext(field["label"]), widget=BS3TextFieldWidget(), description=tuning_description(name)
        )
        for name, field in FORM_TUNING_FIELDS.items()
    }
    return {**secrets, **tuning}
