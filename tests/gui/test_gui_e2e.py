"""End to end through the real core: demo model, real worker processes, real store. No mocks of
the session. Runs are kept short (tens of iterations, 0.2 s)."""
from __future__ import annotations

import sys
import time
from pathlib import Path

import pytest
from PySide6.QtCore import QElapsedTimer, Qt, QTimer

from gui_probe import run_gui_probe

pytestmark = pytest.mark.slow


def _short_runs(w, iters: int = 30, duration: float = 0.2, batch: int = 16) -> None:
    w.run_panel.iters_spin.setValue(iters)
    w.run_panel.duration_spin.setValue(duration)
    w.run_panel.batch_spin.setValue(batch)


def _open_demo(w, qtbot, catch_errors, name: str = "digits-cnn") -> dict:
    w.open_model(f"demo:{name}")
    assert w.model_panel.busy_bar.isVisible()          # described in the background, window free
    qtbot.waitUntil(lambda: w.model_panel.info() is not None or bool(catch_errors), timeout=120_000)
    assert not catch_errors, catch_errors
    return w.model_panel.info()


class _StallProbe:
    """A 10 ms timer: the largest gap between its ticks is how long the event loop was blocked."""

    def __init__(self) -> None:
        self.clock = QElapsedTimer()
        self.clock.start()
        self.last = self.clock.elapsed()
        self.max_gap = 0
        self.timer = QTimer()
        self.timer.setTimerType(Qt.TimerType.PreciseTimer)
        self.timer.setInterval(10)
        self.timer.timeout.connect(self._tick)
        self.timer.start()

    def _tick(self) -> None:
        now = self.clock.elapsed()
        self.max_gap = max(self.max_gap, now - self.last)
        self.last = now

    def stop(self) -> None:
        self.timer.stop()


def test_demo_baseline_plus_variant_end_to_end(make_workbench, qtbot, catch_errors):
    torch_before = "torch" in sys.modules
    w = make_workbench()
    info = _open_demo(w, qtbot, catch_errors)
    assert info["parameters"] > 0
    assert w.model_panel.params_value.text() != "—"
    assert w.model_panel.layers_tree.topLevelItemCount() > 0
    assert w.model_panel.inputs_edit.isReadOnly()                     # the demo fixes its inputs
    _short_runs(w)
    w.plugin_panel.set_checked("prune")
    w.plugin_panel.form("prune").set_values({"method": "structured", "amount": 0.3})
    qtbot.waitUntil(lambda: w.run_panel.pair_button.isEnabled())

    redraw_points: list[int] = []
    w.live.redrawn.connect(lambda: redraw_points.append(w.live.latency_point_count()))
    probe = _StallProbe()
    qtbot.mouseClick(w.run_panel.pair_button, Qt.MouseButton.LeftButton)
    jobs = w.bridge.jobs()
    assert [j.label for j in jobs] == ["baseline", "prune:amount=0.3"]
    assert w.run_panel.cancel_button.isEnabled()
    qtbot.waitUntil(lambda: all(j.finished for j in w.bridge.jobs()), timeout=400_000)
    probe.stop()
    jobs = w.bridge.jobs()
    assert [j.status for j in jobs] == ["done", "done"], [(j.label, j.status, j.message) for j in jobs]
    assert not catch_errors, catch_errors
    base_id, variant_id = (j.run_id for j in jobs)

    # the results table holds both runs with real numbers (the job objects finish in the bridge's
    # thread; the table follows when the queued jobFinished signal reaches the GUI thread)
    qtbot.waitUntil(lambda: w.results.row_count() == 2 and all(
        w.results.model.comparison(r)["status"] == "done" for r in range(2)), timeout=10_000)
    rows = {w.results.model.comparison(r)["id"]: w.results.model.comparison(r)
            for r in range(w.results.row_count())}
    for run_id in (base_id, variant_id):
        row = rows[run_id]
        assert row["status"] == "done"
        assert row["p50_ms"] is not None and row["p50_ms"] > 0
        assert row["throughput"] is not None and row["throughput"] > 0
        assert row["n"] >= 30
    assert rows[variant_id]["chain"].startswith("prune")
    assert rows[variant_id]["baseline_id"] == base_id
    assert rows[variant_id]["speedup"] is not None
    # both rows end up selected, so the comparison charts show the pair
    qtbot.waitUntil(lambda: sorted(w.results.selected_run_ids()) == sorted([base_id, variant_id]), timeout=10_000)

    # the live plot received the latencies of the run (the variant's, after the reset)
    assert redraw_points and max(redraw_points) > 0
    assert w.live.latency_point_count() >= 30
    # progress bars finished, queue shows both done, log has the events
    assert w.run_panel.bars["measure"].value() == w.run_panel.bars["measure"].maximum()
    assert w.run_panel.queue_list.count() == 2
    assert all("done" in w.run_panel.queue_list.item(i).text() for i in range(2))
    log = w.log.plain_text()
    assert f"#{variant_id} run finished: done" in log and "plugin prune:" in log
    # Cancel goes grey once the queue's "idle" reaches the GUI thread (a queued signal, which can
    # come after the conditions above were already true)
    qtbot.waitUntil(lambda: not w.run_panel.cancel_button.isEnabled(), timeout=10_000)
    # how long the event loop was blocked at most while the runs streamed (a measurement, not a
    # pass/fail threshold: benchmarks/gui_responsiveness.py is where it is judged)
    print(f"\nevent loop blocked for at most {probe.max_gap} ms while the runs streamed")
    if not torch_before:
        assert "torch" not in sys.modules

    # Ctrl+E: the report of the selected runs is written in a thread, the window stays free
    assert w.export_action.isEnabled()
    target = Path(w.store.path).parent / "report.html"
    with qtbot.waitSignal(w.bridge.reportDone, timeout=120_000) as blocker:
        w.write_report(w.results.selected_run_ids(), str(target))
    assert Path(blocker.args[0]).exists() and target.stat().st_size > 1000
    assert not catch_errors, catch_errors

    # past runs come back from the store when the application starts again
    w.close()
    w2 = make_workbench()
    assert w2.results.row_count() == 2
    assert {w2.results.model.comparison(r)["id"] for r in range(2)} == {base_id, variant_id}


