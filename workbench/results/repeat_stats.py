"""Run-to-run noise measured, not assumed: statistics over N worker processes of the same point.

``--repeat N`` runs every sweep point in N worker processes (pyperf's way). Each process gives one
median; the spread of those medians *is* the run-to-run noise of this comparison on this machine,
so a speed-up's interval comes from it (Welch's t on the log medians) and no constant band is added.
With fewer than ``MIN_PROCESSES`` processes on either side the spread cannot be estimated, and the
comparison falls back to ``stats.ratio_with_ci`` with its constant ±2 % band (``stats.NOISE_RULE``).
Every result says which rule applied (``rule`` and ``noise_rule``).
"""
from __future__ import annotations

import math
import statistics
from typing import Sequence

from .stats import NOISE_RULE, RUN_TO_RUN_NOISE, ratio_with_ci

MIN_PROCESSES = 3
RULE_MEASURED = "between-process"          # the spread of N >= 3 worker processes' medians
RULE_CONSTANT = "constant band"            # fewer processes: the ±2 % constant (stats.NOISE_RULE)
BETWEEN_PROCESS_RULE = ("its 95 % interval, from the spread between the worker processes' medians (Welch's t on "
                        "the log medians: the run-to-run noise measured for this comparison), excludes 1×")

# Two-sided 95 % Student t quantiles by degrees of freedom (no scipy in the core). A fractional
# Welch df is rounded down: the wider interval, on the safe side.
_T95 = {1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571, 6: 2.447, 7: 2.365, 8: 2.306, 9: 2.262, 10: 2.228,
        11: 2.201, 12: 2.179, 13: 2.160, 14: 2.145, 15: 2.131, 16: 2.120, 17: 2.110, 18: 2.101, 19: 2.093,
        20: 2.086, 22: 2.074, 24: 2.064, 26: 2.056, 28: 2.048, 30: 2.042, 40: 2.021, 60: 2.000, 120: 1.980}
_Z95 = 1.959963984540054


def t_quantile_95(df: float) -> float:
    """The two-sided 95 % t quantile for ``df`` degrees of freedom (rounded down to the table)."""
    if not df >= 1:
        return _T95[1]
    if df > 120:
        return _Z95
    return _T95[max(k for k in _T95 if k <= math.floor(df))]


def _logs(medians: Sequence[float]) -> list[float]:
    return [math.log(m) for m in medians if m is not None and m > 0 and math.isfinite(m)]


def process_spread(medians: Sequence[float]) -> float | None:
    """The between-process spread: the standard deviation of the log medians, which is the
    relative spread (0.012 = 1.2 %) for small spreads; None with fewer than 2 processes."""
    logs = _logs(medians)
    return statistics.stdev(logs) if len(logs) >= 2 else None


def between_process_ci(medians: Sequence[float]) -> tuple[float, tuple[float, float]] | None:
    """(geometric mean of the process medians, its 95 % t interval) for N >= 2 processes, else None."""
    logs = _logs(medians)
    if len(logs) < 2:
        return None
    mean = statistics.fmean(logs)
    half = t_quantile_95(len(logs) - 1) * statistics.stdev(logs) / math.sqrt(len(logs))
    return math.exp(mean), (math.exp(mean - half), math.exp(mean + half))


def ratio_between_processes(baseline_medians: Sequence[float], variant_medians: Sequence[float]) -> dict:
    """Speed-up of the variant over the baseline (>1 = faster) from N worker processes each.

    The point estimate is the ratio of the geometric means of the process medians; the 95 % interval
    is Welch's t on the difference of the mean log medians, so it is as wide as the two
    configurations' own between-process spreads make it. 'Significant' means it excludes 1: no
    constant band is needed, the noise is in the interval. Needs >= 2 processes on each side (the
    caller, ``speedup_for_point``, asks for ``MIN_PROCESSES``)."""
    b, v = _logs(baseline_medians), _logs(variant_medians)
    if len(b) < 2 or len(v) < 2:
        raise ValueError("the between-process rule needs at least 2 processes on each side")
    diff = statistics.fmean(b) - statistics.fmean(v)
    var_b, var_v = statistics.variance(b) / len(b), statistics.variance(v) / len(v)
    se = math.sqrt(var_b + var_v)
    if se > 0:    # Welch–Satterthwaite degrees of freedom
        df = (var_b + var_v) ** 2 / (var_b ** 2 / (len(b) - 1) + var_v ** 2 / (len(v) - 1))
    else:
        df = len(b) + len(v) - 2
    half = t_quantile_95(df) * se
    low, high = math.exp(diff - half), math.exp(diff + half)
    return {"speedup": math.exp(diff), "speedup_ci": (low, high), "significant": low > 1.0 or high < 1.0,
            "noise_floor": None, "rule": RULE_MEASURED, "noise_rule": BETWEEN_PROCESS_RULE,
            "processes": (len(b), len(v)), "df": df,
            "spread": {"baseline": process_spread(baseline_medians), "variant": process_spread(variant_medians)}}


def pooled_latency(latencies: Sequence[dict]) -> dict | None:
    """One latency dict standing for fewer than ``MIN_PROCESSES`` runs of a point: the median of
    their medians, and an interval spanning all their median CIs (conservative)."""
    usable = [lat for lat in latencies if lat and lat.get("median_ms")]
    if not usable:
        return None
    if len(usable) == 1:
        return usable[0]
    cis = [lat.get("median_ci_ms") or (lat["median_ms"], lat["median_ms"]) for lat in usable]
    return {**usable[0], "median_ms": statistics.median(lat["median_ms"] for lat in usable),
            "median_ci_ms": (min(c[0] for c in cis), max(c[1] for c in cis))}


def speedup_for_point(baseline_latencies: Sequence[dict], variant_latencies: Sequence[dict]) -> dict | None:
    """The speed-up of a sweep point over its baseline from each side's runs (one latency dict per
    worker process), with the rule that applied: between-process when both sides have
    >= ``MIN_PROCESSES`` runs, else the constant ±2 % band on the pooled runs. None without data."""
    base = [lat["median_ms"] for lat in baseline_latencies if lat and lat.get("median_ms")]
    var = [lat["median_ms"] for lat in variant_latencies if lat and lat.get("median_ms")]
    if not base or not var:
        return None
    if len(base) >= MIN_PROCESSES and len(var) >= MIN_PROCESSES:
        return ratio_between_processes(base, var)
    ratio = ratio_with_ci(pooled_latency(baseline_latencies), pooled_latency(variant_latencies))
    why = (f"fewer than {MIN_PROCESSES} worker processes per side ({len(base)} and {len(var)}): "
           f"the constant ±{RUN_TO_RUN_NOISE * 100:g} % band")
    return {**ratio, "rule": RULE_CONSTANT, "noise_rule": NOISE_RULE, "rule_reason": why,
            "processes": (len(base), len(var)), "spread": {"baseline": process_spread(base),
                                                           "variant": process_spread(var)}}


def rule_sentence(rule: str) -> str:
    """How a view explains 'inside the noise' for ``rule``."""
    return BETWEEN_PROCESS_RULE if rule == RULE_MEASURED else NOISE_RULE
