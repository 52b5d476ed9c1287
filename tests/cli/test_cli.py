"""The command line: exit codes, one-line errors, JSON output, and every read-side command."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest

from core_fixtures import make_tiny_models


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return make_tiny_models(tmp_path_factory.mktemp("tiny"))


def wb(*args, db, check=None):
    proc = subprocess.run([sys.executable, "-m", "workbench.cli", "--db", str(db), *map(str, args)],
                          capture_output=True, text=True, timeout=300)
    if check is not None:
        assert proc.returncode == check, proc.stdout + proc.stderr
    return proc


def test_bench_json_runs_show_compare(tmp_path, tiny):
    db = tmp_path / "db.sqlite"
    out = tmp_path / "out.json"
    proc = wb("bench", tiny["onnx"], "--batch", 4, "--iters", 80, "--duration", 0.2, "--json", out, db=db, check=0)
    assert "latency   median" in proc.stdout and "fidelity  cosine 1.000000" in proc.stdout
    record = json.loads(out.read_text())
    lat = record["result"]["latency"]
    assert record["status"] == "done" and lat["n"] >= 80 and lat["median_ms"] > 0
    assert lat["p90_ms"] is not None and lat["min_ms"] <= lat["median_ms"] <= lat["max_ms"]
    assert record["environment"]["packages"]["onnxruntime"]
    second = wb("bench", tiny["onnx"], "--batch", 4, "--iters", 80, "--duration", 0.2, "--label", "again",
                db=db, check=0)
    assert "run #2" in second.stdout
    listing = wb("runs", db=db, check=0).stdout
    assert "again" in listing and "tiny.onnx" in listing
    runs = json.loads(wb("runs", "--json", db=db, check=0).stdout)
    assert [r["id"] for r in runs] == [2, 1]
    shown = wb("show", 1, db=db, check=0).stdout
    assert "env       python" in shown and "stored    " in shown and "latencies" in shown
    table = wb("compare", 1, 2, db=db, check=0).stdout
    assert "p50" in table and "speed-up" in table
    rows = json.loads(wb("compare", 1, 2, "--json", db=db, check=0).stdout)
    assert rows[0]["p50_ms"] == pytest.approx(lat["median_ms"])
    wb("rename", 1, "first", db=db, check=0)
    wb("tag", 1, "cpu", "onnx", db=db, check=0)
    assert json.loads(wb("runs", "--json", db=db).stdout)[1]["name"] == "first"
    wb("delete", 2, db=db, check=0)
    assert len(json.loads(wb("runs", "--json", db=db).stdout)) == 1


@pytest.mark.parametrize("args, code, message", [
    (["bench", "missing.onnx"], 2, "model file not found: missing.onnx"),
    (["bench", "demo:x", "--device", "tpu"], 2, "bad device 'tpu'"),
    (["bench", "demo:x", "--input", "1xqx3"], 2, "bad input spec"),
    (["bench", "demo:digits-cnn", "--plugin", "nosuchplugin"], 2, "unknown plugin 'nosuchplugin'"),
    (["show", "999"], 2, "no run with id 999"),
    (["bench"], 2, "the following arguments are required: model"),
    (["bench", "/"], 2, "/ is a folder, not a model file"),
    (["bench", "demo:digits-cnn", "--save-model", "out.txt"], 2, "cannot save the optimized model as 'out.txt'"),
    (["bench", "demo:digits-cnn", "-p", "onnx_export", "--save-model", "out.pt"], 2, "will be ONNX: save it as .onnx"),
    (["bench", "demo:digits-cnn", "--save-model", "out.onnx"], 2, "add --plugin onnx_export"),
])
def test_usage_errors_are_one_line_with_exit_2(tmp_path, args, code, message):
    proc = wb(*args, db=tmp_path / "db.sqlite")
    assert proc.returncode == code
    assert message in proc.stderr
    assert "Traceback" not in proc.stderr
    assert not (tmp_path / "db.sqlite").exists() or "no runs stored" in wb("runs", db=tmp_path / "db.sqlite").stdout


def test_an_empty_model_file_is_a_usage_error(tmp_path):
    empty = tmp_path / "empty.onnx"
    empty.write_bytes(b"")
    proc = wb("bench", empty, db=tmp_path / "db.sqlite")
    assert proc.returncode == 2 and "is empty (0 bytes)" in proc.stderr


def test_failed_run_exits_1_with_reason(tmp_path, tiny):
    proc = wb("bench", tiny["pickle"], "--input", "2x64", "--iters", 10, "--duration", 0.1, db=tmp_path / "db.sqlite")
    assert proc.returncode == 1
    assert "--trust-pickle" in proc.stdout and "Traceback" not in proc.stdout + proc.stderr


def test_inspect_and_plugins(tmp_path, tiny):
    info = json.loads(wb("inspect", tiny["onnx"], "--json", db=tmp_path / "db.sqlite", check=0).stdout)
    assert info["parameters"] == 64 * 256 + 256 + 256 * 10 + 10
    listing = json.loads(wb("plugins", "--json", db=tmp_path / "db.sqlite", check=0).stdout)
    assert "onnx_export" in listing and listing["onnx_export"]["produces"] == "onnx"
    text = wb("plugins", db=tmp_path / "db.sqlite", check=0).stdout
    assert "onnx_export" in text and "opset" in text


@pytest.mark.timeout(600)   # room for both safety nets below on a loaded machine
def test_ctrl_c_cancels_cleanly(tmp_path, tiny):
    """Ctrl-C while measuring: exit 1, the run stored as cancelled with the latencies it had.

    This checks behaviour, not speed: the waits are generous safety nets for a busy machine.
    """
    import signal
    import time
    from workbench.results.store import ResultsStore
    db = tmp_path / "db.sqlite"
    proc = subprocess.Popen([sys.executable, "-m", "workbench.cli", "--db", str(db), "bench", str(tiny["onnx"]),
                             "--batch", "2", "--iters", "100000000", "--duration", "300"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        store = ResultsStore(db)

        def measuring() -> bool:
            runs = store.list_runs()
            return bool(runs and store.latencies(runs[0].id))

        safety_net = time.monotonic() + 240
        while not measuring():
            assert proc.poll() is None, f"the bench ended before measuring: {proc.communicate()}"
            assert time.monotonic() < safety_net, "no latency stored after 240 s: the bench never started measuring"
            time.sleep(0.2)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=240)
    finally:
        if proc.poll() is None:   # only when an assertion above failed: leave no bench running
            proc.kill()
            proc.communicate()
    assert proc.returncode == 1, err
    assert "cancelled" in out
    run = store.list_runs()[0]
    assert run.status == "cancelled"
    assert store.latencies(run.id), "the latencies measured before Ctrl-C are kept"
