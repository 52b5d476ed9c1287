"""ResultsView (runs table) and ComparisonCharts on a temporary store filled like Session.run does."""
from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import numpy as np
import pytest

pytest.importorskip("pytestqt")

from PySide6.QtCore import Qt  # noqa: E402
from PySide6.QtGui import QBrush, QColor  # noqa: E402
from PySide6.QtWidgets import QInputDialog, QMessageBox  # noqa: E402

from workbench.results.compare import compare_runs  # noqa: E402
from workbench.gui import plot_style  # noqa: E402
from workbench.gui.results.charts import ComparisonCharts  # noqa: E402
from workbench.gui.results.table import COLUMN_INDEX, ResultsView  # noqa: E402
from workbench.results.pareto import pareto_front  # noqa: E402
from workbench.spec import PluginStep, RunSpec  # noqa: E402
from workbench.results.stats import compute_latency_stats  # noqa: E402
from workbench.results.store import ResultsStore  # noqa: E402

MIB = 1 << 20


def _model_info(params: int, nbytes: int) -> dict:
    return {"source": "demo:mlp", "format": "demo", "parameters": params, "bytes": nbytes,
            "inputs": [{"shape": [-1, 64], "dtype": "float32", "name": "x"}], "input_fixed_by_model": False,
            "flops": 5_000_000, "layer_counts": {"Linear": 3}, "layers": [], "notes": []}


def add_run(store: ResultsStore, *, plugins=(), median_ms=2.0, sigma=0.05, n=2000, seed=0, top1=1.0,
            cosine=1.0, accuracy=0.9, size_bytes=1_600_000, status="done", error=None, detail=None,
            gpu=False, label=None, runtime="torch") -> int:
    """A run stored the way Session.run stores it: create → latencies → finish with a worker-shaped result."""
    spec = RunSpec(model="demo:mlp", plugins=[PluginStep.parse(p) for p in plugins], label=label,
                   device="cuda" if gpu else "cpu")
    run_id = store.create_run(spec.to_dict(), spec.describe_chain(), spec.resolved_runtime())
    if status != "done":
        store.finish_run(run_id, status, {"telemetry_status": {"nvml": "disabled (no GPU selected)"}, "partial": True},
                         error, detail)
        return run_id
    rng = np.random.default_rng(seed)
    ns = (rng.lognormal(np.log(median_ms), sigma, size=n) * 1e6).astype(np.int64)
    store.add_latencies(run_id, "cold", 0, [int(ns[0] * 10)])
    for start in range(0, n, 500):
        store.add_latencies(run_id, "measure", start, ns[start:start + 500].tolist())
    stats = compute_latency_stats(ns, batch=1, seed=0)
    result = {
        "latency": stats.to_dict(), "cold_ms": ns[0] * 10 / 1e6,
        "warmup": {"iterations": 20, "stable": True},
        "window": {"t_start": 10.0, "t_end": 10.0 + ns.sum() / 1e9, "iterations": n},
        "fidelity": {"samples": 256, "cosine": cosine, "max_abs_error": 0.01, "mean_abs_error": 0.001,
                     "top1_agreement": top1, "accuracy": accuracy, "nonfinite_outputs": 0},
        "model_info": _model_info(100_000, 1_600_000),
        "optimized_model_info": _model_info(100_000, size_bytes) if plugins else None,
        "plugin_reports": [], "runtime_name": runtime, "device_memory": {}, "threads": 2, "notes": [], "flags": [],
        "telemetry": {"host_peak_rss_bytes": 400 * MIB, "gpu_power_mean_w": 150.0 if gpu else None,
                      "gpu_proc_mem_peak_bytes": 900 * MIB if gpu else None, "gpu_mem_used_peak_bytes": None},
        "telemetry_status": {"nvml": "ok" if gpu else "disabled (no GPU selected)"},
        "energy": {"joules_per_inference": 0.004 if gpu else None},
    }
    store.finish_run(run_id, "done", result)
    return run_id


