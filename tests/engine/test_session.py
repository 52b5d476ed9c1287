"""The worker process and the session: real runs, and every way a run can go wrong."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time

import numpy as np
import pytest

from core_fixtures import make_tiny_models, process_alive, write_bad_models
from workbench.engine.session import Session
from workbench.spec import InputSpec, RunSpec
from workbench.results.store import ResultsStore

QUICK = dict(iters=50, duration_s=0.2, warmup_min_iters=5, warmup_max_s=0.3)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return make_tiny_models(tmp_path_factory.mktemp("tiny"))


@pytest.fixture
def bad_models(tmp_path, monkeypatch):
    weights = write_bad_models(tmp_path)
    # The worker inherits the environment, so it can import the factories module.
    monkeypatch.setenv("PYTHONPATH", str(tmp_path) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    return weights


def test_onnx_run_is_measured_stored_and_exact(store, tiny):
    events = []
    record = Session(store).run(RunSpec(model=str(tiny["onnx"]), batch=8, **QUICK), on_event=events.append)
    assert record.status == "done", record.error
    r = record.result
    stored = store.latencies(record.id)
    assert r["latency"]["n"] == len(stored) >= 50
    assert r["latency"]["median_ms"] == pytest.approx(np.median(stored) / 1e6)
    assert r["latency"]["batch"] == 8 and r["runtime_name"] == "onnxruntime"
    assert r["fidelity"]["exact"] and r["fidelity"]["cosine"] == pytest.approx(1.0)
    assert r["telemetry"]["host_peak_rss_bytes"] > 50e6         # the worker really holds torch + ORT
    assert r["telemetry_status"]["nvml"].startswith("disabled")  # CPU run: NVML not touched
    assert r["energy"]["joules"] is None
    assert store.samples(record.id), "telemetry samples are stored"
    assert r["cold_ms"] > 0 and r["warmup"]["iterations"] >= 5
    types = {e["type"] for e in events}
    assert {"run_created", "started", "phase", "latency_batch", "telemetry", "result", "run_finished"} <= types
    env = record.environment
    assert env["python"] and env["host"]["cpu_logical_cores"] >= 1 and env["worker"]["torch"]
    assert env["packages"]["onnxruntime"]


def test_worker_runs_under_fixed_allocator_and_gpu_order_conditions(store, tiny, monkeypatch):
    # The worker's glibc malloc thresholds and CUDA device order are set, not left to the
    # process's history, and recorded with the run; a value the user exported wins.
    monkeypatch.setenv("MALLOC_TRIM_THRESHOLD_", "12345678")
    monkeypatch.delenv("MALLOC_MMAP_THRESHOLD_", raising=False)
    monkeypatch.delenv("CUDA_DEVICE_ORDER", raising=False)
    record = Session(store).run(RunSpec(model=str(tiny["onnx"]), batch=2, **QUICK))
    assert record.status == "done", record.error
    conditions = record.environment["worker"]["conditions"]
    assert conditions == {"CUDA_DEVICE_ORDER": "PCI_BUS_ID", "MALLOC_MMAP_THRESHOLD_": str(32 << 20),
                          "MALLOC_TRIM_THRESHOLD_": "12345678"}


def test_torch_run_uses_threads_and_given_inputs(store, tiny):
    record = Session(store).run(RunSpec(model=str(tiny["torchscript"]), inputs=[InputSpec.parse("16x64")],
                                        threads=1, **QUICK))
    assert record.status == "done", record.error
    assert record.result["threads"] == 1 and record.result["runtime"]["threads"] == 1
    assert record.result["inputs"] == ["input_0=16x64:float32"] or record.result["inputs"][0].endswith("16x64:float32")


def test_model_without_declared_inputs_asks_for_them(store, tiny):
    record = Session(store).run(RunSpec(model=str(tiny["torchscript"]), **QUICK))
    assert record.status == "failed"
    assert "does not declare its inputs: pass --input SHAPE:DTYPE" in record.error


def test_wrong_input_shape_reports_expected_shape(store, tiny):
    record = Session(store).run(RunSpec(model=str(tiny["onnx"]), inputs=[InputSpec.parse("x=8x65")], **QUICK))
    assert record.status == "failed"
    assert "rejected inputs of shape 8x65" in record.error and "64" in record.error


def test_nan_outputs_are_flagged(store, tiny, bad_models):
    record = Session(store).run(RunSpec(model=str(bad_models), factory="wb_bad_models:returns_nan",
                                        inputs=[InputSpec.parse("2x4")], **QUICK))
    assert record.status == "done", record.error
    assert any("NaN/Inf" in f for f in record.result["flags"])
    assert record.result["fidelity"]["nonfinite_outputs"] > 0


@pytest.mark.parametrize("factory, message", [
    ("segfault", "segmentation fault"),
    ("oom_killed", "killed (SIGKILL); most often the system ran out of memory"),
    ("exits", "the model called sys.exit(3)"),
])
def test_worker_crashes_are_recorded_and_the_next_run_works(store, tiny, bad_models, factory, message):
    session = Session(store)
    record = session.run(RunSpec(model=str(bad_models), factory=f"wb_bad_models:{factory}",
                                 inputs=[InputSpec.parse("2x4")], **QUICK))
    assert record.status == "failed"
    assert message in record.error
    assert session.run(RunSpec(model=str(tiny["onnx"]), batch=2, **QUICK)).status == "done"


def test_hanging_model_times_out(store, bad_models):
    record = Session(store).run(RunSpec(model=str(bad_models), factory="wb_bad_models:hangs",
                                        inputs=[InputSpec.parse("2x4")], timeout_s=6, **QUICK))
    assert record.status == "failed" and "timed out after 6 s" in record.error


def test_cancel_stops_a_long_run_within_seconds_and_keeps_data(store, tiny):
    cancel = threading.Event()
    measuring = threading.Event()

    def on_event(event):
        if event["type"] == "latency_batch" and event["phase"] == "measure":
            measuring.set()

    spec = RunSpec(model=str(tiny["onnx"]), batch=2, iters=10**7, duration_s=300, warmup_max_s=0.2)
    box = {}
    thread = threading.Thread(target=lambda: box.setdefault("r", Session(store).run(spec, on_event, cancel)))
    thread.start()
    assert measuring.wait(60)
    time.sleep(0.5)
    asked = time.monotonic()
    cancel.set()
    thread.join(30)
    assert not thread.is_alive()
    assert time.monotonic() - asked < 3.0
    record = box["r"]
    assert record.status == "cancelled" and "cancelled by the user" in record.error
    assert len(store.latencies(record.id)) > 0, "latencies measured before the cancel are kept"


def test_cuda_without_gpu_is_a_clear_failure(store, tiny):
    pytest.importorskip("torch")
    import torch
    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    record = Session(store).run(RunSpec(model=str(tiny["torchscript"]), device="cuda",
                                        inputs=[InputSpec.parse("2x64")], **QUICK))
    assert record.status == "failed" and "--device cuda requested but" in record.error and "--device cpu" in record.error


def test_inspect_reports_model_info(store, tiny):
    info = Session(store).inspect(RunSpec(model=str(tiny["onnx"])))
    assert info["parameters"] == 64 * 256 + 256 + 256 * 10 + 10
    assert info["format"] == "onnx" and info["inputs"][0]["shape"] == [-1, 64]
    info = Session(store).inspect(RunSpec(model=str(tiny["torchscript"]), inputs=[InputSpec.parse("1x64")]))
    assert info["flops"] == 2 * (64 * 256 + 256 * 10)
    assert info["layer_counts"].get("Linear", 0) + info["layer_counts"].get("RecursiveScriptModule", 0) >= 1


def test_kill_9_of_the_parent_loses_at_most_about_a_second(tmp_path, tiny):
    db = tmp_path / "killed.sqlite"
    proc = subprocess.Popen([sys.executable, "-m", "workbench.cli", "--db", str(db), "bench", str(tiny["onnx"]),
                             "--batch", "2", "--iters", "100000000", "--duration", "300"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    store = ResultsStore(db)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        runs = store.list_runs()
        if runs and store.latencies(runs[0].id):
            break
        time.sleep(0.2)
    time.sleep(3.0)
    killed_at = time.monotonic()
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    run = store.list_runs()[0]
    measure_start = next(e["t"] for e in store.events(run.id, "phase") if e["phase"] == "measure")
    stored_seconds = sum(store.latencies(run.id)) / 1e9
    measured_seconds = killed_at - measure_start
    # The per-call latencies cover nearly all of the measuring time; what is missing is what had
    # not been flushed yet (0.5 s interval + one 0.1 s batch) plus loop overhead.
    assert stored_seconds >= measured_seconds - 1.5, (stored_seconds, measured_seconds)
    worker_pid = store.events(run.id, "started")[0]["pid"]
    for _ in range(50):     # the orphaned worker notices its parent is gone and exits
        if not process_alive(worker_pid):
            break
        time.sleep(0.1)
    assert not process_alive(worker_pid)
    assert store.settle_orphaned_runs() == 1 and store.get_run(run.id).status == "failed"
