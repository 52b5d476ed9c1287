"""Which runs a bench request needs: the baseline-first rule shared by the CLI and the Python API.

A speed-up means nothing without the plain model measured under the same conditions, so a
request with plugins runs the plain model first when the store holds no baseline for it.
"Same conditions" is ``compare.baseline_for``'s rule, the one the comparison tables use.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path

from ..results.compare import EXPORT_STEP, planned_baseline
from ..errors import SpecError
from ..spec import PluginStep, RunSpec, resolve_runtime
from ..results.store import ResultsStore
from ..worker.conditions import default_threads

__all__ = ["baseline_spec", "check_chain", "check_files_exist", "check_model_source", "combinations_plan",
           "conversion_spec", "final_runtime", "is_cross_runtime", "needs_baseline", "pair_plan", "plan_note",
           "plan_runs"]


def check_chain(spec: RunSpec) -> None:
    """Validate ``spec``'s plugin chain before anything runs (no torch import); raises ``PluginError``,
    or ``SpecError`` when the optimized model could not be saved where ``save_model`` asks."""
    final_format = spec.model_format
    if spec.plugins:
        from ..plugin_api import build_chain
        for step in build_chain(spec.plugins, spec.model_format, spec.device, spec.runtime):
            final_format = step.plugin.output_format(final_format)
    if spec.save_model_is_folder and not _is_hf_source(spec.model):
        raise SpecError(f"--save-model {spec.save_model} would write a Hugging Face folder, but {spec.model} is not "
                        "a Hugging Face model: save it as .pt (TorchScript), .pt2 or .onnx")
    if spec.save_model:
        suffix = "." + spec.save_model.rsplit(".", 1)[-1].lower() if "." in spec.save_model else ""
        if final_format == "onnx" and suffix != ".onnx":
            raise SpecError(f"the optimized model will be ONNX: save it as .onnx, not {suffix or 'no suffix'}")
        if final_format != "onnx" and suffix == ".onnx":
            raise SpecError("the optimized model will be a torch model: save it as .pt (TorchScript) or .pt2, "
                            "or add --plugin onnx_export to the chain")


def _is_hf_source(model: str) -> bool:
    """A Hugging Face folder, or a demo that is one (demo:tiny-lm); an unknown demo is left to
    check_model_source."""
    if model.startswith("demo:"):
        from ..models.demos import DEMOS
        entry = DEMOS.get(model.split(":", 1)[1])
        return entry is None or getattr(entry, "kind", "module") == "hf"
    from ..models.hf_load import is_hf_folder
    return is_hf_folder(model)


def check_files_exist(spec: RunSpec) -> None:
    """The files a run reads exist and can be read: a usage error now (every face), not a failed run
    stored later."""
    check_model_source(spec.model)
    if spec.data and not Path(spec.data).expanduser().is_file():
        raise SpecError(f"data file not found: {spec.data} (expected an .npz with x_test[, y_test, x_train, y_train])")
    if spec.scenario == "generate":
        check_generates(spec)
    if spec.text:       # missing, empty, not UTF-8: refused now, not stored later as a failed run
        from ..worker.text_inputs import read_text_file
        read_text_file(spec.text)


def check_generates(spec: RunSpec) -> None:
    """--scenario generate needs a causal language model: refused here, before any worker starts,
    when config.json (or the demo catalog) says the model is something else."""
    from ..models.hf_load import is_hf_folder, source_task
    if spec.model.startswith("demo:"):      # the catalog's HF demos are causal LMs (demo:tiny-lm)
        from ..models.demos import DEMOS
        entry = DEMOS.get(spec.model[5:])
        task = (spec.task if spec.task != "auto" else "causal-lm") if entry is not None and entry.kind == "hf" else None
    else:
        task = source_task(spec.model, spec.task)
    if task == "causal-lm":
        return
    if task is None and (spec.model.startswith("demo:") or not is_hf_folder(spec.model)):
        raise SpecError("--scenario generate needs a causal language model (a Hugging Face folder such as a "
                        f"*ForCausalLM, or demo:tiny-lm); {spec.model} is not one: use --scenario forward")
    if task is not None:
        raise SpecError(f"--scenario generate needs a causal language model; {spec.model} opens as a {task} "
                        "model: use --scenario forward" + (", or --task causal-lm if the folder holds a causal LM"
                                                           if task in ("feature-extraction", "masked-lm") else ""))


def check_model_source(model: str) -> None:
    """Refuse a model no loader could open: a missing path, a folder, an empty file, an unknown demo
    (the CLI, the API and ``workbench MODEL`` before any window exists say the same)."""
    if model.startswith("demo:"):
        from ..models.demos import demo_names
        name = model.split(":", 1)[1]
        if name not in demo_names():
            raise SpecError(f"unknown demo {name!r}; choose one of {', '.join(demo_names())}")
        return
    path = Path(model).expanduser()
    if not path.exists():
        raise SpecError(f"model file not found: {model}")
    if path.is_dir():
        from ..models.hf_load import folder_contents, is_hf_folder
        if is_hf_folder(path):      # a Hugging Face folder: the worker opens it
            return
        raise SpecError(f"{model} is a folder, not a model file (a Hugging Face folder needs a config.json; "
                        f"{folder_contents(path)})")
    if path.stat().st_size == 0:
        raise SpecError(f"{model} is empty (0 bytes)")


def final_runtime(spec: RunSpec) -> str:
    """The runtime the chain's output runs on (an ONNX export makes it ONNX Runtime); no torch."""
    if not spec.plugins:
        return spec.resolved_runtime()
    from ..plugin_api import build_chain
    fmt = spec.model_format
    for step in build_chain(spec.plugins, spec.model_format, spec.device, spec.runtime):
        fmt = step.plugin.output_format(fmt)
    return resolve_runtime(spec.runtime, fmt)


