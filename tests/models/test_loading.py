"""Model loading: every supported format loads and runs; every bad file gets a clear message."""
from __future__ import annotations

import numpy as np
import pytest

from core_fixtures import constant_weights_onnx, make_tiny_models
from workbench.errors import ModelLoadError
from workbench.models.loaders import load_model
from workbench.worker.runtimes import create_runtime


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return make_tiny_models(tmp_path_factory.mktemp("tiny"))


@pytest.fixture
def factory_module(tmp_path, monkeypatch):
    from core_fixtures import TINY_FACTORY_MODULE
    (tmp_path / "wb_tiny_factory.py").write_text(TINY_FACTORY_MODULE)
    monkeypatch.syspath_prepend(str(tmp_path))
    return "wb_tiny_factory:mlp"


def _outputs(loaded, x):
    runtime = create_runtime("onnxruntime" if loaded.kind == "onnx" else "torch", "cpu", "float32", 1)
    runtime.prepare(loaded.model, [x])
    return runtime.infer([x])


@pytest.mark.parametrize("fmt", ["torchscript", "pt2", "onnx"])
def test_formats_load_and_agree(tiny, fmt, factory_module):
    x = np.random.default_rng(0).standard_normal((4, 64)).astype(np.float32)
    reference = _outputs(load_model(str(tiny["state_dict"]), factory=factory_module), x)
    loaded = load_model(str(tiny[fmt]))
    assert loaded.format == fmt
    np.testing.assert_allclose(_outputs(loaded, x), reference, atol=1e-5)


def test_state_dict_formats_need_a_factory(tiny, factory_module):
    for key in ("state_dict", "safetensors"):
        with pytest.raises(ModelLoadError, match="holds only weights.*--factory package.module:callable"):
            load_model(str(tiny[key]))
        assert load_model(str(tiny[key]), factory=factory_module).format == "state_dict"


def test_onnx_and_pt2_declare_their_inputs(tiny):
    onnx_model = load_model(str(tiny["onnx"]))
    assert onnx_model.inputs[0].shape == [-1, 64] and onnx_model.inputs[0].name == "x"
    assert load_model(str(tiny["pt2"])).inputs[0].shape == [4, 64]


def test_pickle_is_refused_without_opt_in(tiny):
    with pytest.raises(ModelLoadError, match="pickled Python objects.*--trust-pickle"):
        load_model(str(tiny["pickle"]))
    assert load_model(str(tiny["pickle"]), trust_pickle=True).format == "pickle"


def test_onnx_with_constant_node_weights_loads_and_runs(tmp_path):
    path = constant_weights_onnx(tmp_path / "const.onnx")
    loaded = load_model(str(path))
    assert any("Constant nodes" in n for n in loaded.notes)
    assert {t.name for t in loaded.model.graph.initializer} >= {"w1", "w2", "b1"}
    from workbench.models.info import count_parameters
    assert count_parameters(loaded.model) == 16 * 32 + 32 + 32 * 5
    x = np.random.default_rng(0).standard_normal((3, 16)).astype(np.float32)
    import onnxruntime as ort
    raw = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]
    np.testing.assert_allclose(_outputs(loaded, x), raw, rtol=1e-6)


@pytest.mark.parametrize("name, content, message", [
    ("empty.onnx", b"", "is empty"),
    ("garbage.onnx", b"\x08\x07garbage-not-protobuf" * 10, "not a readable ONNX file"),
    ("garbage.pt", b"PK\x03\x04 truncated zip", "not a PyTorch file"),
    ("weird.xyz", b"hello world", "unrecognized model format"),
    ("bad.safetensors", b"\x10\x00\x00\x00\x00\x00\x00\x00{not json", "not a valid safetensors file"),
])
def test_bad_files_get_clear_messages(tmp_path, name, content, message):
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(ModelLoadError, match=message):
        load_model(str(path))


def test_truncated_files(tiny, tmp_path):
    for key in ("torchscript", "onnx", "pt2"):
        data = tiny[key].read_bytes()
        cut = tmp_path / f"cut{tiny[key].suffix}"
        cut.write_bytes(data[: len(data) // 2])
        with pytest.raises(ModelLoadError, match="truncated|corrupt|not a loadable|failed to load"):
            load_model(str(cut))


def test_missing_and_directory(tmp_path):
    with pytest.raises(ModelLoadError, match="model file not found"):
        load_model(str(tmp_path / "nope.onnx"))
    with pytest.raises(ModelLoadError, match="is a folder"):
        load_model(str(tmp_path))


def test_onnx_failing_checker(tmp_path):
    import onnx
    from onnx import TensorProto, helper
    node = helper.make_node("Relu", ["x"], ["y"])
    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.graph.node[0].input[0] = "does_not_exist"     # dangling edge: the checker rejects it
    path = tmp_path / "broken.onnx"
    onnx.save(model, str(path))
    with pytest.raises(ModelLoadError, match="fails onnx.checker"):
        load_model(str(path))


def test_bad_factories(tiny, tmp_path, monkeypatch):
    from core_fixtures import write_bad_models
    write_bad_models(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(ModelLoadError, match="cannot import factory 'no.such.module:f'"):
        load_model(str(tiny["state_dict"]), factory="no.such.module:f")
    with pytest.raises(ModelLoadError, match="returned int, not a torch.nn.Module"):
        load_model(str(tiny["state_dict"]), factory="wb_bad_models:not_a_module")
    with pytest.raises(ModelLoadError, match="do not fit the module built by wb_bad_models:tiny"):
        load_model(str(tiny["state_dict"]), factory="wb_bad_models:tiny")
