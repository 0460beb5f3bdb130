"""The module of 0.2's triggers, kept so that triggers serialized by 0.2 still resume after an upgrade.

Airflow stores a deferred task's trigger, and an asset watcher's, by its class path: a task
deferred under 0.2 resumes with ``ayrshare_provider.triggers.ayrshare.PostStatusTrigger``. Import
from :mod:`ayrshare_provider.triggers.post_status` and :mod:`ayrshare_provider.triggers.failed_posts`.
"""

from __future__ import annotations

from ayrshare_provider.triggers.failed_posts import FailedPostsTrigger
from ayrshare_provider.triggers.post_status import PostStatusTrigger

__all__ = ["FailedPostsTrigger", "PostStatusTrigger"]
