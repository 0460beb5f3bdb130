"""2. Call cost: sequential GET post calls through AyrshareHook, a bare requests.Session, and the official SDK.

All three ask the same emulator (its own process) for the same post; the emulator counts the
TCP connections each client opened.
"""

from __future__ import annotations

import os
import tempfile
import time

import requests

from bench.common import API_KEY, REPEATS, connection_env, control, emulator, spread, summarize, table

CALLS = int(os.environ.get("BENCH_CALLS", "1000"))


def timed(calls: int, call) -> float:
    started = time.perf_counter()
    for _ in range(calls):
        call()
    return (time.perf_counter() - started) / calls


def main() -> str:
    with emulator("--scenario", "demo") as url:
        os.environ.setdefault("AIRFLOW_HOME", tempfile.mkdtemp(prefix="bench-airflow-"))
        os.environ.update(connection_env(url))
        import ayrshare.ayrshare as sdk_module
        from ayrshare import SocialPost

        from ayrshare_provider.hooks.ayrshare import AyrshareHook

        post_id = control(url, "GET", "posts")["posts"][0]["record"]["id"]
        sdk_module.base = f"{url}/api/"  # the SDK's module-level base URL, pointed at the emulator
        clients = {}
        hook = AyrshareHook()
        clients["AyrshareHook.get_post"] = lambda: hook.get_post(post_id)
        session = requests.Session()
        session.headers["Authorization"] = f"Bearer {API_KEY}"
        clients["bare requests.Session"] = lambda: session.get(f"{url}/api/post/{post_id}", timeout=30).json()
        sdk = SocialPost(API_KEY)
        clients["SDK SocialPost.getPost"] = lambda: sdk.getPost({"id": post_id})

        for call in clients.values():  # warm up: connections, imports, the connection lookup
            call()
        samples: dict[str, list[float]] = {name: [] for name in clients}
        connections: dict[str, int] = {}
        for _ in range(REPEATS):
            for name, call in clients.items():  # interleaved, so that all see the same machine
                control(url, "POST", "reset-counters")
                samples[name].append(timed(CALLS, call))
                connections[name] = control(url, "GET", "counters")["connections_opened"]
    stats = {name: summarize(values) for name, values in samples.items()}
    bare = stats["bare requests.Session"]["median"]
    rows = [
        [
            name,
            spread({k: v * 1e6 for k, v in s.items()}, " µs", 0),
            f"{s['median'] / bare:.2f}",
            connections[name],
        ]
        for name, s in stats.items()
    ]
    hook_ratio = stats["AyrshareHook.get_post"]["median"] / bare
    sdk_ratio = stats["SDK SocialPost.getPost"]["median"] / stats["AyrshareHook.get_post"]["median"]
    return (
        f"## 2. Call cost ({CALLS} sequential GET post calls, {REPEATS} runs)\n\n"
        + table(
            [
                "client",
                "per call, median (min to max)",
                "x bare session",
                f"TCP connections per {CALLS} calls",
            ],
            rows,
        )
        + f"\n\nHook / bare session: **{hook_ratio:.2f}** (target <= 1.1). SDK / hook: **{sdk_ratio:.2f}** "
        + f"(target > 1). Connections opened by the hook per {CALLS} calls: **{connections['AyrshareHook.get_post']}** (target 1).\n"
    )


if __name__ == "__main__":
    print(main())
