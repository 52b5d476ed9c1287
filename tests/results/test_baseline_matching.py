"""A speed-up is only against a baseline that did the same work (issue 13 E) and, for a chain that
moves the model to another runtime, against both references measured in the same sitting (F).

Runs are stored directly (no worker): what is tested is the rule that picks the baseline, the
planner that adds the missing ones, and the rows that carry both ratios.
"""
from __future__ import annotations

import sqlite3
import time

import pytest

from workbench.engine.plan import combinations_plan, pair_plan, plan_note, plan_runs
from workbench.results.compare import (baseline_for, comparison_row, comparison_table, row_for,
                                       runtime_baseline_for)
from workbench.results.store import SCHEMA_VERSION, ResultsStore
from workbench.spec import InputSpec, PluginStep, RunSpec

EXPORT = PluginStep("onnx_export")
INT8 = PluginStep("quantize", {"method": "dynamic_int8"})


def _latency(ms: float, batch: int = 1) -> dict:
    return {"median_ms": ms, "median_ci_ms": [ms * 0.99, ms * 1.01], "n": 100, "batch": batch}


def store_run(store: ResultsStore, spec: RunSpec, ms: float, inputs: list[str], runtime: str | None = None,
              threads: int = 1, status: str = "done") -> int:
    """A finished run of ``spec`` as the session stores it: resolved inputs and threads in the result."""
    run_id = store.create_run(spec.to_dict(), spec.describe_chain(), spec.resolved_runtime())
    batch = int(inputs[0].split("=")[-1].split("x")[0])
    store.finish_run(run_id, status, {"latency": _latency(ms, batch), "inputs": inputs, "threads": threads,
                                      "runtime_name": runtime or spec.resolved_runtime(),
                                      "fidelity": {"cosine": 1.0}})
    return run_id


@pytest.fixture
def model(tmp_path):
    path = tmp_path / "lstm.pt"
    path.write_bytes(b"weights v1")
    return path


def spec(model, *steps, **settings) -> RunSpec:
    return RunSpec(model=str(model), factory="zoo:lstm", plugins=list(steps), threads=1, **settings)


# -- E: the work, as resolved, must match ---------------------------------------------------------
def test_a_run_at_1x512_is_never_compared_with_the_stored_1x64_baseline(store, model):
    """The model declares its inputs (spec.inputs empty): only the resolved shapes tell the runs apart."""
    old = store_run(store, spec(model), 1.0, ["x=1x64x32:float32"])
    variant = store.get_run(store_run(store, spec(model, INT8), 10.0, ["x=1x512x32:float32"]))
    assert baseline_for(store, variant) is None
    row = comparison_row(variant, store.get_run(old))          # even when a caller insists
    assert row["speedup"] is None and row["verdict"]["level"] == "noise"
    assert any(d.startswith("inputs: x=1x64x32:float32 vs x=1x512x32:float32") for d in row["baseline_mismatch"])
    assert "did other work (" in comparison_table([row])
    same = store_run(store, spec(model), 9.0, ["x=1x512x32:float32"])
    assert baseline_for(store, variant).id == same


def test_a_data_or_model_file_changed_under_the_same_path_is_other_work(store, model, tmp_path):
    data = tmp_path / "eval.npz"
    data.write_bytes(b"data v1")
    base = store_run(store, spec(model, data=str(data)), 1.0, ["x=1x64x32:float32"])
    assert plan_runs(store, spec(model, INT8, data=str(data))) == [spec(model, INT8, data=str(data))]
    data.write_bytes(b"data v2, same path")
    planned = plan_runs(store, spec(model, INT8, data=str(data)))
    assert [s.describe_chain() for s in planned] == ["baseline", "quantize:method=dynamic_int8"]
    after = store.get_run(store_run(store, spec(model, INT8, data=str(data)), 0.5, ["x=1x64x32:float32"]))
    assert baseline_for(store, after) is None
    assert any(d.startswith("files: ") for d in comparison_row(after, store.get_run(base))["baseline_mismatch"])
    model.write_bytes(b"weights v2")       # and the model itself
    assert len(plan_runs(store, spec(model, INT8, data=str(data)))) == 2


