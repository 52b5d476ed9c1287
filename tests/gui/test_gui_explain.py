"""The Results dock's Profile and Layers tabs (issue 15) and the Run dock's Profile box. They fill
from what is stored (result dicts shaped like the worker's, in a temporary store; scans as the files
``workbench layers --scan`` writes), so no worker process starts here; the scan button is checked
against a stand-in bridge, and the real bridge's up-front refusal without a worker."""
from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
from PySide6.QtCore import QObject, Signal
from PySide6.QtGui import QGuiApplication

from workbench.gui.docks.run_panel import RunPanel
from workbench.gui.results.layers_tab import LayersTab
from workbench.gui.results.profile_tab import ProfileTab
from workbench.results.explain import save_scan
from workbench.results.stats import compute_latency_stats
from workbench.results.store import ResultsStore
from workbench.spec import PluginStep, RunSpec

MODEL = "demo:digits-transformer"
QUANTIZE = "quantize:method=dynamic_int8"


def _op(name: str, time_us: float, calls: float, shapes: str = "[64, 8, 224], [], []") -> dict:
    return {"op": name, "calls": calls, "time_us": time_us, "self_cpu_us": time_us, "cpu_total_us": time_us,
            "device_us": 0.0, "shapes": [{"shapes": shapes, "calls": calls, "time_us": time_us}]}


def _profile(ops: list[dict]) -> dict:
    total = sum(o["time_us"] for o in ops)
    for op in ops:
        op["share"] = op["time_us"] / total
    return {"source": "torch.profiler", "device": "cpu", "iterations": 5, "time_basis": "cpu", "total_us": total,
            "ops": sorted(ops, key=lambda o: -o["time_us"]), "ops_total": len(ops), "notes": [],
            "trace_path": "/nowhere/profile_trace.json", "wall_ms_per_iteration": total / 1000}


BASE_PROFILE = _profile([_op("aten::addmm", 800.0, 14), _op("aten::add", 300.0, 5), _op("aten::copy_", 100.0, 15)])
INT8_PROFILE = _profile([_op("quantized::linear_dynamic", 1100.0, 14), _op("aten::add", 310.0, 5)])


def _layer(name: str, kind: str | None, drift: float, type_: str = "Linear", leaf: bool = True) -> dict:
    weight = None
    if kind == "quantized":
        weight = {"kind": "quantized", "from": "float32", "to": "qint8", "mean_abs": 4e-4, "max_abs": 9e-4,
                  "relative": 0.0104, "mean_relative": 0.009, "max_relative": 0.004}
    elif kind == "pruned":
        weight = {"kind": "pruned", "relative": 0.31, "sparsity_before": 0.0, "sparsity_after": 0.5}
    return {"name": name, "type": type_, "type_after": f"{type_}(dynamic int8)" if kind == "quantized" else type_,
            "leaf": leaf, "params_before": 50400, "params_after": 50400 if type_ == "Linear" else 0,
            "flops_before": 802816, "flops_after": 802816, "drift": {"relative_error": drift, "cosine": 1 - drift / 10},
            "weight": weight}


LAYERS = {"samples": 32, "inputs": "eval data (x_test)", "seconds": 0.4, "notes": ["a stored note"],
          "rows": [_layer("blocks", None, 0.02, "Sequential", leaf=False), _layer("embed", "quantized", 0.005),
                   _layer("blocks.0.fc", "pruned", 0.012), _layer("blocks.0.act", None, 0.03, "ReLU"),
                   _layer("head", "quantized", 0.009)],
          "only_before": [], "only_after": [],
          "summary": {"layers": 5, "weights_changed": 3, "most_drift": ["blocks.0.act", "blocks.0.fc"]}}
SCAN = {"plugin": "quantize", "params": {"method": "dynamic_int8"}, "how": "skip", "metric": "top1_agreement",
        "samples": 360, "seconds": 9.1, "cancelled": False, "notes": [],
        "all_layers": {"top1_agreement": 0.9972, "cosine": 0.9999, "output_error": 0.0117},
        "layers": [{"name": "head", "type": "Linear", "drop": 0.0, "output_error": 0.003, "seconds": 0.3,
                    "fidelity": {"top1_agreement": 1.0}},
                   {"name": "embed", "type": "Linear", "drop": 0.0028, "output_error": 0.005, "seconds": 0.3,
                    "fidelity": {"top1_agreement": 0.9972}}],
        "ranking": ["embed", "head"],
        "suggestion": {"skip": ["embed"], "params": {"method": "dynamic_int8", "skip": "embed"},
                       "fidelity": {"output_error": 0.0106}, "drop": 0.0, "all_layers_drop": 0.0028,
                       "layers_still_optimized": 1}}


