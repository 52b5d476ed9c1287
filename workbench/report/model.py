"""The data model of a report: one JSON-serialisable dict built from the results store.

Every format (HTML, PDF, CSV, JSON) renders this same dict, so they cannot disagree. Its shape is
documented field by field in ``docs/report.schema.json`` (the JSON export validates against it).

Heavy data are reduced here, once: per-iteration latencies become 101 quantiles (the CDF) and a
trace of at most ``TRACE_POINTS`` bucket medians; telemetry is thinned to ``TRACE_POINTS``
samples per run. Charts are drawn from these, never from the raw tables.
"""
from __future__ import annotations

import datetime as _dt
import math
import shlex
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..results.compare import baseline_for, comparison_row, runtime_baseline_for
from ..results.distribution import latency_cdf
from ..results.pareto import pareto_fronts
from .. import format as fmt
from ..errors import WorkbenchError
from .command import spec_to_argv
from .explain_section import attach_explanations
from ..results.stats import NOISE_RULE
from ..results.store import ResultsStore, RunRecord
from ..results.verdict import DEFAULT_MIN_FIDELITY, parse_min_fidelity

REPORT_FORMAT = "workbench-report"
REPORT_VERSION = 1
DEFAULT_MIN_AGREEMENT = DEFAULT_MIN_FIDELITY     # the one fidelity gate (results.verdict)
TRACE_POINTS = 200          # points per run in the latency trace and the telemetry series
QUANTILES = 101             # latency quantiles 0 %, 1 %, ..., 100 % (the CDF)
TELEMETRY_SERIES = ("rss_bytes", "cpu_percent", "gpu_power_w", "gpu_mem_used_bytes", "gpu_util_pct")


@dataclass(frozen=True)
class Criterion:
    name: str
    metric: str           # key of the run's "metrics" dict
    goal: str             # "min" | "max"
    description: str
    relative: str         # the metric relative to the run's own baseline (used across models/setups)


CRITERIA: dict[str, Criterion] = {c.name: c for c in (
    Criterion("p50", "p50_ms", "min", "fastest median latency (p50)", "p50_ratio"),
    Criterion("p90", "p90_ms", "min", "fastest 90th-percentile latency", "p90_ratio"),
    Criterion("p95", "p95_ms", "min", "fastest 95th-percentile latency", "p95_ratio"),
    Criterion("p99", "p99_ms", "min", "fastest 99th-percentile latency", "p99_ratio"),
    Criterion("mean", "mean_ms", "min", "fastest mean latency", "mean_ratio"),
    Criterion("throughput", "throughput_per_s", "max", "highest throughput (samples/s)", "throughput_ratio"),
    Criterion("size", "size_bytes", "min", "smallest model (serialized weights)", "size_ratio"),
    Criterion("energy", "energy_j_per_inference", "min", "lowest energy per inference", "energy_ratio"),
    Criterion("fidelity", "fidelity_score", "max", "closest outputs to the unoptimized model", "fidelity_score"),
)}
CRITERION_HELP = ("NAME[:MIN_AGREEMENT] with NAME one of " + ", ".join(CRITERIA)
                  + f"; MIN_AGREEMENT is the top-1 agreement a run needs to qualify (default "
                    f"{DEFAULT_MIN_AGREEMENT:g}, as a fraction or a percentage; 0 turns the gate off)")


def parse_criterion(text: str | None) -> dict:
    """``"p50"``, ``"size:0.95"``, ``"throughput:98%"`` → the report's ``criterion`` dict."""
    raw = (text or "p50").strip().lower()
    name, _, gate = raw.partition(":")
    name = {"median": "p50", "latency": "p50", "speed": "p50", "bytes": "size", "compression": "size"}.get(name, name)
    if name not in CRITERIA:
        raise WorkbenchError(f"unknown report criterion {text!r}: use {CRITERION_HELP}")
    minimum = DEFAULT_MIN_AGREEMENT if name != "fidelity" else 0.0
    if gate:
        minimum = parse_min_fidelity(gate)
    c = CRITERIA[name]
    description = c.description
    if minimum > 0:
        description += (f" among runs whose top-1 agreement with the unoptimized model is ≥ {100 * minimum:g} % "
                        "(cosine similarity for models without class outputs)")
    return {"name": name, "metric": c.metric, "relative_metric": c.relative, "goal": c.goal,
            "min_agreement": minimum, "description": description}


