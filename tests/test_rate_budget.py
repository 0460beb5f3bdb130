"""One rate-limit budget per profile: hooks in many processes of one machine stay under the limit together."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from ayrshare_emulator.server import Emulator
from ayrshare_provider.rate_budget import MachineBudget, budget_for
from tests.helpers import API_KEY, connection_json

LIMIT, WINDOW = 40, 1.5
REPO = Path(__file__).resolve().parent.parent


def calls_from_a_fresh_process(calls: int) -> int:
    """A task process: a new hook, knowing nothing of the window until its first answer."""
    from ayrshare_provider.hooks.ayrshare import AyrshareHook

    hook = AyrshareHook(backoff=0.05, max_backoff=WINDOW)
    for _ in range(calls):
        hook.get_user()
    return calls


def run_processes(count: int, calls: int, temp_dirs: list[Path]) -> None:
    """``count`` fresh Python processes at once, as task runners start them, each with its temp dir."""
    code = (
        f"from tests.test_rate_budget import calls_from_a_fresh_process; calls_from_a_fresh_process({calls})"
    )
    processes = [
        subprocess.Popen(
            [sys.executable, "-c", code],
            cwd=REPO,
            env={**os.environ, "TMPDIR": str(temp_dirs[i % len(temp_dirs)])},
        )
        for i in range(count)
    ]
    assert [process.wait(timeout=120) for process in processes] == [0] * count


def test_processes_sharing_a_profile_stay_under_its_limit_together(monkeypatch, tmp_path):
    with Emulator(API_KEY, rate_limit=LIMIT, rate_window=WINDOW) as emulator:
        monkeypatch.setenv("AIRFLOW_CONN_AYRSHARE_DEFAULT", connection_json(emulator.url))
        run_processes(8, 15, [tmp_path])  # one machine: three windows' worth of calls, all at once
        counters = emulator.state.counters()
    assert counters["requests"]["GET /api/user"] == 120
    assert counters["rate_limited"] == 0


def test_without_a_shared_budget_processes_learn_the_others_calls_from_ayrshares_count(monkeypatch, tmp_path):
    """
    Each process on a budget of its own (its own temp dir, as on hosts that share nothing): 8
    budgets that each believed the whole window theirs would send 120 calls into one 40-call window.
    Each learns the others' calls from ``x-ratelimit-count`` instead, and goes one call at a time:
    every call lands, and no more than the first answers' worth (one per process) meets a 429.
    """
    with Emulator(API_KEY, rate_limit=LIMIT, rate_window=WINDOW) as emulator:
        monkeypatch.setenv("AIRFLOW_CONN_AYRSHARE_DEFAULT", connection_json(emulator.url))
        run_processes(8, 15, [tmp_path / str(i) for i in range(8) if not (tmp_path / str(i)).mkdir()])
        counters = emulator.state.counters()
    assert counters["requests"]["GET /api/user"] - counters["rate_limited"] == 120
    assert counters["rate_limited"] <= 8, counters["rate_limited"]


def headers(count: int, limit: int, reset_ms: float) -> dict[str, str]:
    return {
        "x-ratelimit-count": str(count),
        "x-ratelimit-max": str(limit),
        "x-ratelimit-reset": str(int(reset_ms)),
    }


class Calls:
    """Calls of one machine through a budget: claimed, then settled oldest first, as answers mostly come."""

    def __init__(self, budget: MachineBudget, headroom: float = 1.0) -> None:
        self.budget, self.headroom, self.out = budget, headroom, []

    def go(self) -> float:
        """Claim a call: 0 when it may go (it is then out), else the seconds to wait first."""
        claimed = self.budget.take(self.headroom, fallback=1.0)
        if claimed.granted:
            self.out.append(claimed)
            return 0.0
        return claimed.wait

    def answer(self, answer_headers: dict[str, str], status: int = 200) -> None:
        self.budget.settle(self.out.pop(0), status, answer_headers)

    def lose(self) -> None:
        self.budget.settle(self.out.pop(0))


@pytest.mark.any_airflow  # the budget alone: the same on every Airflow
@pytest.mark.parametrize("shared", [True, False])
def test_a_budget_counts_its_own_calls_and_waits_for_the_announced_reset(tmp_path, shared):
    calls = Calls(MachineBudget(tmp_path / "profile.bin" if shared else None), headroom=0.5)
    assert calls.go() == 0.0  # nothing known yet: one call goes
    assert calls.go() == 1.0  # ... and only one, until an answer tells the limit
    calls.answer(headers(1, 10, 400))
    for _ in range(3):
        assert calls.go() == 0.0  # calls 2 to 4 of the window
    calls.answer(headers(3, 10, 400))  # a late answer: the own count (4) stands
    assert calls.go() == 0.0  # the 5th
    granted, pause, first, _ = calls.budget.take(0.5, fallback=1.0)
    assert not granted and 0.4 <= pause <= 0.7 and first  # half of 10 used: wait for the reset (+ margin)
    # Only the first waiter of a window says so.
    assert calls.budget.take(0.5, fallback=1.0).first_waiter is False
    time.sleep(pause)
    assert calls.go() == 0.0  # a new window


@pytest.mark.any_airflow  # the budget alone: the same on every Airflow
def test_answers_that_announce_no_limit_hold_nothing_back_even_after_a_limited_run(tmp_path):
    calls = Calls(MachineBudget(tmp_path / "profile.bin"))
    calls.go()
    calls.answer(headers(1, 3, 60_000))  # a run with a limit of 3 left its window in the file
    calls.go()
    calls.answer({})  # now the service's answers announce none (an emulator with its limit off)
    assert all(calls.go() == 0.0 for _ in range(50))


@pytest.mark.any_airflow  # the budget alone: the same on every Airflow
def test_an_error_page_without_headers_does_not_end_one_call_at_a_time(tmp_path):
    calls = Calls(MachineBudget(tmp_path / "profile.bin"))
    calls.go()
    calls.answer({}, status=502)  # a gateway's page says nothing of Ayrshare's limit
    assert calls.go() == 0.0
    assert calls.go() == 1.0  # still one call at a time


@pytest.mark.any_airflow  # the budget alone: the same on every Airflow
def test_a_slow_answer_never_lowers_the_count_of_its_window(tmp_path):
    """Answers of one window reach a loaded event loop late and out of order: none may undo calls counted since."""
    calls = Calls(MachineBudget(tmp_path / "profile.bin"))
    calls.go()
    calls.answer(headers(1, 10, 2000))
    for _ in range(8):
        assert calls.go() == 0.0  # 9 of 10 used
    # An early call's answer, read 2.5 s late: it looks like a newer window.
    calls.answer(headers(2, 10, 4500))
    assert calls.go() == 0.0  # the 10th
    assert calls.go() > 0  # still the same window: wait


@pytest.mark.any_airflow  # the budget alone: the same on every Airflow
def test_calls_answered_after_the_servers_reset_are_never_taken_for_another_clients(tmp_path):
    """Answered in the margin after the server's reset, they count in its next window: ours, not foreign."""
    calls = Calls(MachineBudget(tmp_path / "profile.bin"))
    started = time.monotonic()
    calls.go()
    calls.answer(headers(1, 100, 3000))  # the server's window ends in 3 s; here 0.25 s later
    for _ in range(3):
        assert calls.go() == 0.0
    time.sleep(max(0.0, 3.1 - (time.monotonic() - started)))  # past the server's reset, not this machine's
    for count in (1, 2, 3):  # the server counted them in its new window
        calls.answer(headers(count, 100, 2900))
    time.sleep(max(0.0, 3.35 - (time.monotonic() - started)))  # this machine's window ends
    assert calls.go() == 0.0
    calls.answer(headers(4, 100, 2700))  # the 3 late ones and this one: nobody else's
    assert calls.go() == 0.0 and calls.go() == 0.0  # not shared: more than one call out at a time


