"""Explaining a run, in the worker: the opt-in phases a run adds after its fidelity phase
(``--profile``: the per-op profile and the per-layer comparison), and the two jobs that explain a
stored run later (``layers``: the per-layer comparison; ``scan``: the sensitivity scan).

``pipeline.run_job`` calls ``keep_original`` before its plugin chain and ``explain_run`` after its
fidelity phase, so nothing here runs inside the timed window. The copy of the unoptimized model
the layer comparison needs is kept only for torch models under ``KEEP_ORIGINAL_BYTES``; larger
ones are compared later by ``workbench layers RUN_ID`` (the ``layers`` job loads the model again).
"""
from __future__ import annotations

import copy
import time
from pathlib import Path
from typing import Any, Callable

from ..errors import PluginError, WorkbenchError
from ..spec import PluginStep, RunSpec

KEEP_ORIGINAL_BYTES = 200 << 20
NO_LAYERS_ONNX = ("the model is ONNX: its layers run inside ONNX Runtime, where no forward hook reaches them. "
                  "Per-node outputs would need the nodes' outputs added as extra graph outputs (not done yet); "
                  "to see per-layer drift, run the same chain on the torch model (without onnx_export)")


def keep_original(spec: RunSpec, loaded: Any, info: Any, chain: list) -> tuple[Any, str | None]:
    """``(a copy of the unoptimized model, why not)`` for the layer comparison of a ``--profile``
    run with a plugin chain: a deep copy, for torch models under 200 MB only."""
    if not spec.profile or not chain:
        return None, None
    final = loaded.kind
    for step in chain:
        final = step.plugin.output_format(final)
    if loaded.kind != "torch" or final != "torch":
        return None, NO_LAYERS_ONNX
    size = getattr(info, "bytes", 0) or 0
    if size > KEEP_ORIGINAL_BYTES:
        return None, (f"the model is {size / (1 << 20):.0f} MB: the run keeps a copy of the unoptimized model for the "
                      f"layer comparison only under {KEEP_ORIGINAL_BYTES >> 20} MB; `workbench layers RUN_ID` "
                      "compares the layers after the run (it loads the model again)")
    return copy.deepcopy(loaded.model), None


def explain_run(spec: RunSpec, runtime: Any, model: Any, fmt: str, inputs: Any, batch: int, kept: tuple,
                original_info: Any, optimized_info: Any, workdir: Path, timing: dict,
                phase: Callable[..., None], emit: Callable[..., None], cancelled: Callable[[], bool]) -> dict:
    """The ``--profile`` phases after fidelity: ``{"profile": ..., "layers": ...}`` for the result.
    A cancel here cancels the run, as in every other phase."""
    from .profile import profile_iterations, profile_phase
    iterations = profile_iterations(_forward_ms(timing))
    phase("profile", f"per-op profile: {iterations} more iterations under the profiler (not timed)")

    def progress(fraction: float, message: str) -> None:
        emit("progress", phase="profile", fraction=float(fraction), message=message)

    explained: dict = {"profile": profile_phase(runtime, model, workdir, iterations, cancelled, progress)}
    if cancelled():
        raise_cancelled()
    if timing.get("generation"):
        explained["profile"].setdefault("notes", []).append(
            "generate scenario: the profile is of one forward pass over the prompt (prefill), not of decoding")
    original, why_not = kept
    if original is None:
        explained["layers"] = {"unavailable": why_not} if why_not else None
        return explained
    if fmt != "torch":
        explained["layers"] = {"unavailable": NO_LAYERS_ONNX}
        return explained
    phase("layers", "per-layer comparison with the unoptimized model")
    explained["layers"] = compare_layers(original, model, inputs, batch, spec.device, original_info,
                                         optimized_info, cancelled)
    return explained


