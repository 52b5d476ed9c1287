"""Fast unit tests of the core's pure parts: spec, stats, fidelity, timing loop, store."""
from __future__ import annotations

import sqlite3
import subprocess
import sys
import time

import numpy as np
import pytest

from workbench.errors import PluginError, SpecError, WorkbenchError
from workbench.worker.fidelity import compare_outputs
from workbench.worker.measure import MeasureSettings, measure
from workbench.plugin_api import Param
from workbench.spec import InputSpec, PluginStep, RunSpec
from workbench.results.stats import MIN_SAMPLES_FOR_PERCENTILE, compute_latency_stats, median_ci, ratio_with_ci
from workbench.results.store import SCHEMA_VERSION, ResultsStore


# -- spec -----------------------------------------------------------------------------------------
def test_input_spec_parses_shape_dtype_and_name():
    spec = InputSpec.parse("pixels=1x3x224x224:float16")
    assert (spec.name, spec.shape, spec.dtype) == ("pixels", [1, 3, 224, 224], "float16")
    assert InputSpec.parse("8x64").dtype == "float32"
    assert InputSpec.parse("-1x64").concrete_shape(32) == [32, 64]


@pytest.mark.parametrize("text, message", [
    ("1xfoo", r"expected SHAPE\[:DTYPE\]"), ("1x0x3", "dimensions must be positive"), ("1x3:complex", "unknown input dtype"),
])
def test_input_spec_rejects_bad_text(text, message):
    with pytest.raises(SpecError, match=message):
        InputSpec.parse(text)


def test_runspec_json_round_trip_and_validation():
    spec = RunSpec(model="demo:digits-cnn", plugins=[PluginStep("prune", {"amount": "0.5"})],
                   inputs=[InputSpec([1, 8], "float32", "x")], batch=4, threads=2)
    again = RunSpec.from_json(spec.to_json())
    assert again == spec
    with pytest.raises(SpecError, match="bad device"):
        RunSpec(model="m.onnx", device="gpu0").validate()
    with pytest.raises(SpecError, match="onnxruntime runtime"):
        RunSpec(model="m.onnx", runtime="torch").validate()
    with pytest.raises(SpecError, match="unknown RunSpec field"):
        RunSpec.from_dict({"model": "x.onnx", "bogus": 1})


def test_plugin_step_parse():
    step = PluginStep.parse("prune:method=structured,amount=0.5")
    assert step.name == "prune" and step.params == {"method": "structured", "amount": "0.5"}
    with pytest.raises(SpecError, match="expected key=value"):
        PluginStep.parse("prune:amount")


def test_param_schema_parses_and_checks_ranges():
    amount = Param("amount", "float", 0.5, "fraction", minimum=0, maximum=1, exclusive_min=True, exclusive_max=True)
    assert amount.parse("0.25") == 0.25
    for bad in ("0", "1", "1.5"):
        with pytest.raises(PluginError, match=r"outside \(0, 1\)"):
            amount.parse(bad, "prune")
    with pytest.raises(PluginError, match="not a valid float"):
        amount.parse("half")
    method = Param("method", "choice", "a", "m", choices=("a", "b"))
    with pytest.raises(PluginError, match="not one of a, b"):
        method.parse("c")
    assert Param("flag", "bool", False, "f").parse("yes") is True


# -- stats ----------------------------------------------------------------------------------------
def test_latency_stats_match_numpy():
    rng = np.random.default_rng(1)
    ns = (rng.lognormal(mean=0, sigma=0.1, size=1000) * 1e6).astype(np.int64)
    stats = compute_latency_stats(ns, batch=8)
    ms = ns / 1e6
    assert stats.median_ms == pytest.approx(np.median(ms))
    assert stats.iqr_ms == pytest.approx(np.percentile(ms, 75) - np.percentile(ms, 25))
    assert stats.p99_ms == pytest.approx(np.percentile(ms, 99))
    assert stats.throughput_per_s == pytest.approx(8 / (np.median(ms) / 1e3))
    low, high = stats.median_ci_ms
    assert low <= stats.median_ms <= high and high - low < 0.05 * stats.median_ms


