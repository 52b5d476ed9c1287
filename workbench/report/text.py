"""The words and numbers of a report, shared by the HTML and PDF renderers.

Both renderers lay out the same rows produced here, so a number reads the same in either
format (and as in the CLI: the helpers of ``workbench.format`` do the formatting).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

from .. import format as fmt
from ..format import ms


def ms_ci(value: float | None, ci: list | None) -> str:
    """``1.05 ms [1.04, 1.06]``: the interval in the value's unit and precision, unit not repeated."""
    text = ms(value)
    if value is None or not ci:
        return text
    if value >= 100:
        lo, hi = (f"{v:.1f}" for v in ci)
    elif value >= 10:
        lo, hi = (f"{v:.2f}" for v in ci)
    elif value >= 1:
        lo, hi = (f"{v:.2f}" for v in ci)
    else:
        lo, hi = (f"{v * 1000:.1f}" for v in ci)
    return f"{text} [{lo}, {hi}]"


def energy_text(joules: float | None) -> str:
    if joules is None:
        return "—"
    if joules >= 1:
        return f"{joules:.3g} J"
    if joules >= 1e-3:
        return f"{joules * 1e3:.3g} mJ"
    return f"{joules * 1e6:.3g} µJ"


def param_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return f"{value:g}"
    return "''" if value == "" else str(value)


def ratio_ci_text(value: float | None, ci: list | None) -> str:
    if value is None:
        return "—"
    lo, hi = ci or (None, None)
    return f"{value:.2f}×" + (f" [{lo:.2f}, {hi:.2f}]" if lo is not None else "")


def speedup_text(comp: dict | None) -> str:
    """The speed-up with its CI; for a cross-runtime chain both ratios, each named by its reference:
    the original on its own runtime, and the fp32 model on the same runtime (what the steps did)."""
    if not comp or comp.get("speedup") is None:
        return "—"
    text = ratio_ci_text(comp["speedup"], comp["speedup_ci"])
    if comp.get("cross_runtime") and comp.get("baseline_runtime"):
        text += f" vs {comp['baseline_runtime']}"
    if comp.get("prefill_speedup") is not None:     # a generate run: the ratio above is per decoded token
        text += f" per decoded token, prefill {ratio_ci_text(comp['prefill_speedup'], comp.get('prefill_speedup_ci'))}"
    if comp.get("runtime_speedup") is not None:
        text += f"; {runtime_speedup_text(comp)}"
    return text


def runtime_speedup_text(comp: dict | None) -> str:
    """``1.50× [1.45, 1.55] vs fp32 #4 (same runtime)``, or "—"."""
    if not comp or comp.get("runtime_speedup") is None:
        return "—"
    return (ratio_ci_text(comp["runtime_speedup"], comp["runtime_speedup_ci"])
            + f" vs fp32 #{comp['runtime_baseline_id']} (same runtime)")


def pct_points(delta: float | None) -> str:
    return "—" if delta is None else f"{100 * delta:+.2f} pt"


