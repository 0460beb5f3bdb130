"""An offline Ayrshare for development, demos and tests: no Airflow, no network beyond this machine.

Start it with ``python -m ayrshare_emulator --api-key KEY``, or in-process with
:class:`ayrshare_emulator.server.Emulator`. Where Ayrshare's docs are silent, its settings play
each plausible reading (``docs/ayrshare-behaviour.md`` in the provider's repository).
"""

from __future__ import annotations

__version__ = "0.2.0"
