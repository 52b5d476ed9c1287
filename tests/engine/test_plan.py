"""engine.plan's "pair" and "all combinations" plans (the GUI's Run menu), without Qt."""
from __future__ import annotations

import pytest

from workbench.engine.plan import baseline_spec, combinations_plan, pair_plan
from workbench.errors import PluginError, SpecError
from workbench.plugin_api import Plugin, PluginInfo
from workbench.spec import PluginStep, RunSpec


def _spec(*steps: PluginStep, **settings) -> RunSpec:
    return RunSpec(model="demo:digits-cnn", plugins=list(steps), **settings)


PRUNE = PluginStep("prune", {"amount": 0.25})
FUSE = PluginStep("fuse", {})


def test_pair_is_the_baseline_then_the_variant_in_the_same_conditions():
    variant = _spec(PRUNE, FUSE, batch=8, threads=2, iters=77)
    baseline, same = pair_plan(variant)
    assert same is variant
    assert baseline.plugins == [] and baseline.to_dict() == baseline_spec(variant).to_dict()
    assert (baseline.batch, baseline.threads, baseline.iters) == (8, 2, 77)


def test_all_combinations_are_baseline_each_plugin_alone_then_the_chain():
    variant = _spec(PRUNE, FUSE, device="cpu")
    specs, skipped = combinations_plan(variant)
    assert [s.describe_chain() for s in specs] == ["baseline", "prune:amount=0.25", "fuse",
                                                   "prune:amount=0.25 → fuse"]
    assert skipped == []
    assert specs[-1] is variant
    assert all(s.device == "cpu" for s in specs)
    specs[1].plugins[0].params["amount"] = 0.9           # each plan entry is its own spec
    assert variant.plugins[0].params["amount"] == 0.25


def test_one_plugin_needs_no_separate_full_chain():
    specs, _ = combinations_plan(_spec(PRUNE))
    assert [s.describe_chain() for s in specs] == ["baseline", "prune:amount=0.25"]


class _ToTflite(Plugin):
    """Stand-in converter: makes a format only the next step reads."""
    name, accepts, produces = "to_tflite", ("torch",), "tflite"


class _TfliteOptimizer(Plugin):
    name, accepts = "tflite_opt", ("tflite",)


@pytest.fixture
def converter_plugins(monkeypatch):
    import workbench.plugin_api.registry as registry
    extra = {cls.name: PluginInfo(cls.name, cls, "tests") for cls in (_ToTflite, _TfliteOptimizer)}
    monkeypatch.setattr(registry, "_registry", {**registry.discover_plugins(), **extra})


def test_a_plugin_that_cannot_run_alone_is_skipped_with_the_reason(converter_plugins):
    variant = _spec(PluginStep("to_tflite", {}), PluginStep("tflite_opt", {}))
    specs, skipped = combinations_plan(variant)
    assert [s.describe_chain() for s in specs] == ["baseline", "to_tflite", "to_tflite → tflite_opt"]
    assert len(skipped) == 1
    assert skipped[0].startswith("tflite_opt alone: invalid plugin chain: step 1 (tflite_opt) needs a tflite model")


@pytest.mark.parametrize("plan", [pair_plan, combinations_plan])
def test_an_invalid_chain_is_refused_before_anything_is_planned(plan):
    with pytest.raises(PluginError, match="no_such_plugin"):
        plan(_spec(PRUNE, PluginStep("no_such_plugin", {})))


@pytest.mark.parametrize("plan", [pair_plan, combinations_plan])
def test_a_plan_needs_a_plugin(plan):
    with pytest.raises(SpecError, match="check at least one plugin"):
        plan(_spec())


def test_all_combinations_saves_only_the_whole_chain(tmp_path):
    from workbench.engine.plan import combinations_plan
    from workbench.spec import PluginStep, RunSpec
    target = str(tmp_path / "best.pt")
    spec = RunSpec(model="demo:digits-cnn", plugins=[PluginStep("fuse", {"method": "conv_bn"}),
                                                     PluginStep("prune", {"amount": 0.3})], save_model=target)
    specs, _ = combinations_plan(spec)
    assert [s.save_model for s in specs] == [None, None, None, target]


def test_the_baseline_of_a_chain_on_onnx_runtime_is_the_model_on_its_own_runtime():
    """A torch model measured on ONNX Runtime is compared with what the user came with (issue 13 F)."""
    variant = _spec(PluginStep("prune", {"method": "unstructured"}), runtime="onnxruntime", threads=1)
    baseline, conversion, same = pair_plan(variant)
    assert baseline.plugins == [] and baseline.runtime == "auto" and baseline.resolved_runtime() == "torch"
    assert [s.name for s in conversion.plugins] == ["onnx_export"] and conversion.runtime == "onnxruntime"
    assert same is variant
    onnx_model = RunSpec(model="m.onnx", plugins=[PluginStep("quantize", {"method": "dynamic_int8"})])
    assert [s.describe_chain() for s in pair_plan(onnx_model)] == ["baseline", "quantize:method=dynamic_int8"]


def test_generate_on_a_model_that_cannot_generate_is_refused_before_any_worker(tmp_path):
    """config.json (or the demo catalog) is read without torch: an encoder folder, a non-HF model and
    a causal LM forced to another task are usage errors; a causal LM folder and demo:tiny-lm pass."""
    import json as _json
    import sys as _sys

    from workbench.engine.plan import check_files_exist
    from workbench.errors import SpecError
    from workbench.spec import RunSpec

    def folder(name: str, architecture: str):
        path = tmp_path / name
        path.mkdir()
        (path / "config.json").write_text(_json.dumps({"architectures": [architecture], "model_type": "x"}))
        return str(path)

    bert, gpt2 = folder("bert", "BertModel"), folder("gpt2", "GPT2LMHeadModel")
    with pytest.raises(SpecError, match="opens as a feature-extraction model: use --scenario forward, or --task causal-lm"):
        check_files_exist(RunSpec(model=bert, scenario="generate"))
    with pytest.raises(SpecError, match="demo:digits-cnn is not one"):
        check_files_exist(RunSpec(model="demo:digits-cnn", scenario="generate"))
    with pytest.raises(SpecError, match="opens as a masked-lm model"):
        check_files_exist(RunSpec(model=gpt2, scenario="generate", task="masked-lm"))
    check_files_exist(RunSpec(model=gpt2, scenario="generate"))
    check_files_exist(RunSpec(model="demo:tiny-lm", scenario="generate"))
    check_files_exist(RunSpec(model=bert, scenario="generate", task="causal-lm"))
