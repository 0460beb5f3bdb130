"""`make package-check`: the emulator's wheel, installed alone (no Airflow, no provider), serves Ayrshare's
official Python SDK (``social-post-api``): lists failed posts, retries one exactly once, posts anew.

Usage: .venv-emulator/bin/python .ci/check_emulator_alone.py
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
import time

API_KEY = "check-key-for-the-local-emulator"


def main() -> int:
    absent = [name for name in ("airflow", "ayrshare_provider") if importlib.util.find_spec(name)]
    if absent:
        print(f"check_emulator_alone: this venv has {absent}: not the emulator alone", file=sys.stderr)
        return 1
    import ayrshare.ayrshare as sdk_module
    from ayrshare import SocialPost

    command = [sys.executable, "-m", "ayrshare_emulator", "--port", "0", "--api-key", API_KEY]
    server = subprocess.Popen(
        [*command, "--scenario", "demo", "--retry-delay", "0.2"], stdout=subprocess.PIPE, text=True
    )
    try:
        url = server.stdout.readline().split()[3]  # "Ayrshare emulator serving http://127.0.0.1:PORT ..."
        sdk_module.base = f"{url}/api/"  # the SDK's one base URL, a module global
        sdk = SocialPost(API_KEY)
        failed = [post for post in sdk.history({"lastDays": 0})["history"] if post["status"] == "error"]
        first, again = sdk.retryPost({"id": failed[0]["id"]}), sdk.retryPost({"id": failed[0]["id"]})
        time.sleep(1)  # the retry settles
        settled = sdk.getPost({"id": failed[0]["id"]})["status"]
        created = sdk.post({"post": "A new post from the SDK", "platforms": ["linkedin"]})
        problems = [
            f"{name}: {answer}"
            for name, answer, good in (
                ("failed posts listed", len(failed), len(failed) == 15),
                ("first retry", first, first.get("status") == "pending"),
                ("second retry", again, again.get("code") == 329),
                ("retried post", settled, settled in ("success", "error")),
                ("new post", created, created.get("status") == "success"),
            )
            if not good
        ]
    finally:
        server.terminate()
        server.wait(timeout=30)
    for problem in problems:
        print(f"check_emulator_alone: {problem}", file=sys.stderr)
    if not problems:
        print(
            f"the emulator's wheel serves the official SDK without Airflow: {len(failed)} failed posts "
            "listed, one retried once (a second retry refused, code 329), a new post published"
        )
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
