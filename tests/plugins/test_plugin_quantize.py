"""The quantize plugin: torch dynamic/static int8, torchao weight-only, fp16/bf16, ONNX Runtime int8,
parameter/device validation, discovery without torch."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from workbench.errors import PluginError, RunCancelled
from workbench.models.info import model_bytes
from workbench.plugin_api import PluginContext, build_chain, chain_error
from workbench.spec import PluginStep
from workbench_plugins import _quant_backend as backend
from workbench_plugins.quantize import NO_DATA_MESSAGE, Quantize

BATCH = 64


# ---------------------------------------------------------------------------------------------
# The bundled demo models and data
# ---------------------------------------------------------------------------------------------
def _context(tmp_path: Path, data: dict | None, device: str = "cpu", cancelled=lambda: False) -> PluginContext:
    example = torch.from_numpy(data["x_test"][:BATCH]) if data else torch.rand(BATCH, 1, 8, 8)
    return PluginContext(device=device, dtype="float32", example_inputs=[example], data=data, seed=0,
                         workdir=tmp_path, cancelled=cancelled)


def _predict(model, x: np.ndarray, dtype=torch.float32) -> np.ndarray:
    with torch.no_grad():
        return np.concatenate([model(torch.from_numpy(c).to(dtype)).float().argmax(1).numpy()
                               for c in np.array_split(x, max(1, len(x) // 128))])


def _predict_onnx(proto, x: np.ndarray) -> np.ndarray:
    import onnxruntime as ort
    session = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    return session.run(None, {name: x})[0].argmax(1)


def _linear_names(model: nn.Module) -> list[str]:
    return [n for n, m in model.named_modules() if isinstance(m, nn.Linear)]


# ---------------------------------------------------------------------------------------------
# dynamic_int8
# ---------------------------------------------------------------------------------------------
def test_dynamic_int8_transformer_smaller_linears_replaced_outputs_close(transformer, data, tmp_path):
    linears = _linear_names(transformer)
    assert len(linears) >= 8
    quantized, report = Quantize(method="dynamic_int8").run(transformer, _context(tmp_path, data))

    assert report.bytes_after == model_bytes(quantized)
    assert report.bytes_after < 0.5 * report.bytes_before, report.summary
    assert report.extra["layers_quantized"] == len(linears)
    assert sorted(report.layers_changed) == sorted(linears)
    assert report.extra["layer_types"] == {"Linear": len(linears)}
    assert f"{len(linears)} of {len(linears)} matmul layers quantized [{len(linears)} Linear]" in report.summary
    assert not any(type(m) is nn.Linear for m in quantized.modules()), "float Linear layers left"
    assert "quantize_dynamic" in report.extra["backend"]
    assert torch.backends.quantized.engine in report.extra["backend"]
    # the input model is not modified
    assert all(type(m) is nn.Linear for n, m in transformer.named_modules() if n in linears)

    x = data["x_test"]
    agreement = (_predict(quantized, x) == _predict(transformer, x)).mean()
    assert agreement >= 0.97, agreement


def test_dynamic_int8_cnn_reports_how_many(cnn, data, tmp_path):
    quantized, report = Quantize(method="dynamic_int8").run(cnn, _context(tmp_path, data))
    assert report.extra["layers_quantized"] == len(_linear_names(cnn)) == 1
    assert report.layers_changed == ["classifier"]
    assert report.summary.startswith("1 of 1 matmul layers quantized [1 Linear] -> int8 (dynamic_int8, torch.ao)")
    x = data["x_test"]
    assert (_predict(quantized, x) == _predict(cnn, x)).mean() >= 0.97


def test_a_model_without_quantizable_layers_is_refused_up_front_saying_what_was_looked_for(tmp_path):
    model = nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 4, 3), nn.ReLU()).eval()
    plugin = Quantize(method="dynamic_int8")
    with pytest.raises(PluginError, match=r"found no layer it can quantize: it looks for nn.Linear, transformers "
                                          r"Conv1D, LSTM/GRU layers and this model has none \(it has 2 Conv2d\)"
                                          r".*static_int8"):
        plugin.check_model(model, "torch")
    # the chain check refuses it too when the worker hands it the loaded model, before anything runs
    with pytest.raises(PluginError, match="found no layer"):
        build_chain([PluginStep("quantize", {"method": "dynamic_int8"})], "torch", "cpu", "torch", model=model)
    with pytest.raises(PluginError, match="found no layer"):
        plugin.run(model, _context(tmp_path, None))


# ---------------------------------------------------------------------------------------------
# static_int8
# ---------------------------------------------------------------------------------------------
def test_static_int8_cnn_calibrated_smaller_accurate(cnn, data, tmp_path):
    quantized, report = Quantize(method="static_int8", calibration_samples=256).run(cnn, _context(tmp_path, data))
    assert report.bytes_after < 0.4 * report.bytes_before, report.summary
    assert report.extra["calibration_samples"] == 256
    assert report.extra["calibration_source"] == "x_train"
    assert "calibrated on 256 samples" in report.summary
    convs = [n for n, m in cnn.named_modules() if isinstance(m, nn.Conv2d)]
    assert report.extra["layer_types"].get("Conv2d") == len(convs)
    assert set(convs) <= set(report.layers_changed)
    assert "FX" in report.extra["backend"]

    x, y = data["x_test"], data["y_test"]
    acc_fp32 = (_predict(cnn, x) == y).mean()
    acc_int8 = (_predict(quantized, x) == y).mean()
    assert acc_int8 >= acc_fp32 - 0.02, (acc_fp32, acc_int8)


def test_static_int8_reports_the_calibration_size_used(cnn, data, tmp_path):
    small = {"x_train": data["x_train"][:100]}
    _, report = Quantize(method="static_int8", calibration_samples=500).run(cnn, _context(tmp_path, {**data, **small}))
    assert report.extra["calibration_samples"] == 100
    assert any("used 100" in note for note in report.notes)


def test_static_int8_without_data_is_a_clear_error(cnn, tmp_path):
    with pytest.raises(PluginError) as err:
        Quantize(method="static_int8").run(cnn, _context(tmp_path, None))
    message = str(err.value)
    assert message == NO_DATA_MESSAGE
    assert "calibration data" in message and "--data file.npz" in message and "dynamic_int8" in message


def test_static_int8_rejects_data_of_the_wrong_shape(cnn, tmp_path, data):
    bad = {"x_train": np.zeros((32, 3, 8, 8), np.float32)}
    context = _context(tmp_path, data)
    context.data = bad
    with pytest.raises(PluginError, match=r"shape \(3, 8, 8\).*\(1, 8, 8\)"):
        Quantize(method="static_int8").run(cnn, context)


def test_static_int8_calibration_can_be_cancelled(cnn, data, tmp_path):
    with pytest.raises(RunCancelled):
        Quantize(method="static_int8").run(cnn, _context(tmp_path, data, cancelled=lambda: True))


class _NotFxTraceable(nn.Module):
    """Python control flow over a tensor size: FX symbolic tracing fails, torch.export does not."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 8, 3, padding=1)
        self.fc = nn.Linear(8 * 64, 10)

    def forward(self, x):
        h = torch.relu(self.conv(x))
        parts = [h[:, i:i + 1] for i in range(h.shape[1])]
        return self.fc(torch.cat(parts, 1).flatten(1))