def test_threads_batch_and_scenario_are_part_of_the_work(store, model):
    store_run(store, spec(model), 1.0, ["x=1x64x32:float32"], threads=1)
    assert len(plan_runs(store, spec(model, INT8))) == 1
    assert len(plan_runs(store, RunSpec.from_dict({**spec(model, INT8).to_dict(), "threads": 2}))) == 2
    assert len(plan_runs(store, spec(model, INT8, batch=8))) == 2
    assert len(plan_runs(store, spec(model, INT8, scenario="generate"))) == 2
    assert len(plan_runs(store, spec(model, INT8, inputs=[InputSpec([1, 512, 32], "float32", "x")]))) == 2
    threaded = store.get_run(store_run(store, spec(model, INT8), 0.5, ["x=1x64x32:float32"], threads=2))
    assert baseline_for(store, threaded) is None


def test_the_resolved_work_matches_whatever_was_asked(store, model):
    """--batch 64 asked, or the model's own batch of 64 resolved: the same work, so a baseline."""
    base = store_run(store, spec(model, batch=64), 1.0, ["x=64x64x32:float32"])
    variant = store.get_run(store_run(store, spec(model, INT8), 0.5, ["x=64x64x32:float32"]))
    assert baseline_for(store, variant).id == base
    assert row_for(store, variant)["speedup"] == pytest.approx(2.0)


def test_runs_stored_before_digests_match_only_by_path_among_themselves(tmp_path, model):
    path = tmp_path / "v4.sqlite"
    old = ResultsStore(path)
    a = store_run(old, spec(model), 1.0, ["x=1x64x32:float32"])
    b = store_run(old, spec(model, INT8), 0.5, ["x=1x64x32:float32"])
    old.close()
    db = sqlite3.connect(path)
    db.execute("UPDATE runs SET work_json=NULL")         # as a v4 store left them
    db.commit()
    db.close()
    store = ResultsStore(path)
    assert store.schema_version() == SCHEMA_VERSION
    legacy_variant, legacy_base = store.get_run(b), store.get_run(a)
    assert legacy_base.work == {} and baseline_for(store, legacy_variant).id == a
    new = store.get_run(store_run(store, spec(model, INT8), 0.5, ["x=1x64x32:float32"]))
    assert new.work["files"]["model"] and baseline_for(store, new) is None     # content unknown: not the same
    store.close()


def test_a_v4_store_migrates_to_record_digests(tmp_path):
    path = tmp_path / "old.sqlite"
    ResultsStore(path).close()
    db = sqlite3.connect(path)
    db.execute("ALTER TABLE runs DROP COLUMN work_json")
    db.execute("UPDATE meta SET value='4' WHERE key='schema_version'")
    db.commit()
    db.close()
    read_only = ResultsStore(path, read_only=True)           # an old store opened read-only still lists
    assert read_only.list_runs() == []
    read_only.close()
    store = ResultsStore(path)
    assert store.schema_version() == SCHEMA_VERSION == 5
    run = store.get_run(store.create_run({"model": "demo:digits-cnn"}, "baseline", "torch"))
    assert run.work == {"files": {}}
    store.close()


