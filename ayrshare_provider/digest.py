"""A recovery run's digest: one message for people, sent by any Airflow notifier (Slack, e-mail...).

The report task pushes the digest as XCom (:data:`SUBJECT_XCOM_KEY`, :data:`MARKDOWN_XCOM_KEY`,
:data:`TEXT_XCOM_KEY`) and ``recover(notifiers=[...])`` calls the notifiers when it ends. A notifier
takes the digest through Airflow's templating, from these constants::

    SlackNotifier(text=DIGEST_MARKDOWN)
    SmtpNotifier(to="team@example.com", subject=DIGEST_SUBJECT, html_content=DIGEST_EMAIL_HTML)

It holds counts per outcome, per network and per profile, the posts a person must act on with
their fix, and the links to the posts the run recovered or made; never a key or a post's text.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ayrshare_provider.posts import network_name
from ayrshare_provider.recovery import OUTCOMES
from ayrshare_provider.run_stats import needs_a_person, outcomes_per_network

SUBJECT_XCOM_KEY = "ayrshare_digest_subject"
MARKDOWN_XCOM_KEY = "ayrshare_digest_markdown"
TEXT_XCOM_KEY = "ayrshare_digest_text"
_PULL = "{{{{ ti.xcom_pull(task_ids=ti.task_id, key='{key}') }}}}"
#: A notifier's subject or title: ``Ayrshare recovery <run>: 8 recovered, 1 failed again``.
DIGEST_SUBJECT = _PULL.format(key=SUBJECT_XCOM_KEY)
#: The digest in Markdown, for Slack-like channels.
DIGEST_MARKDOWN = _PULL.format(key=MARKDOWN_XCOM_KEY)
#: The digest in plain text.
DIGEST_TEXT = _PULL.format(key=TEXT_XCOM_KEY)
#: The plain-text digest as an e-mail's HTML body (``SmtpNotifier(html_content=...)``): kept as written.
DIGEST_EMAIL_HTML = "<pre>{{ ti.xcom_pull(task_ids=ti.task_id, key='" + TEXT_XCOM_KEY + "') | e }}</pre>"
# The outcomes whose post has a link to show.
_LINKED = ("recovered", "recovered_after_wait", "retried_for_person", "reposted")
# A list of posts stops here, with how many more: Slack refuses a message over 40,000 characters.
MOST_POSTS_LISTED = 50


@dataclass(frozen=True)
class Digest:
    """One run's digest: a subject, and the same body in Markdown and in plain text."""

    subject: str
    markdown: str
    text: str

    def xcoms(self) -> dict[str, str]:
        """The XComs a notifier reads it from."""
        return {SUBJECT_XCOM_KEY: self.subject, MARKDOWN_XCOM_KEY: self.markdown, TEXT_XCOM_KEY: self.text}


def build_digest(report: dict[str, Any], networks: dict[str, list[str]], run: str) -> Digest:
    """
    The digest of a recovery's report.

    :param report: what :func:`~ayrshare_provider.recovery.build_report` returned.
    :param networks: each post's networks, by post id (from the tasks' summaries and the plan); a
        post not in it (skipped before any task read it) counts under "other".
    :param run: the run, as people know it (``<dag_id> <run_id>``).
    """
    counts = {outcome: count for outcome, count in report["counts"].items() if count}
    said = ", ".join(f"{count} {OUTCOMES[outcome]}" for outcome, count in counts.items()) or "no failed posts"
    sections: list[tuple[str, list[str]]] = [
        ("Outcomes", [f"{count} {OUTCOMES[o]}" for o, count in counts.items()])
    ]
    sections.append(("Per network", _per_network(report, networks)))
    if report.get("profiles"):
        sections.append(("Per profile", _per_profile(report["profiles"])))
    sections.append(("Needs a person", _capped(_for_a_person(report))))
    sections.append(("Links", _capped(_links(report))))
    return _digest(run, said, [(title, lines) for title, lines in sections if lines])


def failed_digest(run: str, why: str) -> Digest:
    """The digest of a run whose report could not be built (its plan task failed, say): why, for the notifiers."""
    return _digest(run, "no report", [("Why", [why, "See the run's task logs in Airflow."])])


def _digest(run: str, said: str, sections: list[tuple[str, list[str]]]) -> Digest:
    markdown = "\n\n".join(
        [f"*Ayrshare recovery {run}*: {said}"]
        + [f"*{title}*\n" + "\n".join(f"• {line}" for line in lines) for title, lines in sections]
    )
    text = "\n\n".join(
        [f"Ayrshare recovery {run}: {said}"]
        + [f"{title}\n" + "\n".join(f"- {line}" for line in lines) for title, lines in sections]
    )
    return Digest(subject=f"Ayrshare recovery {run}: {said}", markdown=markdown, text=text)


def _per_network(report: dict[str, Any], networks: dict[str, list[str]]) -> list[str]:
    """``X: 2 recovered, 1 failed again``: each network a post of each outcome was on."""
    return [
        f"{network_name(network) if network != 'other' else 'other'}: "
        + ", ".join(f"{count} {OUTCOMES[outcome]}" for outcome, count in counted.items())
        for network, counted in outcomes_per_network(report, networks).items()
    ]


def _per_profile(profiles: list[dict[str, Any]]) -> list[str]:
    lines = []
    for profile in profiles:
        counted = ", ".join(f"{count} {OUTCOMES[o]}" for o, count in profile["counts"].items() if count)
        planned = profile["state"] == "planned"
        state = (counted or "no failed posts") if planned else f"{profile['state']}: {profile['reason']}"
        lines.append(f"{profile['label']}: {state}")
    return lines


def _capped(lines: list[str]) -> list[str]:
    if len(lines) <= MOST_POSTS_LISTED:
        return lines
    return [
        *lines[:MOST_POSTS_LISTED],
        f"and {len(lines) - MOST_POSTS_LISTED} more (the report task's XCom lists every post)",
    ]


def _for_a_person(report: dict[str, Any]) -> list[str]:
    return [f"{post['id']}: {post['what']}" for post in needs_a_person(report)]


def _links(report: dict[str, Any]) -> list[str]:
    return [
        f"{entry['id']} ({OUTCOMES[outcome]}): {entry['post_url']}"
        for outcome in _LINKED
        for entry in report.get(outcome, [])
        if entry.get("post_url")
    ]
