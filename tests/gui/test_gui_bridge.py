"""The session bridge's queue semantics (order, cancel, remove, failures, thread hand-over) with a
scripted stand-in for Session, plus the queue-building of the main window's run buttons. The real
Session is exercised end to end in test_gui_e2e.py."""
from __future__ import annotations

import threading
import time

import pytest

from workbench.errors import WorkbenchError
from workbench.gui.bridge import Job, SessionBridge
from workbench.gui.docks.log_dock import describe_event
from workbench.spec import PluginStep, RunSpec


class ScriptedSession:
    """Emits a few events per run; a run whose label is "long" waits for its cancel event."""

    def __init__(self) -> None:
        self.threads: set[str] = set()
        self.started: list[str] = []
        self.next_id = 1

    def run(self, spec, on_event, cancel):
        from workbench.results.store import RunRecord

        self.threads.add(threading.current_thread().name)
        self.started.append(spec.label)
        run_id, self.next_id = self.next_id, self.next_id + 1
        on_event({"type": "run_created", "run_id": run_id, "t": time.monotonic()})
        on_event({"type": "phase", "phase": "measure", "run_id": run_id, "t": time.monotonic()})
        status, error = "done", None
        if spec.label == "boom":
            raise RuntimeError("core bug")
        if spec.label == "bad":
            raise WorkbenchError("bad input")
        if spec.label == "long":
            if not cancel.wait(10):
                raise AssertionError("never cancelled")
            status, error = "cancelled", "cancelled by the user"
        on_event({"type": "latency_batch", "phase": "measure", "values_ns": [1000, 2000, 3000],
                  "run_id": run_id, "t": time.monotonic()})
        return RunRecord(run_id, time.time(), time.time(), status, None, [], spec.model, spec.describe_chain(),
                         "torch", "cpu", None, spec.to_dict(), {}, {}, error, None)


@pytest.fixture
def bridge(qtbot, tmp_path):
    b = SessionBridge(tmp_path / "runs.sqlite")
    b.queue.session = ScriptedSession()
    yield b
    assert b.shutdown(timeout_s=5)


def _spec(label: str) -> RunSpec:
    return RunSpec(model="demo:digits-cnn", label=label)


def test_jobs_run_in_order_off_the_gui_thread_and_events_arrive_in_the_gui_thread(bridge, qtbot):
    events, finished = [], []
    bridge.eventReceived.connect(lambda e: events.append((threading.current_thread().name, e)))
    bridge.jobFinished.connect(finished.append)
    jobs = bridge.enqueue([_spec("a"), _spec("b")])
    qtbot.waitUntil(lambda: len(finished) == 2, timeout=5_000)
    assert bridge.queue.session.started == ["a", "b"]
    assert bridge.queue.session.threads == {"workbench-runner"}
    assert {name for name, _ in events} == {threading.main_thread().name}
    assert [e["job_id"] for _, e in events if e["type"] == "run_created"] == [jobs[0].id, jobs[1].id]
    assert [j.status for j in jobs] == ["done", "done"] and [j.run_id for j in jobs] == [1, 2]
    assert not bridge.is_busy()


def test_cancel_stops_the_running_job_and_drops_the_queue(bridge, qtbot):
    finished = []
    bridge.jobFinished.connect(finished.append)
    busy = []
    bridge.busyChanged.connect(busy.append)
    jobs = bridge.enqueue([_spec("long"), _spec("a"), _spec("b")])
    qtbot.waitUntil(lambda: bridge.current() is jobs[0], timeout=5_000)
    assert bridge.is_busy()
    assert bridge.remove(jobs[2].id)                 # a queued job can be taken off
    assert not bridge.remove(jobs[0].id)             # the running one cannot (cancel it instead)
    bridge.cancel_all()
    qtbot.waitUntil(lambda: busy == [True, False], timeout=5_000)
    assert [j.status for j in jobs] == ["cancelled", "cancelled", "cancelled"]
    assert bridge.queue.session.started == ["long"]
    assert jobs[2].message == "removed from the queue"


def test_failures_are_reported_not_raised(bridge, qtbot):
    finished = []
    bridge.jobFinished.connect(finished.append)
    jobs = bridge.enqueue([_spec("bad"), _spec("boom"), _spec("ok")])
    qtbot.waitUntil(lambda: len(finished) == 3, timeout=5_000)
    assert [j.status for j in jobs] == ["failed", "failed", "done"]
    assert jobs[0].message == "bad input" and jobs[0].detail is None
    assert "RuntimeError: core bug" in jobs[1].message and "Traceback" in jobs[1].detail


