"""A report's "reproduce this run" command: ``spec_to_command`` writes a ``workbench bench`` line that
parses back to the same RunSpec, and names what the CLI cannot say."""
from __future__ import annotations

import json
import shlex

import pytest

from workbench.report import spec_to_command
from workbench.spec import PluginStep, RunSpec


def _parse_back(command: str) -> RunSpec:
    from workbench.cli import build_parser, spec_from_args
    argv = shlex.split(command)
    assert argv[:2] == ["workbench", "bench"]
    return spec_from_args(build_parser().parse_args(argv[1:]))


@pytest.mark.parametrize("spec", [
    RunSpec(model="demo:digits-cnn"),
    RunSpec(model="demo:digits-cnn", plugins=[PluginStep.parse("prune:method=structured,amount=0.5"),
                                              PluginStep.parse("fuse:method=conv_bn")],
            batch=32, threads=2, iters=20, duration_s=0.2, seed=7, label="pruned + fused 'v2'"),
    RunSpec(model="demo:digits-transformer", plugins=[PluginStep.parse("quantize:method=dynamic_int8")],
            runtime="onnxruntime", device="cuda:1", dtype="float16", telemetry_hz=50.0, timeout_s=90.0,
            save_model="/tmp/out dir/model.onnx"),
    RunSpec(model="demo:digits-cnn", inputs=[], data="/data/my digits.npz").apply_preset("rigorous"),
    RunSpec(model="demo:digits-cnn", iters=5000).apply_preset("rigorous"),
])
def test_spec_to_command_round_trips(spec):
    command = spec_to_command(spec.to_dict())
    assert _parse_back(command) == spec
    assert RunSpec.from_dict(json.loads(json.dumps(spec.to_dict()))) == spec


def test_spec_to_command_round_trips_inputs_and_files(tmp_path):
    model = tmp_path / "my model.onnx"
    model.write_bytes(b"x")
    spec = RunSpec(model=str(model), factory=None, inputs=[], runtime="onnxruntime")
    spec.inputs = [__import__("workbench.spec", fromlist=["InputSpec"]).InputSpec.parse("ids=1x128:int64"),
                   __import__("workbench.spec", fromlist=["InputSpec"]).InputSpec.parse("4x3x224x224")]
    assert _parse_back(spec_to_command(spec.to_dict())) == spec


def test_spec_to_command_typed_params_resolve_equal():
    """GUI specs carry typed values; the command writes them so the plugin schema reads them back."""
    from workbench.plugin_api import get_plugin_class
    spec = RunSpec(model="demo:digits-cnn", plugins=[PluginStep("prune", {"amount": 0.25, "finetune_epochs": 2,
                                                                          "method": "structured"})])
    back = _parse_back(spec_to_command(spec.to_dict()))
    cls = get_plugin_class("prune")
    assert cls.resolve_params(back.plugins[0].params) == cls.resolve_params(spec.plugins[0].params)


def test_spec_to_command_names_what_the_cli_cannot_say():
    from workbench.report.command import spec_to_argv
    spec = RunSpec(model="demo:digits-cnn", warmup_min_iters=3, max_duration_s=60, timeout_s=None,
                   plugins=[PluginStep("prune", {"ignore": "conv1,conv2"})])
    _, notes = spec_to_argv(spec.to_dict())
    text = " ".join(notes)
    for word in ("warmup_min_iters", "max_duration_s", "timeout", "ignore"):
        assert word in text
