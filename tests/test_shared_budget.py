"""One rate budget across hosts: the profile's window in Redis, hosts that share no temp folder, Redis down."""

from __future__ import annotations

import asyncio
import logging
import time

import pytest

from ayrshare_emulator.server import Emulator
from ayrshare_provider.exceptions import AyrshareConfigError
from ayrshare_provider.rate_budget import MachineBudget, budget_for, shared_store_url
from ayrshare_provider.rate_budget.redis_store import RedisBudget
from tests.helpers import API_KEY, connection_json
from tests.redis_server import redis_missing, redis_server
from tests.test_rate_budget import LIMIT, WINDOW, headers, run_processes

pytestmark = [
    pytest.mark.any_airflow,  # Airflow's config is read, nothing else of it
    pytest.mark.skipif(redis_missing(), reason="needs Debian's redis-server"),
]


@pytest.fixture(scope="module")
def redis_url():
    with redis_server() as url:
        yield url


def test_hosts_that_share_no_temp_folder_stay_under_the_limit_together_through_redis(
    monkeypatch, tmp_path, redis_url
):
    """The load that meets 429s with a budget per process (tests/test_rate_budget.py), on eight "hosts"."""
    with Emulator(API_KEY, rate_limit=LIMIT, rate_window=WINDOW) as emulator:
        monkeypatch.setenv("AIRFLOW_CONN_AYRSHARE_DEFAULT", connection_json(emulator.url))
        monkeypatch.setenv("AIRFLOW__AYRSHARE__RATE_BUDGET_URL", redis_url)
        hosts = [tmp_path / str(i) for i in range(8) if not (tmp_path / str(i)).mkdir()]
        run_processes(8, 15, hosts)
        counters = emulator.state.counters()
    assert counters["requests"]["GET /api/user"] == 120
    assert counters["rate_limited"] == 0


def test_the_event_loop_path_shares_the_window_with_the_sync_path(tmp_path, redis_url):
    """A triggerer's claims (atake) and a task's (take) count in one window."""
    key = f"test:{time.monotonic_ns()}"
    task = RedisBudget(redis_url, key, MachineBudget(tmp_path / "a.bin"))
    triggerer = RedisBudget(redis_url, key, MachineBudget(tmp_path / "b.bin"))
    first = task.take(1.0, 1.0)
    task.settle(first, 200, headers(1, 3, 5000))  # the limit is 3: 2 more, from anyone

    async def two_then_refused() -> list[bool]:
        granted = [(await triggerer.atake(1.0, 1.0)).granted for _ in range(2)]
        return [*granted, (await triggerer.atake(1.0, 1.0)).granted]

    assert asyncio.run(two_then_refused()) == [True, True, False]
    assert not task.take(1.0, 1.0).granted


def test_with_redis_down_a_host_counts_on_its_machine_budget_and_says_so_once(tmp_path, caplog):
    machine = MachineBudget(tmp_path / "profile.bin")
    down = RedisBudget(
        "redis://:s3cret-pass@127.0.0.1:1/0", "test:down", machine
    )  # nothing listens on port 1
    with caplog.at_level(logging.WARNING, logger="ayrshare_provider.rate_budget.redis_store"):
        claim = down.take(1.0, 1.0)
        assert claim.granted
        down.settle(claim, 200, headers(1, 2, 5000))
        assert down.take(1.0, 1.0).granted
        assert not down.take(1.0, 1.0).granted  # the machine's budget counted all three
    warnings = [record.getMessage() for record in caplog.records]
    assert len(warnings) == 1 and "this machine's budget counts for 60 s" in warnings[0]
    assert "s3cret-pass" not in warnings[0] and "127.0.0.1:1" not in warnings[0]  # the URL is never logged


def test_a_url_that_asks_for_decoded_answers_is_refused(tmp_path, redis_url):
    budget = RedisBudget(
        redis_url + "?decode_responses=true", "test:decoded", MachineBudget(tmp_path / "a.bin")
    )
    with pytest.raises(AyrshareConfigError, match="must not set decode_responses"):
        budget.take(1.0, 1.0)


def test_the_store_is_the_setting_else_a_celery_brokers_redis_else_the_machine(monkeypatch, tmp_path):
    for name in (
        "AIRFLOW__AYRSHARE__RATE_BUDGET_URL",
        "AIRFLOW__CORE__EXECUTOR",
        "AIRFLOW__CELERY__BROKER_URL",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AIRFLOW__CORE__EXECUTOR", "LocalExecutor")
    assert shared_store_url() is None
    monkeypatch.setenv("AIRFLOW__CORE__EXECUTOR", "CeleryExecutor")
    monkeypatch.setenv("AIRFLOW__CELERY__BROKER_URL", "amqp://guest@127.0.0.1:5672//")
    assert shared_store_url() is None  # a RabbitMQ broker: no Redis to share
    monkeypatch.setenv("AIRFLOW__CELERY__BROKER_URL", "redis://127.0.0.1:6399/0")
    assert shared_store_url() == "redis://127.0.0.1:6399/0"
    assert isinstance(budget_for("http://127.0.0.1:9", None), RedisBudget)
    monkeypatch.setenv("AIRFLOW__AYRSHARE__RATE_BUDGET_URL", "redis://127.0.0.1:6398/2")
    assert shared_store_url() == "redis://127.0.0.1:6398/2"
    monkeypatch.setenv("AIRFLOW__AYRSHARE__RATE_BUDGET_URL", "local")
    assert shared_store_url() is None
    assert isinstance(budget_for("http://127.0.0.1:9", None), MachineBudget)


def test_a_redis_url_without_the_redis_package_is_a_clear_error(monkeypatch):
    import importlib.util

    real_find_spec = importlib.util.find_spec
    # The one thing not produced for real: uninstalling redis from the test's own venv.
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "redis" else real_find_spec(name, *a)
    )
    monkeypatch.setenv("AIRFLOW__AYRSHARE__RATE_BUDGET_URL", "redis://127.0.0.1:6398/2")
    with pytest.raises(AyrshareConfigError, match=r"pip install 'airflow-provider-ayrshare\[redis\]'"):
        shared_store_url()
