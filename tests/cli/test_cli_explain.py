"""``workbench profile`` and ``workbench layers`` (issue 15) on the demo transformer quantized to
int8 with ``--profile``: the op table, the diff against the baseline in a sentence, the trace, the
per-layer table, the scan with its ready command line, and every refusal in one line."""
from __future__ import annotations

import json
import shlex
import subprocess
import sys

import pytest

QUICK = ["--iters", "10", "--duration", "0.05", "--threads", "1"]


def wb(*args, db, check=None):
    proc = subprocess.run([sys.executable, "-m", "workbench.cli", "--db", str(db), *map(str, args)],
                          capture_output=True, text=True, timeout=600)
    if check is not None:
        assert proc.returncode == check, proc.stdout + proc.stderr
    return proc


@pytest.fixture(scope="module")
def db(tmp_path_factory):
    """Run 1: the baseline, run 2: dynamic int8 (both profiled); run 3: an ONNX run and run 4: another
    model, both stored directly (no profile, no layers), for the refusals."""
    from workbench.results.store import ResultsStore
    path = tmp_path_factory.mktemp("explain") / "runs.sqlite"
    wb("bench", "demo:digits-transformer", "-p", "quantize:method=dynamic_int8", "--profile", *QUICK, db=path, check=0)
    store = ResultsStore(path)
    for spec in ({"model": "model.onnx", "device": "cpu", "runtime": "onnxruntime"},
                 {"model": "demo:digits-cnn", "device": "cpu"}):
        run_id = store.create_run(spec, "baseline", spec.get("runtime", "torch"))
        store.finish_run(run_id, "done", {"latency": {"median_ms": 1.0}, "profile": {
            "source": "torch.profiler", "total_us": 10.0, "ops": [{"op": "aten::addmm", "time_us": 10.0, "calls": 1}]}}
            if spec["model"] == "demo:digits-cnn" else {"latency": {"median_ms": 1.0}})
    store.close()
    return path


def test_profile_shows_the_op_table_and_copies_the_trace(db, tmp_path):
    text = wb("profile", 2, "--trace", tmp_path / "trace.json", db=db, check=0).stdout
    assert "quantized::linear_dynamic" in text and "calls/iter" in text and "timed p50" in text
    assert "traceEvents" in json.loads((tmp_path / "trace.json").read_text())
    stored = json.loads(wb("profile", 2, "--json", "-", db=db, check=0).stdout)["profile"]
    linear = next(op for op in stored["ops"] if op["op"] == "quantized::linear_dynamic")
    assert linear["calls"] == 14 and stored["source"] == "torch.profiler" and stored["iterations"] >= 3


def test_profile_vs_the_baseline_says_why_in_a_sentence(db):
    text = wb("profile", 2, "--vs", 1, db=db, check=0).stdout
    assert text.startswith("run #2 (quantize:method=dynamic_int8) is ") and " than run #1 (baseline)" in text
    diff = json.loads(wb("profile", 2, "--vs", 1, "--json", "-", db=db, check=0).stdout)["diff"]
    groups = {row["op"]: row["group"] for row in diff["ops"]}
    assert groups["quantized::linear_dynamic"] == "new" and groups["aten::addmm"] == "gone"
    assert sum(row["share_of_change"] for row in diff["ops"]) == pytest.approx(1.0, abs=0.01)


def test_layers_lists_drift_and_weight_error_per_layer(db):
    text = wb("layers", 2, db=db, check=0).stdout
    assert "blocks.0.attn.q_proj" in text and "→qint8" in text and "output rel. error" in text
    rows = json.loads(wb("layers", 2, "--json", "-", db=db, check=0).stdout)["layers"]["rows"]
    quantized = [r for r in rows if (r["weight"] or {}).get("kind") == "quantized"]
    assert len(quantized) == 14 and all(r["flops_before"] for r in quantized)


def test_the_scan_ranks_layers_and_gives_a_ready_command(db):
    payload = json.loads(wb("layers", 2, "--scan", "--json", "-", db=db, check=0).stdout)
    scan = payload["scan"]
    assert scan["how"] == "skip" and len(scan["ranking"]) == 14 and not scan["cancelled"]
    skip = scan["suggestion"]["skip"]
    argv = shlex.split(payload["command"])
    assert argv[:3] == ["workbench", "bench", "demo:digits-transformer"]
    assert f"quantize:method=dynamic_int8,skip={';'.join(skip)}" in argv
    assert "scan-quantize" in " ".join(p.name for p in (db.parent / "artifacts" / "run-2" / "explain").iterdir())


@pytest.mark.parametrize("args, message", [
    (["profile", 3], "run #3 has no per-op profile; record one (after timing, never timed) with: "
                     "workbench bench model.onnx --runtime onnxruntime"),
    (["profile", 2, "--vs", 4], "--vs compares variants of one model on one device, but run #2 is "
                                "demo:digits-transformer on cpu and run #4 is demo:digits-cnn on cpu"),
    (["layers", 3], "cannot compare the layers of run #3: its model is ONNX"),
    (["layers", 1], "run #1 is a baseline (no plugins)"),
    (["layers", 1, "--scan"], "run #1 has no plugin steps: name the plugin to scan"),
    (["layers", 2, "--scan", "quantize:method=int5"], "quantize:method: 'int5' is not one of"),
])
def test_bad_input_is_one_line(db, args, message):
    proc = wb(*args, db=db)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert message in proc.stderr and "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()[-1]) > 20
