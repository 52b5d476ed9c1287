"""The latency distribution as a curve: the one CDF rule behind the GUI's comparison chart and the
report's CDF (whose 101 points are the report's ``latency_quantiles_ms``)."""
from __future__ import annotations

from typing import Sequence

import numpy as np

__all__ = ["latency_cdf"]


def latency_cdf(latencies_ns: Sequence[int] | np.ndarray, points: int) -> tuple[np.ndarray, np.ndarray]:
    """``(latency_ms, fraction)``: the latencies at ``points`` evenly spaced fractions from 0 to 1
    (numpy's linear quantiles; with ``points == len(latencies_ns)`` they are the sorted latencies
    themselves). Empty arrays when there are no latencies."""
    values = np.asarray(latencies_ns, dtype=np.float64) / 1e6
    if values.size == 0:
        return np.empty(0), np.empty(0)
    fractions = np.linspace(0, 1, points)
    return np.quantile(values, fractions), fractions