def test_run_buttons_queue_the_right_specs(make_workbench, monkeypatch, qtbot):
    w = make_workbench()
    w.open_model("demo:digits-cnn")
    queued = []

    def fake_enqueue(specs, labels=None, group="", **preflight):   # record instead of starting worker processes
        queued.append(([s.describe_chain() for s in specs], labels, preflight))
        return [Job(i, s, label, group) for i, (s, label) in enumerate(zip(specs, labels or specs))]

    monkeypatch.setattr(w.bridge, "enqueue", fake_enqueue)
    w.plugin_panel.set_checked("prune")
    w.plugin_panel.set_checked("fuse")
    w.plugin_panel.move("prune", 0)
    w.plugin_panel.move("fuse", 1)
    w.plugin_panel.form("prune").set_values({"amount": 0.25})
    qtbot.waitUntil(lambda: w.run_panel.all_button.isEnabled())
    w.start("run")           # nothing stored yet: the plain model is measured first (as in the CLI)
    w.start("pair")
    w.start("all")
    assert queued[0][0] == ["baseline", "prune:amount=0.25 → fuse"]
    assert queued[1][0] == ["baseline", "prune:amount=0.25 → fuse"]
    assert queued[2][0] == ["baseline", "prune:amount=0.25", "fuse", "prune:amount=0.25 → fuse"]
    assert queued[2][1] == ["baseline", "prune:amount=0.25", "fuse", "prune:amount=0.25 → fuse"]
    # the baseline checks the variants on the loaded model first (engine.runner.run_planned's rule):
    # the requested variant is required for a run and a pair, all combinations skip refused ones
    assert [q[2] for q in queued] == [{"preflight": True, "require_last": True}] * 2 + [
        {"preflight": True, "require_last": False}]


def test_plain_run_skips_the_baseline_when_one_is_stored(make_workbench, monkeypatch, qtbot):
    from workbench.engine.plan import baseline_spec
    w = make_workbench()
    w.open_model("demo:digits-cnn")
    w.plugin_panel.set_checked("fuse")
    qtbot.waitUntil(lambda: w.run_panel.run_button.isEnabled())
    variant = w.runs.build_spec()
    stored = w.bridge.store
    run_id = stored.create_run(baseline_spec(variant).to_dict(), "baseline", variant.resolved_runtime())
    stored.finish_run(run_id, "done", {"latency": {"median_ms": 1.0, "median_ci_ms": [1.0, 1.0]}})
    queued = []
    monkeypatch.setattr(w.bridge, "enqueue", lambda specs, labels=None, group="", **_: queued.append(
        [s.describe_chain() for s in specs]) or [Job(i, s, s.describe_chain(), group) for i, s in enumerate(specs)])
    w.start("run")
    assert queued == [["fuse"]]


def test_build_spec_carries_every_setting(make_workbench):
    w = make_workbench()
    w.open_model("demo:digits-cnn")
    rp = w.run_panel
    rp.runtime_combo.setCurrentIndex(rp.runtime_combo.findData("torch"))
    rp.dtype_combo.setCurrentIndex(rp.dtype_combo.findData("bfloat16"))
    rp.batch_spin.setValue(32)
    rp.threads_spin.setValue(2)
    rp.iters_spin.setValue(77)
    rp.duration_spin.setValue(0.5)
    spec = w.build_spec(plugins=[PluginStep("prune", {"amount": 0.4})])
    assert (spec.model, spec.runtime, spec.dtype, spec.batch, spec.threads, spec.iters, spec.duration_s) == \
        ("demo:digits-cnn", "torch", "bfloat16", 32, 2, 77, 0.5)
    assert spec.device == "cpu" and str(spec.plugins[0]) == "prune:amount=0.4"
    rp.rigorous_check.setChecked(True)
    spec = w.build_spec(plugins=[])
    assert spec.iters >= 1000 and 10 <= spec.duration_s      # the rigorous preset (settings, not timings)
    assert not rp.iters_spin.isEnabled()


def test_log_lines_summarize_events():
    line = describe_event({"type": "latency_batch", "phase": "measure", "run_id": 3,
                           "values_ns": [3_000_000, 1_000_000, 2_000_000]})
    assert line == "#3 measure: 3 iterations, median 2.00 ms, min 1.00 ms, max 3.00 ms"
    assert describe_event({"type": "error", "kind": "ModelLoadError", "message": "bad file"}) == \
        "ERROR (ModelLoadError): bad file"
    assert "run finished: cancelled" in describe_event({"type": "run_finished", "status": "cancelled", "run_id": 1})