@pytest.mark.any_airflow  # the budget alone: the same on every Airflow
def test_a_profile_other_hosts_also_call_goes_one_call_at_a_time_and_stops_short_by_their_pace(tmp_path):
    """Another host (its own budget) calls the profile too: the server's count runs ahead of this machine's claims."""
    calls = Calls(MachineBudget(tmp_path / "profile.bin"), headroom=1.0)
    calls.go()
    calls.answer(headers(41, 100, 5000))  # 40 calls of others before this machine came: no pace yet
    assert calls.go() == 0.0 and calls.go() == 0.05  # shared: one call out at a time
    calls.answer(headers(45, 100, 5000))  # 3 more of theirs while ours was out
    for count in range(48, 96, 3):  # each of ours sees 2 more of theirs: the largest step stays 3
        assert calls.go() == 0.0
        calls.answer(headers(count, 100, 5000))
    assert calls.go() == 0.0
    calls.answer(headers(97, 100, 5000))
    # 97 counted: the others may have their step (3) on the way, which would reach the limit: wait.
    assert 4.0 < calls.go() <= 5.3


@pytest.mark.any_airflow  # the budget alone: the same on every Airflow
def test_an_answer_sent_before_the_window_ended_says_nothing_of_the_next(tmp_path):
    calls = Calls(MachineBudget(tmp_path / "profile.bin"))
    calls.go()
    calls.answer(headers(1, 10, 100))  # the limit, learned
    late = calls.budget.take(1.0, fallback=1.0)  # a call of this window whose answer comes late
    calls.go()
    calls.answer(headers(10, 10, 100))
    time.sleep(0.4)  # the window ends (reset + margin)
    for _ in range(3):
        assert calls.go() == 0.0  # calls of the new window
    calls.budget.settle(late, 200, headers(10, 10, 0))  # the late one: count 10, reset "now"
    for _ in range(6):
        assert calls.go() == 0.0  # it neither ended the window nor blocked it
    assert calls.go() > 0  # 1 carried in + 9 new calls = the limit of the new window


