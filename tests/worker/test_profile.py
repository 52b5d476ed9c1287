"""The per-op profile (issue 15): torch.profiler and ONNX Runtime's profiler reduced to one op table
with a Chrome trace; the phase runs after the timed window closes; the diff of two tables says which
ops made a run slower or faster."""
from __future__ import annotations

import json

import numpy as np
import pytest

from workbench.results.profile_diff import ProfileMismatch, check_comparable, diff_profiles, explain_diff
from workbench.worker.profile import MAX_ITERATIONS, MIN_ITERATIONS, profile_iterations, profile_phase


def _tiny_mlp():
    import torch
    from torch import nn
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(16, 32), nn.ReLU(), nn.Linear(32, 4)).eval()


def _checked_table(profile: dict, iterations: int) -> None:
    assert "error" not in profile, profile.get("error")
    assert profile["iterations"] == iterations and profile["total_us"] > 0
    assert profile["ops"] and profile["ops_total"] >= len(profile["ops"])
    times = [op["time_us"] for op in profile["ops"]]
    assert times == sorted(times, reverse=True)
    assert sum(op["share"] for op in profile["ops"]) == pytest.approx(1.0, abs=0.01)
    trace = json.loads(open(profile["trace_path"]).read())
    assert trace, "the Chrome trace is empty"


def test_torch_profile_is_an_op_table_per_iteration_with_shapes_and_a_trace(tmp_path):
    from workbench.worker.runtimes import create_runtime
    runtime = create_runtime("torch", "cpu", "float32", 1)
    runtime.prepare(_tiny_mlp(), [np.ones((2, 16), np.float32)])
    profile = profile_phase(runtime, runtime.model, tmp_path, iterations=4)
    _checked_table(profile, 4)
    assert profile["source"] == "torch.profiler" and profile["time_basis"] == "cpu"
    addmm = next(op for op in profile["ops"] if op["op"] == "aten::addmm")
    assert addmm["calls"] == 2.0                      # two Linear layers per iteration
    assert "[2, 16]" in " ".join(s["shapes"] for s in addmm["shapes"])
    assert "traceEvents" in json.loads(open(profile["trace_path"]).read())


