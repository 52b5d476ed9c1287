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
import time
from pathlib import Path

from ..errors import WorkbenchError
from .files import write_atomically
from ..results.store import ResultsStore
from .sweep_text import _value_text, clean, render_sweep_text, special_points

__all__ = ["build_sweep_report", "clean", "render_sweep_csv", "render_sweep_html", "render_sweep_json",
           "render_sweep_text", "sweep_run_ids", "write_sweep_report"]

SWEEP_REPORT_FORMAT = "workbench-sweep-report"
SWEEP_REPORT_VERSION = 1
SWEEP_SUFFIXES = (".html", ".htm", ".csv", ".json")
CSV_FIXED = ["sweep_id", "point", "role", "chain", "status", "processes", "p50_ms", "p50_ci_low_ms", "p50_ci_high_ms",
             "ci_rule", "p90_ms", "p95_ms", "p99_ms", "throughput_per_s", "throughput_ci_low", "throughput_ci_high",
             "speedup", "speedup_ci_low", "speedup_ci_high", "speedup_significant", "noise_rule",
             "between_process_spread_pct", "fidelity_kind", "fidelity", "verdict", "sweet_spot", "on_front", "knee",
             "ttft_ms", "decode_tokens_per_s", "run_ids", "nodes", "errors"]


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
    from .model import _workbench_version
    run_ids = sweep_run_ids(analysis)
    runs_report = build_report(store, run_ids, criterion) if run_ids else None
    return clean({"format": SWEEP_REPORT_FORMAT, "version": SWEEP_REPORT_VERSION,
                  "generated_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "workbench_version": _workbench_version(),
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
    return write_atomically(path, data)