# ---------------------------------------------------------------------------------------------
def build_report(store: ResultsStore, run_ids: list[int], criterion: str = "p50") -> dict:
    """The report's data model for ``run_ids`` (in that order, duplicates dropped)."""
    crit = parse_criterion(criterion)
    try:
        ids = list(dict.fromkeys(int(i) for i in run_ids))
    except (TypeError, ValueError):
        raise WorkbenchError(f"run ids must be integers, got {list(run_ids)!r}") from None
    if not ids:
        raise WorkbenchError("a report needs at least one run id")
    records = [store.get_run(i) for i in ids]          # WorkbenchError for an unknown id
    by_id = {r.id: r for r in records}
    runs = []
    for record in records:
        baseline = baseline_for(store, record, records)
        runs.append(_run_entry(store, record, baseline, by_id, runtime_baseline_for(store, record, records)))
    attach_explanations(store, records, runs)      # profiles, layers, LM figures: why
    _mark_pareto(runs)
    summary = _summary(runs, crit)
    for run in runs:
        run["best"] = run["id"] == summary["best_run_id"]
    report = {
        "format": REPORT_FORMAT,
        "version": REPORT_VERSION,
        "title": "Workbench report",
        "generated_at": _iso(_dt.datetime.now(_dt.timezone.utc).timestamp()),
        "workbench_version": _workbench_version(),
        "database": str(store.path),
        "run_ids": ids,
        "criterion": crit,
        "summary": summary,
        "runs": runs,
    }
    return _clean(report)