@pytest.fixture
def filled(store):
    ids = {
        "baseline": add_run(store, median_ms=2.0, seed=1),
        "fast": add_run(store, plugins=["quantize"], median_ms=1.0, seed=2, top1=0.995, size_bytes=400_000),
        "noise": add_run(store, plugins=["fuse"], median_ms=1.995, sigma=0.3, n=300, seed=3, top1=1.0),
        "slow": add_run(store, plugins=["prune"], median_ms=3.0, seed=4, top1=0.93),
        "failed": add_run(store, plugins=["distill"], status="failed",
                          error="plugin distill failed: RuntimeError: CUDA out of memory",
                          detail="Traceback (most recent call last):\n  ...\nRuntimeError: CUDA out of memory"),
        "cancelled": add_run(store, plugins=["prune"], status="cancelled", error="cancelled by the user"),
    }
    return store, ids


def _view(qtbot, store) -> ResultsView:
    view = ResultsView(store)
    qtbot.addWidget(view)
    view.resize(1200, 400)
    return view


def _cell(view: ResultsView, run_id: int, key: str, role=Qt.ItemDataRole.DisplayRole):
    row = view.model.row_of(run_id)
    assert row is not None, f"run {run_id} not in the table"
    return view.model.index(row, COLUMN_INDEX[key]).data(role)


def _color(value) -> QColor | None:
    if value is None:
        return None
    return value.color() if isinstance(value, QBrush) else QColor(value)


def test_rows_reload_from_store(qtbot, filled):
    store, ids = filled
    view = _view(qtbot, store)
    assert view.row_count() == len(ids)            # past runs appear on start
    assert _cell(view, ids["baseline"], "chain") == "baseline"
    assert _cell(view, ids["baseline"], "speedup") == "baseline"
    assert _cell(view, ids["baseline"], "p50").endswith(" ms")
    assert _cell(view, ids["fast"], "top1") == "99.5%"
    assert _cell(view, ids["fast"], "size").startswith("390.62 KiB")
    # a run added later shows up on refresh
    new = add_run(store, plugins=["quantize"], median_ms=1.1, seed=9)
    view.refresh()
    assert view.row_count() == len(ids) + 1
    assert view.model.row_of(new) is not None


def test_speedup_colour_follows_the_verdict(qtbot, filled):
    store, ids = filled
    view = _view(qtbot, store)
    rows = {r["id"]: r for r in compare_runs(store, list(ids.values()))}
    assert rows[ids["fast"]]["speedup_significant"] is True
    assert rows[ids["noise"]]["speedup_significant"] is False
    assert rows[ids["slow"]]["speedup_significant"] is True

    fast_bg = _color(_cell(view, ids["fast"], "speedup", Qt.ItemDataRole.BackgroundRole))
    assert fast_bg is not None and fast_bg == plot_style.good_background()
    assert fast_bg.green() > fast_bg.red()
    slow_bg = _color(_cell(view, ids["slow"], "speedup", Qt.ItemDataRole.BackgroundRole))
    assert slow_bg is not None and slow_bg == plot_style.bad_background()
    assert slow_bg.red() > slow_bg.green()

    # inside the noise: no green/red, grey text, the interval in the tooltip
    assert _cell(view, ids["noise"], "speedup", Qt.ItemDataRole.BackgroundRole) is None
    noise_fg = _color(_cell(view, ids["noise"], "speedup", Qt.ItemDataRole.ForegroundRole))
    assert noise_fg == plot_style.neutral_foreground()
    tip = _cell(view, ids["noise"], "speedup", Qt.ItemDataRole.ToolTipRole)
    low, high = rows[ids["noise"]]["speedup_ci"]
    assert f"[{low:.3f}×, {high:.3f}×]" in tip and "inside the noise" in tip
    assert "outside the noise" in _cell(view, ids["fast"], "speedup", Qt.ItemDataRole.ToolTipRole)
    # the significant one is not grey
    assert _cell(view, ids["fast"], "speedup", Qt.ItemDataRole.ForegroundRole) is None


