"""``python -m ayrshare_emulator --port 8765 --api-key KEY [--scenario demo] [--profiles N] [--seed N]``.

On start it prints where it serves and the failed posts it holds (id, networks, why), so that a
first DAG has a post id to retry.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import TYPE_CHECKING

from ayrshare_emulator import profiles
from ayrshare_emulator.scenarios import SCENARIOS

if TYPE_CHECKING:
    from ayrshare_emulator.state import State


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m ayrshare_emulator", description="An offline Ayrshare API."
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8765, help="port (default 8765; 0 picks a free one)")
    parser.add_argument("--api-key", required=True, help="the API key the emulator accepts")
    parser.add_argument("--scenario", default="empty", choices=sorted(SCENARIOS), help="posts to start with")
    parser.add_argument("--count", type=int, default=0, help="number of posts for the bulk scenario")
    parser.add_argument(
        "--profile-key", default="", help="profile that owns the scenario's posts (default: primary)"
    )
    parser.add_argument(
        "--profiles",
        type=int,
        default=0,
        help="create this many User Profiles (an agency), each with --profile-posts failed posts, and print "
        "one connection per profile",
    )
    parser.add_argument("--profile-posts", type=int, default=5, help="failed posts per profile (default 5)")
    parser.add_argument("--seed", type=int, default=0, help="seed for ids, outcomes and faults")
    parser.add_argument(
        "--retry-delay", type=float, default=2.0, help="seconds until a retried post is final"
    )
    parser.add_argument(
        "--retry-delay-max",
        type=float,
        default=None,
        help="if set, each retry takes a random time between --retry-delay and this",
    )
    parser.add_argument(
        "--history-cache",
        type=float,
        default=60.0,
        help="seconds a history answer with limit > 25 is cached (default 60, as Ayrshare; 0: off)",
    )
    parser.add_argument(
        "--rate-limit", type=int, default=300, help="requests per window per profile (0: off)"
    )
    parser.add_argument("--rate-window", type=float, default=300.0, help="rate-limit window in seconds")
    parser.add_argument(
        "--idempotency-key-retention",
        type=float,
        default=86400.0,
        help="seconds an idempotencyKey is remembered (not documented by Ayrshare; default a day; 0: forever)",
    )
    parser.add_argument(
        "--idempotency-key-in-records",
        action="store_true",
        help="post records carry their idempotencyKey (Ayrshare's docs show none; the emulator of 0.2 did)",
    )
    parser.add_argument(
        "--fault",
        action="append",
        default=[],
        metavar="JSON",
        help='a fault rule, e.g. \'{"endpoint": "GET /api/post/{id}", "kind": "unavailable", "probability": 0.2}\'',
    )
    return parser.parse_args(argv)


#: The failed posts printed at start; the rest are counted, with the command that lists them all.
FAILED_POSTS_SHOWN = 20


def failed_posts_listing(
    state: State, url: str, api_key: str, titles: dict[str, str] | None = None
) -> list[str]:
    """
    The failed posts the emulator serves, one line each (id, networks, why), for a first DAG's post id.

    :param state: the emulator's state.
    :param url: where it serves.
    :param api_key: its key, for the command that lists them all.
    :param titles: each User Profile's title by its Profile Key, for the posts of profiles.
    """
    failed = [
        post
        for profile in sorted({post.profile for post in state.posts.values()})
        for post in state.history(profile)
        if post.record.get("status") == "error"
    ]
    lines = [f"{len(failed)} failed posts (id, networks, why):"] if failed else []
    for post in failed[:FAILED_POSTS_SHOWN]:
        errors = post.record.get("errors") or []
        why = (
            "; ".join(f"{error.get('platform')}: code {error.get('code')}" for error in errors)
            or "no error given"
        )
        networks = ",".join(post.record.get("platforms") or [])
        owner = f"  ({(titles or {}).get(post.profile, 'a User Profile')})" if post.profile else ""
        lines.append(f"  {post.record['id']}  {networks:<22} {why}{owner}")
    if len(failed) > FAILED_POSTS_SHOWN:
        lines.append(
            f"  and {len(failed) - FAILED_POSTS_SHOWN} more: curl -H 'Authorization: Bearer {api_key}' "
            f"'{url}/api/history?status=error&lastDays=0'"
        )
    return lines


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    from ayrshare_emulator.server import Emulator

    emulator = Emulator(
        args.api_key,
        host=args.host,
        port=args.port,
        scenario=args.scenario,
        seed=args.seed,
        count=args.count,
        profile_key=args.profile_key,
        retry_delay=args.retry_delay,
        retry_delay_max=args.retry_delay_max,
        history_cache=args.history_cache,
        rate_limit=args.rate_limit,
        rate_window=args.rate_window,
        idempotency_key_retention=args.idempotency_key_retention,
        idempotency_key_in_records=args.idempotency_key_in_records,
    )
    for rule in args.fault:
        emulator.faults.add(json.loads(rule))
    emulator.bind()
    made = profiles.agency(emulator.state, args.profiles, args.profile_posts) if args.profiles else []
    print(
        f"Ayrshare emulator serving {emulator.url} (scenario {args.scenario}, {len(emulator.state.posts)} posts)",
        flush=True,
    )
    titles = {profile.key: profile.title for profile in made}
    for line in failed_posts_listing(emulator.state, emulator.url, args.api_key, titles):
        print(line, flush=True)
    for number, profile in enumerate(made, start=1):
        # Like Ayrshare at a profile's creation, the one moment its key is shown: an emulator key, not a secret.
        connection = {
            "conn_type": "ayrshare",
            "host": emulator.url,
            "password": args.api_key,
            "extra": {"profile_key": profile.key},
        }
        print(f"export AIRFLOW_CONN_AYRSHARE_CLIENT_{number}='{json.dumps(connection)}'  # {profile.title}")
    if made:
        conn_ids = json.dumps(
            {"ayrshare_conn_ids": [f"ayrshare_client_{n}" for n in range(1, len(made) + 1)]}
        )
        print(f"# then: airflow dags test ayrshare_failed_post_recovery -c '{conn_ids}'", flush=True)
    emulator.serve_forever()
    print("Ayrshare emulator stopped", file=sys.stderr, flush=True)


if __name__ == "__main__":
    main()