# ---------------------------------------------------------------------------------------------
def _run_entry(store: ResultsStore, record: RunRecord, baseline: RunRecord | None,
               by_id: dict[int, RunRecord], runtime_baseline: RunRecord | None = None) -> dict:
    result = record.result or {}
    spec = record.spec or {}
    row = comparison_row(record, baseline, runtime_baseline=runtime_baseline)
    lat = result.get("latency") if record.status == "done" else None
    fid = result.get("fidelity") if record.status == "done" else None
    tel = result.get("telemetry") or {}
    tel_status = result.get("telemetry_status") or {}
    energy = result.get("energy") or None
    dev_mem = result.get("device_memory") or {}
    info = result.get("model_info") or None
    opt_info = result.get("optimized_model_info") or None
    base_info = (baseline.result.get("model_info") if baseline else None) or info or {}

    latency = None
    if lat:
        latency = {
            "n": lat.get("n"), "p50_ms": lat.get("median_ms"), "p50_ci_ms": list(lat.get("median_ci_ms") or []) or None,
            "ci_method": lat.get("ci_method"), "p90_ms": lat.get("p90_ms"), "p95_ms": lat.get("p95_ms"),
            "p99_ms": lat.get("p99_ms"), "mean_ms": lat.get("mean_ms"), "std_ms": lat.get("std_ms"),
            "min_ms": lat.get("min_ms"), "max_ms": lat.get("max_ms"), "iqr_ms": lat.get("iqr_ms"),
            "batch": lat.get("batch"), "throughput_per_s": lat.get("throughput_per_s"),
            "cold_ms": result.get("cold_ms"), "warmup_iterations": (result.get("warmup") or {}).get("iterations"),
            "warmup_stable": (result.get("warmup") or {}).get("stable"),
        }

    size_ratio = row["size_ratio"]
    energy_j = (energy or {}).get("joules_per_inference")
    base_energy = ((baseline.result.get("energy") or {}).get("joules_per_inference") if baseline else None)
    base_lat = (baseline.result.get("latency") or {}) if baseline else {}
    top1 = (fid or {}).get("top1_agreement")
    cosine = (fid or {}).get("cosine")
    acc, ref_acc = (fid or {}).get("accuracy"), (fid or {}).get("reference_accuracy")
    comparison = None
    if baseline is not None:
        comparison = {
            "speedup": row["speedup"], "speedup_ci": list(row["speedup_ci"]) if row["speedup_ci"] else None,
            "speedup_significant": row["speedup_significant"],
            # A generate run: ``speedup`` is per decoded token; this is time to first token's.
            "prefill_speedup": row["prefill_speedup"],
            "prefill_speedup_ci": list(row["prefill_speedup_ci"]) if row["prefill_speedup_ci"] else None,
            # A cross-runtime chain (torch model measured on ONNX Runtime): ``speedup`` is against the
            # original on its own runtime, ``runtime_speedup`` against the fp32 model on this runtime.
            "cross_runtime": row["cross_runtime"], "baseline_runtime": row["baseline_runtime"],
            "runtime_baseline_id": row["runtime_baseline_id"], "runtime_speedup": row["runtime_speedup"],
            "runtime_speedup_ci": list(row["runtime_speedup_ci"]) if row["runtime_speedup_ci"] else None,
            "runtime_speedup_significant": row["runtime_speedup_significant"],
            "verdict": row["verdict"],
            "throughput_ratio": _ratio((lat or {}).get("throughput_per_s"), base_lat.get("throughput_per_s")),
            "size_ratio": size_ratio,
            "compression_efficiency": None if size_ratio is None else 1.0 - size_ratio,
            "energy_ratio": _ratio(energy_j, base_energy),
            "top1_agreement_cost": None if top1 is None else 1.0 - top1,
            "accuracy_delta": None if acc is None or ref_acc is None else acc - ref_acc,
            "baseline_p50_ms": base_lat.get("median_ms"),
            "baseline_size_bytes": base_info.get("bytes"),
            "baseline_energy_j_per_inference": base_energy,
        }

    metrics = {
        "p50_ms": row["p50_ms"] if lat else None, "p90_ms": row["p90_ms"] if lat else None,
        "p95_ms": row["p95_ms"] if lat else None, "p99_ms": row["p99_ms"] if lat else None,
        "mean_ms": row["mean_ms"] if lat else None, "throughput_per_s": row["throughput"] if lat else None,
        "size_bytes": (opt_info or info or {}).get("bytes"),
        "energy_j_per_inference": energy_j,
        "top1_agreement": top1, "cosine": cosine,
        "fidelity_score": top1 if top1 is not None else cosine,
    }
    # The same against the run's own baseline (what a report spanning several models ranks by).
    for key, base_key in (("p50", "median_ms"), ("p90", "p90_ms"), ("p95", "p95_ms"), ("p99", "p99_ms"),
                          ("mean", "mean_ms")):
        metrics[f"{key}_ratio"] = _ratio(metrics[f"{key}_ms"], base_lat.get(base_key)) if baseline else None
    metrics["throughput_ratio"] = comparison["throughput_ratio"] if comparison else None
    metrics["size_ratio"] = size_ratio if comparison else None
    metrics["energy_ratio"] = comparison["energy_ratio"] if comparison else None

    warnings = list((lat or {}).get("warnings") or []) + list(tel_status.get("warnings") or [])
    if comparison and comparison["speedup_significant"] is False:
        lo, hi = comparison["speedup_ci"]
        warnings.append(f"speed-up {comparison['speedup']:.2f}× vs #{baseline.id} lies inside the noise "
                        f"(95 % interval [{lo:.2f}, {hi:.2f}]): {NOISE_RULE}")
    nvml = tel_status.get("nvml")
    energy_note = None
    if energy_j is None:
        method = (energy or {}).get("method")
        energy_note = (f"not measured: NVML {nvml}" if nvml and nvml != "ok" else
                       method if method and method.startswith("unavailable") else "not measured")

    argv, command_notes = spec_to_argv(spec) if spec.get("model") else ([], ["no RunSpec stored"])
    failure = None
    if record.status != "done":
        phases = store.events(record.id, "phase")
        last = phases[-1] if phases else {}
        failure = {"status": record.status, "reason": record.error or f"the run is {record.status}",
                   "phase": " ".join(filter(None, (last.get("phase"), last.get("message")))) or None,
                   "detail": _tail(record.error_detail, 40)}
        if not result.get("plugin_reports"):      # steps that completed before the failure
            result = {**result, "plugin_reports": [e["report"] for e in store.events(record.id, "plugin_report")
                                                   if isinstance(e.get("report"), dict)]}
    return {
        "id": record.id, "label": record.label, "name": record.name, "status": record.status,
        "model": record.model, "chain": record.chain, "tags": list(record.tags),
        "runtime": record.runtime, "device": record.device, "dtype": spec.get("dtype"),
        "batch": (lat or {}).get("batch", record.batch), "threads": result.get("threads", spec.get("threads")),
        "created_at": _iso(record.created_at), "finished_at": _iso(record.finished_at),
        "duration_s": (record.finished_at - record.created_at) if record.finished_at else None,
        "is_baseline": not spec.get("plugins"),
        "baseline_id": baseline.id if baseline else None,
        "baseline_in_report": bool(baseline and baseline.id in by_id),
        "runtime_baseline_id": row["runtime_baseline_id"],
        "plugins": _plugin_chain(spec, result),
        "latency": latency,
        "metrics": metrics,
        "comparison": comparison,
        "model_info": _info(info), "optimized_model_info": _info(opt_info),
        "memory": {
            "host_peak_rss_bytes": tel.get("host_peak_rss_bytes"),
            "gpu_mem_used_peak_bytes": tel.get("gpu_mem_used_peak_bytes"),
            "gpu_proc_mem_peak_bytes": tel.get("gpu_proc_mem_peak_bytes"),
            "torch_peak_allocated_bytes": dev_mem.get("torch_peak_allocated_bytes"),
            "torch_peak_reserved_bytes": dev_mem.get("torch_peak_reserved_bytes"),
        },
        "power": {
            "nvml": nvml, "power_source": tel_status.get("power_source"), "gpu_name": tel_status.get("gpu_name"),
            "gpu_power_mean_w": tel.get("gpu_power_mean_w"), "gpu_power_max_w": tel.get("gpu_power_max_w"),
            "gpu_util_mean_pct": tel.get("gpu_util_mean_pct"), "sm_clock_mean_mhz": tel.get("sm_clock_mean_mhz"),
            "temperature_max_c": tel.get("temperature_max_c"), "cpu_percent_mean": tel.get("cpu_percent_mean"),
            "telemetry_samples": tel.get("samples"), "telemetry_rate_hz": tel.get("rate_hz"),
        },
        "energy": {
            "joules_per_inference": energy_j, "joules_per_sample": (energy or {}).get("joules_per_sample"),
            "joules": (energy or {}).get("joules"), "window_s": (energy or {}).get("window_s"),
            "mean_power_w": (energy or {}).get("mean_power_w"), "method": (energy or {}).get("method"),
            "note": energy_note,
        },
        "fidelity": None if fid is None else {
            "samples": fid.get("samples"), "inputs": result.get("fidelity_inputs"),
            "top1_agreement": top1, "accuracy": acc, "reference_accuracy": ref_acc, "cosine": cosine,
            "max_abs_error": fid.get("max_abs_error"), "mean_abs_error": fid.get("mean_abs_error"),
            "nonfinite_outputs": fid.get("nonfinite_outputs"), "exact": fid.get("exact"),
        },
        "eligible": False, "excluded_because": None, "pareto": False, "best": False,
        "failure": failure,
        "notes": list(result.get("notes") or []),
        "flags": list(result.get("flags") or []),
        "warnings": warnings,
        "environment": record.environment or {},
        "spec": spec,
        "command": shlex.join(argv) if argv else None,
        "command_exact": not command_notes,
        "command_notes": command_notes,
        "series": _series(store, record),
    }


