"""What an operator runs beside the served agent, and what plays SignalWire's side.

``preflight`` is ``python -m agent check`` (one module per group of checks);
``simulator`` is ``python -m agent call``, which plays a whole call through ``platform``
(``PlatformCall``: SWML, the tools through their ``web_hook_url``, meta_data and global
data kept as the platform keeps them) against an agent served by ``local_server`` or at a
URL. The end-to-end tests and the benchmarks drive the agent through ``platform`` too.
"""