# -- F: cross-runtime chains have two references, measured in the same sitting ------------------
def test_an_onnx_chain_plans_both_references_in_the_same_sitting(store, model):
    chain = spec(model, EXPORT, INT8)
    planned = plan_runs(store, chain)
    assert [(s.describe_chain(), s.runtime) for s in planned] == [
        ("baseline", "auto"), ("onnx_export", "auto"), ("onnx_export → quantize:method=dynamic_int8", "auto")]
    assert "measuring the original model on torch and onnx_export alone" in plan_note(chain, planned)
    # an old ONNX Runtime run and an old PyTorch run are never the same sitting ...
    store_run(store, planned[0], 2.0, ["x=1x64x32:float32"])
    store_run(store, planned[1], 1.0, ["x=1x64x32:float32"], runtime="onnxruntime")
    assert len(plan_runs(store, chain)) == 3
    # ... unless the caller says when the sitting began (a sweep), or asks for stored ones
    assert plan_runs(store, chain, since=time.time() - 60) == [chain]
    assert len(plan_runs(store, chain, since=time.time() + 60)) == 3
    assert plan_runs(store, chain, baseline=False) == [chain]
    # the conversion alone needs only the original; the runtime option alone converts too
    assert [s.describe_chain() for s in plan_runs(store, spec(model, EXPORT))] == ["baseline", "onnx_export"]
    on_ort = spec(model, runtime="onnxruntime")
    assert [(s.describe_chain(), s.runtime) for s in plan_runs(store, on_ort)] == [
        ("baseline", "auto"), ("baseline", "onnxruntime")]


def test_pair_and_combination_plans_include_the_conversion(model):
    chain = spec(model, EXPORT, INT8)
    assert [s.describe_chain() for s in pair_plan(chain)] == ["baseline", "onnx_export",
                                                               "onnx_export → quantize:method=dynamic_int8"]
    specs, _ = combinations_plan(chain)
    assert [s.describe_chain() for s in specs].count("onnx_export") == 1
    pruned_on_ort = spec(model, PluginStep("prune", {"method": "unstructured"}), runtime="onnxruntime")  # export inserted
    assert [(s.describe_chain(), s.runtime) for s in pair_plan(pruned_on_ort)] == [
        ("baseline", "auto"), ("onnx_export", "onnxruntime"), ("prune:method=unstructured", "onnxruntime")]


def test_a_cross_runtime_row_carries_both_ratios(store, model):
    inputs = ["x=1x64x32:float32"]
    store_run(store, spec(model, runtime="onnxruntime"), 0.5, inputs, runtime="onnxruntime", threads=2)  # other work
    torch_base = store_run(store, spec(model), 4.0, inputs)
    ort_fp32 = store_run(store, spec(model, EXPORT), 2.0, inputs, runtime="onnxruntime")
    variant = store.get_run(store_run(store, spec(model, EXPORT, INT8), 1.0, inputs, runtime="onnxruntime"))
    assert baseline_for(store, variant).id == torch_base
    assert runtime_baseline_for(store, variant).id == ort_fp32
    row = row_for(store, variant)
    assert row["cross_runtime"] is True and row["baseline_runtime"] == "torch"
    assert row["speedup"] == pytest.approx(4.0) and row["runtime_speedup"] == pytest.approx(2.0)
    assert row["runtime_baseline_id"] == ort_fp32 and len(row["runtime_speedup_ci"]) == 2
    table = comparison_table([row_for(store, store.get_run(torch_base)), row])
    assert "vs original [95% CI]" in table and "vs fp32 same runtime" in table
    assert "4.00× [" in table and "vs torch" in table and f"2.00× [1.96-2.04] vs #{ort_fp32}" in table
    # the conversion itself: only the ratio against the original
    conversion = row_for(store, store.get_run(ort_fp32))
    assert conversion["speedup"] == pytest.approx(2.0) and conversion["runtime_speedup"] is None
    # runs measured together win over stored ones
    fresh = store_run(store, spec(model, EXPORT), 1.5, inputs, runtime="onnxruntime")
    selection = [store.get_run(fresh), variant]
    assert row_for(store, variant, selection)["runtime_baseline_id"] == fresh


def test_a_same_runtime_chain_keeps_one_ratio(store, model):
    base = store_run(store, spec(model), 2.0, ["x=1x64x32:float32"])
    variant = store.get_run(store_run(store, spec(model, INT8), 1.0, ["x=1x64x32:float32"]))
    row = row_for(store, variant)
    assert row["baseline_id"] == base and row["cross_runtime"] is False and row["runtime_speedup"] is None
    assert "vs fp32 same runtime" not in comparison_table([row])
