"""Apache Airflow provider for Ayrshare: recover failed social-media posts as DAG steps.

Only registration lives here; hooks and operators are imported where they are used.
"""

from __future__ import annotations

from typing import Any

__version__ = "0.2.0"

PACKAGE_NAME = "airflow-provider-ayrshare"
#: What `airflow providers list` shows; the same words as the distribution's (pyproject.toml).
PROVIDER_DESCRIPTION = (
    "Apache Airflow provider for Ayrshare: recover failed social-media posts safely, exactly once."
)


def get_provider_info() -> dict[str, Any]:
    """What Airflow's providers manager reads through the ``apache_airflow_provider`` entry point."""
    from ayrshare_provider.connection_form import declarative_connection_type

    integration = "Ayrshare"

    def modules(kind: str, *names: str) -> list[dict[str, Any]]:
        paths = [f"ayrshare_provider.{kind}.{name}" for name in names or ("ayrshare",)]
        return [{"integration-name": integration, "python-modules": paths}]

    return {
        "package-name": PACKAGE_NAME,
        "name": "Ayrshare",
        "description": PROVIDER_DESCRIPTION,
        "versions": [__version__],
        "integrations": [
            {
                "integration-name": integration,
                "external-doc-url": "https://www.ayrshare.com/docs",
                "tags": ["service"],
            }
        ],
        "hooks": modules("hooks"),
        "operators": modules("operators", "ayrshare", "repost", "review"),  # review: Airflow 3.1+
        "sensors": modules("sensors"),
        "triggers": modules("triggers", "post_status", "failed_posts"),
        "connection-types": [declarative_connection_type()],
        "extra-links": ["ayrshare_provider.links.ayrshare.AyrsharePostLink"],
        "config": {
            "ayrshare": {
                "description": "The Ayrshare provider.",
                "options": {
                    "webhook_receiver": {
                        "description": "Mount Ayrshare's webhook receiver (POST /ayrshare/webhook) in the "
                        "API server (Airflow 3). Off: the provider serves no route.",
                        "version_added": "0.3.0",
                        "type": "boolean",
                        "example": "True",
                        "default": "False",
                    },
                    "recoveries_page": {
                        "description": "Add the read-only recoveries page to the Airflow UI (Browse > "
                        "Ayrshare recoveries, served under /ayrshare-recoveries/; Airflow 3.1+). Off: no page.",
                        "version_added": "1.0.0",
                        "type": "boolean",
                        "example": "True",
                        "default": "False",
                    },
                    "rate_budget_url": {
                        "description": "The Redis in which every host of the deployment shares each "
                        "profile's rate budget (redis://host:6379/0). Empty: the Celery broker when it is a "
                        "Redis, else each machine keeps its own budget. local: each machine its own.",
                        "version_added": "1.0.0",
                        "type": "string",
                        "example": "redis://redis:6379/2",
                        "default": "",
                    },
                },
            }
        },
    }
