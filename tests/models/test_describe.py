"""Model description (models.describe, models.info): per-layer output shapes by a forward pass on the
example input (torch) or shape inference (ONNX), parameters per layer, FLOPs with the batch they
assume, ONNX FLOPs of the known ops ('partial' otherwise), and a ModelInfo JSON older readers
still understand."""
from __future__ import annotations

import json

import numpy as np
import pytest

from core_fixtures import constant_weights_onnx, make_tiny_models
from workbench.models.describe import SHAPES_FROM_HOOKS, SHAPES_FROM_ONNX, describe_model
from workbench.models.info import count_flops, describe_onnx
from workbench.models.loaders import load_model
from workbench.spec import InputSpec, RunSpec

MLP_FLOPS_PER_SAMPLE = 2 * (64 * 256 + 256 * 10)      # 2 * M * N * K of each Gemm, per sample


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return make_tiny_models(tmp_path_factory.mktemp("tiny"))


def _describe(source: str, **spec) -> dict:
    return describe_model(load_model(source), RunSpec(model=source, **spec)).to_dict()


def _rows(info: dict) -> dict[str, dict]:
    return {row["name"]: row for row in info["layers"]}


def test_demo_cnn_layers_have_their_output_shapes():
    info = _describe("demo:digits-cnn")
    rows = _rows(info)
    assert info["flops_batch"] == 1 and info["shapes_from"] == SHAPES_FROM_HOOKS
    assert rows["features.0.0"]["type"] == "Conv2d" and rows["features.0.0"]["output_shapes"] == [[1, 64, 8, 8]]
    assert rows["features.2"]["type"] == "MaxPool2d" and rows["features.2"]["output_shapes"] == [[1, 128, 4, 4]]
    assert rows["features.3.0"]["output_shapes"] == [[1, 256, 4, 4]]
    assert rows["pool"]["output_shapes"] == [[1, 256, 1, 1]]
    assert rows["classifier"]["output_shapes"] == [[1, 10]] and rows["classifier"]["params"] == 256 * 10 + 10
    # every parameter and every FLOP belongs to a layer of this plain CNN
    assert sum(r["params"] for r in info["layers"]) == info["parameters"]
    assert sum(r["flops"] or 0 for r in info["layers"]) == info["flops"]
    # conv FLOPs: 2 x output elements x (input channels x kernel)
    assert rows["features.1.0"]["flops"] == 2 * (128 * 8 * 8) * (64 * 3 * 3)


def test_the_batch_of_the_description_is_stated():
    at_one = _describe("demo:digits-cnn")
    at_eight = _describe("demo:digits-cnn", batch=8)
    assert at_eight["flops_batch"] == 8 and at_eight["flops"] == 8 * at_one["flops"]
    assert _rows(at_eight)["classifier"]["output_shapes"] == [[8, 10]]


def test_a_container_with_its_own_weights_gets_a_row_but_not_its_childrens_flops():
    info = _describe("demo:digits-transformer")
    rows = _rows(info)
    assert sum(r["params"] for r in info["layers"]) == info["parameters"]
    top = rows["DigitsTransformer"]                          # the position embedding lives there
    assert top["params"] > 0 and top["flops"] is None and top["output_shapes"] == [[1, 10]]
    assert "DigitsTransformer" not in info["layer_counts"]   # counts are of layers
    assert rows["blocks.0.ff.fc1"]["output_shapes"] == [[1, 8, 896]]


def test_onnx_layers_from_shape_inference(tiny):
    info = _describe(str(tiny["onnx"]))
    assert info["shapes_from"] == SHAPES_FROM_ONNX and info["flops_batch"] == 1
    layers = info["layers"]
    assert [r["type"] for r in layers] == ["Gemm", "Relu", "Gemm"]
    assert [r["output_shapes"] for r in layers] == [[[1, 256]], [[1, 256]], [[1, 10]]]
    assert [r["params"] for r in layers] == [64 * 256 + 256, 0, 256 * 10 + 10]
    assert info["flops"] == MLP_FLOPS_PER_SAMPLE and not info["flops_partial"]
    assert [r["flops"] for r in layers] == [2 * 64 * 256, None, 2 * 256 * 10]
    assert _describe(str(tiny["onnx"]), batch=5)["flops"] == 5 * MLP_FLOPS_PER_SAMPLE


