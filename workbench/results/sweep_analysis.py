"""What a sweep shows: per point its latency and throughput with CIs, its speed-up with the noise rule
that applied, its fidelity; scaling curves along each axis; the throughput-vs-latency sweet spot; the
speed-vs-fidelity frontier of plugin parameters with its knee; each plugin's contribution when the
sweep measured every combination. One analysis behind the CLI, the reports and the API.

No torch here (the GUI and the reports import it).
"""
from __future__ import annotations

import math
import statistics
from typing import Any

from ..errors import SpecError
from .compare import baseline_for, comparison_row, is_variant
from .pareto import pareto_front
from .repeat_stats import (MIN_PROCESSES, RULE_CONSTANT, RULE_MEASURED, between_process_ci,
                           pooled_latency, process_spread, rule_sentence, speedup_for_point)
from .stats import RUN_TO_RUN_NOISE
from .store import ResultsStore
from .sweeps import SweepRecord, point_runs
from .verdict import DEFAULT_MIN_FIDELITY, fidelity_score, verdict_for

DEFAULT_BUDGET = "2x"
TAIL_METRICS = ("p99_ms", "p95_ms", "p90_ms", "median_ms")   # the budget's latency: the highest reported by all


def parse_latency_budget(text: str | float | None) -> tuple[str, float]:
    """``"2x"`` (times the batch-1 tail latency; the default) or ``"5ms"`` / ``"5"`` (milliseconds)."""
    raw = str(DEFAULT_BUDGET if text is None else text).strip().lower()
    kind = "factor" if raw.endswith("x") else "ms"
    number = raw.rstrip("x").removesuffix("ms").strip()
    try:
        value = float(number)
    except ValueError:
        raise SpecError(f"bad --latency-budget {text!r}: give a factor of the batch-1 latency (2x) or "
                        "milliseconds (5ms)") from None
    if not (math.isfinite(value) and value > 0):
        raise SpecError(f"bad --latency-budget {text!r}: it must be a positive number")
    return kind, value


# -- per point -------------------------------------------------------------------------------------------
def _median(values: list) -> float | None:
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def _latency_summary(latencies: list[dict]) -> dict:
    """p50 with its CI across the point's processes (>= 3: between-process t interval; fewer: the
    pooled within-run CIs), the tail percentiles, throughput with its CI."""
    medians = [lat["median_ms"] for lat in latencies]
    if len(latencies) >= MIN_PROCESSES:
        center, ci = between_process_ci(medians)
        rule = RULE_MEASURED
    else:
        pooled = pooled_latency(latencies)
        center, ci = pooled["median_ms"], tuple(pooled.get("median_ci_ms") or (pooled["median_ms"],) * 2)
        rule = RULE_CONSTANT
    batch = latencies[0].get("batch") or 1
    out = {"p50_ms": center, "p50_ci_ms": list(ci), "ci_rule": rule, "processes": len(latencies), "batch": batch,
           "spread": process_spread(medians), "throughput": batch * 1e3 / center if center else None,
           "throughput_ci": [batch * 1e3 / ci[1], batch * 1e3 / ci[0]] if ci[0] and ci[1] else None}
    for key in TAIL_METRICS[:-1]:
        out[key] = _median([lat.get(key) for lat in latencies])
    return out


def _generation_summary(runs: list) -> dict:
    gens = [r.result.get("generation") or {} for r in runs]
    if not any(gens):
        return {}
    return {"ttft_ms": _median([g.get("ttft_ms") for g in gens]),
            "decode_tokens_per_s": _median([g.get("decode_tokens_per_s") for g in gens])}