# ---------------------------------------------------------------------------------------------
def kpis(s: dict) -> list[tuple[str, str, str, str]]:
    """(label, value, sub-line, css class) for the summary's headline cards."""
    out = []
    if s["speedup"] is not None:
        lo, hi = s["speedup_ci"]
        noisy = s["speedup_significant"] is False
        out.append(("Speed-up (p50)", f"{s['speedup']:.2f}×",
                    f"95 % CI [{lo:.2f}, {hi:.2f}] vs baseline #{s['baseline_id']}"
                    + (" — inside the noise" if noisy else ""),
                    "noise" if noisy else ("good" if s["speedup"] > 1 else "bad")))
    else:
        out.append(("Speed-up (p50)", "—", "no baseline for this run", ""))
    out.append(("Latency p50", ms(s["p50_ms"]),
                f"throughput {fmt.num(s['throughput_per_s'], ',.0f')} samples/s", ""))
    if s["compression_efficiency"] is not None:
        out.append(("Compression efficiency", fmt.pct(s["compression_efficiency"]),
                    f"{fmt.nbytes(s['baseline_size_bytes'])} → {fmt.nbytes(s['size_bytes'])} (1 − compressed/original)",
                    "good" if s["compression_efficiency"] > 0.005 else ""))
    else:
        out.append(("Compression efficiency", "—", f"size {fmt.nbytes(s['size_bytes'])}; no baseline size", ""))
    cost = s["fidelity_cost"] or {}
    if cost.get("top1_agreement") is not None:
        sub = f"top-1 agreement {fmt.pct(cost['top1_agreement'], 2)}"
        if cost.get("accuracy_delta") is not None:
            sub += f"; accuracy {fmt.pct(cost['accuracy'], 1)} ({pct_points(cost['accuracy_delta'])})"
        out.append(("Fidelity cost", fmt.pct(cost["top1_disagreement"], 2) + " changed", sub,
                    "good" if cost["top1_disagreement"] <= 0.01 else "bad"))
    elif cost.get("cosine") is not None:
        out.append(("Fidelity cost", f"cos {cost['cosine']:.5f}", f"max |error| {cost['max_abs_error']:.3g}", ""))
    else:
        out.append(("Fidelity cost", "—", "not measured", ""))
    out.append(("Energy / inference", energy_text(s["energy_j_per_inference"]),
                "per batch, GPU board energy" if s["energy_j_per_inference"] is not None
                else (s["energy_note"] or "not measured"), ""))
    return out


def group_value_title(report: dict) -> str:
    c = report["criterion"]
    return {"size": "size (speed-up)", "throughput": "throughput (speed-up)", "energy": "energy (speed-up)",
            "fidelity": "fidelity score"}.get(c["name"], f"{c['name']} latency (speed-up)")


def group_rows(report: dict) -> list[tuple[str, str, str]]:
    """(setup, best run, its value) per model/device/batch/dtype, for reports spanning several."""
    metric = report["criterion"]["metric"]
    rows = []
    by_id = {r["id"]: r for r in report["runs"]}
    for g in report["summary"]["groups"]:
        setup = f"{g['model']} · {g['device']} · batch {g['batch']} · {g['dtype']} ({len(g['run_ids'])} run(s))"
        best = by_id.get(g["best_run_id"])
        if best is None:
            rows.append((setup, "none qualifies", ""))
            continue
        value = g["best_value"]
        shown = (ms(value) if metric.endswith("_ms") else fmt.nbytes(value) if metric == "size_bytes"
                 else energy_text(value) if metric.startswith("energy") else
                 f"{fmt.num(value, ',.0f')} samples/s" if metric == "throughput_per_s" else fmt.pct(value, 2))
        extra = f", {speedup_text(best['comparison'])}" if best["comparison"] and metric != "p50_ms" else (
            f" ({speedup_text(best['comparison'])})" if best["comparison"] else "")
        rows.append((setup, run_title(best), shown + extra))
    return rows


@dataclass
class Column:
    key: str
    title: str
    align: str                                   # "num" or ""
    get: Callable[[dict], tuple[str, str]]       # run -> (text, note: ""|"noise"|"good"|"bad")

    def cell(self, run: dict) -> tuple[str, str]:
        return self.get(run)


def _speed_cell(run: dict) -> tuple[str, str]:
    comp = run["comparison"]
    if run["is_baseline"]:
        return ("baseline", "")
    if run["status"] != "done" or not comp or comp.get("speedup") is None:
        return ("—", "")
    return (speedup_text(comp), VERDICT_CLASS.get(comp["verdict"]["level"], ""))


# How a verdict level (results.verdict) is styled: the report colours what the core decided.
VERDICT_CLASS = {"win": "good", "loss": "bad", "noise": "noise", "failed": "bad"}


def _verdict_cell(run: dict) -> tuple[str, str]:
    comp = run["comparison"]
    if run["is_baseline"] or run["status"] != "done" or not comp:
        return ("—", "")
    verdict = comp["verdict"]
    return (verdict["text"], VERDICT_CLASS.get(verdict["level"], ""))