def _plugin_chain(spec: dict, result: dict) -> list[dict]:
    """Every step with every parameter: resolved values from the plugin reports when the run got
    that far, else the given values completed with the plugins' schema defaults."""
    given_steps = spec.get("plugins") or []
    reports = list(result.get("plugin_reports") or [])
    steps = []
    given_iter = iter(given_steps)
    for rep in reports:
        auto = bool(rep.get("auto_inserted"))
        given = {} if auto else (next(given_iter, None) or {}).get("params", {})
        steps.append({
            "plugin": rep.get("plugin"), "params": rep.get("params") or {}, "given_params": given,
            "auto_inserted": auto, "applied": True, "summary": rep.get("summary"),
            "changes": {k: rep.get(k) for k in ("params_before", "params_after", "bytes_before", "bytes_after",
                                                "flops_before", "flops_after", "sparsity", "layers_changed",
                                                "seconds")},
            "notes": list(rep.get("notes") or []), "extra": rep.get("extra") or {},
        })
    for step in given_iter:           # not applied (the run failed before or in this step)
        steps.append({"plugin": step.get("name"), "params": _resolved(step), "given_params": step.get("params") or {},
                      "auto_inserted": False, "applied": False, "summary": None, "changes": None, "notes": [],
                      "extra": {}})
    return steps