def test_static_int8_falls_back_to_pt2e_when_fx_cannot_trace_even_at_batch_1(data, tmp_path):
    # At batch 1 torch.export used to fix the batch to 1 and calibration in batches of 64 failed
    # ("Guard failed: x.size()[0] == 1"): the export now keeps the batch dynamic.
    torch.manual_seed(0)
    model = _NotFxTraceable().eval()
    context = _context(tmp_path, data)
    context.example_inputs = [context.example_inputs[0][:1]]
    quantized, report = Quantize(method="static_int8", calibration_samples=100).run(model, context)
    assert "PT2E" in report.extra["backend"] and "X86InductorQuantizer" in report.extra["backend"]
    assert report.extra["flow"] == "PT2E" and "(static_int8, PT2E flow, torchao)" in report.summary
    assert report.extra["calibration_samples"] == 100
    assert report.layers_changed == ["conv", "fc"]
    assert any("FX could not trace" in note and "torch_compile" in note for note in report.notes)
    assert report.bytes_after < 0.5 * report.bytes_before   # the fp32 copies of the weights are dropped
    with torch.no_grad():
        for batch in (1, BATCH, 7):   # exported with a dynamic batch dimension
            x = torch.from_numpy(data["x_test"][:batch])
            torch.testing.assert_close(quantized(x), model(x), atol=0.05, rtol=0.05)


