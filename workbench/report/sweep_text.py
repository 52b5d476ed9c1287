"""The sweep as text: the terminal table and its findings (sweet spot, knees, contributions, noise
rule), and the small helpers every sweep view shares (``report.sweep``, ``report.sweep_html``)."""
from __future__ import annotations

import math
from typing import Any

from .. import format as fmt
from ..results.repeat_stats import RULE_MEASURED


def clean(value: Any) -> Any:
    """JSON-safe: tuples as lists, non-finite floats as None."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {str(k): clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [clean(v) for v in value]
    return value


def _value_text(value: Any) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def _ratio(speedup: float | None, ci: list | None) -> str:
    return "—" if speedup is None else f"{speedup:.2f}× [{ci[0]:.2f}-{ci[1]:.2f}]"


def rule_word(entry: dict) -> str:
    if entry.get("rule") is None:
        return ""
    return f"measured (n={entry['processes']})" if entry["rule"] == RULE_MEASURED else "±2 % constant"


def special_points(analysis: dict) -> tuple[set, set, set]:
    """(the sweet spot, points on a frontier, knee points)."""
    spot = analysis.get("sweet_spot") or {}
    sweet = {spot["best"]["point"]} if spot.get("found") else set()
    front = {i for f in analysis.get("frontier") or [] for i in f["front"]}
    knees = {f["knee"] for f in analysis.get("frontier") or [] if f.get("knee") is not None}
    return sweet, front, knees


# -- text (the CLI) ---------------------------------------------------------------------------------------
def render_sweep_text(analysis: dict) -> str:
    axes = [a["name"] for a in analysis["axes"]]
    combos = analysis.get("all_combinations")
    sweet, front, knees = special_points(analysis)
    generate = any(e.get("ttft_ms") is not None for e in analysis["points"])
    headers = ["#", "role", *axes] + (["chain"] if combos else []) + [
        "status", "runs", "p50 [95% CI]", "p99", "samples/s"] + (["TTFT", "decode tok/s"] if generate else []) + [
        "speed-up [95% CI]", "noise rule", "fidelity", "verdict"]
    rows = []
    for e in analysis["points"]:
        lm = [fmt.ms(e.get("ttft_ms")), fmt.num(e.get("decode_tokens_per_s"), ".1f")] if generate else []
        marks = "".join(m for m, s in (("★", sweet), ("◆", knees)) if e["index"] in s)
        fid = "—" if e.get("fidelity") is None else f"{100 * e['fidelity']:.1f} %"
        rows.append([f"{e['index']}{marks}", e["role"], *[_value_text(e["values"].get(a, "")) for a in axes]]
                    + ([" → ".join(e["combo"]) if e.get("combo") else "baseline"] if combos else [])
                    + [e["status"], str(len(e["run_ids"])), f"{fmt.ms(e.get('p50_ms'))} {fmt.ci(e.get('p50_ci_ms'))}"
                       if e.get("p50_ms") is not None else "—", fmt.ms(e.get("p99_ms")),
                       fmt.num(e.get("throughput"), ".1f"), *lm, _ratio(e.get("speedup"), e.get("speedup_ci")),
                       rule_word(e), fid, ((e.get("verdict") or {}).get("text") or "")[:48]])
    lines = [f"{analysis['label']}: {analysis['model']} · {analysis['status']} · "
             + ", ".join(f"{k} {v}" for k, v in analysis["counts"].items() if v), fmt.table(headers, rows)]
    lines.extend(noise_lines(analysis["noise"]))
    lines.extend(_findings(analysis))
    for e in analysis["points"]:
        for f in e["failures"]:
            if f["status"] == "failed":     # cancellations are in the counts and the sweep's own message
                lines.append(f"point {e['index']} repeat {f['repeat']}: failed: {f['error']}")
    if analysis.get("error"):
        lines.append(analysis["error"])
    return "\n".join(lines)


def noise_lines(noise: dict) -> list[str]:
    """Which rule the speed-ups used, and the spread between processes measured beside the constant."""
    lines = [f"noise rule: {noise['why']}; a speed-up is inside the noise when {noise['text']}"]
    if noise.get("measured_spread_pct_median") is not None:
        lines.append(f"between-process spread of the p50 (sd of the log medians): median "
                     f"{noise['measured_spread_pct_median']:.2f} %, max {noise['measured_spread_pct_max']:.2f} % "
                     f"(the constant band assumes ±{noise['constant_band_pct']:g} %)")
    return lines


def _findings(analysis: dict) -> list[str]:
    """The sweet spot, the knees and the contributions, one line each."""
    lines = []
    spot = analysis.get("sweet_spot") or {}
    if spot.get("found"):
        best = spot["best"]
        lines.append(f"★ sweet spot: point {best['point']} ({_values(best['values'])}): "
                     f"{best['throughput']:.1f} samples/s at {spot['metric']} {fmt.ms(best['latency_ms'])} "
                     f"(budget {best['rule']}: {fmt.ms(best['budget_ms'])})")
        if spot.get("note"):
            lines.append(f"  {spot['note']}")
    elif spot.get("reason") and spot.get("applicable", True):
        lines.append(f"sweet spot: none ({spot['reason']})")
    for f in analysis.get("frontier") or []:
        where = f" ({_values(f['fixed'])})" if f["fixed"] else ""
        if f.get("knee") is not None:
            knee = next(p for p in f["points"] if p["point"] == f["knee"])
            lines.append(f"◆ knee of the speed-vs-fidelity frontier{where}: point {knee['point']} "
                         f"({_values(knee['values'])}): {knee['speedup']:.2f}×, {f['fidelity_kind']} "
                         f"{100 * knee['fidelity']:.1f} %")
        else:
            lines.append(f"frontier{where}: points {', '.join(map(str, f['front']))}; no knee ({f['knee_reason']})")
    for c in analysis.get("contributions") or []:
        speed = "—" if c["speedup_factor"] is None else f"{c['speedup_factor']:.2f}×"
        fid = "—" if c["fidelity_delta"] is None else f"{100 * c['fidelity_delta']:+.1f} pts"
        lines.append(f"contribution of {c['plugin']}: speed {speed}, fidelity {fid} (with vs without it, over "
                     f"{c['pairs']} pair(s) of combinations)")
    return lines


def _values(values: dict) -> str:
    return ", ".join(f"{k}={_value_text(v)}" for k, v in values.items()) or "as given"
