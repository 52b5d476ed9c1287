"""The GUI's sweeps (issue 16, views): the Sweep dialog plans with the core (count, time estimate,
invalid points before anything runs), a sweep runs as jobs of the run queue (progress, Cancel), and
the Results' Sweep tab draws the core's analysis. Runs come from the stand-in session of
tests/sweep_fixtures.py (real runs in a real store, computed instead of measured), so no worker
process starts here."""
from __future__ import annotations

import pytest
from sweep_fixtures import FakeSession

from workbench.engine.executors import LocalExecutor
from workbench.engine.sweep import create, plan_sweep, run_sweep
from workbench.gui.bridge import SessionBridge
from workbench.gui.results.sweep_tab import SweepTab, axis_positions
from workbench.gui.sweep_dialog import SweepDialog, axis_choices, estimate_seconds, reference_run
from workbench.results.sweeps import get_sweep
from workbench.spec import PluginStep, RunSpec

MODEL = "demo:digits-cnn"


def _spec(*plugins: str) -> RunSpec:
    return RunSpec(model=MODEL, plugins=[PluginStep.parse(p) for p in plugins], iters=5, duration_s=0.05)


@pytest.fixture
def bridge(tmp_path, qtbot):
    bridge = SessionBridge(tmp_path / "runs.sqlite")
    bridge._prewarm_timer.stop()          # no spare worker: nothing here starts one
    bridge.queue.session = FakeSession(bridge.store)
    yield bridge
    bridge.shutdown(timeout_s=5)
    bridge.store.close()


def _stored_sweep(store, spec: RunSpec, grid: list[str], **kwargs) -> int:
    plan = plan_sweep(store, spec, grid, check_gpu=False)
    sweep_id = create(store, plan)
    run_sweep(store, sweep_id, LocalExecutor(FakeSession(store, **kwargs)))
    return sweep_id


# -- the dialog ----------------------------------------------------------------------------------------
def test_axes_are_the_settings_and_the_checked_plugins_parameters():
    names = [name for name, _help, _values in axis_choices(_spec("prune:method=structured"))]
    assert names[:2] == ["batch", "threads"]
    assert "prune.amount" in names and "quantize.method" not in names


def test_dialog_counts_points_estimates_time_and_starts_only_a_valid_plan(bridge, qtbot):
    dialog = SweepDialog(bridge, _spec("prune:method=structured"))
    qtbot.addWidget(dialog)
    assert dialog.rows[0].axis() == "prune.amount"          # a plugin's numeric parameter comes first
    dialog.rows[0].values_edit.setText("0.1, 0.5")
    dialog.add_axis("batch", "1,8,32")
    assert dialog.validate_now() is None
    assert dialog.grid() == ["prune.amount=0.1,0.5", "batch=1,8,32"]
    assert "6 point(s)</b> (2 × 3)" in dialog.count_label.text()
    assert "+ 3 baseline(s)" in dialog.count_label.text()      # no stored baseline: one per batch, measured first
    assert "rough guess" in dialog.estimate_label.text()
    assert dialog.start_button.isEnabled()
    dialog.repeat_spin.setValue(3)
    dialog.validate_now()
    assert "= <b>27 run(s)</b>" in dialog.count_label.text()
    assert "measured between 3 processes" in dialog.repeat_note.text()

    # an invalid point is named before anything runs (the core's validation), and Start is off
    dialog.rows[1].values_edit.setText("1,0")
    problem = dialog.validate_now()
    assert problem and "point 2" in problem and "batch" in problem and "nothing was run" in problem
    assert not dialog.start_button.isEnabled() and dialog.plan is None
    assert "4 point(s) (2 × 2)" in dialog.count_label.text()
    dialog.rows[1].values_edit.setText("1,8,8")
    assert "twice" in dialog.validate_now()
    dialog.rows[0].values_edit.setText("0.1, 1.5")
    dialog.rows[1].values_edit.setText("1")
    assert "prune.amount" in dialog.validate_now()
    dialog.remove_axis(dialog.rows[0])
    dialog.remove_axis(dialog.rows[0])
    assert "at least one --grid" in dialog.validate_now()
    assert bridge.queue.jobs() == []                        # nothing was queued by planning