def _add(store: ResultsStore, plugins=(), model: str = MODEL, **result) -> int:
    spec = RunSpec(model=model, plugins=[PluginStep.parse(p) for p in plugins], threads=1)
    run_id = store.create_run(spec.to_dict(), spec.describe_chain(), spec.resolved_runtime())
    ns = np.random.default_rng(run_id).lognormal(np.log(1.5 if plugins else 1.0), 0.05, 200) * 1e6
    store.finish_run(run_id, "done", {"latency": compute_latency_stats(ns.astype(np.int64), batch=64, seed=0).to_dict(),
                                      "threads": 1, "runtime_name": "torch", **result})
    return run_id


@pytest.fixture
def store(tmp_path):
    store = ResultsStore(tmp_path / "runs.sqlite")
    yield store
    store.close()


def test_profile_tab_shows_top_ops_and_explains_the_diff_in_a_sentence(qtbot, store):
    base = _add(store, profile=BASE_PROFILE)
    int8 = _add(store, [QUANTIZE], profile=INT8_PROFILE)
    tab = ProfileTab()
    qtbot.addWidget(tab)
    tab.show_runs(store, [base, int8])             # the variant is explained, against the selected baseline
    assert tab.hint_text() == "" and tab.selected.run.id == int8 and tab.selected.baseline.id == base
    assert tab.ops_table.column_texts(0) == ["quantized::linear_dynamic", "aten::add"]       # costliest first
    assert tab.ops_table.item(0, 2).text() == "78.0%" and tab.ops_table.item(0, 3).text() == "14"
    assert "[64, 8, 224]" in tab.ops_table.item(0, 4).text()
    assert "slower" in tab.sentence and "quantized::linear_dynamic" in tab.sentence
    assert tab.sentence in tab.sentence_label.text() and f"#{base}" in tab.views.tabText(1)
    groups = dict(zip(tab.diff_table.column_texts(1), tab.diff_table.column_texts(0)))
    assert groups == {"quantized::linear_dynamic": "new", "aten::addmm": "gone", "aten::copy_": "gone",
                      "aten::add": "unchanged"}
    shares = dict(zip(tab.diff_table.column_texts(1), tab.diff_table.column_texts(5)))
    # +1100 µs and −800 µs of a +210 µs change
    assert shares["quantized::linear_dynamic"] == "524%" and shares["aten::addmm"] == "−381%"
    assert "<b>new</b></span> 1 op +1.10 ms (524%)" in tab.diff_groups.text()
    tab.show_runs(store, [int8])                   # the variant alone: its stored baseline is found
    assert tab.selected.baseline.id == base and tab.diff is not None


def test_profile_tab_says_how_to_record_a_missing_profile(qtbot, store):
    base = _add(store)
    int8 = _add(store, [QUANTIZE], profile=INT8_PROFILE)
    tab = ProfileTab()
    qtbot.addWidget(tab)
    tab.show_runs(store, [base])
    assert "no per-op profile" in tab.hint_text() and "<b>Profile</b>" in tab.hint_text()
    command = tab.hint_command.command()
    assert command.startswith(f"workbench bench {MODEL}") and "--profile" in command
    tab.show_runs(store, [int8])                   # profiled, but its baseline is not: the diff page says so
    assert tab.hint_text() == "" and tab.diff is None and "has no per-op profile" in tab.diff_hint.text()
    assert "--profile" in tab.diff_command.command() and "--plugin" not in tab.diff_command.command()
    failed = _add(store, ["fuse"], profile={"error": "the profiler failed: RuntimeError: boom", "seconds": 0.1})
    tab.show_runs(store, [failed])
    assert "failed" in tab.hint_text() and "boom" in tab.hint_text()
    tab.show_runs(store, [])
    assert "Select a run" in tab.hint_text()


def test_profile_diff_refuses_runs_of_another_model(qtbot, store):
    other = _add(store, model="demo:digits-cnn", profile=BASE_PROFILE)
    int8 = _add(store, [QUANTIZE], profile=INT8_PROFILE)
    tab = ProfileTab()
    qtbot.addWidget(tab)
    tab.show_runs(store, [other, int8])
    assert tab.selected.baseline is None or tab.selected.baseline.model == MODEL
    assert tab.diff is None and tab.ops_table.rowCount() == 2