def native_runtime(spec: RunSpec) -> str:
    """The runtime the model file runs on by itself (what the user came with)."""
    return resolve_runtime("auto", spec.model_format)


def is_cross_runtime(spec: RunSpec) -> bool:
    """The run will measure the model on another runtime than its own (torch → ONNX Runtime)."""
    return final_runtime(spec) != native_runtime(spec)


def baseline_spec(spec: RunSpec) -> RunSpec:
    """The plain-model twin of ``spec``: same model and settings on the model's own runtime, no plugins,
    label or saved model."""
    runtime = spec.runtime if spec.resolved_runtime() == native_runtime(spec) else "auto"
    return RunSpec.from_dict({**spec.to_dict(), "plugins": [], "label": None, "save_model": None,
                              "runtime": runtime})


def conversion_spec(spec: RunSpec) -> RunSpec:
    """The fp32 model on ``spec``'s runtime and nothing else: the chain's ``onnx_export`` step alone
    (as given, or the default one the chain inserts), same settings."""
    export = next((s for s in spec.plugins if s.name == EXPORT_STEP), PluginStep(EXPORT_STEP))
    return RunSpec.from_dict({**spec.to_dict(), "plugins": [dataclasses.asdict(export)], "label": None,
                              "save_model": None})


def _has_steps_beyond_conversion(spec: RunSpec) -> bool:
    return any(step.name != EXPORT_STEP for step in spec.plugins)


def needs_baseline(store: ResultsStore, spec: RunSpec) -> bool:
    """True when a run of ``spec`` needs a baseline run first (``plan_runs`` would add one)."""
    return len(plan_runs(store, spec)) > 1


def plan_runs(store: ResultsStore, spec: RunSpec, baseline: bool = True, since: float | None = None) -> list[RunSpec]:
    """The specs to run, in order: the baselines ``spec`` is compared with that must be measured, then ``spec``.

    * a chain on the model's own runtime: the plain model, unless the store holds an exact baseline
      (same work: ``results.compare.planned_baseline``);
    * a cross-runtime chain (torch model measured on ONNX Runtime): both references in the same
      sitting, the plain model on its own runtime and, when the chain does more than convert, the
      ``onnx_export`` step alone; stored ones count only when created at or after ``since`` (a sweep
      passes its start time);
    * ``baseline=False`` (the CLI's ``--no-baseline``: the user asks for the stored baselines) adds
      nothing; the comparison then uses whatever exact baseline the store holds.
    """
    cross = is_cross_runtime(spec)
    if not baseline or not (spec.plugins or cross):
        return [spec]
    threads = spec.threads or default_threads()
    plain = baseline_spec(spec)
    planned = []
    if cross and since is None:
        planned.append(plain)           # the same sitting: always measured again
    elif planned_baseline(store, plain, native_runtime(spec), threads, since=since if cross else None) is None:
        planned.append(plain)
    if cross and _has_steps_beyond_conversion(spec):
        conversion = conversion_spec(spec)
        steps = [dataclasses.asdict(s) for s in conversion.plugins]
        if since is None or planned_baseline(store, conversion, final_runtime(spec), threads, steps, since) is None:
            planned.append(conversion)
    return planned + [spec]