def test_time_estimate_scales_a_stored_run_of_the_model(bridge):
    store = bridge.store
    _stored_sweep(store, _spec(), ["batch=1,8"])
    reference = reference_run(store, MODEL)
    assert reference is not None and reference.model == MODEL
    plan = plan_sweep(store, _spec(), ["batch=1,64"], check_gpu=False)
    seconds, basis = estimate_seconds(plan, reference)
    assert basis.startswith(f"from run #{reference.id}")
    guess, rough = estimate_seconds(plan)
    assert "rough guess" in rough and guess > 0 and 0 < seconds      # an estimate, not a timing
    more, _ = estimate_seconds({**plan, "repeat": 3}, reference)
    assert more == pytest.approx(3 * seconds)


# -- running through the queue -------------------------------------------------------------------------
def test_a_sweep_runs_as_queue_jobs_and_is_stored(bridge, qtbot):
    plan = bridge.plan_sweep(_spec(), ["batch=1,8,32"])
    points = []
    bridge.sweepPoint.connect(lambda sweep_id, info: points.append(info))
    with qtbot.waitSignal(bridge.sweepFinished, timeout=20_000) as finished:
        bridge.start_sweep(plan, "batches")
    sweep_id, status, _message = finished.args
    assert status == "done"
    jobs = bridge.queue.jobs()
    assert [j.label for j in jobs] == [f"sweep {sweep_id} · batch={b}" for b in (1, 8, 32)]
    assert all(j.group == f"sweep-{sweep_id}" and j.status == "done" for j in jobs)
    qtbot.waitUntil(lambda: len(points) == 3)
    assert [p["finished"] for p in points] == [1, 2, 3] and points[-1]["total"] == 3
    record = get_sweep(bridge.store, sweep_id)
    assert record.name == "batches" and record.counts()["done"] == 3
    assert sorted(p.run_id for p in record.points) == sorted(j.run_id for j in jobs)


def test_stopping_the_run_in_flight_stops_the_sweep_resumably(bridge, qtbot):
    bridge.queue.session = FakeSession(bridge.store, stop_after=2)   # the 2nd run is cancelled mid-way
    plan = bridge.plan_sweep(_spec(), ["batch=1,8,32,64"])
    with qtbot.waitSignal(bridge.sweepFinished, timeout=20_000) as finished:
        bridge.start_sweep(plan)
    sweep_id, status, message = finished.args
    assert status == "interrupted" and f"--resume {sweep_id}" in message
    counts = get_sweep(bridge.store, sweep_id).counts()
    assert counts["done"] == 1 and counts["cancelled"] == 3
    assert [j.status for j in bridge.queue.jobs()] == ["done", "cancelled", "cancelled", "cancelled"]


def test_gpu_axes_are_refused_before_the_sweep_is_stored(bridge, qtbot):
    plan = bridge.plan_sweep(_spec(), ["batch=1,8"])
    for point in plan["points"]:
        point["gpu"] = {"power_limit": 200.0}
    with qtbot.waitSignal(bridge.sweepFailed, timeout=10_000) as failed:
        bridge.start_sweep(plan)
    assert "command line" in failed.args[0]
    from workbench.results.sweeps import list_sweeps
    assert list_sweeps(bridge.store) == [] and bridge.queue.jobs() == []