def compare_layers(original: Any, model: Any, inputs: Any, batch: int, device: str, original_info: Any,
                   optimized_info: Any, cancelled: Callable[[], bool]) -> dict:
    """``layers.layer_report`` on the run's fidelity inputs; a failure is said, never raised."""
    from .layers import layer_report
    started = time.perf_counter()
    try:
        return layer_report(original.to(device), model, list(inputs.fidelity), batch, device,
                            _as_dict(original_info), _as_dict(optimized_info), inputs.source, cancelled=cancelled)
    except Exception as exc:   # noqa: BLE001 - an explanation that fails must not cost the measured run
        return {"error": f"the layer comparison failed: {type(exc).__name__}: {str(exc).strip()[:300]}",
                "seconds": round(time.perf_counter() - started, 3)}


def _forward_ms(timing: dict) -> float | None:
    """The median time of one forward pass: the prefill's in a generate run, else the latency's."""
    prefill = (timing.get("generation") or {}).get("prefill") or {}
    return prefill.get("median_ms") or (timing.get("latency") or {}).get("median_ms")


def _as_dict(info: Any) -> dict | None:
    return info.to_dict() if hasattr(info, "to_dict") else info


# -- the jobs: explain a stored run later ---------------------------------------------------------------
class _Prepared:
    """A run's model loaded again, with its inputs and the plugins' data, as the pipeline builds them."""

    def __init__(self, spec: RunSpec, emit, stage) -> None:
        import torch

        from .conditions import default_threads
        from .inputs import build_inputs, load_npz, resolve_specs
        from ..models.loaders import load_model
        torch.manual_seed(spec.seed)
        self.threads = spec.threads or default_threads()
        stage.phase("load")
        emit("phase", phase="load", message=f"loading {spec.model}")
        self.loaded = load_model(spec.model, spec.factory, spec.trust_pickle, on_step=stage.step,
                                 trust_remote_code=spec.trust_remote_code, task=spec.task)
        if self.loaded.kind != "torch":
            raise WorkbenchError(f"cannot compare the layers of {spec.model}: {NO_LAYERS_ONNX}")
        batch = spec.batch or self.loaded.default_batch
        tokens = _token_inputs(spec, self.loaded, batch)
        if tokens is not None:
            from .lm_phases import plugin_data
            self.specs, self.inputs, self.data = tokens.specs, tokens.run_inputs(), plugin_data(tokens)
        else:
            self.specs = resolve_specs(spec.inputs, self.loaded.inputs, batch)
            self.data = load_npz(spec.data) if spec.data else self.loaded.data
            self.inputs = build_inputs(self.specs, self.data, spec.seed)
        self.batch = self.specs[0].shape[0]
        self.spec = spec

    def context(self, workdir: Path, emit, cancelled, progress=lambda f, m: None):
        import torch

        from ..plugin_api import PluginContext
        example = [torch.from_numpy(a).to(self.spec.device) for a in self.inputs.measure]
        return PluginContext(device=self.spec.device, dtype=self.spec.dtype, example_inputs=example, data=self.data,
                             seed=self.spec.seed, workdir=workdir, progress=progress, cancelled=cancelled,
                             input_names=[s.name or f"input_{i}" for i, s in enumerate(self.specs)],
                             emit=lambda kind, payload: emit(kind, **payload))

    def infer(self, model: Any):
        """The model's first output on the fidelity inputs (torch eager, float32)."""
        from .fidelity import collect_outputs
        from .runtimes import create_runtime
        runtime = create_runtime("torch", self.spec.device, "float32", self.threads)
        runtime.prepare(model, self.inputs.measure)
        return collect_outputs(runtime, self.inputs.fidelity, self.batch)


def _token_inputs(spec: RunSpec, loaded: Any, batch: int | None):
    """Token inputs for a Hugging Face text model (the forward view: layers compare forward passes)."""
    if getattr(loaded, "hf", None) is None:
        return None
    from .lm_phases import token_inputs
    return token_inputs(spec, loaded, batch, "forward")


