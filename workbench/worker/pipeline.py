"""The phases of one run in the worker process: load, reference outputs, optimize, save, prepare,
measure, fidelity (``run_job``), or load and describe (``inspect_job``). Each phase emits the
events declared in ``workbench.events``; ``Stage`` remembers where the worker is, in words.
"""
from __future__ import annotations

import threading
from pathlib import Path

import numpy as np

from ..errors import PluginError, RunCancelled, VariantsRefused, WorkbenchError
from ..spec import RunSpec, device_kind, resolve_runtime
from .conditions import default_threads

DESCRIBING = "describing the model (one call on zeros, to count its FLOPs)"


class Stage:
    """Where the worker is, in words, for failures that carry no context of their own (sys.exit)."""

    PHASES = {"load": "loading the model", "reference": "computing the reference outputs",
              "optimize": "optimizing the model", "save": "saving the optimized model",
              "prepare": "preparing the runtime", "cold": "the first (cold) call of the model",
              "warmup": "warming up", "measure": "measuring", "fidelity": "comparing outputs"}

    def __init__(self) -> None:
        self.now = "starting the worker"

    def phase(self, name: str, detail: str = "") -> None:
        self.now = self.PHASES.get(name, name) + (f" ({detail})" if detail else "")

    def step(self, words: str) -> None:
        """A finer step within a phase, e.g. 'importing the factory pkg.mod:fn'."""
        self.now = words


# ---------------------------------------------------------------------------------------------
def inspect_job(job: dict, emit, stage: Stage) -> None:
    """Load a model and describe it (the GUI's Model panel) without measuring."""
    from ..models.describe import describe_model
    from ..models.loaders import load_model
    spec = RunSpec.from_dict(job["spec"])
    stage.phase("load")
    emit("phase", phase="load", message=f"loading {spec.model}")
    loaded = load_model(spec.model, spec.factory, spec.trust_pickle, on_step=stage.step,
                        trust_remote_code=spec.trust_remote_code, task=spec.task)
    stage.step(DESCRIBING)
    info = describe_model(loaded, spec)
    emit("result", result={"model_info": info.to_dict()})


