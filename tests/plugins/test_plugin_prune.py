"""The prune plugin: structured channel removal (torch-pruning) and unstructured sparsity."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn

from workbench.errors import PluginError
from workbench.models.info import count_flops, count_parameters
from workbench.plugin_api import PluginContext
from workbench_plugins.prune import NO_SPEEDUP_NOTE, Prune
from plugin_fixtures import demo_module

BATCH = 16


# ---------------------------------------------------------------------------------------------
# The bundled demo models and data
# ---------------------------------------------------------------------------------------------
def _context(data, events=None, seed=0) -> PluginContext:
    return PluginContext(device="cpu", dtype="float32", example_inputs=[torch.randn(BATCH, 1, 8, 8)],
                         data=data, seed=seed, workdir=Path("."),
                         emit=(lambda kind, payload: events.append((kind, payload))) if events is not None
                         else (lambda kind, payload: None))


def _convs(model) -> dict[str, int]:
    return {n: m.out_channels for n, m in model.named_modules() if isinstance(m, nn.Conv2d)}


def _weights(model) -> list[torch.Tensor]:
    return [m.weight for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]


# ---------------------------------------------------------------------------------------------
# Structured
# ---------------------------------------------------------------------------------------------
def test_structured_half_removes_channels(cnn, data):
    before_state = {k: v.clone() for k, v in cnn.state_dict().items()}
    convs = _convs(cnn)
    example = torch.randn(BATCH, 1, 8, 8)
    pruned, report = Prune(method="structured", amount=0.5, importance="l1", finetune="off").run(cnn, _context(data))

    after = _convs(pruned)
    assert set(after) == set(convs) and len(convs) >= 3
    for name, channels in convs.items():
        assert after[name] == channels // 2, (name, channels, after[name])
    first = next(iter(convs))
    assert f"{first}: {convs[first]}→{convs[first] // 2} out channels" in report.layers_changed
    # the classifier keeps its 10 classes, and the model runs with the same output shape
    linears = [m for m in pruned.modules() if isinstance(m, nn.Linear)]
    assert linears[-1].out_features == 10
    with torch.no_grad():
        assert pruned(example).shape == cnn(example).shape == (BATCH, 10)
    # real removal: counted independently of the report
    params_before, params_after = count_parameters(cnn), count_parameters(pruned)
    assert report.params_before == params_before and report.params_after == params_after
    assert params_before >= 2 * params_after
    flops_before, flops_after = count_flops(cnn, [example]), count_flops(pruned, [example])
    assert flops_after < flops_before / 2
    assert report.flops_after < report.flops_before
    assert report.bytes_after < report.bytes_before
    # accuracy is measured on x_test before and after
    assert report.extra["accuracy_before"] > 0.9
    assert 0.0 <= report.extra["accuracy_after"] <= 1.0
    assert "accuracy" in report.summary and "FLOPs" in report.summary
    # the input model is untouched (plugins work on a copy)
    for key, value in cnn.state_dict().items():
        assert torch.equal(value, before_state[key])


def test_structured_l2_and_global_run(cnn, data):
    example = torch.randn(BATCH, 1, 8, 8)
    for params in ({"importance": "l2"}, {"scope": "global", "amount": 0.3}):
        pruned, report = Prune(method="structured", **{"amount": 0.5, **params}).run(cnn, _context(None))
        assert report.params_after < report.params_before
        assert pruned(example).shape == (BATCH, 10)
        assert "accuracy_before" not in report.extra          # no data, no accuracy


def test_ignore_keeps_named_layers(cnn):
    convs = _convs(cnn)
    first, second = list(convs)[:2]
    pruned, report = Prune(method="structured", amount=0.5, ignore=first).run(cnn, _context(None))
    after = _convs(pruned)
    assert after[first] == convs[first] and after[second] == convs[second] // 2
    assert not any(line.startswith(f"{first}:") for line in report.layers_changed)
    pruned, _ = Prune(method="unstructured", amount=0.5, ignore=f"{first};{second}").run(cnn, _context(None))
    named = dict(pruned.named_modules())
    assert int((named[first].weight == 0).sum()) == 0 and int((named[second].weight == 0).sum()) == 0
    with pytest.raises(PluginError, match="no module named not.a.layer"):
        Prune(method="structured", amount=0.5, ignore="not.a.layer").run(cnn, _context(None))


def test_structured_transformer_keeps_heads_working(data):
    model = demo_module("transformer")
    example = torch.randn(BATCH, 1, 8, 8)
    pruned, report = Prune(method="structured", amount=0.5).run(model, _context(None))
    with torch.no_grad():
        assert pruned(example).shape == (BATCH, 10)
    assert report.params_after < report.params_before / 2
    assert any("q_proj" in line for line in report.layers_changed)
    # the model's own width bookkeeping follows the pruned layers (d_model, head_dim)
    attn = pruned.blocks[0].attn
    assert attn.head_dim * attn.num_heads == attn.q_proj.out_features
    if hasattr(pruned, "config"):         # the demo can rebuild itself from its config
        rebuilt = type(pruned)(**pruned.config())
        rebuilt.load_state_dict(pruned.state_dict())
        with torch.no_grad():
            assert torch.allclose(rebuilt.eval()(example), pruned(example), atol=1e-5)


@pytest.mark.parametrize("bad", [0, 1, 0.0, 1.0, 1.5, -0.1])
def test_amount_out_of_range_is_rejected(bad):
    with pytest.raises(PluginError, match=r"amount.*outside \(0, 1\)"):
        Prune(amount=bad)
    schema = {p.name: p for p in Prune.params_schema}["amount"]
    with pytest.raises(PluginError, match=r"outside \(0, 1\)"):
        schema.parse(str(bad), "prune")
    assert schema.parse("0.25") == 0.25
    with pytest.raises(PluginError, match="not one of"):
        Prune(method="sideways")


# ---------------------------------------------------------------------------------------------
# Unstructured
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("scope", ["layer", "global"])
def test_unstructured_half_sparsity_is_measured(cnn, data, scope):
    pruned, report = Prune(method="unstructured", amount=0.5, scope=scope, finetune="off").run(cnn, _context(data))
    weights = _weights(pruned)
    zeros = sum(int((w == 0).sum()) for w in weights)
    total = sum(w.numel() for w in weights)
    assert abs(zeros / total - 0.5) <= 0.02
    assert report.sparsity == pytest.approx(zeros / total)
    assert NO_SPEEDUP_NOTE in report.notes and "no speed-up" in NO_SPEEDUP_NOTE
    assert report.params_after == report.params_before == count_parameters(cnn)
    # permanent: plain weights, no masks or re-parametrisation hooks left behind
    assert not any(k.endswith(("weight_orig", "weight_mask")) for k in pruned.state_dict())
    assert pruned(torch.randn(BATCH, 1, 8, 8)).shape == (BATCH, 10)
    # the original weights are not sparse
    assert sum(int((w == 0).sum()) for w in _weights(cnn)) < 0.01 * total


# ---------------------------------------------------------------------------------------------
# Fine-tune
# ---------------------------------------------------------------------------------------------
def test_finetune_recovers_accuracy(cnn, data):
    _, plain = Prune(method="structured", amount=0.5, finetune="off").run(cnn, _context(data))
    events: list = []
    tuned_model, tuned = Prune(method="structured", amount=0.5, finetune_epochs=1).run(
        cnn, _context(data, events))
    assert tuned.extra["accuracy_after"] >= plain.extra["accuracy_after"]
    assert tuned.extra["accuracy_after"] > 0.5
    steps = [p["step"] for k, p in events if k == "train"]
    assert steps == list(range(1, len(steps) + 1)) and len(steps) >= 10
    assert events[-1][1]["student_accuracy"] == pytest.approx(tuned.extra["accuracy_after"])
    assert not tuned_model.training


def test_unstructured_finetune_keeps_zeros_and_is_seeded(cnn, data):
    subset = dict(data, x_train=data["x_train"][:320], y_train=data["y_train"][:320])
    pruned, report = Prune(method="unstructured", amount=0.5, finetune_epochs=1).run(cnn, _context(subset))
    assert report.extra["finetune_epochs"] == 1
    again, report2 = Prune(method="unstructured", amount=0.5, finetune_epochs=1).run(cnn, _context(subset))
    assert report2.extra["finetune_loss_curve"] == report.extra["finetune_loss_curve"]
    for a, b in zip(pruned.state_dict().values(), again.state_dict().values()):
        assert torch.equal(a, b)
    weights = _weights(pruned)
    zeros = sum(int((w == 0).sum()) for w in weights)
    assert zeros / sum(w.numel() for w in weights) >= 0.49
    assert report.extra["accuracy_after"] > 0.5


@pytest.mark.parametrize("partial", [None, "test_only"])
def test_finetune_on_without_training_data_raises(cnn, data, partial):
    given = None if partial is None else {"x_test": data["x_test"], "y_test": data["y_test"]}
    with pytest.raises(PluginError, match=r"finetune=on needs labelled training data.*--data"):
        Prune(method="structured", amount=0.5, finetune="on", finetune_epochs=1).run(cnn, _context(given))


def test_default_fine_tunes_when_training_data_exists_and_says_so_when_not(cnn, data):
    """Structured pruning's defaults must not ruin a model the user has training data for."""
    _, tuned = Prune(method="structured", amount=0.5).run(cnn, _context(data))
    assert tuned.extra["finetune_epochs"] == 3
    test_only = {"x_test": data["x_test"], "y_test": data["y_test"]}
    _, untuned = Prune(method="structured", amount=0.5).run(cnn, _context(test_only))
    assert "finetune_epochs" not in untuned.extra
    assert any("no recovery fine-tune" in note for note in untuned.notes)


