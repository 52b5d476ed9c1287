"""Per-layer comparison and sensitivity scan (issue 15): forward hooks matched by module name give
each layer's output drift; the weights give the quantization error |w − q(w)| (torch.ao dynamic
int8, torchao tensor subclasses, float casts) and the pruning sensitivity ‖Δw‖/‖w‖; the scan applies
the real quantize plugin to one layer at a time through its ``skip`` parameter."""
from __future__ import annotations

import copy
import warnings

import numpy as np
import pytest

from workbench.errors import PluginError
from workbench.worker.layers import layer_report, weight_change
from workbench.worker.scan import sensitivity_scan

LINEARS = ("0", "2", "4")


@pytest.fixture(scope="module")
def mlp():
    import torch
    from torch import nn
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(16, 32), nn.ReLU(), nn.Linear(32, 32), nn.ReLU(), nn.Linear(32, 5)).eval()


@pytest.fixture(scope="module")
def samples():
    return [np.random.default_rng(0).standard_normal((24, 16)).astype(np.float32)]


def _dynamic_int8(model):
    import torch
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return torch.ao.quantization.quantize_dynamic(copy.deepcopy(model), {torch.nn.Linear}, dtype=torch.qint8)


def _rows(report: dict) -> dict:
    return {row["name"]: row for row in report["rows"]}


def test_dynamic_int8_layers_have_their_quantization_error_and_drift(mlp, samples):
    report = layer_report(mlp, _dynamic_int8(mlp), samples, batch=8)
    rows = _rows(report)
    assert report["samples"] == 24 and list(rows) == ["0", "1", "2", "3", "4"]   # execution order
    for name in LINEARS:
        weight = rows[name]["weight"]
        assert weight["kind"] == "quantized" and weight["to"] == "qint8"
        assert 0 < weight["mean_abs"] <= weight["max_abs"] and 0 < weight["relative"] < 0.02
        # per-tensor int8: the largest error is at most half a step of max|w| / 127
        assert weight["max_relative"] <= 0.5 / 127 + 1e-6
        assert rows[name]["type_after"] == "Linear(dynamic int8)"
        assert 0.999 < rows[name]["drift"]["cosine"] <= 1.0 and rows[name]["drift"]["relative_error"] > 0
    assert rows["1"]["weight"] is None and rows["1"]["drift"] is not None          # ReLU: drift, no weight
    assert rows["0"]["params_before"] == rows["0"]["params_after"] == 16 * 32 + 32
    assert report["only_after"] == []                                               # packed params are not layers


def test_torchao_and_cast_weights_are_dequantized(mlp, samples):
    import torch
    from torchao.quantization import Int8WeightOnlyConfig, quantize_
    weight_only = copy.deepcopy(mlp)
    quantize_(weight_only, Int8WeightOnlyConfig(set_inductor_config=False))
    rows = _rows(layer_report(mlp, weight_only, samples, batch=8))
    assert rows["0"]["weight"]["to"].startswith("torchao ")
    assert 0 < rows["0"]["weight"]["relative"] < 0.02
    change = weight_change(mlp[0], copy.deepcopy(mlp[0]).to(torch.bfloat16))
    assert change["kind"] == "quantized" and change["to"] == "bfloat16" and 0 < change["relative"] < 0.01


def test_pruned_layers_have_their_sensitivity(mlp, samples):
    import torch
    from torch.nn.utils import prune
    pruned = copy.deepcopy(mlp)
    prune.l1_unstructured(pruned[2], "weight", amount=0.5)
    prune.remove(pruned[2], "weight")
    rows = _rows(layer_report(mlp, pruned, samples, batch=8))
    weight = rows["2"]["weight"]
    w, q = mlp[2].weight.detach(), pruned[2].weight.detach()
    assert weight["kind"] == "pruned" and weight["sparsity_after"] == pytest.approx(0.5)
    assert weight["relative"] == pytest.approx(float(torch.linalg.vector_norm(w - q) / torch.linalg.vector_norm(w)),
                                               rel=1e-5)
    assert rows["0"]["weight"] is None and rows["0"]["drift"]["relative_error"] == 0.0


def test_removed_channels_change_shapes(mlp, samples):
    from torch import nn
    narrow = copy.deepcopy(mlp)
    narrow[2] = nn.Linear(32, 16)          # half of layer 2's outputs, as a structured prune leaves it
    narrow[2].weight.data, narrow[2].bias.data = mlp[2].weight.data[:16].clone(), mlp[2].bias.data[:16].clone()
    narrow[4] = nn.Linear(16, 5)
    narrow[4].weight.data = mlp[4].weight.data[:, :16].clone()
    rows = _rows(layer_report(mlp, narrow, samples, batch=8))
    assert rows["2"]["weight"]["kind"] == "channels removed"
    assert rows["2"]["weight"]["shape_after"] == [16, 32] and 0 < rows["2"]["weight"]["relative"] < 1
    assert rows["2"]["drift"] == {"shape_changed": [[8, 32], [8, 16]]}
    assert rows["2"]["params_after"] < rows["2"]["params_before"]


