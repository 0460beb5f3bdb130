"""Run every benchmark side by side and write bench/RESULTS.md: ``make bench``."""

from __future__ import annotations

import datetime
import sys
from pathlib import Path

import call_cost
import parse_cost
import recovery_at_scale
import waiting_at_scale
from common import REPEATS, machine


def main() -> None:
    sections = []
    for bench in (parse_cost, call_cost, waiting_at_scale, recovery_at_scale):
        print(f"running {bench.__name__} ...", file=sys.stderr, flush=True)
        sections.append(bench.main())
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