def test_static_int8_on_a_graph_fixed_to_batch_1_calibrates_at_that_batch(data, tmp_path):
    from workbench_plugins import _quant_pt2e
    torch.manual_seed(0)
    fixed = torch.export.export(_NotFxTraceable().eval(), (torch.rand(1, 1, 8, 8),)).module()
    assert _quant_pt2e.fixed_batch(fixed) == 1
    quantized, report = Quantize(method="static_int8", calibration_samples=6).run(fixed, _context(tmp_path, data))
    assert report.extra["flow"] == "PT2E" and report.extra["calibration_samples"] == 6
    assert any("takes batch 1 only: calibrated in batches of 1" in n for n in report.notes)
    assert report.layers_changed == ["conv", "fc"]
    # a batch that does not divide evenly is re-cut; too few samples are repeated to fill one batch
    cut = _quant_pt2e.rebatch([[torch.zeros(5, 2)], [torch.ones(2, 2)]], 3)
    assert [b[0][:, 0].tolist() for b in cut] == [[0, 0, 0], [0, 0, 1]]
    assert _quant_pt2e.rebatch([[torch.arange(2.0)]], 5)[0][0].tolist() == [0, 1, 0, 1, 0]


# ---------------------------------------------------------------------------------------------
# torch.export programs (.pt2): no .eval(), no nn.Linear modules -> PT2E, or a clear refusal
# ---------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def pt2_program():
    import io
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(8 * 64, 10)).eval()
    program = torch.export.export(model, (torch.rand(4, 1, 8, 8),), dynamic_shapes=({0: torch.export.Dim.AUTO},))
    buffer = io.BytesIO()
    torch.export.save(program, buffer)
    buffer.seek(0)
    loaded = torch.export.load(buffer).module()        # what the .pt2 loader hands the plugins
    with pytest.raises(NotImplementedError):
        loaded.eval()
    return model, loaded


@pytest.mark.parametrize("method,quantized_layers", [("dynamic_int8", ["3"]), ("static_int8", ["0", "3"])])
def test_pt2_programs_are_quantized_with_pt2e(pt2_program, data, tmp_path, method, quantized_layers):
    model, program = pt2_program
    params = {"calibration_samples": 64} if method == "static_int8" else {}
    quantized, report = Quantize(method=method, **params).run(program, _context(tmp_path, data))
    assert report.extra["flow"] == "PT2E"
    assert report.layers_changed == quantized_layers
    total = 1 if method == "dynamic_int8" else 2
    assert report.summary.startswith(f"{len(quantized_layers)} of {total} ")
    assert any("a .pt2 program is a graph" in n and "torch_compile" in n for n in report.notes)
    assert report.bytes_after < 0.5 * report.bytes_before
    x = torch.from_numpy(data["x_test"][:16])
    with torch.no_grad():
        torch.testing.assert_close(quantized(x), model(x), atol=0.05, rtol=0.05)