def layers_job(job: dict, emit, cancelled, stage) -> None:
    """Load a stored run's model, apply its chain again and compare the layers (``workbench layers``)."""
    from ..models.describe import describe_model
    from ..plugin_api import build_chain
    spec = RunSpec.from_dict(job["spec"])
    workdir = Path(job["workdir"])
    workdir.mkdir(parents=True, exist_ok=True)
    prepared = _Prepared(spec, emit, stage)
    loaded = prepared.loaded
    original_info = describe_model(loaded, spec, prepared.specs).to_dict()
    chain = build_chain(spec.plugins, "torch", spec.device, "torch", batch=prepared.batch)
    original = copy.deepcopy(loaded.model)
    model = loaded.model
    stage.phase("optimize")
    for index, step in enumerate(chain):
        emit("phase", phase="optimize", message=f"step {index + 1}/{len(chain)}: {step.name} (applied again)")
        if cancelled():
            raise_cancelled()
        model, _ = _run_step(step.plugin, model, prepared.context(workdir, emit, cancelled))
        if step.plugin.output_format("torch") != "torch":
            raise WorkbenchError(f"cannot compare the layers of this run: step {index + 1} ({step.name}) makes the "
                                 f"model ONNX; {NO_LAYERS_ONNX}")
    loaded.model = model
    optimized_info = describe_model(loaded, spec, prepared.specs).to_dict()
    stage.phase("layers")
    emit("phase", phase="layers", message="per-layer comparison with the unoptimized model")
    report = compare_layers(original, model, prepared.inputs, prepared.batch, spec.device, original_info,
                            optimized_info, cancelled)
    report.setdefault("notes", []).append("computed after the run: the model was loaded again and the chain "
                                          "applied again (same seed)")
    emit("result", result={"layers": report})


def scan_job(job: dict, emit, cancelled, stage) -> None:
    """Apply one plugin to one layer at a time and rank the layers by the fidelity they cost."""
    from ..plugin_api import build_chain, get_plugin_class
    from .scan import SKIP_PARAM, sensitivity_scan
    spec = RunSpec.from_dict(job["spec"])
    step = PluginStep(job["plugin"]["name"], dict(job["plugin"].get("params") or {}))
    workdir = Path(job["workdir"])
    workdir.mkdir(parents=True, exist_ok=True)
    cls = get_plugin_class(step.name)
    has_skip = any(p.name == SKIP_PARAM for p in cls.params_schema)
    notes = []
    if any(p.name == "finetune" for p in cls.params_schema) and "finetune" not in step.params:
        step.params["finetune"] = "off"       # the sensitivity is the plugin's own damage, before any repair
        notes.append("finetune=off for the scan (the cost of each layer before any recovery training)")
    chain = build_chain([step], "torch", spec.device, "torch")
    if len(chain) != 1 or chain[0].plugin.output_format("torch") != "torch":
        raise PluginError(f"--scan needs a plugin that turns a torch model into a torch model; {step} does not")
    prepared = _Prepared(spec, emit, stage)
    original = prepared.loaded.model
    stage.phase("scan")
    emit("phase", phase="scan", message=f"{step}: one layer at a time")
    reference = prepared.infer(copy.deepcopy(original))

    def run_plugin(model: Any, params: dict) -> Any:
        if cancelled():
            raise_cancelled()
        plugin = cls(**params)
        return _run_step(plugin, model, prepared.context(workdir, emit, cancelled))[0]

    def progress(fraction: float, message: str) -> None:
        emit("progress", phase="scan", fraction=float(fraction), message=message)

    result = sensitivity_scan(original, step.params, run_plugin, prepared.infer, reference,
                              prepared.inputs.labels, has_skip, progress, cancelled)
    result.update(plugin=step.name, inputs=prepared.inputs.source)
    result["notes"] = notes + result["notes"]
    emit("result", result={"scan": result})


def _run_step(plugin: Any, model: Any, context: Any) -> tuple[Any, Any]:
    try:
        return plugin.run(model, context)
    except (WorkbenchError, KeyboardInterrupt):
        raise
    except Exception as exc:
        raise PluginError(f"plugin {plugin.name} failed: {type(exc).__name__}: {exc}") from exc


def raise_cancelled() -> None:
    from ..errors import RunCancelled
    raise RunCancelled("cancelled by the user")