def comparison_columns() -> list[Column]:
    lat = lambda r, k: (r["latency"] or {}).get(k)  # noqa: E731
    return [
        Column("run", "run", "", lambda r: (f"#{r['id']} {r['chain']}", "")),
        Column("status", "status", "", lambda r: (r["status"], "" if r["status"] == "done" else "bad")),
        Column("p50", "p50 [95 % CI]", "num", lambda r: (ms_ci(lat(r, "p50_ms"), lat(r, "p50_ci_ms")), "")),
        Column("p99", "p99", "num", lambda r: (ms(lat(r, "p99_ms")), "")),
        Column("throughput", "samples/s", "num", lambda r: (fmt.num(lat(r, "throughput_per_s"), ",.0f"), "")),
        Column("speedup", "speed-up [95 % CI]", "num", _speed_cell),
        Column("verdict", "verdict", "", _verdict_cell),
        Column("size", "size", "num", lambda r: (fmt.nbytes(r["metrics"]["size_bytes"]), "")),
        Column("compression", "compression", "num", lambda r: (
            fmt.pct((r["comparison"] or {}).get("compression_efficiency")) if not r["is_baseline"] else "—", "")),
        Column("top1", "top-1 agree", "num", lambda r: (fmt.pct(r["metrics"]["top1_agreement"], 2), "")),
        Column("accuracy", "accuracy", "num", lambda r: (fmt.pct((r["fidelity"] or {}).get("accuracy")), "")),
        Column("energy", "energy / inf.", "num", lambda r: (energy_text(r["metrics"]["energy_j_per_inference"]), "")),
        Column("rss", "peak RSS", "num", lambda r: (fmt.nbytes(r["memory"]["host_peak_rss_bytes"]), "")),
    ]


def run_title(run: dict) -> str:
    """``#3 prune:amount=0.5`` or, for a named run, ``#3 my name — prune:amount=0.5``."""
    return f"#{run['id']} " + (f"{run['name']} — " if run["name"] else "") + run["chain"]


def failure_line(run: dict) -> str:
    """What the comparison table says across the metric columns of a run that did not finish."""
    reason = (run["failure"] or {}).get("reason") or run["status"]
    return f"{run['status']}: {_short(reason, 240)}"


def _short(text: str | None, limit: int = 90) -> str:
    text = text or ""
    return text if len(text) <= limit else text[:limit - 1] + "…"


# ---------------------------------------------------------------------------------------------
def chain_steps(run: dict) -> list[dict]:
    return run["plugins"]


def plugin_change_text(step: dict) -> str:
    c = step.get("changes") or {}
    parts = [step["summary"]] if step.get("summary") else []
    if c.get("params_before") is not None and c.get("params_after") is not None:
        parts.append(f"parameters {fmt.count(c['params_before'])} → {fmt.count(c['params_after'])}")
    if c.get("bytes_before") is not None and c.get("bytes_after") is not None:
        parts.append(f"size {fmt.nbytes(c['bytes_before'])} → {fmt.nbytes(c['bytes_after'])}")
    if c.get("flops_before") is not None and c.get("flops_after") is not None:
        parts.append(f"FLOPs {fmt.count(c['flops_before'])} → {fmt.count(c['flops_after'])}")
    if c.get("sparsity") is not None:
        parts.append(f"sparsity {fmt.pct(c['sparsity'])}")
    if c.get("layers_changed"):
        layers = c["layers_changed"]
        parts.append(f"{len(layers)} layer(s) changed: " + ", ".join(layers[:8]) + (" …" if len(layers) > 8 else ""))
    if c.get("seconds") is not None:
        parts.append(f"took {c['seconds']:.2f} s")
    parts += step.get("notes") or []
    return "; ".join(parts) or "—"