# ---------------------------------------------------------------------------------------------
# skip patterns, .pt2 programs, TorchScript
# ---------------------------------------------------------------------------------------------
def _mlp() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Flatten(1), nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 10)).eval()


def test_skip_patterns_leave_matching_layers_whole_and_a_typo_names_the_closest():
    from collections import OrderedDict
    torch.manual_seed(0)
    model = nn.Sequential(OrderedDict(flatten=nn.Flatten(1), fc1=nn.Linear(64, 32), act=nn.ReLU(),
                                      fc2=nn.Linear(32, 10))).eval()
    pruned, report = Prune(method="unstructured", amount=0.5, skip="fc1").run(model, _context(None))
    assert int((pruned.fc1.weight == 0).sum()) == 0 and float((pruned.fc2.weight == 0).float().mean()) == 0.5
    assert "1 of 2 matmul layers pruned" in report.summary and report.extra["layers_skipped"] == {"fc1": "skip pattern"}
    with pytest.raises(PluginError, match="every one of the 2 matmul layers is skipped"):
        Prune(method="unstructured", skip="fc*").run(model, _context(None))
    with pytest.raises(PluginError, match=r"prune:skip: pattern 'fc3' matches no module; closest names: fc2, fc1"):
        Prune(method="unstructured", skip="fc3").run(model, _context(None))


