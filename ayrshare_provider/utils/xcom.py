"""The XCom keys of the provider's tasks: the one place that names them."""

from __future__ import annotations

#: A post's summary (:func:`ayrshare_provider.posts.summarize`), pushed even when the task then
#: fails; the recovery report reads it.
SUMMARY_XCOM_KEY = "ayrshare_summary"
#: The first published post URL ("" until there is one), read by the "Ayrshare post" extra link.
POST_URL_XCOM_KEY = "ayrshare_post_url"
#: A recovery DAG's plan (:func:`ayrshare_provider.recovery.plan_recovery`), pushed by its planning task.
PLAN_XCOM_KEY = "recovery_plan"