def _resolved(step: dict) -> dict:
    params = dict(step.get("params") or {})
    try:
        from ..plugin_api import get_plugin_class
        cls = get_plugin_class(step.get("name"))
        return cls.resolve_params(params)
    except Exception:   # unknown/broken plugin, or values it rejects: show what was given
        return params


def _info(info: dict | None) -> dict | None:
    if not info:
        return None
    return {"format": info.get("format"), "parameters": info.get("parameters"), "bytes": info.get("bytes"),
            "flops": info.get("flops"), "layer_counts": info.get("layer_counts") or {}}


# ---------------------------------------------------------------------------------------------
def _series(store: ResultsStore, record: RunRecord) -> dict:
    """Chart data: latency CDF quantiles, a latency trace over time, thinned telemetry."""
    window = (record.result or {}).get("window") or {}
    latencies_ns = store.latencies(record.id)
    values = np.asarray(latencies_ns, dtype=np.float64) / 1e6
    quantiles = trace = None
    origin = window.get("t_start")
    if values.size:
        quantiles = latency_cdf(latencies_ns, QUANTILES)[0].tolist()     # the GUI's CDF, same rule
        buckets = np.array_split(values, min(TRACE_POINTS, values.size))
        medians = [float(np.median(b)) for b in buckets]
        ends = np.cumsum([b.sum() for b in buckets]) / 1e3          # seconds of compute
        mids = ends - np.array([b.sum() for b in buckets]) / 2e3
        t0, t1 = window.get("t_start"), window.get("t_end")
        if t0 is not None and t1 is not None and ends[-1] > 0:
            mids = mids * ((t1 - t0) / ends[-1])                     # stretch to the real wall time
        trace = {"t_s": mids.tolist(), "p50_ms": medians}
    samples = store.samples(record.id)
    telemetry = None
    if samples:
        if origin is None:          # never reached the timed phase: t = 0 is where it stopped
            origin = samples[-1]["t"]
        pick = np.unique(np.linspace(0, len(samples) - 1, min(TRACE_POINTS, len(samples))).round().astype(int))
        chosen = [samples[i] for i in pick]
        telemetry = {"t_s": [s["t"] - origin for s in chosen]}
        for key in TELEMETRY_SERIES:
            column = [s.get(key) for s in chosen]
            if key == "gpu_power_w" and all(v is None for v in column):
                column = [s.get("gpu_power_avg_w") for s in chosen]
            if any(v is not None for v in column):
                telemetry[key] = column
    return {"latency_quantiles_ms": quantiles, "latency_trace": trace, "telemetry": telemetry,
            "measure_window_s": (window["t_end"] - window["t_start"]) if window.get("t_start") is not None
            and window.get("t_end") is not None else None}


# ---------------------------------------------------------------------------------------------
def _mark_pareto(runs: list[dict]) -> None:
    """``run["pareto"]``: on its model's latency-vs-fidelity Pareto front (``results.pareto``'s rule)."""
    points = [(r["metrics"]["p50_ms"], r["metrics"]["fidelity_score"]) if r["status"] == "done" else (None, None)
              for r in runs]
    for front in pareto_fronts(points, [r["model"] for r in runs]).values():
        for i in front:
            runs[i]["pareto"] = True


