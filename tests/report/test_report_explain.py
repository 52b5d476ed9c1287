"""Reports explain results: top ops, the profile diff against the baseline, the most-drifted layers
(table and bar chart), stored scans, and the language-model figures, in HTML, PDF, CSV and JSON.

Runs are stored by hand (no worker) with the exact shapes ``worker.profile``, ``worker.layers``,
``worker.scan``, ``worker.generate`` and ``worker.lm_fidelity`` store."""
from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import numpy as np
import pytest

from workbench.report import build_report, render_csv, render_html, render_json, render_pdf
from workbench.results.explain import save_layers, save_scan
from workbench.results.stats import compute_latency_stats
from workbench.spec import PluginStep, RunSpec

SCHEMA = Path(__file__).resolve().parents[2] / "docs" / "report.schema.json"


def _profile(ops: list[tuple[str, float, float]]) -> dict:
    total = sum(t for _, t, _ in ops)
    return {"source": "torch.profiler", "device": "cpu", "iterations": 10, "time_basis": "cpu", "total_us": total,
            "wall_ms_per_iteration": total / 800, "ops_total": len(ops), "trace_path": None, "seconds": 0.2,
            "notes": [], "ops": [{"op": op, "calls": calls, "time_us": t, "self_cpu_us": t, "cpu_total_us": t,
                                  "device_us": 0.0, "share": t / total,
                                  "shapes": [{"shapes": "[1, 64], [64, 64]", "calls": calls, "time_us": t}]}
                                 for op, t, calls in ops]}


def _layers(n: int = 20) -> dict:
    rows = []
    for i in range(n):     # drift grows with i: layer.19 drifts most
        rows.append({"name": f"layer.{i}", "type": "Linear", "type_after": "Linear(dynamic int8)", "leaf": True,
                     "params_before": 4160, "params_after": 4160 if i % 2 else 2080, "flops_before": 8192,
                     "flops_after": 8192, "drift": {"relative_error": 1e-4 * (i + 1), "cosine": 1 - 1e-6 * (i + 1)},
                     "weight": {"kind": "quantized", "from": "float32", "to": "qint8", "mean_abs": 1.5e-4,
                                "max_abs": 4.0e-4, "relative": 0.0093, "mean_relative": 0.0087, "max_relative": 0.004}})
    return {"samples": 32, "inputs": "eval data", "seconds": 0.4, "notes": [], "rows": rows, "only_before": [],
            "only_after": [], "summary": {"layers": n, "weights_changed": n, "most_drift": ["layer.19"]}}


def _add(store, plugins: list[str], median_ms: float, **extra) -> int:
    spec = RunSpec(model="demo:digits-transformer", plugins=[PluginStep.parse(p) for p in plugins], iters=60, seed=0)
    run_id = store.create_run(spec.to_dict(), spec.describe_chain(), spec.resolved_runtime())
    ns = (np.random.default_rng(len(plugins)).lognormal(np.log(median_ms), 0.02, 60) * 1e6).astype(np.int64)
    store.add_latencies(run_id, "measure", 0, ns.tolist())
    result = {"latency": compute_latency_stats(ns, batch=1, seed=0).to_dict(), "threads": 2, "notes": [], "flags": [],
              "fidelity": {"samples": 32, "cosine": 0.9999, "max_abs_error": 0.01, "mean_abs_error": 0.001,
                           "top1_agreement": 1.0, "accuracy": None, "reference_accuracy": None,
                           "nonfinite_outputs": 0, "exact": not plugins},
              "model_info": {"parameters": 83_200, "bytes": 332_800, "flops": 160_000, "format": "demo"}}
    result.update(extra)
    store.finish_run(run_id, "done", result)
    return run_id