@pytest.mark.any_airflow  # the budget alone: the same on every Airflow
def test_calls_still_in_flight_when_the_window_ends_count_in_the_next_once(tmp_path):
    calls = Calls(MachineBudget(tmp_path / "profile.bin"))
    calls.go()
    calls.answer(headers(1, 10, 1000))  # a 1 s window
    for _ in range(3):
        calls.go()  # 3 calls out, no answer yet
    time.sleep(1.3)
    for _ in range(7):
        assert calls.go() == 0.0
    assert calls.go() > 0  # 3 in flight + 7 new = the limit of the new window
    dead, calls.out = calls.out[:3], calls.out[3:]  # the 3 old calls never end (their process was killed)
    for _ in range(7):
        calls.answer(headers(10, 10, 1000))
    time.sleep(1.3)
    for _ in range(10):
        assert calls.go() == 0.0  # the dead calls held back one window, not every one after
    assert len(dead) == 3


@pytest.mark.any_airflow  # the budget alone: the same on every Airflow
def test_a_window_whose_end_no_answer_announced_ends_a_window_length_after_the_last(tmp_path):
    """Every call of a window claimed and none answered: the budget still turns, never waits for ever."""
    calls = Calls(MachineBudget(tmp_path / "profile.bin"))
    calls.go()
    calls.answer(headers(1, 4, 300))  # a 0.3 s window, learned
    time.sleep(0.6)  # it ended
    for _ in range(4):
        assert calls.go() == 0.0
    for _ in range(4):
        calls.lose()  # all four lost: no answer announces the new window's end
    time.sleep(0.1)
    assert calls.go() > 0
    time.sleep(0.35)
    assert calls.go() == 0.0


