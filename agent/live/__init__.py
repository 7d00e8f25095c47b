"""The live view: every MFA outcome streamed to operators as it happens.

``hub`` (events in a ring buffer, fanned out to readers; knows nothing of MFA),
``counters`` (today's totals), ``mfa_events`` (domain outcomes made into safe
events), ``routes`` (``/events`` and ``/live``) and ``exit_signals`` (streams end
before uvicorn waits on them). ``agent/app.py`` wires them together.
"""
