"""The fuse plugin: conv+bn folding, torch.compile, ONNX Runtime graph optimization, validation."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from workbench.errors import PluginError
from workbench.plugin_api import PluginContext, build_chain
from workbench.spec import PluginStep
from workbench_plugins.fuse import Fuse

BATCH = 64


def _cnn() -> nn.Module:
    """The bundled CNN demo when its weights exist, else the same architecture with non-trivial BN stats."""
    try:
        from workbench.models.demos import build_demo_module
        return build_demo_module("digits-cnn").eval()
    except Exception:
        pass
    from workbench.models.demo_nets import digits_cnn
    torch.manual_seed(0)
    model = digits_cnn(channels=(16, 32, 64))
    model.train()
    with torch.no_grad():   # a few forward passes give the BatchNorms real running statistics
        for _ in range(5):
            model(torch.rand(64, 1, 8, 8) * 2 - 0.5)
        for module in model.modules():
            if isinstance(module, nn.BatchNorm2d):
                module.weight.uniform_(0.5, 1.5)
                module.bias.uniform_(-0.2, 0.2)
    return model.eval()


def _inputs() -> torch.Tensor:
    try:
        from workbench.models.demos import load_eval_data
        x = load_eval_data("digits.npz")["x_test"][:BATCH]   # found in the assets dir ($WORKBENCH_ASSETS)
        return torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))
    except Exception:
        torch.manual_seed(1)
        return torch.rand(BATCH, 1, 8, 8)


@pytest.fixture(scope="module")
def cnn() -> nn.Module:
    return _cnn()


@pytest.fixture(scope="module")
def x() -> torch.Tensor:
    return _inputs()


def _context(tmp_path: Path, x: torch.Tensor) -> PluginContext:
    return PluginContext(device="cpu", dtype="float32", example_inputs=[x], data=None, seed=0, workdir=tmp_path)


def _n_bn(model: nn.Module) -> int:
    return sum(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.modules())


# ---------------------------------------------------------------------------------------------
# conv_bn
# ---------------------------------------------------------------------------------------------
def test_conv_bn_folds_every_pair_and_keeps_outputs(cnn, x, tmp_path):
    n_bn = _n_bn(cnn)
    assert n_bn == 3
    fused, report = Fuse(method="conv_bn").run(cnn, _context(tmp_path, x))
    assert _n_bn(fused) == 0, "BatchNorm left after folding"
    assert _n_bn(cnn) == n_bn, "the input model was modified"
    assert report.extra["pairs_fused"] == n_bn
    assert [p["conv"] for p in report.extra["pairs"]] == ["features.0.0", "features.1.0", "features.3.0"]
    assert [p["bn"] for p in report.extra["pairs"]] == ["features.0.1", "features.1.1", "features.3.1"]
    assert all(p["activation"].endswith(".2") for p in report.extra["pairs"])
    assert report.layers_changed == ["features.0.0", "features.1.0", "features.3.0"]
    assert report.summary.startswith("folded 3 Conv+BatchNorm pair(s)")
    assert report.params_after < report.params_before
    with torch.no_grad():
        torch.testing.assert_close(fused(x), cnn(x), atol=1e-4, rtol=1e-4)


def test_conv_bn_in_training_mode_folds_with_eval_semantics(x, tmp_path):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
                          nn.Sequential(nn.Conv2d(8, 4, 3), nn.BatchNorm2d(4)), nn.Flatten(), nn.Linear(144, 10),
                          nn.BatchNorm1d(10))
    with torch.no_grad():
        model.train()
        model(torch.rand(32, 1, 8, 8))   # running stats
    model.train()
    fused, report = Fuse(method="conv_bn").run(model, _context(tmp_path, x))
    assert not fused.training
    assert any("training mode" in note and "eval" in note for note in report.notes)
    assert report.extra["pairs_fused"] == 3   # two conv+bn (one nested) and linear+bn1d
    assert {p["conv"] for p in report.extra["pairs"]} == {"0", "3.0", "5"}
    assert _n_bn(fused) == 0
    with torch.no_grad():
        torch.testing.assert_close(fused(x), model.eval()(x), atol=1e-4, rtol=1e-4)


def test_conv_bn_without_pairs_reports_zero(x, tmp_path):
    model = nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU(), nn.Flatten()).eval()
    fused, report = Fuse(method="conv_bn").run(model, _context(tmp_path, x))
    assert report.extra["pairs_fused"] == 0
    assert any("no Conv+BatchNorm pair" in note for note in report.notes)
    with torch.no_grad():
        assert torch.equal(fused(x), model(x))


# ---------------------------------------------------------------------------------------------
# torch_compile
# ---------------------------------------------------------------------------------------------
@pytest.mark.slow
def test_torch_compile_reports_compile_time_and_keeps_outputs(cnn, x, tmp_path):
    compiled, report = Fuse(method="torch_compile").run(cnn, _context(tmp_path, x))
    assert report.extra["compile_seconds"] > 0
    assert report.extra["mode"] == "default"
    assert report.seconds >= report.extra["compile_seconds"]
    with torch.no_grad():
        torch.testing.assert_close(compiled(x), cnn(x), atol=1e-4, rtol=1e-4)
        # compiled inside apply: a later call with the same inputs does not compile again
        import time
        started = time.perf_counter()
        compiled(x)
        assert time.perf_counter() - started < report.extra["compile_seconds"]


def test_torch_compile_failure_is_a_plugin_error(tmp_path, x):
    class Broken(nn.Module):
        def forward(self, inp):
            return inp @ torch.ones(3, 3)   # wrong shape: fails on the first (compiling) call

    with pytest.raises(PluginError, match=r"torch.compile \(mode=default\) failed on the first call"):
        Fuse(method="torch_compile").run(Broken(), _context(tmp_path, x))


# ---------------------------------------------------------------------------------------------
# onnxruntime
# ---------------------------------------------------------------------------------------------
def test_onnxruntime_level_all_saves_a_loadable_optimized_graph(cnn, x, tmp_path):
    import onnx
    import onnxruntime as ort

    from workbench.plugin_api.onnx_export import export_to_onnx
    proto = export_to_onnx(cnn, [x])
    optimized, report = Fuse(method="onnxruntime", level="all").run(proto, _context(tmp_path, x))
    artifact = Path(report.extra["artifact"])
    assert artifact.is_file() and artifact.parent == tmp_path
    assert report.extra["nodes_before"] == len(proto.graph.node)
    assert report.extra["nodes_after"] == len(optimized.graph.node)
    assert report.extra["nodes_after"] <= report.extra["nodes_before"]
    loaded = onnx.load(str(artifact))
    assert len(loaded.graph.node) == report.extra["nodes_after"]
    session = ort.InferenceSession(str(artifact), providers=["CPUExecutionProvider"])
    out = session.run(None, {session.get_inputs()[0].name: x.numpy()})[0]
    with torch.no_grad():
        np.testing.assert_allclose(out, cnn(x).numpy(), atol=1e-4, rtol=1e-4)


def test_onnxruntime_basic_folds_batchnorm(tmp_path, x):
    import onnxruntime as ort
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    weights = {"w": rng.normal(size=(8, 1, 3, 3)), "scale": rng.uniform(0.5, 1.5, 8), "bias": rng.normal(size=8),
               "mean": rng.normal(size=8), "var": rng.uniform(0.5, 2.0, 8)}
    graph = helper.make_graph(
        [helper.make_node("Conv", ["x", "w"], ["c"], name="conv"),
         helper.make_node("BatchNormalization", ["c", "scale", "bias", "mean", "var"], ["b"], name="bn"),
         helper.make_node("Relu", ["b"], ["y"], name="relu")],
        "conv_bn_relu",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 1, 8, 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 8, 6, 6])],
        [numpy_helper.from_array(v.astype(np.float32), k) for k, v in weights.items()])
    proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    optimized, report = Fuse(method="onnxruntime", level="basic").run(proto, _context(tmp_path, x))
    assert report.extra["ops_before"] == {"BatchNormalization": 1, "Conv": 1, "Relu": 1}
    assert "BatchNormalization" not in report.extra["ops_after"]
    assert report.extra["nodes_after"] < report.extra["nodes_before"] == 3
    assert report.summary == "ONNX Runtime level basic: 3 -> 2 nodes"
    outputs = [ort.InferenceSession(p.SerializeToString(), providers=["CPUExecutionProvider"])
               .run(None, {"x": x.numpy()})[0] for p in (proto, optimized)]
    np.testing.assert_allclose(outputs[1], outputs[0], atol=1e-4, rtol=1e-4)


# ---------------------------------------------------------------------------------------------
# validation, discovery
# ---------------------------------------------------------------------------------------------
def test_method_format_mismatch_is_rejected():
    with pytest.raises(PluginError, match="method=onnxruntime needs an ONNX model.*add onnx_export"):
        build_chain([PluginStep("fuse", {"method": "onnxruntime"})], "torch", "cpu", "torch")
    with pytest.raises(PluginError, match="method=conv_bn needs a torch model but gets onnx.*method=onnxruntime"):
        Fuse(method="conv_bn").check("onnx", "cpu")
    with pytest.raises(PluginError, match="method=torch_compile needs a torch model"):
        build_chain([PluginStep("fuse", {"method": "torch_compile"})], "onnx", "cpu", "onnxruntime")
    chain = build_chain([PluginStep("onnx_export"), PluginStep("fuse", {"method": "onnxruntime"})],
                        "torch", "cpu", "onnxruntime")
    assert [s.name for s in chain] == ["onnx_export", "fuse"]


def test_torchscript_models_are_rejected_with_the_fix(tmp_path, x):
    scripted = torch.jit.trace(nn.Sequential(nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4)).eval(), x)
    with pytest.raises(PluginError, match="needs a Python nn.Module, not TorchScript.*method=onnxruntime"):
        Fuse(method="conv_bn").run(scripted, _context(tmp_path, x))


def test_param_schema_errors():
    with pytest.raises(PluginError, match="fuse:method: 'bn' is not one of conv_bn"):
        Fuse(method="bn")
    with pytest.raises(PluginError, match="fuse:mode: 'max-autotune' is not one of"):
        Fuse(method="torch_compile", mode="max-autotune")
    with pytest.raises(PluginError, match=r"unknown parameter\(s\) opt_level"):
        Fuse(opt_level="all")
