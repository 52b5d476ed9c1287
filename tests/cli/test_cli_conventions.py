"""The command line behaves like the Python tools people already know: --version, python -m,
global options anywhere, JSON-only stdout, `workbench MODEL`, signals, orphaned runs settled."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from core_fixtures import make_tiny_models

QUICK = ["--iters", "5", "--duration", "0.05", "--threads", "1"]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return make_tiny_models(tmp_path_factory.mktemp("tiny"))


def run_cli(*args, cwd=None, module="workbench", timeout=300):
    return subprocess.run([sys.executable, "-m", module, *map(str, args)], capture_output=True, text=True,
                          timeout=timeout, cwd=cwd)


def test_version_and_python_m(tmp_path):
    from importlib.metadata import version
    proc = run_cli("--version", cwd=tmp_path)
    assert proc.returncode == 0 and proc.stdout.strip() == f"workbench {version('workbench')}"
    helped = run_cli("--help", cwd=tmp_path)
    assert helped.returncode == 0 and "usage: workbench" in helped.stdout


def test_global_options_after_the_command(tmp_path, tiny):
    db = tmp_path / "after.sqlite"
    proc = run_cli("bench", tiny["onnx"], "--batch", 2, *QUICK, "--db", db, "-q")
    assert proc.returncode == 0, proc.stderr
    assert db.exists()
    assert proc.stderr == ""            # -q: no progress lines
    listing = json.loads(run_cli("runs", "--json", "--db", db).stdout)
    assert [r["status"] for r in listing] == ["done"]


def test_json_dash_puts_only_json_on_stdout(tmp_path, tiny):
    db = tmp_path / "db.sqlite"
    proc = run_cli("--db", db, "bench", tiny["onnx"], "--batch", 2, *QUICK, "--json", "-")
    assert proc.returncode == 0, proc.stderr
    record = json.loads(proc.stdout)          # nothing but JSON
    assert record["status"] == "done" and record["result"]["latency"]["n"] >= 5
    assert "latency   median" in proc.stderr  # the human summary moved to stderr
    for command in (["runs"], ["show", record["id"]], ["compare", record["id"]], ["plugins"],
                    ["inspect", tiny["onnx"]]):
        out = run_cli("--db", db, *command, "--json", "-")
        assert out.returncode == 0, (command, out.stderr)
        json.loads(out.stdout)


def test_json_errors_are_json_objects(tmp_path, tiny):
    db = tmp_path / "db.sqlite"
    usage = run_cli("--db", db, "bench", "missing.onnx", "--json", "-")
    assert usage.returncode == 2
    assert json.loads(usage.stdout) == {"error": "model file not found: missing.onnx", "kind": "usage"}
    failed = run_cli("--db", db, "bench", tiny["pickle"], "--input", "2x64", *QUICK, "--json", "-")
    assert failed.returncode == 1
    payload = json.loads(failed.stdout)
    assert payload["kind"] == "run_failed" and "--trust-pickle" in payload["error"]


def test_missing_data_file_is_a_usage_error_and_stores_nothing(tmp_path, tiny):
    db = tmp_path / "db.sqlite"
    proc = run_cli("--db", db, "bench", tiny["onnx"], "--data", tmp_path / "nope.npz", *QUICK)
    assert proc.returncode == 2
    assert "data file not found" in proc.stderr and "Traceback" not in proc.stderr
    assert json.loads(run_cli("--db", db, "runs", "--json").stdout) == []


def test_workbench_model_with_a_bad_path_exits_2_without_a_window(tmp_path):
    # No display and no offscreen platform: if a QApplication were created it would abort instead.
    env = {k: v for k, v in os.environ.items() if k not in ("QT_QPA_PLATFORM", "DISPLAY", "WAYLAND_DISPLAY")}
    proc = subprocess.run([sys.executable, "-m", "workbench", "nosuch.onnx"], capture_output=True, text=True,
                          timeout=120, env=env, cwd=tmp_path)
    assert proc.returncode == 2
    assert proc.stderr.strip() == "workbench: error: model file not found: nosuch.onnx"
    demo = subprocess.run([sys.executable, "-m", "workbench", "gui", "demo:nope"], capture_output=True,
                          text=True, timeout=120, env=env, cwd=tmp_path)
    assert demo.returncode == 2 and "unknown demo 'nope'" in demo.stderr


def test_workbench_model_means_gui_model():
    from workbench.cli_args import with_default_command
    assert with_default_command(["model.onnx"]) == ["gui", "model.onnx"]
    assert with_default_command(["--db", "x.sqlite", "m.pt"]) == ["--db", "x.sqlite", "gui", "m.pt"]
    assert with_default_command(["bench", "m.pt"]) == ["bench", "m.pt"]
    assert with_default_command([]) == []


def _wait_for_measuring(db, deadline_s=120):
    from workbench.results.store import ResultsStore
    store = ResultsStore(db)
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        runs = store.list_runs()
        if runs and store.latencies(runs[0].id):
            return store, runs[0]
        time.sleep(0.2)
    raise AssertionError("the run never started measuring")


def _worker_pids(run, store):
    events = store.events(run.id, "started")
    return [e["pid"] for e in events if e.get("pid")]


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGHUP])
def test_sigterm_and_sighup_cancel_like_ctrl_c(tmp_path, tiny, sig):
    db = tmp_path / "db.sqlite"
    proc = subprocess.Popen([sys.executable, "-m", "workbench", "--db", str(db), "bench", str(tiny["onnx"]),
                             "--batch", "2", "--iters", "100000000", "--duration", "300", "--threads", "1"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    store, run = _wait_for_measuring(db)
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=120)   # a safety net, not a measurement
    assert proc.returncode == 1, err
    record = store.get_run(run.id)
    assert record.status == "cancelled"
    assert signal.Signals(sig).name in record.error
    assert store.latencies(run.id)            # what was measured is kept
    for pid in _worker_pids(run, store):
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)


def test_runs_of_a_killed_parent_are_settled_by_any_command(tmp_path, tiny):
    db = tmp_path / "db.sqlite"
    proc = subprocess.Popen([sys.executable, "-m", "workbench", "--db", str(db), "bench", str(tiny["onnx"]),
                             "--batch", "2", "--iters", "100000000", "--duration", "300", "--threads", "1"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    store, run = _wait_for_measuring(db)
    proc.kill()
    proc.wait(timeout=60)
    listing = json.loads(run_cli("--db", db, "runs", "--json").stdout)
    assert listing[0]["status"] == "failed"
    shown = run_cli("--db", db, "show", run.id)
    assert "→ failed" in shown.stdout and "running" not in shown.stdout.splitlines()[0]
    assert store.latencies(run.id)            # kept