def test_tail_percentiles_need_enough_samples():
    stats = compute_latency_stats(np.full(63, 1_000_000) + np.arange(63), batch=1)
    assert stats.p90_ms is None and stats.p99_ms is None
    assert any("p90 not reported" in w for w in stats.warnings)
    stats = compute_latency_stats(np.arange(1, MIN_SAMPLES_FOR_PERCENTILE[99] + 1) * 1000, batch=1)
    assert stats.p99_ms is not None


def test_noisy_distribution_is_flagged():
    values = np.concatenate([np.full(50, 1_000_000), np.full(50, 2_000_000)])
    assert any("noisy" in w for w in compute_latency_stats(values).warnings)
    assert not any("noisy" in w for w in compute_latency_stats(np.full(100, 1_000_000)).warnings)


def test_bootstrap_ci_covers_true_median_and_large_samples_use_order_statistics():
    rng = np.random.default_rng(2)
    covered = 0
    for trial in range(40):
        sample = rng.exponential(1.0, 200)
        low, high, _ = median_ci(sample, seed=trial)
        covered += low <= np.log(2) <= high
    assert covered >= 33   # ~95 % nominal coverage; 33/40 leaves room for chance
    low, high, method = median_ci(rng.exponential(1.0, 50_000))
    assert "order statistics" in method and low < np.log(2) < high


def test_speedup_ratio_significance():
    a = compute_latency_stats(np.random.default_rng(0).normal(2e6, 2e4, 500))
    b = compute_latency_stats(np.random.default_rng(1).normal(1e6, 1e4, 500))
    same = compute_latency_stats(np.random.default_rng(2).normal(2e6, 2e4, 500))
    fast = ratio_with_ci(a, b)
    assert fast["speedup"] == pytest.approx(2.0, rel=0.02) and fast["significant"]
    assert not ratio_with_ci(a, same)["significant"]
    # a tight interval that excludes 1 but stays within the run-to-run band is not a real difference
    tight = {"median_ms": 1.0, "median_ci_ms": (0.999, 1.001)}
    slightly_faster = {"median_ms": 0.99, "median_ci_ms": (0.989, 0.991)}
    ratio = ratio_with_ci(tight, slightly_faster)
    assert ratio["speedup_ci"][0] > 1.0 and not ratio["significant"]
    assert ratio_with_ci(tight, slightly_faster, noise_floor=0.0)["significant"]
    clearly_faster = {"median_ms": 0.95, "median_ci_ms": (0.949, 0.951)}
    assert ratio_with_ci(tight, clearly_faster)["significant"]
    assert ratio_with_ci(clearly_faster, tight)["significant"]           # slower, outside the band too


# -- fidelity -------------------------------------------------------------------------------------
def test_fidelity_exact_and_perturbed():
    rng = np.random.default_rng(0)
    ref = rng.standard_normal((100, 10))
    labels = ref.argmax(1)
    exact = compare_outputs(ref, ref.copy(), labels)
    assert exact.exact and exact.cosine == pytest.approx(1.0) and exact.max_abs_error == 0
    assert exact.top1_agreement == 1.0 and exact.accuracy == 1.0
    noisy = ref.copy()
    noisy[:10] = -noisy[:10]   # flip 10 samples' logits: their argmax changes
    fid = compare_outputs(ref, noisy, labels)
    assert fid.top1_agreement == pytest.approx(0.9) and fid.accuracy == pytest.approx(0.9)
    assert fid.cosine == pytest.approx(0.8, abs=1e-9) and not fid.exact


def test_fidelity_counts_nonfinite_and_rejects_shape_change():
    ref = np.ones((4, 3))
    out = ref.copy()
    out[0, 0] = np.nan
    assert compare_outputs(ref, out).nonfinite_outputs == 1
    with pytest.raises(ValueError, match="output shape changed"):
        compare_outputs(ref, np.ones((4, 2)))


