"""The XCom keys of the provider's tasks: the one place that names them."""

from __future__ import annotations

#: A post's summary (:func:`ayrshare_provider.posts.summarize`), pushed even when the task then
#: fails; the recovery report reads it.
SUMMARY_XCOM_KEY = "ayrshare_summary"
#: The first published post URL ("" until there is one), read by the "Ayrshare post" extra link.
POST_URL_XCOM_KEY = "ayrshare_post_url"
#: A recovery DAG's plan (:func:`ayrshare_provider.recovery.plan_recovery`), pushed by its planning task.
PLAN_XCOM_KEY = "recovery_plan"
#: The posts of that plan that a person must unblock, for the person step (``ReviewPostsOperator``).
NEEDS_PERSON_XCOM_KEY = "recovery_needs_person"
#: The person step's answer: ``chosen``, ``left``, ``responded_by``, ``responded_at``, ``timed_out``.
PERSON_ANSWER_XCOM_KEY = "ayrshare_person_answer"
#: What a task knows of its post beyond the post's record, kept across a deferral (``seen_at``,
#: ``waited_until``, ``retried_at``, a repost's ids): a deferral's own kwargs do not survive every
#: way of resuming (``dag.test()`` replaces them with the event), the task's XComs do.
PROGRESS_XCOM_KEY = "ayrshare_progress"
