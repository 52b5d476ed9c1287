"""Side-by-side comparison of runs against their baselines: the data behind the CLI's
``compare`` table, the GUI's results table and the reports."""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .stats import ratio_with_ci
from .generation import generation_fields
from .verdict import DEFAULT_MIN_FIDELITY, verdict_for
from .store import ResultsStore, RunRecord
from .workkey import differences, file_digests, native_runtime, planned_key, run_key, stored_plan_key

if TYPE_CHECKING:
    from ..spec import RunSpec


EXPORT_STEP = "onnx_export"


def work_key(run: RunRecord) -> dict[str, Any]:
    """The work ``run`` did, as resolved (``workkey.run_key``), runtime included."""
    return run_key(run.spec, run.result or {}, run.runtime, (run.work or {}).get("files"))


def same_work(a: RunRecord, b: RunRecord) -> bool:
    """Both runs did the same work, whatever runtime ran it."""
    return not work_differences(a, b)


def work_differences(a: RunRecord, b: RunRecord) -> list[str]:
    """What differs between the work of ``a`` and ``b`` (runtime aside), in words; [] when the same."""
    return differences(work_key(a), work_key(b), ignore=("runtime",))


def is_cross_runtime(run: RunRecord) -> bool:
    """``run`` ran on another runtime than its model file's own (a torch model exported to ONNX)."""
    return bool(run.runtime) and bool(run.spec) and run.runtime != native_runtime(run.spec)


def _steps(run: RunRecord) -> list[dict]:
    return list(run.spec.get("plugins") or [])


def is_conversion_only(run: RunRecord) -> bool:
    """The fp32 model converted to another runtime and nothing else (``onnx_export`` alone, or a plain
    run with ``--runtime onnxruntime``): the reference for what later steps on that runtime did."""
    return is_cross_runtime(run) and all(s.get("name") == EXPORT_STEP for s in _steps(run))


def is_variant(run: RunRecord) -> bool:
    """A run that is compared with a baseline: it has plugins, or it runs on another runtime."""
    return bool(_steps(run)) or is_cross_runtime(run)


def _export_params(run: RunRecord) -> dict | None:
    """The resolved parameters of the run's ONNX export step (reports first, else as given)."""
    for report in (run.result or {}).get("plugin_reports") or []:
        if report.get("plugin") == EXPORT_STEP:
            return dict(report.get("params") or {})
    for step in _steps(run):
        if step.get("name") == EXPORT_STEP:
            return {"given": step.get("params") or {}}
    return None


def is_baseline_of(candidate: RunRecord, run: RunRecord) -> bool:
    """The one baseline rule: a finished, plugin-free run of the same work (``workkey``: resolved
    inputs and threads, files by content, ...) on the model's own runtime (what the user came with),
    that is not the run itself."""
    return (candidate.id != run.id and candidate.status == "done" and not _steps(candidate)
            and candidate.runtime == native_runtime(run.spec) and same_work(candidate, run))


def is_runtime_baseline_of(candidate: RunRecord, run: RunRecord) -> bool:
    """For a cross-runtime chain with more steps than the conversion: the fp32 model converted the same
    way, on the same runtime, same work (what the steps themselves did)."""
    if candidate.id == run.id or candidate.status != "done" or not is_cross_runtime(run) \
            or is_conversion_only(run) or not is_conversion_only(candidate) or candidate.runtime != run.runtime:
        return False
    mine, theirs = _export_params(run), _export_params(candidate)
    return (mine is None or theirs is None or mine == theirs) and same_work(candidate, run)


def _candidates(store: ResultsStore, run: RunRecord, selection: list[RunRecord] | None) -> list[RunRecord]:
    return list(selection or []) + store.baseline_candidates(run.model, run.device, None)


def baseline_for(store: ResultsStore, run: RunRecord, selection: list[RunRecord] | None = None) -> RunRecord | None:
    """``run``'s baseline: from ``selection`` first (runs measured together), else the latest stored."""
    if not is_variant(run):
        return None
    return next((c for c in _candidates(store, run, selection) if is_baseline_of(c, run)), None)