def test_onnx_and_torch_count_the_same_flops(tiny):
    import torch
    from torch import nn
    torch.manual_seed(0)
    mlp = nn.Sequential(nn.Linear(64, 256), nn.ReLU(), nn.Linear(256, 10)).eval()
    onnx_model = load_model(str(tiny["onnx"])).model
    for batch in (1, 3):
        assert count_flops(onnx_model, [np.zeros((batch, 64), np.float32)]) == batch * MLP_FLOPS_PER_SAMPLE
        assert count_flops(mlp, [torch.zeros(batch, 64)]) == batch * MLP_FLOPS_PER_SAMPLE


def test_onnx_matmul_flops(tmp_path):
    path = constant_weights_onnx(tmp_path / "const.onnx")    # x[batch,16] @ w1[16,32] ... @ w2[32,5]
    info = _describe(str(path), batch=2)
    assert info["flops"] == 2 * 2 * (16 * 32 + 32 * 5) and not info["flops_partial"]
    matmuls = [r for r in info["layers"] if r["type"] == "MatMul"]
    assert [r["output_shapes"] for r in matmuls] == [[[2, 32]], [[2, 5]]]
    assert [r["params"] for r in matmuls] == [16 * 32, 32 * 5]


def test_onnx_flops_are_partial_when_an_op_is_unknown():
    import onnx
    from onnx import TensorProto, helper, numpy_helper
    w = numpy_helper.from_array(np.ones((8, 4), np.float32), "w")
    nodes = [helper.make_node("MatMul", ["x", "w"], ["h"], name="mm"),
             helper.make_node("Einsum", ["h", "h"], ["g"], equation="bi,bj->bij", name="outer"),
             helper.make_node("ReduceSum", ["g"], ["y"], keepdims=0, name="sum")]
    graph = helper.make_graph(nodes, "partial", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 8])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [])], [w])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    onnx.checker.check_model(model)
    described = describe_onnx(model, [[3, 8]])
    assert described.flops == 2 * 3 * 4 * 8 and described.flops_partial and described.uncounted == ["Einsum"]
    assert [r.output_shapes for r in described.rows][:2] == [[[3, 4]], [[3, 4, 4]]]
    assert count_flops(model, [np.zeros((3, 8), np.float32)]) is None     # not a whole count
    # without a concrete input shape: symbolic dims, and nothing to count
    symbolic = describe_onnx(model, None)
    assert symbolic.rows[0].output_shapes == [["n", 4]] and symbolic.flops is None


def test_export_program_layers_at_their_exported_batch(tiny):
    info = _describe(str(tiny["pt2"]))                       # exported with a fixed batch of 4
    assert info["flops_batch"] == 4 and info["flops"] == 4 * MLP_FLOPS_PER_SAMPLE
    assert [(r["name"], r["type"], r["output_shapes"]) for r in info["layers"]] == [
        ("0", "Linear", [[4, 256]]), ("1", "ReLU", [[4, 256]]), ("2", "Linear", [[4, 10]])]
    assert [r["params"] for r in info["layers"]] == [64 * 256 + 256, 0, 256 * 10 + 10]


def test_torchscript_layers_keep_their_names_and_say_why_shapes_are_missing(tiny):
    info = _describe(str(tiny["torchscript"]))               # declares no inputs: nothing to run
    assert [r["type"] for r in info["layers"]] == ["Linear", "ReLU", "Linear"]
    assert all(r["output_shapes"] is None for r in info["layers"]) and info["flops"] is None
    assert info["flops_batch"] is None
    info = _describe(str(tiny["torchscript"]), inputs=[InputSpec.parse("2x64")])
    assert info["flops"] == 2 * MLP_FLOPS_PER_SAMPLE and info["flops_batch"] == 2
    assert any("not available for TorchScript" in note for note in info["notes"])


def test_model_info_json_keeps_the_old_fields(tiny):
    info = json.loads(json.dumps(_describe("demo:digits-cnn")))
    for key in ("source", "format", "parameters", "bytes", "inputs", "input_fixed_by_model", "flops",
                "layer_counts", "layers", "notes"):
        assert key in info
    assert {"name", "type", "params"} <= set(info["layers"][0])
    assert info["layer_counts"]["Conv2d"] == 3 and info["layers_total"] == len(info["layers"])
