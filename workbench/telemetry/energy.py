"""Energy per inference from telemetry samples over a measurement window (monotonic times)."""
from __future__ import annotations

from bisect import bisect_left, bisect_right
from dataclasses import dataclass
from typing import Sequence

from .sampler import TelemetrySample

METHOD_COUNTER = "energy counter delta"
METHOD_TRAPEZOID = "trapezoid power integration"

# Power samples further than this outside the window are not used to stand in for it.
_MAX_POWER_GAP_S = 1.0


@dataclass
class EnergyEstimate:
    joules: float | None
    joules_per_inference: float | None
    method: str          # starts with METHOD_COUNTER, METHOD_TRAPEZOID or "unavailable: "; notes in (...)
    window_s: float
    mean_power_w: float | None


def _interp(ts: list[float], vs: list[float], t: float) -> float:
    """Piecewise-linear value at t; held constant beyond the first/last point."""
    if t <= ts[0]:
        return vs[0]
    if t >= ts[-1]:
        return vs[-1]
    i = bisect_right(ts, t)
    t0, t1 = ts[i - 1], ts[i]
    if t1 == t0:
        return vs[i]
    return vs[i - 1] + (vs[i] - vs[i - 1]) * (t - t0) / (t1 - t0)


def _series(samples: Sequence[TelemetrySample], attr: str) -> tuple[list[float], list[float]]:
    pts = sorted((s.t, float(v)) for s in samples if (v := getattr(s, attr)) is not None)
    return [p[0] for p in pts], [p[1] for p in pts]


def _counter_joules(ts: list[float], vs: list[float], a: float, b: float) -> tuple[float | None, str | None]:
    if len(ts) < 2 or ts[0] > a or ts[-1] < b:
        return None, "energy counter does not bracket the window"
    # Only the samples that bracket the window matter; a decrease there means the driver reset
    # the counter (reload) and the delta would be meaningless.
    lo, hi = max(bisect_right(ts, a) - 1, 0), bisect_left(ts, b)
    seg = vs[lo:hi + 1]
    if any(y < x for x, y in zip(seg, seg[1:])):
        return None, "energy counter went backwards (driver reset?)"
    return (_interp(ts, vs, b) - _interp(ts, vs, a)) / 1000.0, None  # mJ -> J


def _trapezoid_joules(ts: list[float], ps: list[float], a: float, b: float) -> float:
    knots = [a] + ts[bisect_right(ts, a):bisect_left(ts, b)] + [b]
    vals = [_interp(ts, ps, t) for t in knots]
    return sum((t1 - t0) * (v0 + v1) / 2.0 for t0, t1, v0, v1 in zip(knots, knots[1:], vals, vals[1:]))


def _with_notes(method: str, notes: list[str]) -> str:
    return f"{method} ({'; '.join(notes)})" if notes else method


def energy_per_inference(samples: Sequence[TelemetrySample], t_start: float, t_end: float,
                         inferences: int) -> EnergyEstimate:
    window = t_end - t_start
    if not window > 0:
        return EnergyEstimate(None, None, "unavailable: empty measurement window", max(window, 0.0), None)

    notes: list[str] = []
    if window < 1.0:
        notes.append("window shorter than 1 s: imprecise")
    inside = sum(1 for s in samples if t_start <= s.t <= t_end)
    if inside < 2:
        notes.append(f"only {inside} sample(s) inside the window: imprecise")

    joules = None
    method = None
    ts, es = _series(samples, "gpu_energy_mj")
    if ts:
        joules, why_not = _counter_joules(ts, es, t_start, t_end)
        if joules is not None:
            method = METHOD_COUNTER
        else:
            notes.append(why_not)

    if joules is None:
        ts, ps = _series(samples, "gpu_power_w")
        if not ts:
            ts, ps = _series(samples, "gpu_power_avg_w")
            if ts:
                # The only power reading is a trailing 1 s average: it lags the load by ~0.5 s.
                notes.append("1 s averaged power (nvmlDeviceGetPowerUsage): lags the load")
        if not ts:
            return EnergyEstimate(None, None, "unavailable: no GPU power telemetry", window, None)
        if ts[-1] < t_start - _MAX_POWER_GAP_S or ts[0] > t_end + _MAX_POWER_GAP_S:
            return EnergyEstimate(None, None, "unavailable: no GPU power telemetry near the window",
                                  window, None)
        if ts[0] > t_start or ts[-1] < t_end:
            notes.append("power samples do not cover the whole window: edge values extended")
        joules = _trapezoid_joules(ts, ps, t_start, t_end)
        method = METHOD_TRAPEZOID

    if inferences > 0:
        per_inf = joules / inferences
    else:
        per_inf = None
        notes.append("no inferences counted")
    return EnergyEstimate(joules, per_inf, _with_notes(method, notes), window, joules / window)