# -- timing loop ----------------------------------------------------------------------------------
def test_measure_times_a_known_sleep_and_meets_both_stop_conditions():
    settings = MeasureSettings(min_iters=30, min_duration_s=0.3, warmup_min_iters=3, warmup_max_s=0.5)
    batches = []
    result = measure(lambda: time.sleep(0.002), "cpu", settings,
                     on_batch=lambda phase, values: batches.append((phase, len(values))))
    median = np.median(result.latencies_ns) / 1e6
    assert 2.0 <= median < 4.0
    assert result.iterations >= 30 and result.t_end - result.t_start >= 0.3
    assert batches[0] == ("cold", 1) and {p for p, _ in batches} == {"cold", "warmup", "measure"}
    assert sum(n for p, n in batches if p == "measure") == result.iterations


def test_measure_stops_on_cancel():
    calls = {"n": 0}

    def call():
        calls["n"] += 1
        time.sleep(0.001)

    result = measure(call, "cpu", MeasureSettings(min_iters=10**9, min_duration_s=100, warmup_max_s=0.1),
                     cancelled=lambda: calls["n"] > 200)
    assert result.t_end - result.t_start < 5


def test_measure_disables_gc_while_timing():
    import gc
    seen = []
    measure(lambda: seen.append(gc.isenabled()), "cpu",
            MeasureSettings(min_iters=5, min_duration_s=0, warmup_min_iters=1, warmup_max_s=0.05))
    assert seen[0] is True and not any(seen[1:])   # cold call with GC on; all timed calls with GC off
    assert gc.isenabled()


# -- store ----------------------------------------------------------------------------------------
def test_store_round_trip_and_wal(tmp_path):
    store = ResultsStore(tmp_path / "runs.sqlite")
    assert store._db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    run_id = store.create_run({"model": "demo:x", "device": "cpu", "plugins": []}, "baseline", "torch")
    store.add_latencies(run_id, "measure", 0, [1, 2, 3])
    store.add_latencies(run_id, "measure", 3, [4])
    store.add_samples(run_id, [{"t": 1.0, "rss_bytes": 10}, {"t": 2.0, "rss_bytes": 20}])
    store.finish_run(run_id, "done", {"latency": {"median_ms": 1.5, "p99_ms": None, "throughput_per_s": 3}})
    assert store.latencies(run_id) == [1, 2, 3, 4]
    assert [s["rss_bytes"] for s in store.samples(run_id)] == [10, 20]
    run = store.get_run(run_id)
    assert run.status == "done" and run.latency["median_ms"] == 1.5
    store.rename_run(run_id, "fast one")
    store.set_tags(run_id, ["b", "a", "a"])
    run = store.get_run(run_id)
    assert run.name == "fast one" and run.tags == ["a", "b"]
    store.delete_run(run_id)
    with pytest.raises(WorkbenchError, match="no run with id"):
        store.get_run(run_id)


def test_store_migrates_v1_and_refuses_newer(tmp_path):
    path = tmp_path / "old.sqlite"
    db = sqlite3.connect(path)
    from workbench.results.store import _v1
    _v1(db)
    db.execute("CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT)")
    db.execute("INSERT INTO meta VALUES ('schema_version', '1')")
    db.commit()
    db.close()
    store = ResultsStore(path)
    assert store.schema_version() == SCHEMA_VERSION
    assert store.artifacts(1) == []   # the v2 table exists now
    store.close()
    db = sqlite3.connect(path)
    db.execute("UPDATE meta SET value='99' WHERE key='schema_version'")
    db.commit()
    db.close()
    with pytest.raises(WorkbenchError, match="newer Workbench"):
        ResultsStore(path)


def test_stale_running_runs_become_failed_only_when_their_owner_is_gone(tmp_path):
    store = ResultsStore(tmp_path / "runs.sqlite")
    mine = store.create_run({"model": "m.onnx"}, "baseline", "onnxruntime")        # owned by this live process
    orphan = store.create_run({"model": "m.onnx"}, "baseline", "onnxruntime")
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    with store._db:
        store._db.execute("UPDATE runs SET owner_pid=? WHERE id=?", (dead.pid, orphan))
    assert store.settle_orphaned_runs() == 1
    assert store.get_run(orphan).status == "failed" and store.get_run(mine).status == "running"