def test_failed_and_cancelled_rows_show_their_reason(qtbot, filled):
    store, ids = filled
    view = _view(qtbot, store)
    assert _cell(view, ids["failed"], "status") == "failed"
    for key in ("status", "chain", "p50"):
        tip = _cell(view, ids["failed"], key, Qt.ItemDataRole.ToolTipRole)
        assert "CUDA out of memory" in tip and tip.startswith("failed:")
    assert _color(_cell(view, ids["failed"], "status", Qt.ItemDataRole.ForegroundRole)) == \
        plot_style.failed_foreground()
    assert _cell(view, ids["failed"], "p50") == "—"
    assert _cell(view, ids["cancelled"], "status", Qt.ItemDataRole.ToolTipRole) == \
        "cancelled: cancelled by the user"


def test_sorting_by_p50_puts_missing_values_last(qtbot, filled):
    store, ids = filled
    view = _view(qtbot, store)
    view.table.sortByColumn(COLUMN_INDEX["p50"], Qt.SortOrder.AscendingOrder)
    order = [view.proxy.index(r, 0).data(Qt.ItemDataRole.UserRole + 1) for r in range(view.proxy.rowCount())]
    assert order[:4] == [ids["fast"], ids["noise"], ids["baseline"], ids["slow"]] or \
        order[:4] == [ids["fast"], ids["baseline"], ids["noise"], ids["slow"]]
    assert set(order[4:]) == {ids["failed"], ids["cancelled"]}
    view.table.sortByColumn(COLUMN_INDEX["p50"], Qt.SortOrder.DescendingOrder)
    order = [view.proxy.index(r, 0).data(Qt.ItemDataRole.UserRole + 1) for r in range(view.proxy.rowCount())]
    assert order[0] == ids["slow"] and set(order[4:]) == {ids["failed"], ids["cancelled"]}


def test_rename_tag_delete_update_the_store(qtbot, filled, monkeypatch):
    store, ids = filled
    view = _view(qtbot, store)
    view.show()
    view.activateWindow()
    qtbot.waitExposed(view)
    qtbot.waitUntil(view.isActiveWindow, timeout=2000)
    # rename through the model (what the F2 / double-click editor commits)
    row = view.model.row_of(ids["fast"])
    assert view.model.setData(view.model.index(row, COLUMN_INDEX["name"]), "int8 dynamic")
    assert store.get_run(ids["fast"]).name == "int8 dynamic"
    assert _cell(view, ids["fast"], "name") == "int8 dynamic"
    # F2 opens the editor on the name cell of the selected run
    view.select_runs([ids["slow"]])
    view.table.setFocus()
    qtbot.keyClick(view.table, Qt.Key.Key_F2)
    assert view.table.state() == view.table.State.EditingState
    assert view.table.currentIndex().column() == COLUMN_INDEX["name"]

    # tag the selection
    view.select_runs([ids["fast"], ids["slow"]])
    assert sorted(view.selected_run_ids()) == sorted([ids["fast"], ids["slow"]])
    monkeypatch.setattr(QInputDialog, "getText", staticmethod(lambda *a, **k: ("int8, paper", True)))
    view.tag_selected()
    assert store.get_run(ids["fast"]).tags == ["int8", "paper"]
    assert store.get_run(ids["slow"]).tags == ["int8", "paper"]
    assert _cell(view, ids["slow"], "tags") == "int8, paper"

    # delete asks first; "No" keeps the runs
    view.select_runs([ids["slow"], ids["failed"]])
    asked = []
    monkeypatch.setattr(QMessageBox, "question",
                        staticmethod(lambda *a, **k: asked.append(a) or QMessageBox.StandardButton.No))
    view.delete_selected()
    assert len(asked) == 1 and view.row_count() == len(ids)
    monkeypatch.setattr(QMessageBox, "question", staticmethod(lambda *a, **k: QMessageBox.StandardButton.Yes))
    with qtbot.waitSignal(view.selectionChanged, timeout=1000) as blocker:
        qtbot.keyClick(view.table, Qt.Key.Key_Delete)
    assert blocker.args == [[]]
    remaining = {r.id for r in store.list_runs()}
    assert ids["slow"] not in remaining and ids["failed"] not in remaining
    assert view.row_count() == len(ids) - 2
    assert store.latencies(ids["slow"]) == []