def test_layers_tab_table_chart_and_seed_quantities(qtbot, store):
    int8 = _add(store, [QUANTIZE], layers=LAYERS)
    tab = LayersTab()
    qtbot.addWidget(tab)
    tab.show_runs(store, [int8])
    assert tab.hint_text() == ""
    assert tab.table.column_texts(0) == ["embed", "blocks.0.fc", "blocks.0.act", "head"]     # leaves, in run order
    row = {tab.table.horizontalHeaderItem(c).text(): tab.table.item(0, c).text()
           for c in range(tab.table.columnCount())}
    assert row["output rel. error"] == "5.00e-03" and row["‖Δw‖/‖w‖"] == "1.04%"
    assert row["|w − q(w)| mean / max"] == "0.0004 / 0.0009" and row["weights"] == "→ qint8"
    assert row["type"] == "Linear(dynamic int8)"
    assert tab.table.item(1, 3).text() == "31.00%" and "pruned" in tab.table.item(1, 5).text()
    assert tab.chart.shown == ["embed", "blocks.0.fc", "blocks.0.act", "head"]
    assert tab.chart.values == [0.005, 0.012, 0.03, 0.009]
    assert tab.chart.bar_color("embed").name() != tab.chart.bar_color("blocks.0.fc").name()
    tab.chart.set_measure("weight")                # only the layers whose weights changed
    assert tab.chart.shown == ["embed", "blocks.0.fc", "head"] and tab.chart.values[1] == 0.31
    tab.chart.set_measure("params")
    assert "before" in tab.chart.key.text()
    assert "most drift: blocks.0.act" in tab.header.text() and "a stored note" in tab.notes.text()
    assert not tab.compare_button.isVisible() and not tab.scan_button.isVisible()     # no bridge: no jobs


def test_layers_tab_hints(qtbot, store):
    base = _add(store)
    int8 = _add(store, [QUANTIZE])
    onnx = _add(store, [QUANTIZE], layers={"unavailable": "the model is ONNX: no forward hook"})
    tab = LayersTab()
    qtbot.addWidget(tab)
    tab.show_runs(store, [int8])
    assert "stored no layer comparison" in tab.hint_text()
    assert tab.layers_command.command() == f"workbench --db {store.path} layers {int8}"
    assert "No sensitivity scan" in tab.scan_hint.text() and f"--scan {QUANTIZE}" in tab.scan_hint_command.command()
    tab.show_runs(store, [base])
    assert "is a baseline" in tab.hint_text() and "--scan" in tab.layers_command.command()
    tab.show_runs(store, [onnx])
    assert "no forward hook" in tab.hint_text()


def test_stored_scan_shows_the_ranking_and_a_copyable_skip_command(qtbot, store):
    int8 = _add(store, [QUANTIZE], layers=LAYERS)
    save_scan(store, int8, QUANTIZE, SCAN)
    tab = LayersTab()
    qtbot.addWidget(tab)
    tab.show_runs(store, [int8])
    assert tab.scan_stack.currentIndex() == 1
    assert tab.scan_table.column_texts(1) == ["embed", "head"] and tab.scan_table.item(0, 4).text() == "0.0028"
    assert tab.scan_table.horizontalHeaderItem(3).text() == "top-1 agreement alone"
    assert "Skip the 1 most sensitive layer" in tab.suggestion.text()
    command = tab.skip_command.command()
    assert command == f"workbench bench {MODEL} --plugin quantize:method=dynamic_int8,skip=embed --threads 1"
    tab.skip_command.copy_button.click()
    assert QGuiApplication.clipboard().text() == command


class FakeBridge(QObject):
    """The bridge's explain API, answering when the test says."""
    explainEvent = Signal(int, object)
    explainFinished = Signal(int, object)
    explainFailed = Signal(int, str, str)
    busyChanged = Signal(bool)

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[tuple] = []
        self.cancelled = False

    def explain(self, job, run_id, step=None):
        self.calls.append((job, run_id, step))
        return 7

    def cancel_explain(self):
        self.cancelled = True

    def is_busy(self):
        return False