def test_pt2_programs_refuse_torchao_weight_only_saying_why(pt2_program, tmp_path, data):
    for method in ("weight_only_int8",):
        with pytest.raises(PluginError, match=r"a \.pt2 program is a flat graph without nn.Linear modules.*"
                                              r"state_dict \+ factory.*dynamic_int8 / static_int8"):
            Quantize(method=method).run(pt2_program[1], _context(tmp_path, data))


def test_pt2_programs_cast_to_bf16(pt2_program, data, tmp_path):
    if not backend.cpu_bf16_support()[0]:
        pytest.skip("no bf16 on this CPU")
    model, program = pt2_program
    quantized, report = Quantize(method="bf16").run(program, _context(tmp_path, data))
    assert all(p.dtype == torch.bfloat16 for p in quantized.parameters())
    x = torch.from_numpy(data["x_test"][:16])
    with torch.no_grad():
        torch.testing.assert_close(quantized(x.bfloat16()).float(), model(x), atol=0.1, rtol=0.1)


# ---------------------------------------------------------------------------------------------
# torchao weight-only, int4, fp16, bf16
# ---------------------------------------------------------------------------------------------
def test_weight_only_int8_torchao_on_cpu(transformer, data, tmp_path):
    quantized, report = Quantize(method="weight_only_int8").run(transformer, _context(tmp_path, data))
    linears = _linear_names(transformer)
    assert report.extra["layers_quantized"] == len(linears)
    assert "torchao" in report.extra["backend"] and "Int8WeightOnlyConfig" in report.extra["backend"]
    weight = dict(quantized.named_modules())[linears[0]].weight
    assert type(weight).__module__.startswith("torchao")
    assert report.bytes_after < 0.5 * report.bytes_before
    x = data["x_test"]
    assert (_predict(quantized, x) == _predict(transformer, x)).mean() >= 0.97


def test_int4_is_cuda_only():
    plugin = Quantize(method="int4")
    assert plugin.supported_devices() == ("cuda",)
    with pytest.raises(PluginError, match="int4 runs on CUDA only.*weight_only_int8"):
        plugin.check("torch", "cpu")
    with pytest.raises(PluginError, match=r"quantize.*cpu"):
        build_chain([PluginStep("quantize", {"method": "int4"})], "torch", "cpu", "torch")


def test_fp16_on_cpu_is_rejected_with_the_fix():
    plugin = Quantize(method="fp16")
    assert plugin.supported_devices() == ("cuda",)
    with pytest.raises(PluginError, match="fp16 runs on CUDA only.*use bf16 on cpu"):
        plugin.check("torch", "cpu")


def test_bf16_on_cpu(transformer, data, tmp_path):
    ok, how = backend.cpu_bf16_support()
    plugin = Quantize(method="bf16")
    if not ok:
        with pytest.raises(PluginError, match="bf16 on cpu"):
            plugin.check("torch", "cpu")
        return
    quantized, report = plugin.run(transformer, _context(tmp_path, data))
    assert all(p.dtype == torch.bfloat16 for p in quantized.parameters())
    assert all(p.dtype == torch.float32 for p in transformer.parameters()), "input model was modified"
    assert report.bytes_after < 0.55 * report.bytes_before
    assert any(how in note for note in report.notes)
    x = data["x_test"]
    assert (_predict(quantized, x, torch.bfloat16) == _predict(transformer, x)).mean() >= 0.97
    with torch.no_grad():
        ref = transformer(torch.from_numpy(x[:64]))
        out = quantized(torch.from_numpy(x[:64]).bfloat16()).float()
    assert torch.nn.functional.cosine_similarity(ref, out, dim=1).min() > 0.99


# ---------------------------------------------------------------------------------------------
# ONNX models (onnxruntime.quantization)
# ---------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def transformer_onnx(transformer, data):
    from workbench.plugin_api.onnx_export import export_to_onnx
    return export_to_onnx(transformer, [torch.from_numpy(data["x_test"][:BATCH])])