def test_cancel_a_long_run_within_seconds(make_workbench, qtbot, catch_errors):
    w = make_workbench()
    _open_demo(w, qtbot, catch_errors)
    w.run_panel.iters_spin.setValue(1_000_000)
    w.run_panel.duration_spin.setValue(60.0)
    w.run_panel.batch_spin.setValue(1)
    qtbot.mouseClick(w.run_panel.run_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: w.live.latency_point_count() > 0, timeout=120_000)
    job = w.bridge.current()
    assert job is not None and job.status == "running"
    probe = _StallProbe()
    started = time.monotonic()
    w.activateWindow()
    qtbot.waitUntil(w.isActiveWindow)
    qtbot.keyClick(w, Qt.Key.Key_Escape)                       # Esc / Ctrl+. / the Cancel button
    assert "cancelling" in w.run_panel.status_label.text()
    # the worker stops measuring within a batch (~0.1 s) and says so ...
    qtbot.waitUntil(lambda: w.run_panel.stopped, timeout=5_000)
    stopped = time.monotonic() - started
    n_at_stop = w.live.latency_point_count()
    # ... and the run is recorded as cancelled once the worker process has exited
    qtbot.waitUntil(lambda: job.finished, timeout=15_000)
    elapsed = time.monotonic() - started
    probe.stop()
    assert job.status == "cancelled", (job.status, job.message)
    print(f"cancel: measuring stopped {stopped:.2f} s after Esc, run recorded cancelled after {elapsed:.2f} s")
    print(f"event loop blocked for at most {probe.max_gap} ms while cancelling")
    assert w.live.latency_point_count() == n_at_stop              # nothing measured after the stop
    record = w.store.get_run(job.run_id)
    assert record.status == "cancelled"
    qtbot.waitUntil(lambda: "cancelled" in w.run_panel.status_label.text(), timeout=5_000)  # via jobFinished
    assert not catch_errors                                    # a cancel is not an error
    # the window is still usable: the next run can be queued at once
    assert w.run_panel.run_button.isEnabled() and not w.bridge.is_busy()


_NO_TORCH_RUN = """
    after_build = "torch" in sys.modules
    w.open_model("demo:digits-cnn")
    w.run_panel.iters_spin.setValue(20); w.run_panel.duration_spin.setValue(0.2)
    w.run_panel.batch_spin.setValue(8)
    jobs = w.start("run")
    deadline = time.monotonic() + 240
    while not all(j.finished for j in jobs) and time.monotonic() < deadline:
        app.processEvents(); time.sleep(0.01)
    for _ in range(50):
        app.processEvents(); time.sleep(0.01)
    print(json.dumps({"after_build": after_build, "after_run": "torch" in sys.modules,
                      "status": [j.status for j in jobs], "messages": [j.message for j in jobs],
                      "points": w.live.latency_point_count()}))
"""


def test_gui_process_never_imports_torch_even_after_a_run(tmp_path):
    result = run_gui_probe(_NO_TORCH_RUN, tmp_path, timeout=300)
    assert result["status"] == ["done"], result
    assert result["points"] > 0
    assert result["after_build"] is False and result["after_run"] is False
