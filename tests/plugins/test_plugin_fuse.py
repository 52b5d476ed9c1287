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
# conv_bn: module trees (torch.fx, torch.export), .pt2 programs, ONNX graphs
# ---------------------------------------------------------------------------------------------
def _cosine(a: torch.Tensor, b: torch.Tensor) -> float:
    return torch.nn.functional.cosine_similarity(a.flatten().double(), b.flatten().double(), dim=0).item()


def _real_stats(model: nn.Module) -> nn.Module:
    """BatchNorm statistics far from identity, so a wrong fold shows in the outputs."""
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.modules.batchnorm._BatchNorm):
                m.running_mean.uniform_(-0.5, 0.5, generator=g)
                m.running_var.uniform_(0.5, 2.0, generator=g)
                m.weight.uniform_(0.5, 1.5, generator=g)
                m.bias.uniform_(-0.5, 0.5, generator=g)
    return model.eval()


def test_conv_bn_folds_every_pair_and_keeps_outputs(cnn, x, tmp_path):
    n_bn = _n_bn(cnn)
    assert n_bn == 3
    fused, report = Fuse(method="conv_bn").run(cnn, _context(tmp_path, x))
    assert _n_bn(fused) == 0, "BatchNorm left after folding"
    assert _n_bn(cnn) == n_bn, "the input model was modified"
    assert report.changed is True and report.extra["graph"] == "torch.fx graph"
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


class _NoSequential(nn.Module):
    """Children declared in an order that says nothing about data flow (no nn.Sequential), a
    residual that reads a conv output twice, and a BatchNorm on the input."""

    def __init__(self) -> None:
        super().__init__()
        self.bn_b = nn.BatchNorm2d(8)
        self.bn_in = nn.BatchNorm2d(1)
        self.conv_b = nn.Conv2d(8, 8, 3, padding=1)
        self.bn_a = nn.BatchNorm2d(8)
        self.conv_a = nn.Conv2d(1, 8, 3, padding=1, bias=False)
        self.conv_skip = nn.Conv2d(8, 8, 1)
        self.bn_skip = nn.BatchNorm2d(8)

    def forward(self, inp: torch.Tensor) -> torch.Tensor:
        h = torch.relu(self.bn_a(self.conv_a(self.bn_in(inp))))
        h = self.bn_b(self.conv_b(h)) + h
        skip = self.conv_skip(h)                 # read twice: folding bn_skip would change the sum
        return self.bn_skip(skip) + skip


def test_conv_bn_folds_pairs_from_the_graph_without_sequential(x, tmp_path):
    model = _real_stats(_NoSequential())
    fused, report = Fuse(method="conv_bn").run(model, _context(tmp_path, x))
    assert report.extra["graph"] == "torch.fx graph"
    assert {(p["conv"], p["bn"]) for p in report.extra["pairs"]} == {("conv_a", "bn_a"), ("conv_b", "bn_b")}
    assert set(report.extra["left"]) == {"bn_in", "bn_skip"}
    assert "also used elsewhere" in report.extra["left"]["bn_skip"]
    assert report.extra["batchnorms_before"] == 4 and report.extra["batchnorms_after"] == _n_bn(fused) == 2
    assert report.changed is True
    with torch.no_grad():
        torch.testing.assert_close(fused(x), model(x), atol=1e-4, rtol=1e-4)


def test_conv_bn_with_nothing_to_fold_reports_no_change(x, tmp_path):
    model = nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU(), nn.Flatten()).eval()
    fused, report = Fuse(method="conv_bn").run(model, _context(tmp_path, x))
    assert report.changed is False and report.extra["pairs_fused"] == 0
    assert report.summary == "no change: the model has no BatchNorm layer to fold"
    with torch.no_grad():
        assert torch.equal(fused(x), model(x))
    with pytest.raises(PluginError, match="conv_bn has nothing to fold: the model has no BatchNorm layer"):
        build_chain([PluginStep("fuse", {"method": "conv_bn"})], "torch", "cpu", "torch", model=model)  # up front
    only_input_bn = nn.Sequential(nn.BatchNorm2d(1), nn.Conv2d(1, 4, 3)).eval()
    _, report = Fuse(method="conv_bn").run(only_input_bn, _context(tmp_path, x))
    assert report.changed is False
    assert report.summary.startswith("no change: none of the 1 BatchNorm layer(s) can be folded")