def test_onnx_dynamic_int8(transformer_onnx, data, tmp_path):
    quantized, report = Quantize(method="dynamic_int8").run(transformer_onnx, _context(tmp_path, data))
    assert type(quantized).__name__ == "ModelProto"
    assert report.bytes_after == quantized.ByteSize()
    assert report.bytes_after < 0.5 * report.bytes_before, report.summary
    assert report.extra["layers_quantized"] >= 8
    ops = {node.op_type for node in quantized.graph.node}
    assert "MatMulInteger" in ops or "DynamicQuantizeMatMul" in ops
    assert Path(report.extra["artifact"]).is_file()
    x = data["x_test"]
    assert (_predict_onnx(quantized, x) == _predict_onnx(transformer_onnx, x)).mean() >= 0.97


def test_onnx_static_int8_cnn(cnn, data, tmp_path):
    from workbench.plugin_api.onnx_export import export_to_onnx
    proto = export_to_onnx(cnn, [torch.from_numpy(data["x_test"][:BATCH])])
    quantized, report = Quantize(method="static_int8", calibration_samples=128).run(proto, _context(tmp_path, data))
    assert report.extra["calibration_samples"] == 128
    assert report.bytes_after < 0.4 * report.bytes_before
    assert report.extra["layers_quantized"] >= 3
    x, y = data["x_test"], data["y_test"]
    assert (_predict_onnx(quantized, x) == y).mean() >= (_predict_onnx(proto, x) == y).mean() - 0.02


def test_onnx_rejects_torch_only_methods():
    for method in ("weight_only_int8", "int4", "fp16", "bf16"):
        with pytest.raises(PluginError, match=f"method={method} needs a torch model.*dynamic_int8 or static_int8"):
            Quantize(method=method).check("onnx", "cpu")


def test_torchscript_models_are_rejected_with_the_fix(tmp_path, data):
    scripted = torch.jit.trace(nn.Sequential(nn.Flatten(), nn.Linear(64, 10)).eval(), torch.rand(2, 1, 8, 8))
    with pytest.raises(PluginError, match="needs a Python nn.Module.*state_dict \\+ factory"):
        Quantize(method="dynamic_int8").run(scripted, _context(tmp_path, data))


# ---------------------------------------------------------------------------------------------
# schema, chain validation, discovery
# ---------------------------------------------------------------------------------------------
def test_param_schema_errors():
    with pytest.raises(PluginError, match=r"quantize:method: 'int3' is not one of dynamic_int8"):
        Quantize(method="int3")
    with pytest.raises(PluginError, match=r"quantize: unknown parameter\(s\) bits \(known: method"):
        Quantize(bits=8)
    with pytest.raises(PluginError, match=r"calibration_samples: 0 is outside"):
        Quantize(method="static_int8", calibration_samples="0")
    assert Quantize(method="static_int8", calibration_samples="128").params["calibration_samples"] == 128


def test_device_mismatch_names_the_plugin_and_the_fix():
    with pytest.raises(PluginError) as err:
        build_chain([PluginStep("quantize", {"method": "dynamic_int8"})], "torch", "cuda", "torch")
    message = str(err.value)
    # build_chain surfaces the plugin's own reason and fix, not a generic device message
    assert message.startswith("quantize: dynamic_int8 runs on CPU only") and "use weight_only_int8" in message
    # check() gives the same explanation (what the GUI shows next to the step)
    with pytest.raises(PluginError, match="dynamic_int8 runs on CPU only.*use weight_only_int8"):
        Quantize(method="dynamic_int8").check("torch", "cuda")
    # valid chains build
    chain = build_chain([PluginStep("quantize", {"method": "weight_only_int8"})], "torch", "cuda", "torch")
    assert [s.name for s in chain] == ["quantize"]
    chain = build_chain([PluginStep("quantize", {"method": "dynamic_int8"})], "onnx", "cpu", "onnxruntime")
    assert [s.name for s in chain] == ["quantize"]