def runtime_baseline_for(store: ResultsStore, run: RunRecord,
                         selection: list[RunRecord] | None = None) -> RunRecord | None:
    """``run``'s same-runtime fp32 reference (``is_runtime_baseline_of``), selection first; None when
    ``run`` is not a cross-runtime chain with steps beyond the conversion."""
    if not is_cross_runtime(run) or is_conversion_only(run):
        return None
    return next((c for c in _candidates(store, run, selection) if is_runtime_baseline_of(c, run)), None)


def row_for(store: ResultsStore, run: RunRecord, selection: list[RunRecord] | None = None,
            min_fidelity: float = DEFAULT_MIN_FIDELITY) -> dict[str, Any]:
    """``comparison_row`` with both baselines found: the original model, and for a cross-runtime
    chain the fp32 model on the same runtime."""
    return comparison_row(run, baseline_for(store, run, selection), min_fidelity,
                          runtime_baseline=runtime_baseline_for(store, run, selection))


def comparison_row(run: RunRecord, baseline: RunRecord | None,
                   min_fidelity: float = DEFAULT_MIN_FIDELITY, *,
                   runtime_baseline: RunRecord | None = None) -> dict[str, Any]:
    """Everything a face shows about ``run`` beside its baseline, with the core's verdict.

    ``speedup`` is against ``baseline`` (the original model, on its own runtime); for a cross-runtime
    chain, ``runtime_speedup`` is against ``runtime_baseline`` (the fp32 model on the same runtime).
    A baseline that did other work (``work_differences``) is never compared: ``baseline_mismatch``
    says what differs and the ratios stay None."""
    result = run.result or {}
    latency = result.get("latency") or {}
    fidelity = result.get("fidelity") or {}
    info = result.get("optimized_model_info") or result.get("model_info") or {}
    base_info = (baseline.result.get("model_info") if baseline else None) or result.get("model_info") or {}
    telemetry = result.get("telemetry") or {}
    energy = result.get("energy") or {}
    row: dict[str, Any] = {
        "id": run.id, "label": run.label, "name": run.name, "chain": run.chain, "status": run.status,
        "model": run.model, "device": run.device, "runtime": run.runtime,
        "batch": latency.get("batch", run.batch), "error": run.error, "tags": run.tags,
        "p50_ms": latency.get("median_ms"), "p50_ci_ms": latency.get("median_ci_ms"),
        "iqr_ms": latency.get("iqr_ms"), "p90_ms": latency.get("p90_ms"), "p95_ms": latency.get("p95_ms"),
        "p99_ms": latency.get("p99_ms"), "mean_ms": latency.get("mean_ms"), "n": latency.get("n"),
        "throughput": latency.get("throughput_per_s"),
        "params": info.get("parameters"), "size_bytes": info.get("bytes"), "flops": info.get("flops"),
        "top1_agreement": fidelity.get("top1_agreement"), "accuracy": fidelity.get("accuracy"),
        "cosine": fidelity.get("cosine"), "max_abs_error": fidelity.get("max_abs_error"),
        "energy_j_per_inference": energy.get("joules_per_inference"),
        "power_w": telemetry.get("gpu_power_mean_w"), "peak_rss_bytes": telemetry.get("host_peak_rss_bytes"),
        "gpu_mem_peak_bytes": telemetry.get("gpu_proc_mem_peak_bytes") or telemetry.get("gpu_mem_used_peak_bytes"),
        "torch_peak_allocated_bytes": (result.get("device_memory") or {}).get("torch_peak_allocated_bytes"),
        "baseline_id": baseline.id if baseline else None,
        # Latency of a run that stopped early (cancelled, timed out): shown, marked, never compared.
        "partial": run.status != "done" and bool(latency),
        "speedup": None, "speedup_ci": None, "speedup_significant": None, "size_ratio": None,
        "flags": result.get("flags") or [],
        "nonfinite_outputs": fidelity.get("nonfinite_outputs") or 0,
        # The unoptimized model's accuracy on the same inputs, measured in this run (else the baseline's).
        "baseline_accuracy": fidelity.get("reference_accuracy") if fidelity.get("reference_accuracy") is not None
        else (((baseline.result or {}).get("fidelity") or {}).get("accuracy") if baseline else None),
    }
    row.update(_cross_runtime_fields(run, baseline, runtime_baseline, latency))
    mismatch = work_differences(baseline, run) if baseline is not None else []
    row["baseline_mismatch"] = mismatch or None
    if baseline is not None and not mismatch and latency and run.status == "done" and baseline.result.get("latency"):
        ratio = ratio_with_ci(baseline.result["latency"], latency)
        row.update(speedup=ratio["speedup"], speedup_ci=ratio["speedup_ci"],
                   speedup_significant=ratio["significant"])
    if base_info.get("bytes") and info.get("bytes"):
        row["size_ratio"] = info["bytes"] / base_info["bytes"]
    row.update(_prefill_ratio(row, baseline, result))
    row.update(generation_fields(result))
    row["verdict"] = verdict_for(row, min_fidelity).to_dict()
    return row