def _tiny_onnx():
    """x (N, 16) -> Gemm -> Relu -> Gemm -> (N, 4), built directly (no exporter: fast)."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper
    rng = np.random.default_rng(0)
    weights = [numpy_helper.from_array(rng.standard_normal(shape).astype(np.float32), name)
               for name, shape in (("w1", (16, 32)), ("b1", (32,)), ("w2", (32, 4)), ("b2", (4,)))]
    nodes = [helper.make_node("Gemm", ["x", "w1", "b1"], ["h"]), helper.make_node("Relu", ["h"], ["r"]),
             helper.make_node("Gemm", ["r", "w2", "b2"], ["y"])]
    graph = helper.make_graph(nodes, "tiny", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 16])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 4])], weights)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)


def test_onnxruntime_profile_uses_its_own_profiler(tmp_path):
    from workbench.worker.runtimes import create_runtime
    proto = _tiny_onnx()
    runtime = create_runtime("onnxruntime", "cpu", "float32", 1)
    runtime.prepare(proto, [np.ones((2, 16), np.float32)])
    profile = profile_phase(runtime, proto, tmp_path, iterations=3)
    _checked_table(profile, 3)
    assert profile["source"] == "onnxruntime"
    gemms = [op for op in profile["ops"] if op["op"] in ("Gemm", "FusedGemm")]
    assert gemms and sum(op["calls"] for op in gemms) == 2.0    # per iteration: the first call is dropped
    assert "[2, 16]" in " ".join(s["shapes"] for op in gemms for s in op["shapes"])


def test_a_profiler_failure_is_reported_not_raised(tmp_path):
    class Broken:
        name, device, timer_kind = "torch", "cpu", "cpu"

        def timing_context(self):
            raise RuntimeError("no profiler here")

    profile = profile_phase(Broken(), None, tmp_path, iterations=3)
    assert "no profiler here" in profile["error"]


def test_a_few_iterations_about_a_third_of_a_second():
    assert profile_iterations(None) == MIN_ITERATIONS
    assert profile_iterations(1000.0) == MIN_ITERATIONS
    assert profile_iterations(0.001) == MAX_ITERATIONS
    assert profile_iterations(30.0) == 10


# -- the phase inside a run: after the timed window, never in it ---------------------------------
@pytest.fixture(scope="module")
def profiled_run(tmp_path_factory):
    from workbench.spec import PluginStep, RunSpec
    from workbench.worker.pipeline import Stage, run_job
    spec = RunSpec(model="demo:digits-transformer", plugins=[PluginStep("quantize", {"method": "dynamic_int8"})],
                   batch=64, iters=10, duration_s=0.05, warmup_min_iters=2, warmup_max_s=0.1, threads=1,
                   profile=True)
    events: list[tuple[str, dict]] = []
    job = {"job": "run", "spec": spec.to_dict(), "workdir": str(tmp_path_factory.mktemp("run"))}
    run_job(job, lambda kind, **fields: events.append((kind, fields)), lambda: False, Stage())
    return events


def test_the_profile_phase_runs_after_the_measure_window_closes(profiled_run):
    kinds = [(kind, fields.get("phase")) for kind, fields in profiled_run]
    window = kinds.index(("measure_window", None))
    profile = kinds.index(("phase", "profile"))
    last_timed = max(i for i, (kind, phase) in enumerate(kinds) if kind == "latency_batch")
    assert last_timed < window < profile < kinds.index(("result", None))
    assert kinds.index(("phase", "fidelity")) < profile < kinds.index(("phase", "layers"))


def test_a_profiled_run_stores_its_op_table_and_its_layers(profiled_run):
    result = next(fields["result"] for kind, fields in profiled_run if kind == "result")
    profile = result["profile"]
    assert "quantized::linear_dynamic" in [op["op"] for op in profile["ops"]]
    assert profile["seconds"] > 0 and profile["trace_bytes"] > 0
    layers = result["layers"]
    quantized = [r for r in layers["rows"] if (r["weight"] or {}).get("kind") == "quantized"]
    assert len(quantized) == 14 and all(0 < r["weight"]["relative"] < 0.05 for r in quantized)
    assert all(r["drift"]["cosine"] > 0.99 for r in quantized)


# -- the diff (torch-free) -----------------------------------------------------------------------
def _profile(ops: dict[str, tuple[float, float]]) -> dict:
    total = sum(t for t, _ in ops.values())
    return {"source": "torch.profiler", "total_us": total,
            "ops": [{"op": name, "time_us": t, "calls": c, "share": t / total} for name, (t, c) in ops.items()]}


FP32 = _profile({"aten::addmm": (120.0, 12), "aten::native_layer_norm": (40.0, 5), "aten::add": (20.0, 5)})
INT8 = _profile({"quantized::linear_dynamic": (150.0, 12), "aten::quantize_per_tensor": (70.0, 12),
                 "aten::native_layer_norm": (40.5, 5), "aten::add": (35.0, 5)})


def test_the_diff_groups_ops_and_shares_the_change():
    diff = diff_profiles(FP32, INT8)
    groups = {row["op"]: row["group"] for row in diff["ops"]}
    assert groups == {"quantized::linear_dynamic": "new", "aten::quantize_per_tensor": "new",
                      "aten::addmm": "gone", "aten::native_layer_norm": "unchanged", "aten::add": "slower"}
    assert diff["change_us"] == pytest.approx(115.5)
    assert sum(row["share_of_change"] for row in diff["ops"]) == pytest.approx(1.0, abs=1e-3)
    assert diff["groups"]["gone"]["share_of_change"] == pytest.approx(-120 / 115.5, abs=1e-3)
    sentence = explain_diff(diff, "fp32", "int8")
    assert sentence.startswith("int8 is 1.64× slower than fp32")
    assert "quantized::linear_dynamic/aten::quantize_per_tensor (new) take 74% of its time" in sentence
    assert "aten::addmm (gone) moved the other way" in sentence
    assert explain_diff(diff_profiles(INT8, FP32), "int8", "fp32").startswith("fp32 is 1.64× faster than int8")


def test_profiles_of_different_models_or_devices_are_refused():
    class Run:
        def __init__(self, id_, model, device):
            self.id, self.model, self.device, self.result = id_, model, device, {"profile": FP32}

    assert check_comparable(Run(1, "demo:a", "cpu"), Run(2, "demo:a", "cpu")) == []
    with pytest.raises(ProfileMismatch, match="run #2 is demo:b on cpu and run #1 is demo:a on cpu"):
        check_comparable(Run(1, "demo:a", "cpu"), Run(2, "demo:b", "cpu"))
    with pytest.raises(ProfileMismatch, match="a device changes every kernel"):
        check_comparable(Run(1, "demo:a", "cpu"), Run(2, "demo:a", "cuda:0"))
