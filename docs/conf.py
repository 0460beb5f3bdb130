"""Sphinx configuration of the provider's documentation: ``make docs`` builds it, warnings as errors."""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
# autodoc imports the provider, which imports Airflow: a throwaway home, no database needed.
os.environ.setdefault("AIRFLOW_HOME", tempfile.mkdtemp(prefix="ayrshare-docs-airflow-"))

from ayrshare_provider import __version__  # noqa: E402

project = "airflow-provider-ayrshare"
author = "The airflow-provider-ayrshare developers"
copyright = "2026, The airflow-provider-ayrshare developers"
release = version = __version__

extensions = ["myst_parser", "sphinx.ext.autodoc", "sphinx.ext.viewcode"]
source_suffix = {".md": "markdown", ".rst": "restructuredtext"}
exclude_patterns = ["_build"]
myst_heading_anchors = 3  # GitHub's anchors, so that a page's links work on GitHub and here
myst_enable_extensions = ["colon_fence"]

autodoc_member_order = "bysource"
autodoc_typehints = "description"
autodoc_default_options = {"members": True, "show-inheritance": True}
# What the API reference imports but documents elsewhere: Airflow's own classes.
nitpicky = False

html_theme = "furo"
html_title = f"Ayrshare provider {release}"