def latency_rows(run: dict) -> list[tuple[str, str]]:
    lat = run["latency"]
    ci = lat.get("p50_ci_ms")
    return [
        ("iterations (batch)", f"{lat['n']} (batch {lat['batch']})"),
        ("p50 (median) [95 % CI]", ms_ci(lat["p50_ms"], ci)),
        ("p90 / p95 / p99", " / ".join(ms(lat[k]) for k in ("p90_ms", "p95_ms", "p99_ms"))),
        ("mean ± std", f"{ms(lat['mean_ms'])} ± {ms(lat['std_ms'])}"),
        ("min / max", f"{ms(lat['min_ms'])} / {ms(lat['max_ms'])}"),
        ("IQR", ms(lat["iqr_ms"])),
        ("throughput", f"{fmt.num(lat['throughput_per_s'], ',.1f')} samples/s"),
        ("first (cold) call", ms(lat.get("cold_ms"))),
        ("warm-up", f"{lat.get('warmup_iterations')} iterations, "
                    f"{'stable' if lat.get('warmup_stable') else 'not stable'}"),
        ("CI method", lat.get("ci_method") or "—"),
    ] + ([("speed-up vs baseline", ratio_ci_text(run["comparison"]["speedup"], run["comparison"]["speedup_ci"])
           + (f" vs #{run['baseline_id']} ({run['comparison']['baseline_runtime']} original)"
              if run["comparison"].get("cross_runtime") else "")
           + (" (inside the noise)" if run["comparison"].get("speedup_significant") is False else ""))]
         if run["comparison"] and run["comparison"].get("speedup") is not None else []) \
        + ([("speed-up vs fp32, same runtime", runtime_speedup_text(run["comparison"])
             + (" (inside the noise)" if run["comparison"].get("runtime_speedup_significant") is False else ""))]
           if run["comparison"] and run["comparison"].get("runtime_speedup") is not None else [])


def memory_power_rows(run: dict) -> list[tuple[str, str]]:
    m, p, e = run["memory"], run["power"], run["energy"]
    rows = [("worker peak RSS", fmt.nbytes(m["host_peak_rss_bytes"])),
            ("worker CPU (mean)", fmt.num(p["cpu_percent_mean"], ".0f", " %"))]
    if m["torch_peak_allocated_bytes"] is not None:
        rows.append(("torch peak allocated / reserved",
                     f"{fmt.nbytes(m['torch_peak_allocated_bytes'])} / {fmt.nbytes(m['torch_peak_reserved_bytes'])}"))
    if m["gpu_proc_mem_peak_bytes"] is not None or m["gpu_mem_used_peak_bytes"] is not None:
        rows.append(("GPU memory peak (process / device)",
                     f"{fmt.nbytes(m['gpu_proc_mem_peak_bytes'])} / {fmt.nbytes(m['gpu_mem_used_peak_bytes'])}"))
    if p["gpu_power_mean_w"] is not None:
        rows.append(("GPU power mean / max", f"{fmt.num(p['gpu_power_mean_w'], '.1f', ' W')} / "
                                            f"{fmt.num(p['gpu_power_max_w'], '.1f', ' W')}"))
        rows.append(("GPU util / SM clock / max temp", f"{fmt.num(p['gpu_util_mean_pct'], '.0f', ' %')} / "
                     f"{fmt.num(p['sm_clock_mean_mhz'], '.0f', ' MHz')} / {fmt.num(p['temperature_max_c'], '.0f', ' °C')}"))
    else:
        rows.append(("GPU power", f"not measured — NVML {p['nvml'] or 'not sampled'}"))
    if e["joules_per_inference"] is not None:
        rows.append(("energy per inference", f"{energy_text(e['joules_per_inference'])} per batch"
                     + (f", {energy_text(e['joules_per_sample'])} per sample" if e.get("joules_per_sample") else "")))
        rows.append(("energy method", e["method"] or "—"))
        if run["comparison"] and run["comparison"].get("energy_ratio") is not None:
            rows.append(("energy vs baseline", f"{run['comparison']['energy_ratio']:.2f}×"))
    else:
        rows.append(("energy per inference", e["note"] or "not measured"))
    rows.append(("telemetry", f"{p['telemetry_samples'] or 0} samples at {fmt.num(p['telemetry_rate_hz'], 'g', ' Hz')}"))
    info = run["optimized_model_info"] or run["model_info"]
    if info:
        rows.append(("model", f"{fmt.count(info['parameters'])} parameters, {fmt.nbytes(info['bytes'])}, "
                              f"{fmt.count(info['flops'])} FLOPs/forward"))
    comp = run["comparison"]
    if comp and comp.get("size_ratio") is not None and not run["is_baseline"]:
        rows.append(("size vs baseline", f"{comp['size_ratio']:.3f}× (compression efficiency "
                                         f"{fmt.pct(comp['compression_efficiency'])})"))
    return rows