def _point_entry(store: ResultsStore, sweep: SweepRecord, point: dict, runs: list, baseline_runs: list | None,
                 min_fidelity: float) -> dict:
    entry: dict[str, Any] = {
        "index": point["index"], "role": point["role"], "values": point["values"], "combo": point.get("combo"),
        "gpu": point.get("gpu") or {}, "chain": _chain_text(point["spec"]), "baseline_point": point.get("baseline"),
        "run_ids": [r.id for r in runs], "status": "done" if runs else "not measured",
        "failures": [{"repeat": p.repeat + 1, "status": p.status, "error": p.error, "run_id": p.run_id}
                     for p in sweep.points if p.point == point["index"] and p.status in ("failed", "cancelled")],
        "nodes": sorted({p.node for p in sweep.points if p.point == point["index"] and p.node}),
        "speedup": None, "speedup_ci": None, "speedup_significant": None, "rule": None, "noise_rule": None,
        "fidelity_kind": None, "fidelity": None, "verdict": None}
    if entry["failures"] and not runs:
        entry["status"] = entry["failures"][-1]["status"]
    latencies = [r.result.get("latency") for r in runs if r.result.get("latency")]
    if not latencies:
        return entry
    entry.update(_latency_summary(latencies))
    entry.update(_generation_summary(runs))
    if point["role"] != "point" or not is_variant(runs[0]):
        return entry          # a plain setting (batch, threads): nothing to compare with a baseline
    if baseline_runs is None:      # the baseline is a stored run (plan_runs reused it)
        found = baseline_for(store, runs[0])
        baseline_runs = [found] if found is not None else []
    row = comparison_row(runs[0], baseline_runs[0] if baseline_runs else None, min_fidelity)
    base_lat = [r.result.get("latency") for r in baseline_runs if r.result.get("latency")]
    ratio = speedup_for_point(base_lat, latencies) if base_lat and not row.get("baseline_mismatch") else None
    if ratio is not None:
        entry.update(speedup=ratio["speedup"], speedup_ci=list(ratio["speedup_ci"]),
                     speedup_significant=ratio["significant"], rule=ratio["rule"], noise_rule=ratio["noise_rule"],
                     baseline_spread=ratio["spread"]["baseline"])
        row.update(speedup=ratio["speedup"], speedup_ci=ratio["speedup_ci"], speedup_significant=ratio["significant"])
    kind, score = fidelity_score(row)
    entry.update(fidelity_kind=kind, fidelity=score, accuracy=row.get("accuracy"),
                 baseline_run_ids=[r.id for r in baseline_runs], verdict=verdict_for(row, min_fidelity).to_dict())
    return entry


def _chain_text(spec: dict) -> str:
    steps = spec.get("plugins") or []
    return " → ".join(s["name"] + (":" + ",".join(f"{k}={v}" for k, v in (s.get("params") or {}).items())
                                   if s.get("params") else "") for s in steps) or "baseline"


# -- views -------------------------------------------------------------------------------------------
def _group_key(entry: dict, leave_out: set[str], with_combo: bool = True) -> tuple:
    fixed = tuple((k, v) for k, v in entry["values"].items() if k not in leave_out)
    return fixed + ((("chain", tuple(entry["combo"] or ())),) if with_combo and entry.get("combo") is not None else ())


def scaling_curves(entries: list[dict], axes: list[dict]) -> list[dict]:
    """Latency and throughput (with CIs) along each axis, one series per setting of the other axes."""
    measured = [e for e in entries if e["role"] == "point" and e.get("p50_ms") is not None]
    curves = []
    for axis in axes:
        series: dict[tuple, list] = {}
        for e in measured:
            series.setdefault(_group_key(e, {axis["name"]}), []).append(e)
        order = {v: i for i, v in enumerate(axis["values"])}
        curves.append({"axis": axis["name"], "kind": axis["kind"], "series": [
            {"fixed": dict(key), "points": [
                {"x": e["values"][axis["name"]], "point": e["index"], "p50_ms": e["p50_ms"], "p50_ci_ms": e["p50_ci_ms"],
                 "p99_ms": e.get("p99_ms"), "throughput": e["throughput"], "throughput_ci": e["throughput_ci"],
                 "speedup": e.get("speedup"), "speedup_ci": e.get("speedup_ci"), "fidelity": e.get("fidelity"),
                 "ttft_ms": e.get("ttft_ms"), "decode_tokens_per_s": e.get("decode_tokens_per_s")}
                for e in sorted(members, key=lambda m: order.get(m["values"][axis["name"]], 0))]}
            for key, members in series.items()]})
    return curves


def _tail_metric(entries: list[dict]) -> str:
    for key in TAIL_METRICS:
        if entries and all(e.get(key) is not None for e in entries):
            return key
    return "median_ms"


def _metric_name(key: str) -> str:
    return "p50" if key == "median_ms" else key.removesuffix("_ms")