def test_pt2_program_unstructured_is_pruned_and_structured_refused_with_the_routes():
    model = _mlp()
    example = torch.randn(BATCH, 1, 8, 8)
    program = torch.export.export(model, (example,)).module()
    with pytest.raises(NotImplementedError):
        program.eval()                          # what used to crash every prune on a .pt2
    pruned, report = Prune(method="unstructured", amount=0.5, finetune="off").run(program, _context(None))
    weights = [w for n, w in pruned.named_parameters() if n.endswith("weight")]
    assert len(weights) == 2 and all(abs(float((w == 0).float().mean()) - 0.5) < 0.01 for w in weights)
    assert report.extra["layers_pruned"] == report.extra["layers_total"] == 2
    assert pruned(example).shape == (BATCH, 10)
    assert all(float((w == 0).float().mean()) == 0 for w in program.parameters())   # the input is untouched
    with pytest.raises(PluginError, match=r"a \.pt2 program has no Python layers to prune.*state_dict.*ONNX"):
        Prune(method="structured").run(program, _context(None))


def test_torchscript_structured_says_there_are_no_python_layers():
    scripted = torch.jit.script(_mlp())
    for method in ("structured", "unstructured"):
        with pytest.raises(PluginError) as caught:
            Prune(method=method).run(scripted, _context(None))
        text = str(caught.value)
        assert "a TorchScript model has no Python layers to prune" in text
        assert "state_dict" in text and "--factory" in text and "ONNX" in text and "\n" not in text
        assert "found no channel" not in text


# ---------------------------------------------------------------------------------------------
# Registry / import hygiene
# ---------------------------------------------------------------------------------------------
