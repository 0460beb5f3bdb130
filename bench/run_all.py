"""Every benchmark side by side, written to bench/RESULTS.md: ``make bench`` (``python -m bench.run_all``)."""

from __future__ import annotations

import datetime
import sys
from pathlib import Path

from bench import (
    call_cost,
    many_hosts,
    many_profiles,
    parse_cost,
    push_vs_poll,
    recovery_at_scale,
    sqlite_burst,
    waiting_at_scale,
    webhook_burst,
    worker_runs,
)
from bench.common import REPEATS, machine


def main() -> None:
    sections = []
    modules = (
        parse_cost,
        call_cost,
        waiting_at_scale,
        recovery_at_scale,
        worker_runs,
        push_vs_poll,
        many_profiles,
        webhook_burst,
        sqlite_burst,
        many_hosts,
    )
    for module in modules:
        print(f"running {module.__name__.removeprefix('bench.')} ...", file=sys.stderr, flush=True)
        sections.append(module.main())
        print(sections[-1], flush=True)
    header = (
        "# Benchmark results\n\n"
        f"Measured {datetime.date.today().isoformat()} on {machine()}.\n"
        f"Reproduce with `make bench` (each figure: median of the runs, min to max; BENCH_REPEATS={REPEATS}). "
        "Every comparison ran side by side in the same run, against the emulator in its own process on 127.0.0.1.\n"
    )
    Path(__file__).with_name("RESULTS.md").write_text(header + "\n" + "\n".join(sections))


if __name__ == "__main__":
    main()