def sweet_spot(entries: list[dict], budget: str | float | None = None) -> dict:
    """The highest throughput whose tail latency stays within the budget: by default 2× the batch-1
    p99 of the same settings (a lower percentile where p99 was not reported for every point: it needs
    >= 662 timed iterations per run), or a fixed budget in ms."""
    kind, value = parse_latency_budget(budget)
    measured = [e for e in entries if e["role"] == "point" and e.get("throughput")]
    if not measured:
        return {"found": False, "reason": "no measured point"}
    has_batch = any("batch" in e["values"] for e in measured)
    if kind == "factor" and not has_batch:
        return {"found": False, "applicable": False,
                "reason": "no batch axis: give --latency-budget in ms (e.g. 5ms) for a sweet spot across other axes"}
    metric = _tail_metric([{"median_ms": e["p50_ms"], **e} for e in measured])
    name = _metric_name(metric)

    def tail(e: dict) -> float | None:
        return e["p50_ms"] if metric == "median_ms" else e.get(metric)

    groups: dict[tuple, list] = {}
    for e in measured:
        groups.setdefault(_group_key(e, {"batch"}), []).append(e)
    chosen = []
    why_not = []
    for key, members in groups.items():
        if kind == "factor":
            ones = [tail(e) for e in members if e["batch"] == 1 and tail(e) is not None]
            if not ones:
                why_not.append(f"{_fixed_text(dict(key))}: no batch-1 point to set the budget")
                continue
            limit, rule = value * min(ones), f"{name} ≤ {value:g}× the batch-1 {name}"
        else:
            limit, rule = value, f"{name} ≤ {value:g} ms"
        inside = [e for e in members if tail(e) is not None and tail(e) <= limit]
        if not inside:
            why_not.append(f"{_fixed_text(dict(key))}: no point within {rule} ({limit:.4g} ms)")
            continue
        best = max(inside, key=lambda e: e["throughput"])
        chosen.append({"point": best["index"], "values": best["values"], "throughput": best["throughput"],
                       "latency_ms": tail(best), "budget_ms": limit, "fixed": dict(key), "rule": rule})
    if not chosen:
        return {"found": False, "metric": name, "reason": "; ".join(why_not) or "no point within the budget"}
    best = max(chosen, key=lambda c: c["throughput"])
    note = None if metric == "p99_ms" else (f"p99 is not reported for every point (it needs >= 662 timed iterations "
                                            f"per run); the budget uses {name}")
    return {"found": True, "metric": name, "best": best, "groups": chosen, "not_found": why_not, "note": note}


def _fixed_text(fixed: dict) -> str:
    return ", ".join(f"{k}={v}" for k, v in fixed.items() if k != "chain") or "all points"


def knee_index(xs: list[float], ys: list[float]) -> int | None:
    """The knee of a trade-off curve (more x costs y): the point farthest above the straight line
    between the two ends, both axes scaled to [0, 1] (Kneedle's idea). None with fewer than 3 points
    or a straight line."""
    if len(xs) < 3:
        return None
    x0, x1, y0, y1 = min(xs), max(xs), min(ys), max(ys)
    if x1 == x0 or y1 == y0:
        return None
    nx = [(x - x0) / (x1 - x0) for x in xs]
    ny = [(y - y0) / (y1 - y0) for y in ys]
    order = sorted(range(len(xs)), key=lambda i: nx[i])
    first, last = order[0], order[-1]
    (ax, ay), (bx, by) = (nx[first], ny[first]), (nx[last], ny[last])
    length = math.hypot(bx - ax, by - ay) or 1.0
    distance = {i: ((bx - ax) * (ny[i] - ay) - (by - ay) * (nx[i] - ax)) / length for i in order[1:-1]}
    best = max(distance, key=distance.get) if distance else None
    return best if best is not None and distance[best] > 1e-9 else None


def frontier(entries: list[dict], axes: list[dict]) -> list[dict]:
    """For plugin-parameter axes: the speed-vs-fidelity Pareto front of each setting of the other
    axes (``results.pareto``), and its knee."""
    plugin_axes = {a["name"] for a in axes if a["kind"] == "plugin"}
    if not plugin_axes:
        return []
    usable = [e for e in entries if e["role"] == "point" and e.get("speedup") is not None and e.get("fidelity") is not None]
    groups: dict[tuple, list] = {}
    for e in usable:
        groups.setdefault(_group_key(e, plugin_axes), []).append(e)
    fronts = []
    for key, members in groups.items():
        front = [members[i] for i in pareto_front([(m["p50_ms"], m["fidelity"]) for m in members])]
        knee = knee_index([m["speedup"] for m in front], [m["fidelity"] for m in front])
        fronts.append({"fixed": dict(key), "fidelity_kind": members[0]["fidelity_kind"],
                       "points": [{"point": m["index"], "values": m["values"], "speedup": m["speedup"],
                                   "fidelity": m["fidelity"], "on_front": m in front} for m in members],
                       "front": [m["index"] for m in front], "knee": front[knee]["index"] if knee is not None else None,
                       "knee_reason": None if knee is not None else _no_knee(len(front))})
    return fronts