def _summary(runs: list[dict], crit: dict) -> dict:
    metric, goal, gate = crit["metric"], crit["goal"], crit["min_agreement"]
    variants = [r for r in runs if not r["is_baseline"]]
    pool = variants if any(r["status"] == "done" for r in variants) else runs
    # Latencies of different models, devices or batch sizes do not compare: across setups every
    # run is ranked by its metric relative to its own baseline (speed-up, size ratio...).
    setups = {_setup(r) for r in pool if r["status"] == "done"}
    relative = len(setups) > 1 and metric != "fidelity_score"
    key_metric = crit["relative_metric"] if relative else metric
    excluded = []
    eligible = []
    for run in runs:
        m = run["metrics"]
        why = None
        if run not in pool:
            why = "a baseline (the best variant is chosen among optimized runs)"
        elif run["status"] != "done":
            why = f"{run['status']}: {run['failure']['reason'] if run['failure'] else ''}".strip()
        elif m[metric] is None:
            note = run["energy"]["note"] if metric.startswith("energy") else None
            why = f"no {metric} measured" + (f" ({note})" if note else "")
        elif m[key_metric] is None:
            why = (f"no baseline to compute {key_metric} (runs of different models/setups are ranked relative to "
                   "their own baseline)")
        elif run["fidelity"] and run["fidelity"].get("nonfinite_outputs"):
            why = "outputs contain NaN/Inf"
        elif gate > 0:
            score = m["fidelity_score"]
            if score is None:
                why = "no fidelity measured"
            elif score < gate:
                kind = "top-1 agreement" if m["top1_agreement"] is not None else "cosine similarity"
                why = f"{kind} {100 * score:.2f} % < {100 * gate:g} %"
        run["eligible"] = why is None
        run["excluded_because"] = why
        if why is None:
            eligible.append(run)
        else:
            excluded.append({"id": run["id"], "reason": why})

    def pick(candidates: list[dict], key: str) -> dict | None:
        if not candidates:
            return None
        sign = 1 if goal == "min" else -1
        return min(candidates, key=lambda r: (sign * r["metrics"][key], r["id"]))

    best = pick(eligible, key_metric)
    groups = []
    for setup in sorted(setups, key=str):
        members = [r for r in runs if r["status"] == "done" and _setup(r) == setup]
        winner = pick([r for r in eligible if _setup(r) == setup], metric)
        groups.append({"model": setup[0], "device": setup[1], "batch": setup[2], "dtype": setup[3],
                       "run_ids": [r["id"] for r in members], "best_run_id": winner["id"] if winner else None,
                       "best_value": winner["metrics"][metric] if winner else None})
    counts = {s: sum(1 for r in runs if r["status"] == s) for s in ("done", "failed", "cancelled", "running")}
    counts["runs"] = len(runs)

    warnings = []
    for run in runs:
        comp = run["comparison"]
        if comp and comp["speedup_significant"] is False:
            lo, hi = comp["speedup_ci"]
            warnings.append(f"#{run['id']} {run['chain']}: the speed-up {comp['speedup']:.2f}× "
                            f"[{lo:.2f}, {hi:.2f}] vs baseline #{run['baseline_id']} lies inside the noise "
                            f"({NOISE_RULE}) — not evidence of a real change")
    if counts["failed"] or counts["cancelled"]:
        bad = [r for r in runs if r["status"] in ("failed", "cancelled")]
        warnings.append(f"{len(bad)} run(s) did not finish: "
                        + "; ".join(f"#{r['id']} {r['status']}: {r['failure']['reason']}" for r in bad))
    lonely = [r["id"] for r in runs if not r["is_baseline"] and r["status"] == "done" and r["baseline_id"] is None]
    if lonely:
        warnings.append("no baseline (plugin-free run of the same model, runtime, device, batch, dtype, threads) "
                        "for run(s) " + ", ".join(f"#{i}" for i in lonely) + ": no speed-up or size ratio")

    summary: dict[str, Any] = {
        "best_run_id": None, "best_label": None, "best_chain": None, "reason": "", "baseline_id": None,
        "p50_ms": None, "throughput_per_s": None, "speedup": None, "speedup_ci": None, "speedup_significant": None,
        "size_bytes": None, "baseline_size_bytes": None, "compression_efficiency": None,
        "fidelity_cost": None, "energy_j_per_inference": None, "energy_note": None,
        "noise_warning": None, "eligible_run_ids": [r["id"] for r in eligible], "excluded": excluded,
        "compared_by": key_metric, "groups": groups, "warnings": warnings, "counts": counts,
    }
    if best is None:
        summary["reason"] = ("no run qualifies: " + "; ".join(f"#{e['id']} {e['reason']}" for e in excluded)
                             if excluded else "no finished runs")
        return summary
    comp = best["comparison"] or {}
    m = best["metrics"]
    value = m[metric]
    summary.update(
        best_run_id=best["id"], best_label=best["label"], best_chain=best["chain"],
        baseline_id=best["baseline_id"], p50_ms=m["p50_ms"], throughput_per_s=m["throughput_per_s"],
        speedup=comp.get("speedup"), speedup_ci=comp.get("speedup_ci"),
        speedup_significant=comp.get("speedup_significant"),
        size_bytes=m["size_bytes"], baseline_size_bytes=comp.get("baseline_size_bytes"),
        compression_efficiency=comp.get("compression_efficiency"),
        energy_j_per_inference=m["energy_j_per_inference"], energy_note=best["energy"]["note"],
    )
    fid = best["fidelity"] or {}
    summary["fidelity_cost"] = {
        "top1_agreement": fid.get("top1_agreement"),
        "top1_disagreement": None if fid.get("top1_agreement") is None else 1.0 - fid["top1_agreement"],
        "accuracy": fid.get("accuracy"), "reference_accuracy": fid.get("reference_accuracy"),
        "accuracy_delta": comp.get("accuracy_delta") if comp else (
            None if fid.get("accuracy") is None or fid.get("reference_accuracy") is None
            else fid["accuracy"] - fid["reference_accuracy"]),
        "cosine": fid.get("cosine"), "max_abs_error": fid.get("max_abs_error"),
    }
    if relative:
        summary["reason"] = (f"the runs span {len(setups)} models/setups, so each is ranked against its own "
                             f"baseline: #{best['id']} has the best {key_metric.replace('_', ' ')} "
                             f"({_metric_text(key_metric, m[key_metric])}) by the criterion "
                             f"“{crit['description']}”; {len(eligible)} of {len(runs)} run(s) qualified")
    else:
        summary["reason"] = (f"#{best['id']} has the {crit['description']} ({_metric_text(metric, value)}); "
                             f"{len(eligible)} of {len(runs)} run(s) qualified")
    if comp.get("speedup_significant") is False:
        lo, hi = comp["speedup_ci"]
        summary["noise_warning"] = (f"The speed-up of the best variant ({comp['speedup']:.2f}×, 95 % interval "
                                    f"[{lo:.2f}, {hi:.2f}]) lies inside the noise: " + NOISE_RULE
                                    + ", so this run is not demonstrably faster than its baseline.")
    elif comp.get("speedup") is not None and comp["speedup"] < 1:
        summary["noise_warning"] = (f"The best variant is slower than its baseline ({comp['speedup']:.2f}×): "
                                    "no variant speeds this model up.")
    return summary