def fidelity_rows(run: dict) -> list[tuple[str, str]]:
    f = run["fidelity"]
    rows = [("samples", f"{f['samples']} ({f['inputs'] or 'unknown inputs'})"),
            ("top-1 agreement", fmt.pct(f["top1_agreement"], 2)),
            ("accuracy (reference)", f"{fmt.pct(f['accuracy'], 2)} ({fmt.pct(f['reference_accuracy'], 2)})"
             + (f", {pct_points(f['accuracy'] - f['reference_accuracy'])}"
                if f["accuracy"] is not None and f["reference_accuracy"] is not None else "")),
            ("cosine similarity", fmt.num(f["cosine"], ".6f")),
            ("max / mean |error|", f"{fmt.num(f['max_abs_error'], '.3g')} / {fmt.num(f['mean_abs_error'], '.3g')}"),
            ("bit-identical", "yes" if f["exact"] else "no")]
    if f.get("nonfinite_outputs"):
        rows.append(("NaN/Inf outputs", str(f["nonfinite_outputs"])))
    return rows


# ---------------------------------------------------------------------------------------------
ENV_FIELDS: list[tuple[str, str]] = [
    ("python", "Python"), ("torch", "torch"), ("onnxruntime", "onnxruntime"), ("numpy", "numpy"),
    ("cpu", "CPU"), ("cores", "cores (usable)"), ("memory", "RAM"), ("os", "OS"), ("gpu", "GPU"),
    ("driver", "driver / CUDA"),
]


def env_fingerprint(run: dict) -> dict[str, str]:
    env = run["environment"] or {}
    pk = env.get("packages") or {}
    host = env.get("host") or {}
    worker = env.get("worker") or {}
    gpu = env.get("gpu") or {}
    gpus = ", ".join(g.get("name", "?") for g in gpu.get("gpus") or []) or (
        ", ".join(worker.get("gpu_names") or []) or ("—" if not gpu else f"none ({gpu.get('nvml', '?')})"))
    cores = host.get("cpu_logical_cores")
    usable = host.get("cpu_usable_cores")
    return {
        "python": env.get("python") or host.get("python_version") or "?",
        "torch": worker.get("torch") or pk.get("torch") or "?",
        "onnxruntime": worker.get("onnxruntime") or pk.get("onnxruntime") or pk.get("onnxruntime-gpu") or "—",
        "numpy": worker.get("numpy") or pk.get("numpy") or "?",
        "cpu": host.get("cpu_model") or "?",
        "cores": f"{cores if cores is not None else '?'}" + (f" ({usable})" if usable not in (None, cores) else ""),
        "memory": fmt.nbytes(host.get("memory_total_bytes")),
        "os": host.get("os") or env.get("platform") or "?",
        "gpu": gpus,
        "driver": (f"{gpu.get('driver_version')} / {gpu.get('cuda_driver_version')}"
                   if gpu.get("driver_version") else "—"),
    }


def env_differences(runs: list[dict]) -> list[str]:
    prints = [env_fingerprint(r) for r in runs if r["status"] == "done"]
    titles = dict(ENV_FIELDS)
    return [titles[k] for k, _ in ENV_FIELDS if k not in ("gpu", "driver", "memory")
            and len({p[k] for p in prints}) > 1]