def test_torchscript_cannot_be_hooked(mlp, samples):
    import torch
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        scripted = torch.jit.trace(mlp, torch.ones(1, 16))
    with pytest.raises(TypeError, match="TorchScript"):
        layer_report(mlp, scripted, samples, batch=8)


# -- the sensitivity scan ---------------------------------------------------------------------------
def _scan_tools(model, samples):
    """What the worker's scan job gives ``sensitivity_scan``: the real quantize plugin and an infer."""
    import torch

    from workbench.plugin_api import PluginContext, get_plugin_class
    cls = get_plugin_class("quantize")
    applied: list[int] = []

    def run_plugin(module, params):
        context = PluginContext(device="cpu", dtype="float32", example_inputs=[torch.from_numpy(samples[0][:8])],
                                data=None, seed=0, workdir=None)
        quantized, report = cls(**params).run(module, context)
        applied.append(report.extra["layers_quantized"])
        return quantized

    def infer(module):
        with torch.no_grad():
            return module(torch.from_numpy(samples[0])).numpy()

    return cls, run_plugin, infer, applied


def test_the_scan_applies_the_plugin_to_one_layer_at_a_time(mlp, samples):
    cls, run_plugin, infer, applied = _scan_tools(mlp, samples)
    assert any(p.name == "skip" for p in cls.params_schema)
    reference = infer(mlp)
    seen = []
    scan = sensitivity_scan(mlp, {"method": "dynamic_int8"}, run_plugin, infer, reference, None, has_skip=True,
                            progress=lambda fraction, message: seen.append(fraction))
    assert scan["how"] == "skip" and scan["metric"] == "top1_agreement"      # 5-class logits
    assert applied == [3, 1, 1, 1, 2]        # all layers, each alone, then all but the suggested one
    assert sorted(scan["ranking"]) == list(LINEARS) and len(scan["layers"]) == 3
    assert all(0 < layer["output_error"] < scan["all_layers"]["output_error"] for layer in scan["layers"])
    suggestion = scan["suggestion"]
    assert suggestion["skip"] == [scan["ranking"][0]] and suggestion["params"]["skip"] == scan["ranking"][0]
    assert suggestion["fidelity"]["output_error"] < scan["all_layers"]["output_error"]
    assert seen == sorted(seen) and seen[-1] == 1.0


def test_without_skip_the_scan_swaps_single_layers_in(mlp, samples):
    _, run_plugin, infer, applied = _scan_tools(mlp, samples)
    cancel_after = iter([False, False, True])
    scan = sensitivity_scan(mlp, {"method": "dynamic_int8"}, run_plugin, infer, infer(mlp), None, has_skip=False,
                            cancelled=lambda: next(cancel_after))
    assert applied == [3] and scan["how"] == "swap"           # the plugin ran once, on the whole model
    assert scan["cancelled"] and len(scan["layers"]) == 2 and scan["suggestion"] is None


def test_a_skip_pattern_that_matches_nothing_names_the_closest_modules(mlp, samples):
    _, run_plugin, infer, _ = _scan_tools(mlp, samples)
    with pytest.raises(PluginError, match="pattern '5' matches no module; closest names: "):
        sensitivity_scan(mlp, {"method": "dynamic_int8", "skip": "5"}, run_plugin, infer, infer(mlp), None,
                         has_skip=True)


def test_the_layers_job_explains_a_stored_run_later(tmp_path):
    """A run without --profile: the worker loads its model again and applies its chain again."""
    from workbench.spec import PluginStep, RunSpec
    from workbench.worker.explain import layers_job
    from workbench.worker.pipeline import Stage
    spec = RunSpec(model="demo:digits-transformer", plugins=[PluginStep("quantize", {"method": "dynamic_int8"})],
                   batch=64, threads=1)
    events = []
    layers_job({"job": "layers", "spec": spec.to_dict(), "workdir": str(tmp_path)},
               lambda kind, **fields: events.append((kind, fields)), lambda: False, Stage())
    report = events[-1][1]["result"]["layers"]
    assert [kind for kind, _ in events].count("result") == 1
    assert sum((r["weight"] or {}).get("kind") == "quantized" for r in report["rows"]) == 14
    assert report["samples"] == 32 and "applied again" in report["notes"][-1]