@pytest.fixture
def explained(store):
    base = _add(store, [], 2.0, profile=_profile([("aten::addmm", 1200.0, 12), ("aten::relu", 200.0, 4)]))
    int8 = _add(store, ["quantize:method=dynamic_int8"], 2.6, layers=_layers(),
                profile=_profile([("quantized::linear_dynamic", 1500.0, 12), ("aten::quantize_per_tensor", 700.0, 12),
                                  ("aten::relu", 200.0, 4)]))
    pruned = _add(store, ["prune:amount=0.5"], 1.5)          # layers computed later: the stored layers.json
    save_layers(store, pruned, {**_layers(3), "rows": [{**r, "weight": {"kind": "pruned", "relative": 0.41,
                                                                         "sparsity_before": 0.0, "sparsity_after": 0.5}}
                                                        for r in _layers(3)["rows"]]})
    save_scan(store, int8, "quantize:method=dynamic_int8", {
        "plugin": "quantize", "metric": "top1_agreement", "layers": [
            {"name": "layer.19", "drop": 0.02, "output_error": 0.01}, {"name": "layer.3", "drop": 0.001}],
        "ranking": ["layer.19", "layer.3"],
        "suggestion": {"skip": ["layer.19"], "drop": 0.001, "all_layers_drop": 0.021}})
    lm_base = _add(store, [], 5.0, generation={
        "prompt_tokens": 8, "new_tokens": 16, "batch": 1, "prefill": {"median_ms": 3.1},
        "decode_token": {"median_ms": 1.25, "p90_ms": 1.5, "p99_ms": 2.75}, "ttft_ms": 3.2,
        "decode_tokens_per_s": 800.0, "e2e_tokens_per_s": 700.0, "kv_cache_bytes": 65_536,
        "peak_memory_bytes": None, "energy_j_per_token": None},
        lm_fidelity={"perplexity": 41.5, "reference_perplexity": 40.0, "perplexity_delta_pct": 3.75,
                     "next_token_agreement": 0.9375, "kl_divergence": 0.012, "continuation_agreement": None,
                     "eval_tokens": 96})
    return {"base": base, "int8": int8, "pruned": pruned, "lm": lm_base}


def test_report_model_explains_runs(store, explained):
    report = build_report(store, list(explained.values()))
    by_id = {r["id"]: r["explain"] for r in report["runs"]}
    e = by_id[explained["int8"]]
    assert e["profile"]["top_ops"][0] == {"op": "quantized::linear_dynamic", "time_us": 1500.0,
                                          "share": pytest.approx(1500 / 2400), "calls": 12,
                                          "shapes": "[1, 64], [64, 64]"}
    diff = e["profile_diff"]
    assert diff["baseline_id"] == explained["base"] and diff["ratio"] == pytest.approx(2400 / 1400, rel=1e-3)
    assert "slower" in diff["sentence"] and "quantized::linear_dynamic" in diff["sentence"]
    assert {r["group"] for r in diff["ops"]} == {"new", "gone"}
    rows = e["layers"]["rows"]
    assert len(rows) == 15 and e["layers"]["layers_total"] == 20       # the 15 most drifted, largest first
    assert [r["name"] for r in rows[:2]] == ["layer.19", "layer.18"]
    assert rows[0]["relative_error"] == pytest.approx(2e-3) and rows[0]["weight_relative"] == 0.0093
    assert e["scans"][0]["layers"][0]["name"] == "layer.19" and e["scans"][0]["suggested_skip"] == ["layer.19"]
    assert by_id[explained["pruned"]]["layers"]["rows"][0]["weight_kind"] == "pruned"
    assert by_id[explained["base"]]["profile_diff"] is None and by_id[explained["base"]]["layers"] is None
    lm = by_id[explained["lm"]]
    assert lm["generation"]["token_p99_ms"] == 2.75 and lm["generation"]["kv_cache_bytes"] == 65_536
    assert lm["lm_fidelity"]["perplexity_delta_pct"] == 3.75


def test_every_format_shows_the_explanation(store, explained):
    import jsonschema
    report = build_report(store, list(explained.values()))
    jsonschema.Draft202012Validator(json.loads(SCHEMA.read_text())).validate(json.loads(render_json(report)))

    page = render_html(report).decode()
    for text in ("Top ops (per-op profile)", "quantized::linear_dynamic", "Why: profile vs baseline",
                 "1.71× slower", "Per-layer drift", "chart-layers-", "layer.19", "2.000e-03", "‖w − q(w)‖/‖w‖",
                 "4.16k → 2.08k", "Sensitivity scans", "TTFT", "800.0 tokens/s", "1.25 ms / 1.50 ms / 2.75 ms",
                 "64.00 KiB", "40 → 41.5 (Δ +3.75 %)", "93.75%"):
        assert text in page, text
    assert page.count("<svg") >= 2          # the report's charts plus the drift bars

    from pypdf import PdfReader
    pdf = PdfReader(io.BytesIO(render_pdf(report)))
    text = "".join(p.extract_text() for p in pdf.pages)
    for needle in ("TOP OPS", "quantized::linear_dynamic", "PER-LAYER DRIFT", "layer.19", "GENERATION",
                   "2.75 ms", "41.5", "Δ +3.75 %"):
        assert needle in text, needle

    rows = {int(r["id"]): r for r in csv.DictReader(io.StringIO(render_csv(report).decode()))}
    assert rows[explained["int8"]]["profile_top_op"] == "quantized::linear_dynamic"
    assert rows[explained["int8"]]["layers_most_drift"] == "layer.19"
    assert float(rows[explained["lm"]]["perplexity_delta_pct"]) == 3.75
    assert rows[explained["base"]]["ttft_ms"] == ""
