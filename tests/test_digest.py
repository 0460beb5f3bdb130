"""A recovery's digest: built from the report, and mailed by Airflow's SMTP notifier to a real SMTP server."""

from __future__ import annotations

import json
from email import message_from_bytes
from typing import TYPE_CHECKING, Any

import pytest

from ayrshare_emulator import scenarios
from ayrshare_provider.digest import DIGEST_EMAIL_HTML, DIGEST_MARKDOWN, build_digest
from ayrshare_provider.recovery import OUTCOMES
from ayrshare_provider.run_stats import RUN_STATS_XCOM_KEY
from tests.helpers import SECRETS, load_dag

if TYPE_CHECKING:
    from email.message import Message

REPORT = {
    "recovered": [{"id": "p1", "action": "retried", "post_url": "https://x.test/p1"}],
    "recovered_after_wait": [],
    "retried_for_person": [],
    "reposted": [{"id": "p2", "repost_id": "n2", "networks": ["facebook"], "post_url": "https://fb.test/n2"}],
    "failed_again": [{"id": "p3", "reason": "status 'error'", "errors": "LinkedIn: code 136 (timeout)"}],
    "left_by_person": [{"id": "p4", "by": "Ana", "fix": "Instagram: relink the account"}],
    "retry_later": [],
    "skipped": [{"id": "p5", "reason": "already published on every network"}],
    "unknown": [],
    "counts": {
        **dict.fromkeys(OUTCOMES, 0),
        "recovered": 1,
        "reposted": 1,
        "failed_again": 1,
        "left_by_person": 1,
        "skipped": 1,
    },
}
NETWORKS = {"p1": ["twitter"], "p2": ["facebook", "linkedin"], "p3": ["linkedin"], "p4": ["instagram"]}


def test_the_digest_counts_per_outcome_and_network_and_names_what_a_person_must_fix():
    digest = build_digest(REPORT, NETWORKS, run="ayrshare_failed_post_recovery manual__1")
    assert digest.subject == (
        "Ayrshare recovery ayrshare_failed_post_recovery manual__1: "
        "1 recovered, 1 reposted, 1 failed again, 1 left by a person, 1 skipped"
    )
    for body in (digest.markdown, digest.text):
        assert "X: 1 recovered" in body and "LinkedIn: 1 reposted, 1 failed again" in body
        assert "Instagram: 1 left by a person" in body and "other: 1 skipped" in body
        assert "p4: by Ana; to fix: Instagram: relink the account" in body
        assert "p3: status 'error'; LinkedIn: code 136 (timeout)" in body
        assert "p1 (recovered): https://x.test/p1" in body and "p2 (reposted): https://fb.test/n2" in body
    assert digest.markdown.startswith("*Ayrshare recovery") and "\n• " in digest.markdown
    assert "\n- " in digest.text and "*" not in digest.text


def test_a_run_over_profiles_counts_each_profile():
    profiles = [
        {"label": "Bloom", "state": "planned", "reason": None, "counts": {"recovered": 2, "skipped": 0}},
        {"label": "Acme", "state": "failed", "reason": "Ayrshare refused the API key", "counts": {}},
    ]
    digest = build_digest({**REPORT, "profiles": profiles}, NETWORKS, run="r")
    assert "Bloom: 2 recovered" in digest.text and "Acme: failed: Ayrshare refused the API key" in digest.text