def test_selection_signal_carries_run_ids(qtbot, filled):
    store, ids = filled
    view = _view(qtbot, store)
    with qtbot.waitSignal(view.selectionChanged, timeout=1000) as blocker:
        view.select_runs([ids["baseline"], ids["fast"]])
    assert sorted(blocker.args[0]) == sorted([ids["baseline"], ids["fast"]])
    # selection survives a refresh
    view.refresh()
    assert sorted(view.selected_run_ids()) == sorted([ids["baseline"], ids["fast"]])


def test_comparison_charts_three_runs(qtbot, filled):
    store, ids = filled
    charts = ComparisonCharts()
    qtbot.addWidget(charts)
    charts.resize(1000, 600)
    charts.show_runs(store, [ids["fast"], ids["slow"], ids["noise"]])
    # the unselected baseline is added as the reference: 4 CDF curves
    assert len(charts.cdf_curves) == 4
    shown = {r["id"] for r in charts.rows}
    assert shown == {ids["baseline"], ids["fast"], ids["slow"], ids["noise"]}
    x, y = charts.cdf_curves[0].getData()
    assert np.all(np.diff(x) >= 0) and y[-1] == pytest.approx(1.0)
    # Pareto: baseline (top-1 100 %) is dominated by "noise" only if faster with equal fidelity
    rows = {r["id"]: r for r in charts.rows}
    points = [(rows[i]["p50_ms"], rows[i]["top1_agreement"] * 100) for i in charts.scatter_points]
    expected = [list(charts.scatter_points)[i] for i in pareto_front(points)]
    assert charts.pareto_ids == expected
    assert ids["fast"] in charts.pareto_ids and ids["slow"] not in charts.pareto_ids
    assert charts.scatter_metric == "top1_agreement"
    # bars: p50 values in ms, the baseline line, energy missing on CPU runs
    assert charts.bar_values["p50_ms"][ids["fast"]] == pytest.approx(rows[ids["fast"]]["p50_ms"])
    assert charts.baseline_values["p50_ms"] == pytest.approx(rows[ids["baseline"]]["p50_ms"])
    assert charts.bar_values["energy_j_per_inference"] == {}
    assert "NVML" in charts.placeholders["energy_j_per_inference"]
    assert charts.bar_values["size_bytes"][ids["fast"]] == pytest.approx(400_000 / MIB)   # MiB


def test_comparison_charts_handle_failed_and_empty(qtbot, filled):
    store, ids = filled
    charts = ComparisonCharts()
    qtbot.addWidget(charts)
    charts.show_runs(store, [ids["failed"], ids["cancelled"]])
    assert charts.cdf_curves == []
    assert charts.pareto_ids == []
    assert "cdf" in charts.placeholders and "scatter" in charts.placeholders
    charts.show_runs(store, [ids["failed"], ids["fast"]])     # mixed: the failed one is skipped
    assert len(charts.cdf_curves) == 2                       # fast + its baseline
    charts.show_runs(store, [])
    assert charts.rows == [] and charts.cdf_curves == []
    # GPU runs have energy bars
    gpu_base = add_run(store, median_ms=1.0, gpu=True, seed=11)
    gpu_fast = add_run(store, plugins=["quantize"], median_ms=0.5, gpu=True, seed=12)
    charts.show_runs(store, [gpu_base, gpu_fast])
    assert charts.bar_values["energy_j_per_inference"][gpu_fast] == pytest.approx(4.0)   # mJ
