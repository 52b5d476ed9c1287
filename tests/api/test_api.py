"""The public Python API (``import workbench``): real benches of the demo CNN, baseline-first,
comparison, listing, reports, the notebook summary, and that importing the package stays light."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import workbench
from workbench.errors import PluginError, SpecError
from workbench.engine.plan import plan_runs
from workbench.spec import PluginStep, RunSpec
from workbench.results.store import ResultsStore

REPO = Path(__file__).resolve().parents[2]
# Tiny but real measurements: the worker loads the demo, warms up and times >= 20 iterations.
TINY = dict(iters=20, duration_s=0.1, warmup_max_s=0.5, threads=1)


@pytest.fixture(scope="module")
def plain(tmp_path_factory):
    db = tmp_path_factory.mktemp("plain") / "runs.sqlite"
    return workbench.bench("demo:digits-cnn", db=db, **TINY), db


@pytest.fixture(scope="module")
def fused(tmp_path_factory):
    """A plugin run on an empty database: the plain model must be measured first."""
    db = tmp_path_factory.mktemp("fused") / "runs.sqlite"
    events: list[dict] = []
    run = workbench.bench("demo:digits-cnn", ["fuse:method=conv_bn"], db=db, on_event=events.append, **TINY)
    return run, db, events


def test_bench_returns_the_stored_run(plain):
    run, db = plain
    assert run.status == "done", run.error
    assert run.id == 1 and run.chain == "baseline" and run.model == "demo:digits-cnn"
    assert run.spec["threads"] == 1 and run.spec["iters"] == 20
    latencies = run.latencies
    assert latencies.dtype == np.int64 and len(latencies) == run.result["latency"]["n"] >= 20
    assert (latencies > 0).all()
    assert run.result["latency"]["median_ms"] == pytest.approx(np.median(latencies) / 1e6, rel=1e-6)
    record = run.to_dict()
    assert record["id"] == 1 and record["result"]["fidelity"]["top1_agreement"] == 1.0
    assert record["comparison"]["p50_ms"] == run.result["latency"]["median_ms"]
    assert run.baseline is None    # a plain run is its own reference
    assert repr(run).startswith("Run(#1 demo:digits-cnn [baseline] done, p50 ")


def test_plugin_run_measures_the_missing_baseline_first(fused):
    run, db, events = fused
    assert run.status == "done", run.error
    stored = workbench.runs(db=db)
    assert [(r.id, r.chain) for r in stored] == [(2, "fuse:method=conv_bn"), (1, "baseline")]
    assert all(r.status == "done" for r in stored)
    assert [e["run_id"] for e in events if e["type"] == "run_created"] == [1, 2]
    assert run.baseline.id == 1
    row = run.comparison
    assert row["baseline_id"] == 1 and row["speedup"] > 0 and row["top1_agreement"] == 1.0
    # now that a baseline is stored, the same request plans the plugin run alone
    spec = RunSpec(model="demo:digits-cnn", plugins=[PluginStep.parse("fuse:method=conv_bn")], **TINY)
    assert plan_runs(ResultsStore(db), spec) == [spec]
    assert len(plan_runs(ResultsStore(db), RunSpec.from_dict({**spec.to_dict(), "threads": 2}))) == 2


def test_repr_html_shows_speedup_beside_fidelity(fused):
    run, _, _ = fused
    page = run._repr_html_()
    assert "speed-up" in page and "fidelity" in page and "top-1 agreement 100.0%" in page
    assert f"vs run #{run.baseline.id}" in page and "95% CI" in page
    assert page.index("speed-up") < page.index("fidelity")   # the cost sits right under the gain
    assert "baseline (no plugins)" in run.baseline._repr_html_()
    assert "top-1 agreement 100.0%" in repr(run) and "vs #1" in repr(run)


def test_compare_prints_the_cli_table(fused):
    run, db, _ = fused
    comparison = workbench.compare([run.baseline, run])
    assert [row["id"] for row in comparison.rows] == [1, 2]
    assert comparison.rows[1]["baseline_id"] == 1
    cli = subprocess.run([sys.executable, "-m", "workbench.cli", "--db", str(db), "compare", "1", "2"],
                         capture_output=True, text=True, timeout=300)
    assert cli.returncode == 0, cli.stderr
    assert str(comparison) == cli.stdout.rstrip("\n")
    assert str(workbench.compare([1, 2], db=db)) == str(comparison)


def test_runs_to_pandas(fused):
    pytest.importorskip("pandas")
    run, db, _ = fused
    frame = workbench.runs(db=db).to_pandas()
    assert list(frame["id"]) == [2, 1]
    assert frame.loc[0, "speedup"] == pytest.approx(run.comparison["speedup"])
    assert {"created_at", "p50_ms", "top1_agreement", "accuracy", "chain"} <= set(frame.columns)
    assert len(workbench.runs(db=db, limit=1)) == 1


def test_report_writes_the_file(fused, tmp_path):
    run, _, _ = fused
    path = workbench.report([run.baseline, run], tmp_path / "report.csv")
    assert path.is_file() and "fuse:method=conv_bn" in path.read_text()


def test_bad_requests_fail_before_anything_runs(tmp_path):
    db = tmp_path / "runs.sqlite"
    with pytest.raises(PluginError, match="unknown plugin 'nosuchplugin'"):
        workbench.bench("demo:digits-cnn", ["nosuchplugin"], db=db)
    with pytest.raises(SpecError, match="unknown run setting"):
        workbench.bench("demo:digits-cnn", db=db, iterations=5)
    with pytest.raises(SpecError, match="model file not found"):
        workbench.bench(tmp_path / "missing.onnx", db=db)
    with pytest.raises(SpecError, match="bad input spec"):
        workbench.bench("demo:digits-cnn", db=db, inputs="1xqx3")
    assert workbench.runs(db=db) == []


def test_compare_refuses_runs_of_two_databases(plain, fused):
    with pytest.raises(SpecError, match="different results databases"):
        workbench.compare([plain[0], fused[0]])


def test_import_workbench_loads_neither_torch_nor_qt():
    code = ("import sys, workbench; workbench.__version__; workbench.bench; workbench.compare; workbench.Run; "
            "heavy = [m for m in ('torch', 'PySide6', 'pyqtgraph', 'pandas') if m in sys.modules]; "
            "assert not heavy, heavy; print(workbench.__version__)")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=REPO)
    assert proc.returncode == 0, proc.stderr
    from importlib import metadata
    assert proc.stdout.strip() == metadata.version("workbench")


def test_api_names_win_over_same_named_modules():
    import workbench.results.compare
    import workbench.report  # noqa: F401
    assert callable(workbench.compare) and workbench.compare.__module__ == "workbench.api"
    assert workbench.report.__module__ == "workbench.api"
    from workbench.results.compare import baseline_for  # the module's contents stay importable
    assert callable(baseline_for)
    assert set(workbench.__all__) <= set(dir(workbench))