@pytest.fixture(scope="module")
def hf_resnet():
    from transformers import ResNetConfig, ResNetForImageClassification

    from workbench.models.hf import HFImageForward
    torch.manual_seed(0)
    config = ResNetConfig(embedding_size=16, hidden_sizes=[16, 32], depths=[1, 1], num_labels=10)
    return HFImageForward(_real_stats(ResNetForImageClassification(config)), "image-classification")


@pytest.fixture(scope="module")
def images() -> torch.Tensor:
    return torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(0))


def test_conv_bn_folds_a_hugging_face_resnet_through_torch_export(hf_resnet, images, tmp_path):
    n_bn = _n_bn(hf_resnet)
    assert n_bn == 8
    fused, report = Fuse(method="conv_bn").run(hf_resnet, _context(tmp_path, images))
    assert report.extra["graph"] == "torch.export graph"      # fx cannot trace HF ResNet
    assert report.extra["pairs_fused"] == n_bn and _n_bn(fused) == 0
    assert "model.resnet.embedder.embedder.convolution" in report.layers_changed
    assert type(fused).__name__ == "HFImageForward" and type(fused.model).__name__ == "ResNetForImageClassification"
    assert "save it as .pt2 or .onnx" in fused.hf_save_blocker
    with torch.no_grad():
        assert _cosine(fused(images), hf_resnet(images)) > 0.9999


def test_conv_bn_folds_a_hugging_face_mobilenet_v2(images, tmp_path):
    from transformers import MobileNetV2Config, MobileNetV2ForImageClassification

    from workbench.models.hf import HFImageForward
    torch.manual_seed(0)
    config = MobileNetV2Config(depth_multiplier=0.25, image_size=32, num_labels=10)
    model = HFImageForward(_real_stats(MobileNetV2ForImageClassification(config)), "image-classification")
    n_bn = _n_bn(model)
    fused, report = Fuse(method="conv_bn").run(model, _context(tmp_path, images[:1]))
    assert n_bn > 40 and report.extra["pairs_fused"] == n_bn and _n_bn(fused) == 0
    with torch.no_grad():
        assert _cosine(fused(images[:1]), model(images[:1])) > 0.9999


def test_conv_bn_folds_a_pt2_program_graph(hf_resnet, images, tmp_path):
    from workbench_plugins._fold_bn import count_batchnorms

    path = tmp_path / "resnet.pt2"
    torch.export.save(torch.export.export(hf_resnet, (images,)), str(path))
    program = torch.export.load(str(path)).module()     # what the .pt2 loader hands to plugins
    assert count_batchnorms(program) == 8
    fused, report = Fuse(method="conv_bn").run(program, _context(tmp_path, images))
    assert report.extra["graph"] == "exported program's aten graph"
    assert report.extra["pairs_fused"] == 8 and count_batchnorms(fused) == 0
    assert report.bytes_after < report.bytes_before     # the BatchNorm tensors are gone
    assert count_batchnorms(program) == 8, "the input program was modified"
    with torch.no_grad():
        assert _cosine(fused(images), program(images)) > 0.9999


def _onnx_bn_count(proto) -> int:
    return sum(n.op_type == "BatchNormalization" for n in proto.graph.node)


def test_conv_bn_folds_an_onnx_graph(tmp_path):
    import io

    import onnx
    import onnxruntime as ort
    torch.manual_seed(0)
    model = _real_stats(_NoSequential())
    inp = torch.rand(2, 1, 8, 8)
    buffer = io.BytesIO()   # the TorchScript exporter, without constant folding, keeps BatchNormalization nodes
    torch.onnx.export(model, (inp,), buffer, dynamo=False, do_constant_folding=False, input_names=["x"],
                      training=torch.onnx.TrainingMode.PRESERVE)
    proto = onnx.load_from_string(buffer.getvalue())
    assert _onnx_bn_count(proto) == 4
    build_chain([PluginStep("fuse", {"method": "conv_bn"})], "onnx", "cpu", "onnxruntime")   # accepted
    folded, report = Fuse(method="conv_bn").run(proto, _context(tmp_path, inp))
    assert report.changed is True and report.extra["graph"] == "ONNX graph"
    assert report.extra["pairs_fused"] == 2 and _onnx_bn_count(folded) == 2    # bn_in and bn_skip stay
    assert report.extra["nodes_after"] == report.extra["nodes_before"] - 2
    onnx.checker.check_model(folded)
    outputs = [ort.InferenceSession(p.SerializeToString(), providers=["CPUExecutionProvider"])
               .run(None, {"x": inp.numpy()})[0] for p in (proto, folded)]
    np.testing.assert_allclose(outputs[1], outputs[0], atol=1e-4, rtol=1e-4)
    # Workbench's own export has folded them already: nothing left to do, said as such
    again, report = Fuse(method="conv_bn").run(folded, _context(tmp_path, inp))
    assert report.changed is False and report.summary.startswith("no change: none of the 2")