def plan_note(spec: RunSpec, planned: list[RunSpec]) -> str | None:
    """What ``plan_runs`` added and why, in one line (None when it added nothing)."""
    extra = planned[:-1]
    if not extra:
        return None
    if is_cross_runtime(spec):
        names = " and ".join("the original model on " + native_runtime(spec) if not s.plugins
                             else f"{s.describe_chain()} alone (the fp32 model on {final_runtime(s)})" for s in extra)
        return f"the chain runs on {final_runtime(spec)}: measuring {names} first, in the same sitting"
    return f"no stored baseline of the same work for {spec.model} on {spec.device}: measuring it first"


# -- the comparisons a user asks for in one go (the GUI's Run menu; the CLI and API may follow) --
def _require_plugins(spec: RunSpec) -> None:
    if not spec.plugins:
        raise SpecError("check at least one plugin: a variant needs an optimization to compare")


def _with_chain(spec: RunSpec, steps: list[PluginStep]) -> RunSpec:
    return RunSpec.from_dict({**spec.to_dict(), "plugins": [dataclasses.asdict(s) for s in steps]})


def pair_plan(spec: RunSpec) -> list[RunSpec]:
    """Baseline + variant: the plain model, then ``spec``, under the same settings, whether or not
    the store already holds a baseline (the user asked for the pair). Raises ``SpecError`` when
    ``spec`` has no plugins, ``PluginError`` when its chain is invalid."""
    _require_plugins(spec)
    check_chain(spec)
    return [baseline_spec(spec)] + _conversion_if_needed(spec, []) + [spec]


def _conversion_if_needed(spec: RunSpec, planned: list[RunSpec]) -> list[RunSpec]:
    """[the ``onnx_export`` step alone] for a cross-runtime chain that does more than convert, unless
    ``planned`` already holds that run."""
    if not (is_cross_runtime(spec) and _has_steps_beyond_conversion(spec)):
        return []
    conversion = conversion_spec(spec)
    return [] if any(p.plugins == conversion.plugins and p.runtime == conversion.runtime for p in planned) \
        else [conversion]


def combinations_plan(spec: RunSpec) -> tuple[list[RunSpec], list[str]]:
    """All combinations: the baseline, each plugin of ``spec``'s chain alone, then the whole chain
    (when it has more than one step), in that order.

    A plugin that cannot run alone (alone its chain is invalid, e.g. it needs what an earlier step
    makes) is left out rather than failing the others: returns the specs and, for each left-out
    plugin, why (``"NAME alone: invalid plugin chain: ..."``). Raises ``SpecError`` when ``spec``
    has no plugins, ``PluginError`` when its whole chain is invalid."""
    _require_plugins(spec)
    check_chain(spec)
    from ..plugin_api import chain_error     # no torch; imported on use like check_chain's
    specs, skipped = [baseline_spec(spec)], []
    for step in spec.plugins:
        alone = _with_chain(spec, [step])
        if len(spec.plugins) > 1:
            alone.save_model = None     # only the whole chain is the model the user asked to save
        error = chain_error(alone.plugins, alone.model_format, alone.device, alone.runtime)
        if error:
            skipped.append(f"{step.name} alone: invalid plugin chain: {error}")
        else:
            specs.append(alone)
    for variant in specs[1:] + ([spec] if len(spec.plugins) > 1 else []):
        specs[1:1] = _conversion_if_needed(variant, specs)    # right after the baseline
    if len(spec.plugins) > 1:
        specs.append(spec)
    return specs, skipped