@pytest.mark.any_airflow  # the budget alone: the same on every Airflow
def test_the_event_loop_is_never_blocked_while_another_process_holds_the_budget(tmp_path):
    """The triggerer's path tries the file lock and yields to the loop while another process holds it."""
    import asyncio
    import fcntl

    path = tmp_path / "profile.bin"
    budget = MachineBudget(path)
    budget.settle(budget.take(1.0, fallback=1.0), 200, headers(1, 10, 5000))
    other = os.open(path, os.O_RDWR)  # another open file: to flock, another process

    async def scenario() -> tuple[int, bool]:
        fcntl.flock(other, fcntl.LOCK_EX)
        # Were the loop blocked, nothing in it could release the lock: a thread does so after 2 s.
        threading.Timer(2.0, fcntl.flock, (other, fcntl.LOCK_UN)).start()
        loop_turns = 0

        async def release_later() -> None:
            nonlocal loop_turns
            for _ in range(20):
                await asyncio.sleep(0.005)
                loop_turns += 1
            fcntl.flock(other, fcntl.LOCK_UN)

        releaser = asyncio.create_task(release_later())
        claimed = await budget.atake(1.0, fallback=1.0)
        granted = claimed.granted
        turns_while_waiting = loop_turns
        await budget.asettle(claimed, 200, headers(2, 10, 5000))
        await releaser
        return turns_while_waiting, granted

    try:
        loop_turns, granted = asyncio.run(scenario())
    finally:
        os.close(other)
    assert loop_turns == 20 and granted  # the loop ran on while atake waited for the lock


@pytest.mark.any_airflow  # the budget alone: the same on every Airflow
def test_budgets_are_per_origin_and_profile_and_keep_no_profile_key_in_clear():
    a, b = (
        budget_for("http://127.0.0.1:1", "PROFILEKEY-2b8a4e6f-secret"),
        budget_for("http://127.0.0.1:1", "OTHER"),
    )
    assert a is not b and a is budget_for("http://127.0.0.1:1", "PROFILEKEY-2b8a4e6f-secret")
    assert a.path is not None and "PROFILEKEY" not in str(a.path)


def test_per_post_waits_whose_answers_come_late_stay_under_the_limit(monkeypatch):
    """
    Per-post polling (Airflow before 3.3, or batch_wait=False): one event loop, many waits, and one
    answer in ten arriving 1.5 s late with its old rate-limit headers. Such an answer once looked
    like one from a newer window and lowered the count: on a real `airflow standalone` with
    Ayrshare's own clocks that let 9 answers 429 through; here, 7 to 13 of them.
    """
    from ayrshare_provider.hooks.ayrshare import AyrshareHook
    from ayrshare_provider.triggers.post_status import PostStatusTrigger
    from tests.helpers import failed_post, seed_posts
    from tests.triggerer import first_events

    limit = 40
    with Emulator(API_KEY, rate_limit=limit, rate_window=3.0) as emulator:
        monkeypatch.setenv("AIRFLOW_CONN_AYRSHARE_DEFAULT", connection_json(emulator.url))
        post_ids = seed_posts(emulator, *(failed_post(status="processing") for _ in range(80)))  # never final
        AyrshareHook().get_user()  # the tasks before the waits have taught the machine the limit
        # The async path's first use imports aiohttp: seconds on a loaded machine, which must not
        # come out of the waits' 11 s (they would fill one window only).
        asyncio.run(_read_once(AyrshareHook(), post_ids[0]))
        emulator.faults.add(
            {"endpoint": "GET /api/post/{id}", "kind": "late_answer", "seconds": 1.5, "probability": 0.1}
        )
        waits = [
            PostStatusTrigger(post_id, "ayrshare_default", end_time=time.time() + 11, poll_interval=0.1)
            for post_id in post_ids
        ]
        events = first_events(waits)
        counters = emulator.state.counters()
    assert {event["status"] for event in events} == {"timeout"}
    # A window used up and the next one well into its use, so that late answers with the first
    # window's headers arrive after it turned over (the case that once let 429s through). 11 s hold
    # three 3 s windows and part of a fourth; a loaded CI machine has met only 73 reads in them
    # (on Airflow 2.11), so the floor asks for one and a half windows, not two.
    assert counters["requests"]["GET /api/post/{id}"] > limit + limit // 2
    assert counters["rate_limited"] == 0


async def _read_once(hook, post_id: str) -> None:
    try:
        await hook.aget_post(post_id)
    finally:
        await hook.aclose()


