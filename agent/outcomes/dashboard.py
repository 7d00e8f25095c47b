"""The dashboard's routes: what the operator reads, opened by the dashboard's own pair
(``MFA_DASHBOARD_USER`` / ``MFA_DASHBOARD_PASSWORD``), never the platform's.

``build_agent`` hands these paths to ``agent/http/ingress.py``, the one place that checks who
may open them.
"""

from __future__ import annotations

DASHBOARD_PATHS = frozenset({"/live", "/events", "/outcomes", "/outcomes.csv", "/metrics"})