def _prefill_ratio(row: dict[str, Any], baseline: RunRecord | None, result: dict) -> dict[str, Any]:
    """A generate run's second ratio: prefill (time to first token), baseline median / this median with
    its interval. ``speedup`` is then the decode ratio (per generated token), which pruning and
    quantization move differently (compute-bound prefill, memory- or overhead-bound decode)."""
    prefill = (result.get("generation") or {}).get("prefill")
    base_prefill = (((baseline.result or {}).get("generation") or {}).get("prefill")) if baseline else None
    if row["speedup"] is None or not prefill or not base_prefill:
        return {"prefill_speedup": None, "prefill_speedup_ci": None}
    ratio = ratio_with_ci(base_prefill, prefill)
    return {"prefill_speedup": ratio["speedup"], "prefill_speedup_ci": ratio["speedup_ci"]}


def _cross_runtime_fields(run: RunRecord, baseline: RunRecord | None, runtime_baseline: RunRecord | None,
                          latency: dict) -> dict[str, Any]:
    """The second ratio of a cross-runtime chain: against the fp32 model on the same runtime."""
    fields: dict[str, Any] = {
        "cross_runtime": is_cross_runtime(run), "baseline_runtime": baseline.runtime if baseline else None,
        "runtime_baseline_id": None, "runtime_speedup": None, "runtime_speedup_ci": None,
        "runtime_speedup_significant": None}
    if runtime_baseline is None or work_differences(runtime_baseline, run):
        return fields
    fields["runtime_baseline_id"] = runtime_baseline.id
    base = (runtime_baseline.result or {}).get("latency")
    if base and latency and run.status == "done":
        ratio = ratio_with_ci(base, latency)
        fields.update(runtime_speedup=ratio["speedup"], runtime_speedup_ci=ratio["speedup_ci"],
                      runtime_speedup_significant=ratio["significant"])
    return fields


def compare_runs(store: ResultsStore, run_ids: list[int],
                 min_fidelity: float = DEFAULT_MIN_FIDELITY) -> list[dict[str, Any]]:
    runs = [store.get_run(i) for i in run_ids]
    return [row_for(store, run, runs, min_fidelity) for run in runs]


def planned_baseline(store: ResultsStore, spec: RunSpec, runtime: str, threads: int, steps: list[dict] = (),
                     since: float | None = None) -> RunRecord | None:
    """The stored run a planned run of ``spec`` could be compared with, so that none need be measured:
    finished, with exactly ``steps`` as its chain ([] = the plain model; [the export step] = the fp32
    model on ONNX Runtime), on ``runtime``, the same asked work (``workkey.planned_key``: spec, files by
    content, resolved threads), created at or after ``since`` when given (the same sitting)."""
    spec_dict = spec.to_dict()
    want = planned_key(spec_dict, runtime, threads, file_digests(spec_dict))
    wanted_steps = [(s["name"], {k: str(v) for k, v in (s.get("params") or {}).items()}) for s in steps]
    for candidate in store.baseline_candidates(spec.model, spec.device, runtime):
        have_steps = [(s.get("name"), {k: str(v) for k, v in (s.get("params") or {}).items()}) for s in _steps(candidate)]
        if have_steps != wanted_steps or (since is not None and candidate.created_at < since):
            continue
        files = (candidate.work or {}).get("files")
        # A run that recorded no threads (stored by hand, or by an old version): the threads asked.
        target = want if "threads" in (candidate.result or {}) else {**want, "threads": spec.threads}
        if stored_plan_key(candidate.spec, candidate.result or {}, candidate.runtime, files) == target:
            return candidate
    return None


