"""What the tests and the benchmark share: a fake SignalWire, a Redis server, loopback
servers and ports, and the configuration an agent process is started with.

Imported from the repository root (``python -m pytest``, ``python -m bench``); not part of
the installed package. ``agent/`` and ``skills/`` never import it; it never imports
``tests`` or ``bench``.
"""