def _no_knee(points: int) -> str:
    if points < 3:
        return f"the front has {points} point(s); a knee needs 3 or more"
    return "no front point lies above the line between its ends: each step costs fidelity at least in proportion"


def contributions(entries: list[dict]) -> list[dict]:
    """For ``--all-combinations``: each plugin's effect, with it vs without it, averaged over every
    measured combination of the others (and every setting of the other axes): the geometric mean of
    the speed-up ratios and the mean change of fidelity."""
    combos = [e for e in entries if e.get("combo") is not None]
    if not combos:
        return []
    table: dict[tuple, dict[frozenset, dict]] = {}
    for e in combos:
        plain = e["role"] == "baseline" and not e["combo"]      # the empty sub-chain: the baseline itself
        if e["role"] == "baseline" and not plain:
            continue        # a conversion reference (onnx_export alone) is not one of the combinations
        figures = {"speedup": 1.0 if plain else e.get("speedup"), "fidelity": 1.0 if plain else e.get("fidelity")}
        table.setdefault(_group_key(e, set(), with_combo=False), {})[frozenset(e["combo"])] = figures
    plugins = sorted({p for e in combos for p in e["combo"]})
    out = []
    for plugin in plugins:
        speed, fidelity = [], []
        for measured in table.values():
            for subset, with_it in measured.items():
                if plugin not in subset:
                    continue
                without = measured.get(subset - {plugin})
                if without is None:
                    continue
                if with_it["speedup"] and without["speedup"]:
                    speed.append(math.log(with_it["speedup"] / without["speedup"]))
                if with_it["fidelity"] is not None and without["fidelity"] is not None:
                    fidelity.append(with_it["fidelity"] - without["fidelity"])
        out.append({"plugin": plugin, "speedup_factor": math.exp(statistics.fmean(speed)) if speed else None,
                    "fidelity_delta": statistics.fmean(fidelity) if fidelity else None, "pairs": len(speed)})
    return out


def noise_summary(entries: list[dict], repeat: int) -> dict:
    """Which rule the sweep's speed-ups used, in words, with the between-process spread it measured."""
    spreads = [e["spread"] for e in entries if e.get("spread") is not None]
    measured = repeat >= MIN_PROCESSES
    rule = RULE_MEASURED if measured else RULE_CONSTANT
    return {"rule": rule, "text": rule_sentence(rule), "repeat": repeat, "constant_band_pct": RUN_TO_RUN_NOISE * 100,
            "measured_spread_pct_median": 100 * statistics.median(spreads) if spreads else None,
            "measured_spread_pct_max": 100 * max(spreads) if spreads else None,
            "why": (f"--repeat {repeat}: the run-to-run noise measured between {repeat} worker processes per point"
                    if measured else f"--repeat {repeat} (fewer than {MIN_PROCESSES} worker processes per point): "
                    f"the constant ±{RUN_TO_RUN_NOISE * 100:g} % run-to-run band")}


def analyze_sweep(store: ResultsStore, sweep: SweepRecord, latency_budget: str | float | None = None,
                  min_fidelity: float = DEFAULT_MIN_FIDELITY) -> dict:
    """Everything the sweep views show, as plain data (also the JSON report's ``sweep`` section)."""
    plan = sweep.plan
    runs = point_runs(store, sweep)
    points = plan.get("points") or []
    entries = []
    for point in points:
        base_index = point.get("baseline")
        baseline_runs = runs.get(base_index, []) if base_index is not None else None
        entries.append(_point_entry(store, sweep, point, runs.get(point["index"], []), baseline_runs, min_fidelity))
    axes = plan.get("axes") or []
    return {"id": sweep.id, "name": sweep.name, "label": sweep.label, "status": sweep.status, "model": sweep.model,
            "created_at": sweep.created_at, "finished_at": sweep.finished_at, "error": sweep.error,
            "axes": axes, "repeat": plan.get("repeat", 1), "all_combinations": plan.get("all_combinations", False),
            "counts": sweep.counts(), "noise": noise_summary(entries, plan.get("repeat", 1)), "points": entries,
            "curves": scaling_curves(entries, axes), "sweet_spot": sweet_spot(entries, latency_budget),
            "frontier": frontier(entries, axes), "contributions": contributions(entries)}