def _setup(run: dict) -> tuple:
    """What makes absolute numbers comparable: same model, device, batch and dtype."""
    return (run["model"], run["device"], run["batch"], run["dtype"])


def _metric_text(metric: str, value: float) -> str:
    if metric.endswith("_ratio"):
        if metric in ("size_ratio", "energy_ratio"):
            return f"{value:.3f}× the baseline's"
        if metric == "throughput_ratio":
            return f"{value:.2f}× the baseline's throughput"
        return f"{1 / value:.2f}× faster than its baseline" if value else f"{metric} {value}"
    if metric.endswith("_ms"):
        return f"{metric[:-3]} {fmt.ms(value)}"
    if metric == "size_bytes":
        return fmt.nbytes(value)
    if metric == "throughput_per_s":
        return f"{value:.1f} samples/s"
    if metric == "energy_j_per_inference":
        return f"{value * 1e3:.3f} mJ/inference"
    return f"{metric} {value:.4g}"


# ---------------------------------------------------------------------------------------------
def _ratio(a: float | None, b: float | None) -> float | None:
    return a / b if a is not None and b else None


def _tail(text: str | None, lines: int) -> str | None:
    if not text:
        return None
    return "\n".join(text.rstrip().splitlines()[-lines:])


def _iso(timestamp: float | None) -> str | None:
    if timestamp is None:
        return None
    return _dt.datetime.fromtimestamp(timestamp, _dt.timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z")


def _workbench_version() -> str | None:
    try:
        from importlib.metadata import version
        return version("workbench")
    except Exception:
        return None


def _clean(value: Any) -> Any:
    """Tuples to lists, numpy scalars to Python, non-finite floats to None: strict JSON."""
    if isinstance(value, dict):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        value = float(value)
        return value if math.isfinite(value) else None
    if isinstance(value, (str, int, bool)) or value is None:
        return value
    return str(value)


__all__ = ["build_report", "parse_criterion", "CRITERIA", "CRITERION_HELP"]