COMPARISON_HEADERS = ["id", "chain", "status", "device", "p50", "p99", "samples/s", "speed-up [95% CI]", "verdict",
                      "top-1 agree", "accuracy", "size", "size ratio", "energy/inf"]
VERDICT_MARKS = {"win": "✓", "loss": "✗", "noise": "~", "baseline": "", "failed": "✗"}


def verdict_text(row: dict[str, Any]) -> str:
    """The verdict as one cell: a mark any terminal shows (✓ win, ✗ loss, ~ noise) and its words."""
    verdict = row["verdict"]
    mark = VERDICT_MARKS.get(verdict["level"], "")
    return f"{mark} {verdict['text']}".strip()


def ratio_text(speedup: float | None, ci: list | tuple | None) -> str:
    """``2.06× [1.98-2.14]``, or "—" when there is no ratio."""
    return "—" if speedup is None else f"{speedup:.2f}× [{ci[0]:.2f}-{ci[1]:.2f}]"


def comparison_table(rows: list[dict[str, Any]]) -> str:
    """The ``workbench compare`` table of ``comparison_row`` dicts: speed-up and verdict side by side.
    Where a row ran on another runtime than its model's own, a column gives the second ratio: against
    the fp32 model on that runtime (what the steps did), beside the one against the original."""
    from .. import format as fmt
    from .stats import NOISE_RULE
    cross = any(r.get("cross_runtime") for r in rows)
    headers = list(COMPARISON_HEADERS)
    if cross:
        headers[headers.index("speed-up [95% CI]")] = "vs original [95% CI]"
        headers.insert(headers.index("vs original [95% CI]") + 1, "vs fp32 same runtime")
    table = []
    for row in rows:
        speed = "baseline" if row["baseline_id"] is None and row["chain"] == "baseline" else (
            ratio_text(row["speedup"], row["speedup_ci"]))
        if row.get("speedup") is not None and row.get("cross_runtime") and row.get("baseline_runtime"):
            speed += f" vs {row['baseline_runtime']}"
        energy = row["energy_j_per_inference"]
        status = f"{row['status']} (partial)" if row.get("partial") else row["status"]
        cells = [str(row["id"]), row["chain"][:48], status, row["device"] or "",
                 fmt.ms(row["p50_ms"]), fmt.ms(row["p99_ms"]), fmt.num(row["throughput"], ".1f"), speed,
                 verdict_text(row) if row["status"] == "done" else (row["error"] or "")[:60],
                 fmt.pct(row["top1_agreement"]), fmt.pct(row["accuracy"]),
                 fmt.nbytes(row["size_bytes"]), fmt.ratio(row["size_ratio"]),
                 fmt.num(None if energy is None else energy * 1e3, ".3f", " mJ")]
        if cross:
            cells.insert(8, ratio_text(row.get("runtime_speedup"), row.get("runtime_speedup_ci"))
                         + (f" vs #{row['runtime_baseline_id']}" if row.get("runtime_speedup") is not None else ""))
        table.append(cells)
    text = fmt.table(headers, table)
    if any(r["speedup_significant"] is False or r.get("runtime_speedup_significant") is False for r in rows):
        text += f"\n~ inside the noise: {NOISE_RULE}"
    if any(r["verdict"]["fidelity_ok"] is False for r in rows):
        text += "\n✗ below the fidelity gate: a variant that changed the outputs this much is not a win at any speed"
    for row in rows:
        if row.get("baseline_mismatch"):
            text += (f"\n#{row['id']}: not compared with baseline #{row['baseline_id']}, which did other work ("
                     + "; ".join(row["baseline_mismatch"]) + ")")
    return text
