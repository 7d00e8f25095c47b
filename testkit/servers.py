"""Tests and benchmarks serve apps with the same helper the call simulator uses."""

from agent.ops.local_server import ServerThread, free_port

__all__ = ["ServerThread", "free_port"]
