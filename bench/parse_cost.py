"""1. Parse cost: what a DAG file pays to import our operator and sensor, against the http provider's.

Each import runs in a fresh interpreter (as the DAG processor's parse does, after Airflow's own
import), timed from inside with time.perf_counter; the baseline imports only Airflow's task SDK.
"""

from __future__ import annotations

import json
import subprocess
import sys

from bench.common import REPEATS, spread, summarize, table

CANDIDATES = {
    "ayrshare": "from ayrshare_provider.operators.ayrshare import RetryPostOperator\n"
    "from ayrshare_provider.sensors.ayrshare import PostStatusSensor",
    "http": "from airflow.providers.http.operators.http import HttpOperator\n"
    "from airflow.providers.http.sensors.http import HttpSensor",
}
HEAVY = ("aiohttp", "fastapi", "uvicorn", "ayrshare_emulator", "ayrshare_provider.hooks.ayrshare")
PROBE = """
import json, sys, time
import airflow.sdk  # what every DAG file has already paid
started = time.perf_counter()
exec(compile({code!r}, "dag", "exec"))
elapsed = time.perf_counter() - started
print(json.dumps({{"seconds": elapsed, "heavy": [m for m in {heavy!r} if m in sys.modules]}}))
"""


def measure(code: str) -> tuple[float, list[str]]:
    out = subprocess.run(
        [sys.executable, "-c", PROBE.format(code=code, heavy=HEAVY)],
        capture_output=True,
        text=True,
        check=True,
    )
    result = json.loads(out.stdout.strip().splitlines()[-1])
    return result["seconds"], result["heavy"]


def main() -> str:
    results, heavy = {}, {}
    for name, code in CANDIDATES.items():
        heavy[name] = measure(code)[1]
    # Interleave the runs so that both see the same machine state.
    samples: dict[str, list[float]] = {name: [] for name in CANDIDATES}
    for _ in range(REPEATS * 2):
        for name, code in CANDIDATES.items():
            samples[name].append(measure(code)[0])
    for name, values in samples.items():
        results[name] = summarize(values)
    ratio = results["ayrshare"]["median"] / results["http"]["median"]
    rows = [
        [name, spread({k: v * 1000 for k, v in stats.items()}, " ms", 1), ", ".join(heavy[name]) or "none"]
        for name, stats in results.items()
    ]
    return (
        "## 1. Parse cost (import at DAG parse time)\n\n"
        + table(
            [
                "imports",
                f"time after airflow.sdk, median of {REPEATS * 2} (min to max)",
                "heavy modules loaded",
            ],
            rows,
        )
        + f"\n\nRatio ayrshare / http: **{ratio:.2f}** (target <= 1.05). "
        + f"aiohttp, FastAPI or the emulator at parse time: **{'none' if not heavy['ayrshare'] else heavy['ayrshare']}**.\n"
    )


if __name__ == "__main__":
    print(main())