def run_job(job: dict, emit, cancelled, stage: Stage) -> None:
    import torch

    from .fidelity import collect_outputs, compare_outputs
    from .generate import resolve_scenario
    from .inputs import build_inputs, load_npz, resolve_specs
    from .lm_fidelity import compare as compare_lm
    from .lm_phases import is_causal_lm, lm_scan, measure_generate, plugin_data, token_inputs
    from ..models.describe import describe_model
    from ..models.loaders import load_model
    from ..models.save import save_model
    from ..plugin_api import PluginContext, require_some_change
    from .runtimes import create_runtime
    from .runtimes.base import model_call_error

    spec = RunSpec.from_dict(job["spec"])
    workdir = Path(job["workdir"])
    workdir.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(spec.seed)
    # Fixed before the model loads (it may change torch's count); see worker_env.default_threads.
    threads = spec.threads or default_threads()
    notes: list[str] = []

    def phase(name: str, message: str = "", detail: str = "") -> None:
        if cancelled():
            raise RunCancelled("cancelled by the user")
        stage.phase(name, detail)
        emit("phase", phase=name, message=message)

    # -- load ----------------------------------------------------------------------------------
    phase("load", f"loading {spec.model}")
    loaded = load_model(spec.model, spec.factory, spec.trust_pickle, on_step=stage.step,
                        trust_remote_code=spec.trust_remote_code, task=spec.task)
    notes += loaded.notes
    scenario = resolve_scenario(spec.scenario, loaded)
    causal_lm = is_causal_lm(loaded)
    batch = spec.batch or loaded.default_batch
    tokens = token_inputs(spec, loaded, batch, scenario)
    flags: list[str] = []
    if tokens is not None:           # a Hugging Face text model: inputs from text (or flagged synthetic ids)
        specs, inputs, data = tokens.specs, tokens.run_inputs(), plugin_data(tokens)
        flags += tokens.flags
    else:
        specs = resolve_specs(spec.inputs, loaded.inputs, batch)
        data = load_npz(spec.data) if spec.data else loaded.data
        inputs = build_inputs(specs, data, spec.seed)
    run_batch = specs[0].shape[0]
    stage.step(DESCRIBING)
    original_info = describe_model(loaded, spec, specs)
    emit("model_info", stage="original", info=original_info.to_dict())
    # The chain is checked before anything runs: a generate run refuses a chain that cannot decode.
    # A refusal here (the loaded model has no layer the method needs, a TorchScript file cannot be
    # pruned, ...) is the same answer a baseline's preflight gives: nothing timed, no run kept.
    from .preflight import check_variants, checked_chain, refuse_if_needed
    try:
        chain = checked_chain(spec.plugins, loaded, spec.device, spec.runtime, run_batch, scenario)
    except PluginError as exc:
        raise VariantsRefused(str(exc)) from None
    notes += [f"{step.name}: {warning}" for step in chain for warning in step.warnings]   # known to be slow here
    if job.get("check_variants"):   # a baseline: refuse its variants now, not after timing it
        refusals = check_variants(job["check_variants"], loaded, spec, run_batch, scenario)
        emit("variants_checked", refusals=refusals)
        refuse_if_needed(job["check_variants"], refusals)

    # -- reference outputs of the unoptimized model (fidelity baseline) --------------------------
    phase("reference", "reference outputs of the unoptimized model")
    ref_runtime_name = resolve_runtime("auto", loaded.kind)
    reference_runtime = create_runtime(ref_runtime_name, spec.device, "float32", threads)
    reference_runtime.prepare(loaded.model, inputs.measure)
    reference = lm_reference = None
    if causal_lm:                    # perplexity, next-token predictions, continuations on held-out text
        lm_reference = lm_scan(reference_runtime, tokens, spec, run_batch)
    else:
        reference = collect_outputs(reference_runtime, inputs.fidelity, run_batch)
    del reference_runtime

    # -- explain (issue 15): a --profile run keeps the unoptimized model for its layer comparison --
    from .explain import explain_run, keep_original
    kept = keep_original(spec, loaded, original_info, chain)

    # -- optimize ------------------------------------------------------------------------------
    model, fmt = loaded.model, loaded.kind
    reports = []
    if chain:
        example = [torch.from_numpy(a).to(spec.device) for a in inputs.measure]
        context = PluginContext(
            device=spec.device, dtype=spec.dtype, example_inputs=example, data=data, seed=spec.seed,
            workdir=workdir, input_names=[s.name or f"input_{i}" for i, s in enumerate(specs)],
            cancelled=cancelled, emit=lambda kind, payload: emit(kind, **payload))
        for index, step in enumerate(chain):
            name = step.name + (" (auto-inserted)" if step.auto_inserted else "")
            phase("optimize", f"step {index + 1}/{len(chain)}: {name}", detail=f"step {index + 1}: {name}")

            def progress(fraction: float, message: str, _i=index) -> None:
                emit("progress", phase="optimize", step=_i, fraction=float(fraction), message=message)

            context.progress = progress
            try:
                model, report = step.plugin.run(model, context)
            except (WorkbenchError, KeyboardInterrupt):
                raise
            except Exception as exc:
                raise PluginError(f"plugin {step.name} failed: {type(exc).__name__}: {exc}") from exc
            fmt = step.plugin.output_format(fmt)
            report_dict = report.to_dict()
            report_dict["auto_inserted"] = step.auto_inserted
            reports.append(report_dict)
            emit("plugin_report", report=report_dict)
        require_some_change(reports)     # a chain that changed nothing is no variant to compare
        loaded.model, loaded.kind = model, fmt
        stage.step(DESCRIBING.replace("the model", "the optimized model"))
        optimized_info = describe_model(loaded, spec, specs)
        emit("model_info", stage="optimized", info=optimized_info.to_dict())
    else:
        optimized_info = original_info

    artifact = None
    if spec.save_model:
        phase("save", f"saving optimized model to {spec.save_model}")
        artifact = save_model(model, fmt, spec.save_model, [torch.from_numpy(a) for a in inputs.measure])
        emit("artifact", **artifact)
        if artifact.get("note"):     # e.g. a head-pruned BERT folder reopens in Workbench, not in from_pretrained
            notes.append(f"saved model: {artifact['note']}")

    # -- measure -------------------------------------------------------------------------------
    runtime_name = resolve_runtime(spec.runtime, fmt)
    runtime = create_runtime(runtime_name, spec.device, spec.dtype, threads)
    phase("prepare", f"preparing {runtime_name} on {spec.device}")
    runtime.prepare(model, inputs.measure)
    if scenario == "generate":
        try:
            timing = measure_generate(runtime, tokens, spec, emit, cancelled, stage, threads, notes)
        except WorkbenchError:
            raise
        except Exception as exc:
            raise model_call_error(exc, f"prompt {run_batch}x{tokens.prompt_len} tokens, "
                                        f"{spec.gen_len} new tokens") from exc
    else:
        timing = _measure_forward(runtime, spec, specs, loaded, emit, cancelled, stage, threads, notes)

    # -- fidelity ------------------------------------------------------------------------------
    phase("fidelity", "comparing outputs with the unoptimized model")
    lm = None
    if causal_lm:
        lm, fidelity = compare_lm(lm_reference, lm_scan(runtime, tokens, spec, run_batch, lm_reference))
        if lm["continuation_agreement"] is None and lm_reference.continuations is not None:
            notes.append("continuation agreement not measured: the optimized model cannot generate "
                         f"on {runtime_name} (no KV cache interface)")
        reference_finite = lm_reference.nonfinite == 0
    else:
        with runtime.timing_context()():
            outputs = collect_outputs(runtime, inputs.fidelity, run_batch)
        fidelity = compare_outputs(reference, outputs, inputs.labels, optimized=bool(chain),
                                   task=getattr(loaded.hf, "task", None))
        reference_finite = bool(np.all(np.isfinite(reference)))
    if fidelity.nonfinite_outputs:
        flags.append(f"model outputs contain NaN/Inf ({fidelity.nonfinite_outputs} values)")
    if not reference_finite:
        flags.append("the unoptimized model's own outputs contain NaN/Inf")

    # -- explain (issue 15): --profile's per-op profile and per-layer comparison, after timing -------
    explained = {}
    if spec.profile:
        explained = explain_run(spec, runtime, model, fmt, inputs, run_batch, kept, original_info,
                                optimized_info if chain else None, workdir, timing, phase, emit, cancelled)

    lingering = [t.name for t in threading.enumerate()
                 if t.is_alive() and not t.daemon and t is not threading.main_thread()]
    if lingering:
        notes.append(f"the model left {len(lingering)} thread{'s' if len(lingering) > 1 else ''} running "
                     f"({', '.join(lingering[:5])}); the worker ended {'them' if len(lingering) > 1 else 'it'} "
                     "by exiting after the measurement")
    emit("result", result={
        **timing,
        "scenario": scenario,
        "task": getattr(loaded.hf, "task", None),
        "generation": timing.get("generation"),
        "lm_fidelity": lm,
        "fidelity": fidelity.to_dict(),
        "fidelity_inputs": inputs.source,
        "inputs": [str(s) for s in specs],
        "model_info": original_info.to_dict(),
        "optimized_model_info": optimized_info.to_dict() if chain else None,
        "plugin_reports": reports,
        "runtime": runtime.info(),
        "runtime_name": runtime_name,
        "device_memory": runtime.memory(),
        "artifact": artifact,
        "notes": notes,
        "flags": flags,
        **explained,        # issue 15: "profile" and "layers" (with --profile)
        "worker_env": _worker_environment(),
    })


