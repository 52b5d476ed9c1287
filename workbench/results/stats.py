"""Latency statistics: robust headline numbers with honest uncertainty.

The headline is the median with its IQR (latency distributions are skewed and have outliers);
the mean and std are kept for completeness. Tail percentiles are only reported when there are
enough samples to estimate them (p90 needs >= 64, p99 >= 662 samples, as MLPerf requires; p95
by the same rule of about 6.6 samples beyond the percentile: >= 132).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np

MIN_SAMPLES_FOR_PERCENTILE = {90: 64, 95: 132, 99: 662}
NOISY_IQR_RATIO = 0.10
BOOTSTRAP_RESAMPLES = 1000
# Above this many samples the bootstrap is slow and no better than the exact distribution-free
# order-statistic interval, so that one is used instead.
BOOTSTRAP_MAX_SAMPLES = 20_000


@dataclass
class LatencyStats:
    n: int
    median_ms: float
    iqr_ms: float
    mean_ms: float
    std_ms: float
    min_ms: float
    max_ms: float
    p90_ms: float | None
    p95_ms: float | None
    p99_ms: float | None
    median_ci_ms: tuple[float, float]        # 95 % confidence interval of the median
    ci_method: str
    throughput_per_s: float                  # samples/s = batch / median
    batch: int
    warnings: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return asdict(self)

    @property
    def p50_ms(self) -> float:
        return self.median_ms


def median_ci(values: np.ndarray, confidence: float = 0.95, seed: int = 0) -> tuple[float, float, str]:
    """95 % CI of the median: percentile bootstrap, or order statistics for very large samples."""
    n = len(values)
    if n < 2:
        v = float(values[0]) if n else float("nan")
        return v, v, "single sample"
    alpha = 1.0 - confidence
    if n <= BOOTSTRAP_MAX_SAMPLES:
        rng = np.random.default_rng(seed)
        medians = np.empty(BOOTSTRAP_RESAMPLES)
        chunk = max(1, 2_000_000 // n)      # bound memory: resample in chunks
        for start in range(0, BOOTSTRAP_RESAMPLES, chunk):
            stop = min(BOOTSTRAP_RESAMPLES, start + chunk)
            idx = rng.integers(0, n, size=(stop - start, n))
            medians[start:stop] = np.median(values[idx], axis=1)
        low, high = np.quantile(medians, [alpha / 2, 1 - alpha / 2])
        return float(low), float(high), f"bootstrap ({BOOTSTRAP_RESAMPLES} resamples)"
    # Distribution-free: the median lies between order statistics n/2 -+ z*sqrt(n)/2.
    z = 1.959963984540054
    sorted_values = np.sort(values)
    lo = max(0, int(np.floor(n / 2 - z * np.sqrt(n) / 2)))
    hi = min(n - 1, int(np.ceil(n / 2 + z * np.sqrt(n) / 2)))
    return float(sorted_values[lo]), float(sorted_values[hi]), "order statistics (binomial)"


def compute_latency_stats(latencies_ns, batch: int = 1, seed: int = 0) -> LatencyStats:
    """Statistics of per-iteration latencies given in nanoseconds."""
    values = np.asarray(latencies_ns, dtype=np.float64) / 1e6
    if values.size == 0:
        raise ValueError("no latency samples")
    n = int(values.size)
    q25, median, q75 = np.percentile(values, [25, 50, 75])
    iqr = float(q75 - q25)

    def tail(p: int) -> float | None:
        return float(np.percentile(values, p)) if n >= MIN_SAMPLES_FOR_PERCENTILE[p] else None

    low, high, method = median_ci(values, seed=seed)
    warnings = []
    if median > 0 and iqr / median > NOISY_IQR_RATIO:
        warnings.append(f"noisy: IQR is {100 * iqr / median:.0f}% of the median (> 10%); "
                        "close other programs, fix CPU frequency, or use --rigorous")
    for p, need in MIN_SAMPLES_FOR_PERCENTILE.items():
        if n < need:
            warnings.append(f"p{p} not reported: needs >= {need} samples, have {n}")
    return LatencyStats(
        n=n, median_ms=float(median), iqr_ms=iqr, mean_ms=float(values.mean()),
        std_ms=float(values.std(ddof=1)) if n > 1 else 0.0, min_ms=float(values.min()),
        max_ms=float(values.max()), p90_ms=tail(90), p95_ms=tail(95), p99_ms=tail(99),
        median_ci_ms=(low, high), ci_method=method,
        throughput_per_s=float(batch / (median / 1e3)) if median > 0 else float("inf"),
        batch=batch, warnings=warnings)


# Two runs of the same spec are two worker processes, and their medians differ by more than
# either run's own CI admits: six runs of the demo transformer spread 1.2 %, the optimizations
# benchmark's baseline re-run came out 0.99x "[0.99, 0.99]", batch-1 runs of 0.3 ms spread +-3 %
# (benchmarks/results/). A within-run CI cannot see this, so a speed-up counts as real only when
# its interval also clears this band around 1.
RUN_TO_RUN_NOISE = 0.02
# How every output explains "inside the noise" (CLI, GUI, reports).
NOISE_RULE = (f"its 95 % interval reaches within ±{RUN_TO_RUN_NOISE * 100:g} % of 1× (the run-to-run noise "
              f"between worker processes)")


def ratio_with_ci(baseline: LatencyStats | dict, variant: LatencyStats | dict,
                  noise_floor: float = RUN_TO_RUN_NOISE) -> dict:
    """Speed-up of ``variant`` over ``baseline`` (>1 = faster) with a conservative interval.

    The interval combines the two medians' CIs at their extremes. 'Significant' means the interval
    lies entirely outside [1/(1+noise_floor), 1+noise_floor]: it excludes 1 *and* the run-to-run
    noise between worker processes.
    """
    b = baseline if isinstance(baseline, dict) else baseline.to_dict()
    v = variant if isinstance(variant, dict) else variant.to_dict()
    speedup = b["median_ms"] / v["median_ms"]
    b_lo, b_hi = b["median_ci_ms"]
    v_lo, v_hi = v["median_ci_ms"]
    low, high = b_lo / v_hi, b_hi / v_lo
    significant = low > 1.0 + noise_floor or high < 1.0 / (1.0 + noise_floor)
    return {"speedup": speedup, "speedup_ci": (low, high), "significant": significant, "noise_floor": noise_floor}


def rate_summary(values: list[float], seed: int = 0) -> dict:
    """A rate measured once per repetition (tokens/s of one generation): median with its 95 % CI,
    mean ± sd (llama-bench's way of reporting tokens/s), min, max and how many."""
    array = np.asarray(values, dtype=np.float64)
    if array.size == 0:
        raise ValueError("no rates")
    low, high, method = median_ci(array, seed=seed)
    return {"median": float(np.median(array)), "median_ci": (low, high), "ci_method": method,
            "mean": float(array.mean()), "std": float(array.std(ddof=1)) if array.size > 1 else 0.0,
            "min": float(array.min()), "max": float(array.max()), "n": int(array.size)}


def per_token_energy(energy: dict | None, window: dict, new_tokens: int) -> float | None:
    """Joules per generated token over the decode phase: the window spans the timed generations'
    decode steps (with the prefills between them), so its energy is scaled by the share of the
    window spent decoding before dividing by the tokens those steps produced."""
    joules = (energy or {}).get("joules")
    span = (window.get("t_end") or 0) - (window.get("t_start") or 0)
    decode_s = window.get("decode_s")
    if joules is None or not span > 0 or not decode_s or not new_tokens:
        return None
    return joules * min(1.0, decode_s / span) / new_tokens