@pytest.fixture
def smtp_server():
    """A real SMTP server on 127.0.0.1 (aiosmtpd) that keeps every message it receives."""
    from aiosmtpd.controller import Controller

    class Keep:
        def __init__(self) -> None:
            self.messages: list[Message] = []

        async def handle_DATA(self, server, session, envelope):
            self.messages.append(message_from_bytes(envelope.content))
            return "250 OK"

    from tests.stack import free_port

    handler, port = Keep(), free_port()
    controller = Controller(handler, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield port, handler
    finally:
        controller.stop()


def body_of(message: Message) -> str:
    parts = message.walk() if message.is_multipart() else [message]
    return "".join(
        part.get_payload(decode=True).decode() for part in parts if part.get_content_maintype() == "text"
    )


@pytest.mark.long_run
def test_the_demo_recovery_mails_its_digest_through_airflows_smtp_notifier(
    airflow_db, emulator_conn, monkeypatch, smtp_server
):
    port, inbox = smtp_server
    smtp = {"disable_ssl": True, "disable_tls": True, "from_email": "airflow@example.com"}
    monkeypatch.setenv(
        "AIRFLOW_CONN_SMTP_DEFAULT",
        json.dumps({"conn_type": "smtp", "host": "127.0.0.1", "port": port, "extra": smtp}),
    )
    monkeypatch.setenv("AYRSHARE_DIGEST_EMAIL", "social-team@example.com")  # read when the DAG file is parsed
    scenarios.demo(emulator_conn.state)
    dag = load_dag("ayrshare_failed_post_recovery")
    # No wait for a network's hint (max_wait_hint 0): the post it names is reported to retry later.
    run = dag.test(
        run_conf={"poll_interval": 0.2, "max_wait_hint": 0, "ask_person": False, "repost_spent": True}
    )
    assert run.state == "success"

    from tests.airflow_compat import stored_xcoms

    xcoms = stored_xcoms(dag.dag_id, run.run_id)
    counts = xcoms[("report", "return_value", -1)]["counts"]
    # The recoveries page's counts of the run: the report's, per network, and the codes found.
    stats = xcoms[("report", RUN_STATS_XCOM_KEY, -1)]
    assert stats["outcomes"] == counts and {"facebook", "instagram"} <= set(stats["networks"])
    assert sum(stats["codes"].values()) >= sum(counts.values()) - counts["skipped"]
    assert len(inbox.messages) == 1
    mail = inbox.messages[0]
    body = body_of(mail)
    assert mail["To"] == "social-team@example.com"
    assert mail["Subject"].startswith(f"Ayrshare recovery {dag.dag_id} {run.run_id}: ")
    for outcome, count in counts.items():
        if count:
            assert (
                f"{count} {OUTCOMES[outcome]}" in mail["Subject"] and f"{count} {OUTCOMES[outcome]}" in body
            )
    assert "Per network" in body and "Needs a person" in body and "Links" in body
    assert "skipped; to fix: Facebook: " in body  # the demo's post whose account must be relinked
    assert body.lstrip().startswith("<pre>")  # the plain text, kept as written
    assert not [secret for secret in SECRETS if secret in mail.as_string()]


def test_a_long_list_stops_at_fifty_posts_and_says_how_many_more():
    many = {**REPORT, "recovered": [{"id": f"p{i}", "post_url": f"https://x.test/{i}"} for i in range(120)]}
    digest = build_digest(many, {}, run="r")
    assert "p49 (recovered)" in digest.text and "p50 (recovered)" not in digest.text
    assert "and 71 more (the report task's XCom lists every post)" in digest.text  # 120 + the repost


class PlanlessTI:
    """The report task's instance in a run whose plan task failed: no XCom to pull."""

    dag_id, run_id = "ayrshare_failed_post_recovery", "manual__1"

    def __init__(self) -> None:
        self.xcoms: dict[str, Any] = {}

    def xcom_push(self, key: str, value: Any) -> None:
        self.xcoms[key] = value

    def xcom_pull(self, task_ids: Any, key: str) -> Any:
        return None


def test_a_run_whose_report_fails_early_still_tells_its_notifiers_why():
    from ayrshare_provider.digest import SUBJECT_XCOM_KEY, TEXT_XCOM_KEY
    from ayrshare_provider.exceptions import AyrshareError
    from ayrshare_provider.recovery_steps import report_run

    ti = PlanlessTI()
    with pytest.raises(AyrshareError, match="no recovery plan"):
        report_run(ti, "join_plans")
    assert ti.xcoms[SUBJECT_XCOM_KEY].endswith(": no report")
    assert "no recovery plan: 'join_plans' ended before pushing one" in ti.xcoms[TEXT_XCOM_KEY]
    assert "task_ids=ti.task_id" in DIGEST_MARKDOWN and "| e" in DIGEST_EMAIL_HTML
