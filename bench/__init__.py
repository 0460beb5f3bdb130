"""The benchmarks, one module per measurement; ``python -m bench.run_all`` writes bench/RESULTS.md.

Run them from the repository root (``python -m bench.<name>``), where ``tests`` imports: the
minimal task context and the in-process triggerer come from there.
"""

from __future__ import annotations