def test_scan_button_runs_the_job_with_progress_and_cancel(qtbot, store):
    bridge = FakeBridge()
    int8 = _add(store, [QUANTIZE], layers=LAYERS)
    tab = LayersTab(bridge)
    qtbot.addWidget(tab)
    tab.show()
    tab.show_runs(store, [int8])
    assert tab.scan_button.isEnabled() and tab.compare_button.isEnabled() and not tab.cancel_button.isVisible()
    tab.scan_button.click()
    assert bridge.calls == [("scan", int8, {"name": "quantize", "params": {"method": "dynamic_int8"}})]
    assert tab.busy() and tab.cancel_button.isVisible() and not tab.scan_button.isEnabled()
    bridge.explainEvent.emit(7, {"type": "progress", "phase": "scan", "fraction": 0.5, "message": "layer 7/14"})
    assert tab.progress.value() == 500 and "layer 7/14" in tab.progress.format()
    save_scan(store, int8, QUANTIZE, SCAN)                 # what the bridge stores before it answers
    bridge.explainFinished.emit(7, {"job": "scan", "run_id": int8, "step": QUANTIZE, "result": {"scan": SCAN}})
    assert not tab.busy() and tab.views.currentIndex() == 1 and tab.scan_table.rowCount() == 2
    assert "done" in tab.status.text() and not tab.cancel_button.isVisible()
    tab.compare_button.click()
    tab.cancel_button.click()
    assert bridge.cancelled and "cancelling" in tab.status.text()
    bridge.explainFailed.emit(7, "cancelled by the user", "")
    assert tab.status.text() == "cancelled: nothing was stored" and tab.compare_button.isEnabled()
    tab.compare_button.click()
    bridge.explainFailed.emit(7, "could not load the model", "")
    assert tab.status.text() == "could not load the model" and "c0392b" in tab.status.styleSheet()


def test_bridge_refuses_a_bad_scan_step_before_any_worker(qtbot, tmp_path):
    from workbench.gui.bridge import SessionBridge
    bridge = SessionBridge(tmp_path / "runs.sqlite")
    bridge._prewarm_timer.stop()                  # no spare worker: nothing here needs one
    try:
        int8 = _add(bridge.store, [QUANTIZE])
        with qtbot.waitSignal(bridge.explainFailed, timeout=20000) as failed:
            bridge.explain("scan", int8, {"name": "quantize", "params": {"method": "no_such_method"}})
        assert "no_such_method" in failed.args[1]
        qtbot.waitUntil(lambda: not bridge.explaining(), timeout=5000)   # the thread ends just after it answers
    finally:
        bridge.shutdown(2.0)
        bridge.store.close()


def test_run_dock_profile_box_sets_the_spec(qtbot):
    panel = RunPanel()
    qtbot.addWidget(panel)
    assert panel.fill(RunSpec(model="m")).profile is False
    panel.profile_check.setChecked(True)
    assert panel.fill(RunSpec(model="m")).profile is True
    state = panel.state()
    again = RunPanel()
    qtbot.addWidget(again)
    again.restore_state(state)
    assert again.profile_check.isChecked()
    # the phases after timing say what they do (the measure bar is done: they are not timed)
    panel.job_started(SimpleNamespace(spec=RunSpec(model="m", profile=True), label="m", id=1))
    panel.handle_event({"type": "phase", "phase": "profile", "message": "per-op profile: 5 more iterations"})
    assert "per-op profile" in panel.status_label.text() and panel.bars["measure"].value() == 1000


def test_results_pane_has_the_tabs_and_fills_them_on_show(make_workbench):
    w = make_workbench()
    base = _add(w.store, profile=BASE_PROFILE)
    int8 = _add(w.store, [QUANTIZE], profile=INT8_PROFILE, layers=LAYERS)
    w.results.refresh()
    pane = w.results_split
    tabs = [pane.charts.tabs.tabText(i) for i in range(pane.charts.tabs.count())]
    assert tabs[tabs.index("Profile"):tabs.index("Profile") + 2] == ["Profile", "Layers"]
    w.select_runs([base, int8])
    pane.charts.tabs.setCurrentIndex(tabs.index("Profile"))
    assert pane.profile_tab.selected.run.id == int8 and pane.profile_tab.diff is not None
    pane.charts.tabs.setCurrentIndex(tabs.index("Layers"))
    assert pane.layers_tab.table.rowCount() == 4 and pane.layers_tab.compare_button.isVisible()
