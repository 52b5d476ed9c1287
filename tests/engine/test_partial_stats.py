"""A run that stops while measuring (cancelled, timed out, crashed) keeps the statistics of the
iterations it timed, marked partial; a comparison shows them but never turns them into a speed-up."""
from __future__ import annotations

import os
import signal
import threading

import numpy as np
import pytest

from workbench.engine.session import Session
from workbench.results.compare import comparison_row, comparison_table
from workbench.spec import RunSpec

LONG = dict(model="demo:digits-cnn", threads=1, iters=10**7, duration_s=300, warmup_min_iters=2, warmup_max_s=0.2)
QUICK = dict(model="demo:digits-cnn", batch=1, threads=1, iters=20, duration_s=0.05, warmup_min_iters=2,
             warmup_max_s=0.2)
BATCHES = 3         # measure batches (about 0.1 s each) before the run is stopped


def _run_stopped_while_measuring(store, spec: RunSpec, stop):
    """Run ``spec`` and call ``stop(cancel, worker_pid)`` once ``BATCHES`` measure batches arrived."""
    cancel = threading.Event()
    seen = {"batches": 0, "pid": None}

    def on_event(event):
        if event["type"] == "started":
            seen["pid"] = event["pid"]
        if event["type"] == "latency_batch" and event["phase"] == "measure":
            seen["batches"] += 1
            if seen["batches"] == BATCHES:
                stop(cancel, seen["pid"])

    return Session(store).run(spec, on_event, cancel)


def test_a_cancelled_run_keeps_its_latency_statistics_marked_partial(store):
    record = _run_stopped_while_measuring(store, RunSpec(batch=1, **LONG), lambda cancel, pid: cancel.set())
    assert record.status == "cancelled" and "cancelled by the user" in record.error
    stored = store.latencies(record.id, "measure")
    latency = record.result["latency"]
    assert record.result["partial"] is True and latency["partial"] is True
    assert latency["n"] == len(stored) > 0
    assert latency["median_ms"] == pytest.approx(np.median(stored) / 1e6)
    assert latency["batch"] == 1 and latency["throughput_per_s"] == pytest.approx(1e3 / latency["median_ms"])
    assert any(note.startswith(f"partial: statistics of the {len(stored)} timed iterations")
               for note in record.result["notes"])

    # Beside a finished baseline: the numbers are shown, marked, and never become a speed-up or a win.
    baseline = Session(store).run(RunSpec(**QUICK))
    assert baseline.status == "done", baseline.error
    row = comparison_row(record, baseline)
    assert row["partial"] is True and row["p50_ms"] == latency["median_ms"] and row["n"] == len(stored)
    assert row["speedup"] is None and row["speedup_ci"] is None and row["speedup_significant"] is None
    assert row["verdict"]["level"] == "failed" and row["verdict"]["fidelity_ok"] is None
    assert comparison_row(baseline, None)["partial"] is False
    table = comparison_table([comparison_row(baseline, None), row])
    assert "cancelled (partial)" in table


def test_a_crashed_run_keeps_partial_statistics_without_guessing_the_models_batch(store):
    # No --batch: the demo's own default applies in the worker, which never said which it was.
    record = _run_stopped_while_measuring(store, RunSpec(**LONG), lambda cancel, pid: os.kill(pid, signal.SIGKILL))
    assert record.status == "failed" and "killed" in record.error
    latency = record.result["latency"]
    assert latency["partial"] is True and latency["n"] == len(store.latencies(record.id)) > 0
    assert latency["batch"] is None and latency["throughput_per_s"] is None
    assert comparison_row(record, None)["verdict"]["level"] == "failed"


def test_a_run_that_times_out_while_measuring_keeps_partial_statistics(store):
    # The timeout counts from the run's start; 8 s leaves seconds of measuring after a worker start
    # of 2-5 s on this 2-core machine (a safety margin, not a timing assertion: too busy = skip).
    record = Session(store).run(RunSpec(batch=1, timeout_s=8, **LONG))
    assert record.error.startswith("timed out after 8 s")
    stored = store.latencies(record.id, "measure")
    if not stored:
        pytest.skip("the machine was too busy to start measuring within the 8 s timeout")
    latency = record.result["latency"]
    assert latency["partial"] is True and latency["n"] == len(stored)
    assert any(note.startswith(f"partial: statistics of the {len(stored)} timed iterations measured before the "
                               "run stopped") for note in record.result["notes"])


def test_a_run_stopped_before_measuring_has_no_statistics(store):
    cancel = threading.Event()

    def on_event(event):
        if event["type"] == "phase" and event["phase"] == "load":
            cancel.set()

    record = Session(store).run(RunSpec(batch=1, **LONG), on_event, cancel)
    assert record.status == "cancelled"
    assert "latency" not in record.result and record.result["partial"] is True
    row = comparison_row(record, None)
    assert row["p50_ms"] is None and row["partial"] is False and row["verdict"]["level"] == "failed"
