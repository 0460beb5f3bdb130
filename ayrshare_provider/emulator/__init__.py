"""An offline Ayrshare for development, demos and tests; never imported by the provider's runtime modules.

Start it with ``python -m ayrshare_provider.emulator --api-key KEY``, or in-process with
:class:`ayrshare_provider.emulator.server.Emulator`.
"""
