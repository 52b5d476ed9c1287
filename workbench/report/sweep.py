"""A sweep in every report format: the terminal table, CSV (one row per point), JSON (the sweep's
analysis beside the ordinary report of its runs) and HTML (the ordinary report with a sweep section
first: points, scaling curves with CI bands, the sweet spot, the frontier and its knee, contributions).

The data is ``results.sweep_analysis.analyze_sweep``; nothing is recomputed here. Every view says
which noise rule the speed-ups used (measured between processes, or the constant ±2 % band).
"""
from __future__ import annotations

import csv
import io
import json
import math
import os
import tempfile
import time
from pathlib import Path
from typing import Any

from .. import format as fmt
from ..errors import WorkbenchError
from ..results.repeat_stats import RULE_MEASURED
from ..results.store import ResultsStore

SWEEP_REPORT_FORMAT = "workbench-sweep-report"
SWEEP_REPORT_VERSION = 1
SWEEP_SUFFIXES = (".html", ".htm", ".csv", ".json")
CSV_FIXED = ["sweep_id", "point", "role", "chain", "status", "processes", "p50_ms", "p50_ci_low_ms", "p50_ci_high_ms",
             "ci_rule", "p90_ms", "p95_ms", "p99_ms", "throughput_per_s", "throughput_ci_low", "throughput_ci_high",
             "speedup", "speedup_ci_low", "speedup_ci_high", "speedup_significant", "noise_rule",
             "between_process_spread_pct", "fidelity_kind", "fidelity", "verdict", "sweet_spot", "on_front", "knee",
             "ttft_ms", "decode_tokens_per_s", "run_ids", "nodes", "errors"]


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
    """(sweet spot points, points on a frontier, knee points)."""
    spot = analysis.get("sweet_spot") or {}
    sweet = {g["point"] for g in spot.get("groups") or []} if spot.get("found") else set()
    front = {i for f in analysis.get("frontier") or [] for i in f["front"]}
    knees = {f["knee"] for f in analysis.get("frontier") or [] if f.get("knee") is not None}
    return sweet, front, knees


# -- text (the CLI) ---------------------------------------------------------------------------------------
def render_sweep_text(analysis: dict) -> str:
    axes = [a["name"] for a in analysis["axes"]]
    combos = analysis.get("all_combinations")
    sweet, front, knees = special_points(analysis)
    headers = ["#", "role", *axes] + (["chain"] if combos else []) + [
        "status", "runs", "p50 [95% CI]", "p99", "samples/s", "speed-up [95% CI]", "noise rule", "fidelity", "verdict"]
    rows = []
    for e in analysis["points"]:
        marks = "".join(m for m, s in (("★", sweet), ("◆", knees)) if e["index"] in s)
        fid = "—" if e.get("fidelity") is None else f"{100 * e['fidelity']:.1f} %"
        rows.append([f"{e['index']}{marks}", e["role"], *[_value_text(e["values"].get(a, "")) for a in axes]]
                    + ([" → ".join(e["combo"]) if e.get("combo") else "baseline"] if combos else [])
                    + [e["status"], str(len(e["run_ids"])), f"{fmt.ms(e.get('p50_ms'))} {fmt.ci(e.get('p50_ci_ms'))}"
                       if e.get("p50_ms") is not None else "—", fmt.ms(e.get("p99_ms")),
                       fmt.num(e.get("throughput"), ".1f"), _ratio(e.get("speedup"), e.get("speedup_ci")),
                       rule_word(e), fid, ((e.get("verdict") or {}).get("text") or "")[:48]])
    lines = [f"{analysis['label']}: {analysis['model']} · {analysis['status']} · "
             + ", ".join(f"{k} {v}" for k, v in analysis["counts"].items() if v), fmt.table(headers, rows)]
    lines.extend(noise_lines(analysis["noise"]))
    lines.extend(_findings(analysis))
    for e in analysis["points"]:
        for f in e["failures"]:
            lines.append(f"point {e['index']} repeat {f['repeat']}: {f['status']}: {f['error']}")
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


