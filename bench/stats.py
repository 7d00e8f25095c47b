"""Small order statistics, nearest-rank, no numpy."""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence


def median(values: Sequence[float]) -> float:
    return float(statistics.median(values)) if values else math.nan


def percentile(values: Sequence[float], pct: float) -> float:
    """Nearest-rank percentile: the smallest value with at least ``pct``% at or below it."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = max(1, math.ceil(pct / 100 * len(ordered)))
    return float(ordered[rank - 1])


def summary_ms(samples_ns: Sequence[int]) -> dict[str, float]:
    """Median and p99 of nanosecond samples, in milliseconds."""
    ms = [s / 1e6 for s in samples_ns]
    return {"median_ms": median(ms), "p99_ms": percentile(ms, 99), "n": len(ms)}


def median_of_runs(runs: Sequence[dict[str, float]], key: str) -> float:
    """The median across repeated runs of one figure (each run's own median or p99)."""
    return median([run[key] for run in runs if not math.isnan(run[key])])
