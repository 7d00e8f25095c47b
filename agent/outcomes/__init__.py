"""The outcome side of the agent: what happens to an MFA outcome after a tool decided it.

The live view: ``hub`` (events in a ring buffer, fanned out to readers; knows nothing of
MFA), ``counters`` (today's totals), ``mfa_events`` (domain outcomes made into safe
events), ``live_routes`` (``/events`` and ``/live``), ``exit_signals`` (streams end
before uvicorn waits on them), ``redis_events`` (one live stream across replicas) and
``threadsafe_queue`` (hand work to a loop's queue from any thread). The outcome's record:
``webhook`` (the signed POST to the operator's server).

Nothing here imports the composition root (``agent.app``, checked by import-linter):
``build_agent`` wires these parts together.
"""