# -- CSV ------------------------------------------------------------------------------------------------------
def render_sweep_csv(analysis: dict) -> bytes:
    """One row per point: the axis values as columns of their own, then ``CSV_FIXED``."""
    axes = [a["name"] for a in analysis["axes"]]
    sweet, front, knees = special_points(analysis)
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(axes + CSV_FIXED)
    for e in analysis["points"]:
        p50_ci, thr_ci, sp_ci = e.get("p50_ci_ms") or [None] * 2, e.get("throughput_ci") or [None] * 2, \
            e.get("speedup_ci") or [None] * 2
        spread = e.get("spread")
        row = {"sweep_id": analysis["id"], "point": e["index"], "role": e["role"],
               "chain": " → ".join(e["combo"]) if e.get("combo") is not None else e["chain"], "status": e["status"],
               "processes": len(e["run_ids"]), "p50_ms": e.get("p50_ms"), "p50_ci_low_ms": p50_ci[0],
               "p50_ci_high_ms": p50_ci[1], "ci_rule": e.get("ci_rule"), "p90_ms": e.get("p90_ms"),
               "p95_ms": e.get("p95_ms"), "p99_ms": e.get("p99_ms"), "throughput_per_s": e.get("throughput"),
               "throughput_ci_low": thr_ci[0], "throughput_ci_high": thr_ci[1], "speedup": e.get("speedup"),
               "speedup_ci_low": sp_ci[0], "speedup_ci_high": sp_ci[1],
               "speedup_significant": e.get("speedup_significant"), "noise_rule": e.get("rule"),
               "between_process_spread_pct": None if spread is None else 100 * spread,
               "fidelity_kind": e.get("fidelity_kind"), "fidelity": e.get("fidelity"),
               "verdict": (e.get("verdict") or {}).get("text"), "sweet_spot": e["index"] in sweet,
               "on_front": e["index"] in front, "knee": e["index"] in knees, "ttft_ms": e.get("ttft_ms"),
               "decode_tokens_per_s": e.get("decode_tokens_per_s"), "run_ids": " ".join(map(str, e["run_ids"])),
               "nodes": " ".join(e.get("nodes") or []),
               "errors": " | ".join(f"repeat {f['repeat']}: {f['error']}" for f in e["failures"])}
        writer.writerow([_value_text(e["values"].get(a, "")) for a in axes]
                        + ["" if row[k] is None else row[k] for k in CSV_FIXED])
    return buffer.getvalue().encode("utf-8")


# -- JSON and HTML ----------------------------------------------------------------------------------------------
def sweep_run_ids(analysis: dict) -> list[int]:
    ids = []
    for e in analysis["points"]:
        for run_id in e["run_ids"] + (e.get("baseline_run_ids") or []):
            if run_id not in ids:
                ids.append(run_id)
    return ids


def build_sweep_report(store: ResultsStore, analysis: dict, criterion: str = "p50") -> dict:
    """``{"format": "workbench-sweep-report", "sweep": <analysis>, "report": <the runs' report>}``;
    ``report`` follows docs/report.schema.json, the whole docs/sweep-report.schema.json."""
    from . import build_report
    from .. import __version__
    run_ids = sweep_run_ids(analysis)
    runs_report = build_report(store, run_ids, criterion) if run_ids else None
    return clean({"format": SWEEP_REPORT_FORMAT, "version": SWEEP_REPORT_VERSION,
                  "generated_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "workbench_version": __version__,
                  "sweep": analysis, "report": runs_report})


def render_sweep_json(document: dict) -> bytes:
    return (json.dumps(document, indent=2, ensure_ascii=False, allow_nan=False) + "\n").encode("utf-8")


def render_sweep_html(document: dict) -> bytes:
    from . import render_html
    from .sweep_html import sweep_section
    section = sweep_section(document["sweep"])
    if document["report"] is None:
        return ("<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>"
                f"{document['sweep']['label']}</title></head><body><main>{section}</main></body></html>").encode("utf-8")
    page = render_html(document["report"]).decode("utf-8")
    page = page.replace("<nav>", '<nav><a href="#sweep">Sweep</a>', 1)
    return page.replace("<main>", "<main>\n" + section, 1).encode("utf-8")


def write_sweep_report(store: ResultsStore, analysis: dict, output: str | Path, criterion: str = "p50") -> Path:
    """The sweep's report at ``output`` (.html, .csv or .json, from the suffix); written beside, then
    renamed, so the file appears whole or not at all."""
    path = Path(output).expanduser()
    suffix = path.suffix.lower()
    if suffix not in SWEEP_SUFFIXES:
        raise WorkbenchError(f"a sweep report is written as {', '.join(SWEEP_SUFFIXES)}, not "
                             f"{suffix or 'a file without a suffix'!r} ({output}); for a PDF of its runs: "
                             f"workbench report {' '.join(map(str, sweep_run_ids(analysis)[:8]))} -o report.pdf")
    if suffix == ".csv":
        data = render_sweep_csv(analysis)
    else:
        document = build_sweep_report(store, analysis, criterion)
        data = render_sweep_json(document) if suffix == ".json" else render_sweep_html(document)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
            os.chmod(tmp, 0o644)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
    except OSError as exc:
        raise WorkbenchError(f"cannot write the report to {path}: {exc.strerror or exc}") from None
    return path.resolve()
