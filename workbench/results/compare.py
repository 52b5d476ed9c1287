"""Side-by-side comparison of runs against their baselines: the data behind the CLI's
``compare`` table, the GUI's results table and the reports."""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .stats import ratio_with_ci
from .generation import generation_fields
from .verdict import DEFAULT_MIN_FIDELITY, verdict_for
from .store import ResultsStore, RunRecord

if TYPE_CHECKING:
    from ..spec import RunSpec


# Everything in a spec that changes the work one forward pass does: a baseline must match all of it.
BASELINE_KEYS = ("model", "factory", "device", "runtime", "batch", "dtype", "threads", "inputs", "data",
                 "task", "scenario", "text", "prompt", "seq_len", "prompt_len", "gen_len")


def is_baseline_of(candidate: RunRecord, run: RunRecord) -> bool:
    """The one baseline rule: a finished, plugin-free run of the same work (``BASELINE_KEYS``),
    resolved runtime included, that is not the run itself."""
    return (candidate.id != run.id and candidate.status == "done" and not candidate.spec.get("plugins")
            and candidate.runtime == run.runtime
            and all(candidate.spec.get(k) == run.spec.get(k) for k in BASELINE_KEYS if k != "runtime"))


def baseline_for(store: ResultsStore, run: RunRecord, selection: list[RunRecord] | None = None) -> RunRecord | None:
    """``run``'s baseline: from ``selection`` first (runs measured together), else the latest stored."""
    if not run.spec.get("plugins"):
        return None
    for candidate in list(selection or []) + store.baseline_candidates(run.model, run.device, run.runtime):
        if is_baseline_of(candidate, run):
            return candidate
    return None


def comparison_row(run: RunRecord, baseline: RunRecord | None,
                   min_fidelity: float = DEFAULT_MIN_FIDELITY) -> dict[str, Any]:
    """Everything a face shows about ``run`` beside its baseline, with the core's verdict."""
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
    if baseline is not None and latency and run.status == "done" and baseline.result.get("latency"):
        ratio = ratio_with_ci(baseline.result["latency"], latency)
        row.update(speedup=ratio["speedup"], speedup_ci=ratio["speedup_ci"],
                   speedup_significant=ratio["significant"])
    if base_info.get("bytes") and info.get("bytes"):
        row["size_ratio"] = info["bytes"] / base_info["bytes"]
    row.update(generation_fields(result))
    row["verdict"] = verdict_for(row, min_fidelity).to_dict()
    return row


def compare_runs(store: ResultsStore, run_ids: list[int],
                 min_fidelity: float = DEFAULT_MIN_FIDELITY) -> list[dict[str, Any]]:
    runs = [store.get_run(i) for i in run_ids]
    return [comparison_row(run, baseline_for(store, run, runs), min_fidelity) for run in runs]


def record_for_spec(spec: RunSpec) -> RunRecord:
    """The record a run of ``spec`` will have once stored, for asking which baseline it would get.

    Only the fields the baseline rule reads are meaningful; id 0 is never a stored run's (SQLite
    ids start at 1), so the rule cannot pick the pending run as its own baseline.
    """
    return RunRecord(id=0, created_at=0.0, finished_at=None, status="running", name=spec.label, tags=[],
                     model=spec.model, chain=spec.describe_chain(), runtime=spec.resolved_runtime(),
                     device=spec.device, batch=spec.batch, spec=spec.to_dict(), environment={}, result={},
                     error=None, error_detail=None)


def baseline_for_spec(store: ResultsStore, spec: RunSpec) -> RunRecord | None:
    """The stored baseline a run of ``spec`` would be compared with (``baseline_for``'s rule)."""
    return baseline_for(store, record_for_spec(spec))


COMPARISON_HEADERS = ["id", "chain", "status", "device", "p50", "p99", "samples/s", "speed-up [95% CI]", "verdict",
                      "top-1 agree", "accuracy", "size", "size ratio", "energy/inf"]
VERDICT_MARKS = {"win": "✓", "loss": "✗", "noise": "~", "baseline": "", "failed": "✗"}


def verdict_text(row: dict[str, Any]) -> str:
    """The verdict as one cell: a mark any terminal shows (✓ win, ✗ loss, ~ noise) and its words."""
    verdict = row["verdict"]
    mark = VERDICT_MARKS.get(verdict["level"], "")
    return f"{mark} {verdict['text']}".strip()


def comparison_table(rows: list[dict[str, Any]]) -> str:
    """The ``workbench compare`` table of ``comparison_row`` dicts: speed-up and verdict side by side."""
    from .. import format as fmt
    from .stats import NOISE_RULE
    table = []
    for row in rows:
        speed = "baseline" if row["baseline_id"] is None and row["chain"] == "baseline" else (
            "—" if row["speedup"] is None else
            f"{row['speedup']:.2f}× [{row['speedup_ci'][0]:.2f}-{row['speedup_ci'][1]:.2f}]")
        energy = row["energy_j_per_inference"]
        status = f"{row['status']} (partial)" if row.get("partial") else row["status"]
        table.append([str(row["id"]), row["chain"][:48], status, row["device"] or "",
                      fmt.ms(row["p50_ms"]), fmt.ms(row["p99_ms"]), fmt.num(row["throughput"], ".1f"), speed,
                      verdict_text(row) if row["status"] == "done" else (row["error"] or "")[:60],
                      fmt.pct(row["top1_agreement"]), fmt.pct(row["accuracy"]),
                      fmt.nbytes(row["size_bytes"]), fmt.ratio(row["size_ratio"]),
                      fmt.num(None if energy is None else energy * 1e3, ".3f", " mJ")])
    text = fmt.table(COMPARISON_HEADERS, table)
    if any(r["speedup_significant"] is False for r in rows):
        text += f"\n~ inside the noise: {NOISE_RULE}"
    if any(r["verdict"]["fidelity_ok"] is False for r in rows):
        text += "\n✗ below the fidelity gate: a variant that changed the outputs this much is not a win at any speed"
    return text