@pytest.mark.any_airflow  # the budget alone: the same on every Airflow
def test_after_an_idle_spell_the_budget_learns_the_window_again_before_it_lets_calls_through(tmp_path):
    calls = Calls(MachineBudget(tmp_path / "profile.bin"))
    calls.go()
    calls.answer(headers(1, 4, 200))  # a 0.2 s window, learned
    time.sleep(1.0)  # five windows without a call
    assert calls.go() == 0.0
    assert calls.go() == 1.0  # one call at a time until an answer: the turns of the window were not seen
    calls.answer(headers(1, 4, 200))
    for _ in range(3):
        assert calls.go() == 0.0
    assert calls.go() > 0  # 4 of 4, every one counted


@pytest.mark.any_airflow  # the budget alone: the same on every Airflow
def test_after_an_idle_spell_a_shorter_window_is_believed(tmp_path):
    """
    The same origin served again by a server with a shorter window (an emulator restarted on a
    port used before): the length known from before must not make the new window's answers look
    like late ones of the last. Seen in `make bench`: every window waited 300 s instead of 20 s.
    """
    calls = Calls(MachineBudget(tmp_path / "profile.bin"))
    calls.go()
    calls.answer(headers(1, 2, 600))  # a 0.6 s window, learned
    calls.go()
    calls.answer(headers(2, 2, 590))  # used up
    time.sleep(1.5)  # more than its length without a call: an idle spell
    assert calls.go() == 0.0
    calls.answer(headers(1, 2, 100))  # now a 0.1 s window
    assert calls.go() == 0.0
    calls.answer(headers(2, 2, 95))
    wait = calls.go()
    assert 0 < wait <= 0.1 + 0.25 + 0.05  # until the new window's announced reset (and the margin)
    time.sleep(wait)
    assert calls.go() == 0.0


@pytest.mark.any_airflow  # the budget alone: the same on every Airflow
def test_answers_with_a_limit_but_no_reset_end_their_window_after_ayrshares_five_minutes(tmp_path):
    calls = Calls(MachineBudget(tmp_path / "profile.bin"))
    calls.go()
    calls.answer({"x-ratelimit-count": "3", "x-ratelimit-max": "3"})
    assert 290 < calls.go() <= 300.3  # not for ever


@pytest.mark.parametrize("backoff", [0.0, 0.01])
def test_no_backoff_never_sends_a_call_it_did_not_claim(monkeypatch, backoff):
    """A wait of 0 (backoff 0 and no announced end) is still a wait: the hook claims again, it does not go."""
    from ayrshare_provider.hooks.ayrshare import AyrshareHook

    with Emulator(API_KEY, rate_limit=5, rate_window=1.0) as emulator:
        monkeypatch.setenv("AIRFLOW_CONN_AYRSHARE_DEFAULT", connection_json(emulator.url))
        hook = AyrshareHook(backoff=backoff, max_backoff=0)
        for _ in range(12):
            hook.get_user()
        counters = emulator.state.counters()
    assert counters["requests"]["GET /api/user"] == 12 and counters["rate_limited"] == 0


def test_a_cancelled_wait_ends_its_claim(monkeypatch):
    """A trigger cancelled mid-call (its task was cleared) must not leave a claim that holds the next calls back."""
    import asyncio

    from ayrshare_provider.hooks.ayrshare import AyrshareHook

    with Emulator(API_KEY, rate_limit=100, rate_window=60.0) as emulator:
        monkeypatch.setenv("AIRFLOW_CONN_AYRSHARE_DEFAULT", connection_json(emulator.url))
        emulator.faults.add({"endpoint": "GET /api/user", "sequence": ["latency"], "seconds": 2.0})

        async def cancel_then_call() -> float:
            hook = AyrshareHook(backoff=0.05, max_backoff=0.05)
            first = asyncio.create_task(hook._aread("/api/user", "GET /api/user"))
            await asyncio.sleep(0.3)
            first.cancel()  # the first call of the machine: no limit is known yet, one call at a time
            await asyncio.gather(first, return_exceptions=True)
            started = time.monotonic()
            await hook._aread("/api/user", "GET /api/user")
            await hook.aclose()
            return time.monotonic() - started

        assert asyncio.run(cancel_then_call()) < 1.5  # not held back 30 s by a claim that never ended