def test_torch_int8_then_onnx_runtime_is_refused_before_anything_runs_with_the_working_chain():
    # torch.ao's int8 layers have no ONNX export: the auto-inserted export would fail after the
    # model was loaded and quantized; the chain is refused up front, naming the chain that works.
    steps = [PluginStep("quantize", {"method": "dynamic_int8"})]
    message = chain_error(steps, "torch", "cpu", "onnxruntime")
    assert message is not None and message.startswith("the runtime is ONNX Runtime, but the model of step 1")
    assert "--plugin onnx_export --plugin quantize:method=dynamic_int8" in message
    # ... which builds: ONNX Runtime's own int8 quantization on the exported graph
    working = [PluginStep("onnx_export", {}), PluginStep("quantize", {"method": "dynamic_int8"})]
    assert [s.name for s in build_chain(working, "torch", "cpu", "onnxruntime")] == ["onnx_export", "quantize"]
    # the same method with the torch runtime, and casts before an export, stay valid
    assert chain_error(steps, "torch", "cpu", "torch") is None
    assert chain_error(steps, "torch", "cpu", "auto") is None
    bf16 = build_chain([PluginStep("quantize", {"method": "bf16"})], "torch", "cpu", "onnxruntime")
    assert [(s.name, s.auto_inserted) for s in bf16] == [("quantize", False), ("onnx_export", True)]
    # torchao weight-only tensors cannot be exported either; there the fix is the torch runtime
    message = chain_error([PluginStep("quantize", {"method": "weight_only_int8"})], "torch", "cpu", "onnxruntime")
    assert message is not None and "run it with --runtime torch" in message


# ---------------------------------------------------------------------------------------------
# methods known to be slow where they run: said in the form and in the chain check, never refused
# ---------------------------------------------------------------------------------------------
def test_slow_methods_are_named_in_the_form_and_warned_by_the_chain_check():
    from workbench.plugin_api import chain_warnings
    method_help = Quantize.method_choice().help
    assert "slower in eager" in method_help and "dequantizes every call" in method_help
    described = Quantize.describe()["method_caveats"]
    assert "dequantizes" in described["weight_only_int8"]["cpu"] and "cuda" not in described["weight_only_int8"]

    weight_only = [PluginStep("quantize", {"method": "weight_only_int8"})]
    warnings = chain_warnings(weight_only, "torch", "cpu", "torch")
    assert len(warnings) == 1 and warnings[0].startswith("step 1 (quantize): weight_only_int8 on CPU is usually slower")
    assert "fuse:method=torch_compile" in warnings[0]
    assert chain_warnings(weight_only, "torch", "cuda", "torch") == []
    compiled = weight_only + [PluginStep("fuse", {"method": "torch_compile"})]
    assert not [w for w in chain_warnings(compiled, "torch", "cpu", "torch") if w.startswith("step 1")]   # compiled
    assert build_chain(weight_only, "torch", "cpu", "torch")[0].warnings == warnings_text(warnings)

    static = [PluginStep("quantize", {"method": "static_int8"})]
    at_batch_1 = chain_warnings(static, "torch", "cpu", "torch", batch=1)
    assert any("quantize/dequantize graph" in w for w in at_batch_1)
    assert any("static_int8 at batch 1" in w and "dynamic_int8" in w for w in at_batch_1)
    assert not any("at batch" in w for w in chain_warnings(static, "torch", "cpu", "torch", batch=64))
    assert chain_warnings(static, "onnx", "cpu", "onnxruntime", batch=1) == []     # ONNX Runtime's own int8
    assert chain_warnings([PluginStep("quantize", {"method": "dynamic_int8"})], "torch", "cpu", "torch", 1) == []
    assert chain_warnings([PluginStep("quantize", {"method": "int4"})], "torch", "cpu", "torch") == []  # invalid