# ---------------------------------------------------------------------------------------------
# attention implementation (Hugging Face models)
# ---------------------------------------------------------------------------------------------
def test_attention_switches_a_hugging_face_model_between_sdpa_and_eager(tmp_path):
    import transformers

    from workbench.models.hf import HFForward
    torch.manual_seed(0)
    config = transformers.LlamaConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                                      intermediate_size=64, max_position_embeddings=64, vocab_size=200)
    model = HFForward(transformers.LlamaForCausalLM(config).eval(), "causal-lm")
    ids = torch.randint(0, 200, (2, 10), generator=torch.Generator().manual_seed(0))
    context = _context(tmp_path, ids)
    with torch.no_grad():
        before = model(ids)
    assert model.model.config._attn_implementation == "sdpa"
    switched, report = Fuse(method="attention", implementation="eager").run(model, context)
    assert report.changed is True and report.summary == "attention implementation sdpa -> eager"
    assert switched.model.config._attn_implementation == "eager"     # saved with the folder's config
    with torch.no_grad():
        torch.testing.assert_close(switched(ids), before, atol=1e-5, rtol=1e-5)
    _, report = Fuse(method="attention", implementation="eager").run(switched, context)
    assert report.changed is False and report.summary == "no change: the attention implementation is already eager"
    with pytest.raises(PluginError, match="method=attention switches a Hugging Face transformers model's attention"):
        Fuse(method="attention").run(nn.Linear(2, 2), _context(tmp_path, torch.zeros(1, 2)))
    with pytest.raises(PluginError, match="nothing to change: the model already uses eager attention"):
        build_chain([PluginStep("fuse", {"method": "attention", "implementation": "eager"})], "torch", "cpu",
                    "torch", model=switched)
    with pytest.raises(PluginError, match="fuse:implementation applies only to method=attention"):
        Fuse(method="conv_bn", implementation="eager")


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
    with pytest.raises(PluginError, match="method=attention needs a torch model but gets onnx.*method=onnxruntime"):
        Fuse(method="attention").check("onnx", "cpu")
    with pytest.raises(PluginError, match="method=torch_compile needs a torch model"):
        build_chain([PluginStep("fuse", {"method": "torch_compile"})], "onnx", "cpu", "onnxruntime")
    chain = build_chain([PluginStep("onnx_export"), PluginStep("fuse", {"method": "onnxruntime"})],
                        "torch", "cpu", "onnxruntime")
    assert [s.name for s in chain] == ["onnx_export", "fuse"]


def test_torchscript_models_are_rejected_with_the_fix(tmp_path, x):
    scripted = torch.jit.trace(nn.Sequential(nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4)).eval(), x)
    with pytest.raises(PluginError, match="needs a Python nn.Module, not TorchScript.*conv_bn / onnxruntime"):
        Fuse(method="conv_bn").run(scripted, _context(tmp_path, x))
    with pytest.raises(PluginError, match="needs a Python nn.Module, not TorchScript"):   # before anything runs
        build_chain([PluginStep("fuse", {"method": "torch_compile"})], "torch", "cpu", "torch", model=scripted)


def test_compile_says_it_often_does_not_pay_off_on_cpu_at_one_thread():
    helps = {p["name"]: p["help"] for p in Fuse.describe()["params"]}
    assert "on CPU at 1 thread it is often slower" in helps["method"]
    assert "On CPU at 1 thread compile often does not pay off" in helps["mode"]
    chain = build_chain([PluginStep("fuse", {"method": "torch_compile"})], "torch", "cpu", "torch")
    assert any("torch.compile often does not pay off" in w for w in chain[0].warnings)   # the chain check says it
    assert not build_chain([PluginStep("fuse", {"method": "torch_compile"})], "torch", "cuda", "torch")[0].warnings


def test_param_schema_errors():
    with pytest.raises(PluginError, match="fuse:method: 'bn' is not one of conv_bn"):
        Fuse(method="bn")
    with pytest.raises(PluginError, match="fuse:mode: 'max-autotune' is not one of"):
        Fuse(method="torch_compile", mode="max-autotune")
    with pytest.raises(PluginError, match=r"unknown parameter\(s\) opt_level"):
        Fuse(opt_level="all")