def _measure_forward(runtime, spec: RunSpec, specs, loaded, emit, cancelled, stage: Stage, threads: int,
                     notes: list[str]) -> dict:
    """The forward scenario: one model call per timed iteration (``measure.measure``)."""
    from .measure import MeasureSettings, measure
    from .runtimes.base import model_call_error
    from ..results.stats import compute_latency_stats
    settings = MeasureSettings.from_spec(spec)
    if device_kind(spec.device) == "cuda" and settings.min_duration_s < 3.0:
        # The NVML energy counter needs a window of seconds to give a per-inference figure.
        settings.min_duration_s = 3.0
        notes.append("timed phase extended to 3 s on GPU so energy per inference can be measured")
    seen = {"measure": 0}
    current = {"phase": None}
    threads_while_timing: list[int] = []    # read after each timed batch: the model may change them

    def on_batch(kind: str, values: list[int]) -> None:
        if kind != current["phase"]:
            current["phase"] = kind
            stage.phase(kind)
            emit("phase", phase=kind, message="")
        seen[kind] = seen.get(kind, 0) + len(values)
        emit("latency_batch", phase=kind, values_ns=values)
        if kind == "measure":
            in_force = runtime.threads_in_force()
            if in_force is not None:
                threads_while_timing.append(in_force)
            emit("progress", phase="measure", fraction=min(1.0, seen["measure"] / spec.iters), message="")

    stage.phase("measure")
    try:
        with runtime.timing_context()():
            result = measure(runtime.call, runtime.timer_kind, settings, runtime.synchronize, on_batch, cancelled)
    except WorkbenchError:
        raise
    except Exception as exc:
        calls = sum(n for k, n in seen.items() if k != "measure") + seen["measure"]
        raise model_call_error(exc, ", ".join(str(s) for s in specs),
                               ", ".join(str(s) for s in loaded.inputs) or None,
                               calls_before=calls) from exc
    threads_note = _threads_note(threads, threads_while_timing)
    if threads_note:
        notes.append(threads_note)
    if cancelled():
        raise RunCancelled("cancelled by the user")
    batch = specs[0].shape[0]
    emit("measure_window", t_start=result.t_start, t_end=result.t_end, iterations=result.iterations, batch=batch)
    notes += result.notes
    stats = compute_latency_stats(result.latencies_ns, batch=batch, seed=spec.seed)
    return {
        "latency": stats.to_dict(),
        "cold_ms": result.cold_ns / 1e6,
        "warmup": {"iterations": result.warmup_iters, "stable": result.warmup_stable},
        "window": {"t_start": result.t_start, "t_end": result.t_end, "iterations": result.iterations},
        "gc_disabled_while_timing": result.gc_disabled,
        "threads": threads_while_timing[-1] if threads_while_timing else threads,
    }


def _threads_note(asked: int, in_force: list[int]) -> str | None:
    """A note when the threads in force while timing are not the ones asked for."""
    distinct = sorted(set(in_force))
    if not distinct or distinct == [asked]:
        return None
    during = str(distinct[0]) if len(distinct) == 1 else f"between {distinct[0]} and {distinct[-1]}"
    return (f"the model changed torch's thread count itself: {asked} thread{'s' if asked > 1 else ''} asked, "
            f"{during} in force while timing; the run records {in_force[-1]} (the threads the latencies "
            "were measured with)")


def _worker_environment() -> dict:
    import torch
    from .conditions import worker_conditions
    env = {"torch": torch.__version__, "torch_cuda": torch.version.cuda,
           "cuda_available": torch.cuda.is_available(), "numpy": np.__version__,
           "conditions": worker_conditions()}
    try:
        import onnxruntime
        env["onnxruntime"] = onnxruntime.__version__
    except ImportError:
        env["onnxruntime"] = None
    if torch.cuda.is_available():
        env["cudnn"] = torch.backends.cudnn.version()
        env["gpu_names"] = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
    return env