# -- the Sweep tab -------------------------------------------------------------------------------------
def test_sweep_tab_draws_curves_sweet_spot_and_knee(store, qtbot):
    batches = _stored_sweep(store, _spec(), ["batch=1,8,32,64"])
    pruned = _stored_sweep(store, _spec("prune:method=structured"),
                           ["prune.amount=0.1,0.3,0.5,0.7,0.9", "batch=1,8"], process_noise=0)
    tab = SweepTab()
    qtbot.addWidget(tab)
    tab.show_sweep(store, batches)
    assert tab.sweep_combo.count() == 2 and tab.current_sweep_id() == batches
    assert [tab.axis_combo.itemText(i) for i in range(tab.axis_combo.count())] == ["batch"]
    summary = tab.summary.text()
    best = tab.analysis["sweet_spot"]["best"]
    assert f"Sweet spot: <b>batch={best['values']['batch']}</b>" in summary
    assert "constant ±2 % run-to-run band" in summary               # the noise rule, said
    assert tab.latency_plot.getAxis("bottom").labelText.startswith("batch")
    assert len(tab.latency_plot.listDataItems()) >= 1
    stars = [i for i in tab.tradeoff_plot.items if getattr(i, "opts", {}).get("symbol") == "star"]
    assert len(stars) == 1
    assert "sweep a plugin parameter" in " ".join(
        i.toPlainText() for i in tab.frontier_plot.items if hasattr(i, "toPlainText"))

    # the pruning sweep: two axes, a frontier per batch with a knee; the selected run picks the sweep
    run_id = next(p.run_id for p in get_sweep(store, pruned).points if p.run_id)
    tab.show_runs(store, [run_id])
    assert tab.current_sweep_id() == pruned
    assert [tab.axis_combo.itemText(i) for i in range(2)] == ["prune.amount", "batch"]
    fronts = tab.analysis["frontier"]
    assert len(fronts) == 2 and all(len(f["front"]) == 5 for f in fronts)
    # the stand-in's trade-off bends the other way (each step costs more): no knee, and the tab says why
    assert tab.summary.text().count("No knee (batch=") == 2 and "above the line" in tab.summary.text()
    fronts[0]["knee"] = fronts[0]["front"][2]        # a front with a knee: starred and named
    tab._draw()
    knees = [i for i in tab.frontier_plot.items if getattr(i, "opts", {}).get("symbol") == "star"]
    assert len(knees) == 1 and "Knee (batch=1): <b>prune.amount=0.5" in tab.summary.text()
    tab.axis_combo.setCurrentIndex(1)
    assert tab.latency_plot.getAxis("bottom").labelText.startswith("batch")
    named = [i.name() for i in tab.latency_plot.listDataItems() if i.name()]
    assert named == [f"prune.amount={a}" for a in (0.1, 0.3, 0.5, 0.7, 0.9)]     # one curve each
    tab.budget_edit.setText("nonsense")
    tab.budget_edit.editingFinished.emit()
    assert "bad --latency-budget" in tab.summary.text()


def test_axis_positions_space_wide_numbers_by_log_and_text_by_index():
    assert axis_positions([1, 8, 64]) == ([0.0, 3.0, 6.0], "log2")
    assert axis_positions([0.1, 0.5]) == ([0.1, 0.5], "linear")
    assert axis_positions(["float32", "bfloat16"]) == ([0.0, 1.0], "index")


# -- the window ----------------------------------------------------------------------------------------
def test_sweep_button_and_menu_open_the_dialog_and_the_chart_follows(make_workbench, qtbot):
    w = make_workbench()
    w.bridge.queue.session = FakeSession(w.bridge.store)
    assert w.sweep_action in w.menuBar().actions()[1].menu().actions()
    w.open_model(MODEL)
    qtbot.waitUntil(lambda: w.run_panel.sweep_button.isEnabled(), timeout=10_000)
    assert w.sweep_action.isEnabled()
    w.run_panel.iters_spin.setValue(5)
    w.run_panel.sweep_button.click()
    dialog = w.findChild(SweepDialog)
    assert dialog is not None and dialog.spec.iters == 5 and dialog.rows[0].axis() == "batch"
    dialog.rows[0].values_edit.setText("1,8")
    assert dialog.validate_now() is None
    with qtbot.waitSignal(w.runs.sweepFinished, timeout=20_000):
        dialog.start_button.click()
    sweep_tab = w.results_split.sweep_tab
    assert w.charts.tabs.tabText(w.charts.tabs.currentIndex()) == "Sweep"
    assert sweep_tab.analysis is not None and sweep_tab.analysis["counts"]["done"] == 2
    assert "Sweet spot" in sweep_tab.summary.text()
