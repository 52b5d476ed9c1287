"""Resuming an interrupted sweep from the GUI (the Results' Sweep tab's Resume), the same engine call
as ``workbench sweep --resume ID``: only the runs that did not finish are queued, the sweep ends
done; a sweep with nothing left is refused in one line. Runs come from the stand-in session of
tests/sweep_fixtures.py (real runs in a real store), so no worker process starts here."""
from __future__ import annotations

import pyqtgraph as pg
from sweep_fixtures import FakeSession, specs_run

from workbench.results.sweeps import get_sweep
from workbench.spec import PluginStep, RunSpec


def _interrupted_sweep(w, qtbot) -> int:
    w.bridge.queue.session = FakeSession(w.bridge.store, stop_after=2)     # the 2nd run is stopped mid-way
    plan = w.bridge.plan_sweep(RunSpec(model="demo:digits-cnn", iters=5, duration_s=0.05), ["batch=1,8,32,64"])
    with qtbot.waitSignal(w.bridge.sweepFinished, timeout=20_000) as finished:
        assert w.runs.start_sweep(plan, "batches")
    sweep_id, status, _message = finished.args
    assert status == "interrupted" and get_sweep(w.bridge.store, sweep_id).counts()["done"] == 1
    return sweep_id


def test_resume_runs_what_is_left_of_an_interrupted_sweep(make_workbench, qtbot, catch_errors):
    w = make_workbench()
    sweep_id = _interrupted_sweep(w, qtbot)
    tab = w.results_split.sweep_tab
    qtbot.waitUntil(lambda: tab.current_sweep_id() == sweep_id, timeout=5_000)    # the window showed it
    assert not tab.resume_button.isHidden() and tab.resume_button.isEnabled()
    assert f"--resume {sweep_id}" in tab.resume_button.toolTip() and "3 run(s)" in tab.resume_button.toolTip()
    # one point measured so far: its interval is an error bar that can be laid out (lists crashed the paint)
    bars = [i for i in tab.latency_plot.items if isinstance(i, pg.ErrorBarItem)]
    assert len(bars) == 1 and bars[0].boundingRect().height() > 0

    session = w.bridge.queue.session = FakeSession(w.bridge.store)
    first_jobs = len(w.bridge.jobs())
    with qtbot.waitSignal(w.bridge.sweepFinished, timeout=20_000) as finished:
        tab.resume_button.click()
    assert finished.args[:2] == [sweep_id, "done"]
    assert specs_run(session) == ["b8 baseline", "b32 baseline", "b64 baseline"]     # only what was left
    resumed = w.bridge.jobs()[first_jobs:]
    assert [j.group for j in resumed] == [f"sweep-{sweep_id}"] * 3 and all(j.status == "done" for j in resumed)
    record = get_sweep(w.bridge.store, sweep_id)
    assert record.status == "done" and record.counts()["done"] == 4 and record.name == "batches"
    qtbot.waitUntil(lambda: tab.resume_button.isHidden(), timeout=5_000)     # the tab read it again: done
    assert "4/4 run(s) done" in tab.summary.text()
    assert not catch_errors

    # nothing left: refused in one line, before anything is queued
    with qtbot.waitSignal(w.bridge.sweepFailed, timeout=10_000):
        assert w.runs.resume_sweep(sweep_id)
    qtbot.waitUntil(lambda: bool(catch_errors), timeout=5_000)
    assert "nothing left to run" in catch_errors[0][0] and len(w.bridge.jobs()) == first_jobs + 3


def test_a_gui_sweep_baseline_checks_its_points_first(make_workbench, qtbot):
    """As the CLI's executors do (PointTask.check): each round's baseline checks the points compared
    with it on the loaded model before it is timed."""
    w = make_workbench()
    session = w.bridge.queue.session = FakeSession(w.bridge.store)
    spec = RunSpec(model="demo:digits-cnn", plugins=[PluginStep.parse("prune:method=structured")], iters=5,
                   duration_s=0.05)
    plan = w.bridge.plan_sweep(spec, ["prune.amount=0.3,0.6"], repeat=2)
    with qtbot.waitSignal(w.bridge.sweepFinished, timeout=20_000) as finished:
        assert w.runs.start_sweep(plan)
    assert finished.args[1] == "done"
    assert specs_run(session) == ["b1 baseline", "b1 prune=0.3", "b1 prune=0.6"] * 2
    amounts = [[v.plugins[0].params["amount"] for v in checked] for checked in session.checked]
    assert amounts == [[0.3, 0.6], [], []] * 2
