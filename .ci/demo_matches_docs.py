"""Does `make demo`'s output match what the docs show? ``python .ci/demo_matches_docs.py DEMO_OUTPUT``.

Compared: each report row's outcome and post id, the counts line, the retry and new-post line, and
which calls the emulator saw. Not compared: URLs, times, temp paths, ports, and how often posts
were read (the waits' reads depend on the machine's pace); a wait for Instagram's half-minute hint
is over before the run reaches it, or not, by the same pace, so "recovered after a wait" counts as
"recovered".
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

DOCS = Path(__file__).resolve().parent.parent / "docs" / "quickstart.md"
ROW = re.compile(
    r"^(recovered after a wait|recovered|retried, a person chose it|reposted|failed again|left by a person"
    r"|retry later|skipped|unknown)\s{2,}(\S+)\s{2,}"
)
COUNTS = re.compile(r"^(\d+) recovered, (\d+) recovered after a wait, (.*)$")


def facts(text: str) -> dict[str, object]:
    rows, counts, puts, calls = [], None, None, None
    for line in text.splitlines():
        if match := ROW.match(line):
            rows.append((match.group(1).replace("recovered after a wait", "recovered"), match.group(2)))
        elif match := COUNTS.match(line):
            counts = (int(match.group(1)) + int(match.group(2)), match.group(3))
        elif line.strip().startswith("retry PUTs:"):
            puts = line.strip()
        elif line.strip().startswith("requests: "):
            calls = sorted(json.loads(line.strip().removeprefix("requests: ")))
    return {"rows": sorted(rows), "counts": counts, "puts": puts, "calls": calls}


def main(output: str) -> int:
    shown = re.search(r"```text\n(==> Starting the Ayrshare emulator.*?)```", DOCS.read_text(), re.DOTALL)
    if shown is None:
        print(f"{DOCS}: no demo output block")
        return 1
    seen, documented = facts(Path(output).read_text()), facts(shown.group(1))
    differ = [key for key in seen if seen[key] != documented[key]]
    for key in differ:
        print(f"demo output and {DOCS.name} differ in {key}:\n  ran:  {seen[key]}\n  docs: {documented[key]}")
    if not differ:
        print(f"the demo's output matches {DOCS.name}: {len(seen['rows'])} report rows, counts, calls")
    return 1 if differ else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