def warnings_text(lines: list[str]) -> list[str]:
    return [line.split(": ", 1)[1] for line in lines]


def test_a_chain_whose_every_step_changed_nothing_is_refused():
    from workbench.plugin_api import require_some_change
    require_some_change([{"plugin": "fuse", "summary": "0 pairs", "changed": False},
                         {"plugin": "quantize", "summary": "3 of 3", "changed": True}])
    require_some_change([{"plugin": "quantize", "summary": "x", "changed": None}])   # not said: changed
    with pytest.raises(PluginError, match=r"every step of the chain left the model unchanged \(fuse: 0 pairs"):
        require_some_change([{"plugin": "fuse", "summary": "0 pairs", "changed": False}])


def test_skip_applies_to_the_int_methods_and_onnx_nodes(transformer_onnx, data, tmp_path):
    with pytest.raises(PluginError, match="quantize:skip applies only to method=dynamic_int8/static_int8"):
        Quantize(method="bf16", skip="fc")
    nodes = backend.onnx_candidates(transformer_onnx, "dynamic_int8")
    quantized, report = Quantize(method="dynamic_int8", skip=nodes[0]).run(transformer_onnx, _context(tmp_path, data))
    assert report.extra["layers_skipped"] == {nodes[0]: "skip pattern"}
    assert nodes[0] not in report.layers_changed
    assert report.summary.startswith(f"{len(report.layers_changed)} of {len(nodes)} nodes quantized")


def test_onnx_static_int8_feeds_token_ids_as_the_graph_declares_them(tmp_path):
    """A token model's calibration batches reach ONNX Runtime as int64 ids, not floats."""
    from workbench.plugin_api.onnx_export import export_to_onnx

    class TokenModel(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.embed, self.head = nn.Embedding(50, 16), nn.Linear(16, 50)

        def forward(self, ids):
            return self.head(torch.relu(self.embed(ids)))

    ids = torch.randint(0, 50, (4, 8))
    proto = export_to_onnx(TokenModel().eval(), [ids])
    data = {"x_train": np.random.default_rng(0).integers(0, 50, (64, 8)).astype(np.int64)}
    context = PluginContext(device="cpu", dtype="float32", example_inputs=[ids], data=data, seed=0, workdir=tmp_path)
    quantized, report = Quantize(method="static_int8", calibration_samples=64).run(proto, context)
    assert report.extra["layers_quantized"] >= 1 and report.bytes_after < report.bytes_before


def test_bf16_of_a_torchscript_graph_that_records_float32_ops_is_refused_in_one_line(tmp_path):
    class Recurrent(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.lstm = nn.LSTM(8, 16, batch_first=True)

        def forward(self, x):
            return self.lstm(x)[0]

    x = torch.rand(2, 4, 8)
    scripted = torch.jit.trace(Recurrent().eval(), x)
    context = PluginContext(device="cpu", dtype="float32", example_inputs=[x], data=None, seed=0, workdir=tmp_path)
    with pytest.raises(PluginError, match="TorchScript graph records float32 operations.*state_dict") as refused:
        Quantize(method="bf16").run(scripted, context)
    assert "\n" not in str(refused.value)


def test_dynamic_int8_of_an_lstm_warns_that_it_can_be_slower(tmp_path):
    class Recurrent(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.lstm, self.head = nn.LSTM(8, 16, batch_first=True), nn.Linear(16, 4)

        def forward(self, x):
            return self.head(self.lstm(x)[0])

    x = torch.rand(2, 4, 8)
    context = PluginContext(device="cpu", dtype="float32", example_inputs=[x], data=None, seed=0, workdir=tmp_path)
    _, report = Quantize(method="dynamic_int8").run(Recurrent().eval(), context)
    assert report.extra["layer_types"] == {"LSTM": 1, "Linear": 1}
    assert any("LSTM/GRU" in note and "slower" in note for note in report.notes)
