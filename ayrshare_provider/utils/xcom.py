"""The XCom keys of the provider's tasks: the one place that names them."""

from __future__ import annotations

from typing import Any

#: A post's summary (:func:`ayrshare_provider.posts.summarize`), pushed even when the task then
#: fails; the recovery report reads it.
SUMMARY_XCOM_KEY = "ayrshare_summary"
#: The first published post URL ("" until there is one), read by the "Ayrshare post" extra link.
POST_URL_XCOM_KEY = "ayrshare_post_url"
#: A recovery DAG's plan (:func:`ayrshare_provider.recovery.plan_recovery`), pushed by its planning task.
PLAN_XCOM_KEY = "recovery_plan"
#: The posts of that plan that a person must unblock, for the person step (``ReviewPostsOperator``).
NEEDS_PERSON_XCOM_KEY = "recovery_needs_person"
#: Why a profile's planning task failed (``{"conn_id", "error"}``), for the report of a run over many profiles.
PROFILE_ERROR_XCOM_KEY = "ayrshare_profile_error"
#: The person step's answer: ``chosen``, ``left``, ``responded_by``, ``responded_at``, ``timed_out``.
PERSON_ANSWER_XCOM_KEY = "ayrshare_person_answer"
#: A retry task's wait for a network's hint, kept across its deferral (``seen_at``,
#: ``waited_until``): a deferral's own kwargs do not survive every way of resuming (``dag.test()``
#: replaces them with the trigger's event), the task's XComs do.
WAIT_HINT_XCOM_KEY = "ayrshare_wait_hint"


def report_xcoms(summary: dict[str, Any]) -> dict[str, Any]:
    """The XComs that report a post: its summary and its URL, pushed by a task or by the trigger that ends it."""
    return {SUMMARY_XCOM_KEY: summary, POST_URL_XCOM_KEY: summary.get("post_url") or ""}
