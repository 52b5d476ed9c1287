"""The worker process: everything that touches a model runs here, never in the GUI/CLI process.

Started as ``python -m workbench.worker``; reads one job (JSON) from stdin, writes events as JSON
lines to its original stdout, and listens on stdin for ``cancel``. Anything the model or a
library prints goes to stderr (stdout is redirected there) so it cannot corrupt the event stream.
"""
from __future__ import annotations

import json
import os
import sys
import threading
import time
import traceback
from pathlib import Path
from typing import Any

import numpy as np

from .errors import InputShapeError, PluginError, RunCancelled, WorkbenchError
from .spec import RunSpec


class EventWriter:
    def __init__(self, fd: int) -> None:
        self._file = os.fdopen(fd, "w", buffering=1, encoding="utf-8")
        self._lock = threading.Lock()

    def __call__(self, type_: str, **payload: Any) -> None:
        payload["type"] = type_
        payload.setdefault("t", time.monotonic())
        line = json.dumps(payload, default=_json_default)
        with self._lock:
            self._file.write(line + "\n")
            self._file.flush()


def _json_default(obj: Any) -> Any:
    if isinstance(obj, (np.integer,)):
        return int(obj)
    if isinstance(obj, (np.floating,)):
        return float(obj)
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if hasattr(obj, "to_dict"):
        return obj.to_dict()
    if isinstance(obj, Path):
        return str(obj)
    return str(obj)


class CancelWatcher:
    """Reads stdin after the job line; the parent writes 'cancel' to ask for a clean stop."""

    def __init__(self, stream) -> None:
        self.flag = threading.Event()
        threading.Thread(target=self._watch, args=(stream,), daemon=True).start()

    def _watch(self, stream) -> None:
        for line in stream:
            if line.strip() == "cancel":
                self.flag.set()
                return
        # stdin closed: the parent is gone, so stop working for nobody.
        self.flag.set()

    def __call__(self) -> bool:
        return self.flag.is_set()


def main() -> int:
    # Keep the real stdout for events; send everything else (prints, C libraries) to stderr.
    events_fd = os.dup(1)
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    emit = EventWriter(events_fd)
    job = json.loads(sys.stdin.readline())
    cancelled = CancelWatcher(sys.stdin)
    emit("started", pid=os.getpid())
    try:
        if job["job"] == "inspect":
            inspect_job(job, emit)
        else:
            run_job(job, emit, cancelled)
        return 0
    except RunCancelled as exc:
        emit("error", kind="cancelled", message=str(exc) or "cancelled")
        return 0
    except WorkbenchError as exc:
        emit("error", kind=type(exc).__name__, message=str(exc))
        return 0
    except SystemExit as exc:  # a model calling sys.exit() must not look like success
        emit("error", kind="SystemExit", message=f"the model called sys.exit({exc.code!r})")
        return 1
    except BaseException as exc:  # noqa: BLE001 - report every failure with its traceback
        emit("error", kind="exception", message=f"{type(exc).__name__}: {exc}".strip(),
             traceback=traceback.format_exc())
        return 1


# ---------------------------------------------------------------------------------------------
def inspect_job(job: dict, emit) -> None:
    """Load a model and describe it (the GUI's Model panel) without measuring."""
    from .models.describe import describe_model
    from .models.loaders import load_model
    spec = RunSpec.from_dict(job["spec"])
    emit("phase", phase="load", message=f"loading {spec.model}")
    loaded = load_model(spec.model, spec.factory, spec.trust_pickle)
    info = describe_model(loaded, spec)
    emit("result", result={"model_info": info.to_dict()})


def run_job(job: dict, emit, cancelled) -> None:
    import torch

    from .fidelity import compare_outputs
    from .inputs import batched, build_inputs, load_npz, resolve_specs
    from .measure import MeasureSettings, measure
    from .models.describe import describe_model
    from .models.loaders import load_model
    from .models.save import save_model
    from .plugins import PluginContext, build_chain
    from .runtimes import create_runtime
    from .stats import compute_latency_stats

    spec = RunSpec.from_dict(job["spec"])
    workdir = Path(job["workdir"])
    workdir.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(spec.seed)
    notes: list[str] = []

    def phase(name: str, message: str = "") -> None:
        if cancelled():
            raise RunCancelled("cancelled by the user")
        emit("phase", phase=name, message=message)

    # -- load ----------------------------------------------------------------------------------
    phase("load", f"loading {spec.model}")
    loaded = load_model(spec.model, spec.factory, spec.trust_pickle)
    notes += loaded.notes
    batch = spec.batch or loaded.default_batch
    specs = resolve_specs(spec.inputs, loaded.inputs, batch)
    data = load_npz(spec.data) if spec.data else loaded.data
    inputs = build_inputs(specs, data, spec.seed)
    threads = spec.threads or torch.get_num_threads()
    original_info = describe_model(loaded, spec, specs)
    emit("model_info", stage="original", info=original_info.to_dict())

    # -- reference outputs of the unoptimized model (fidelity baseline) --------------------------
    phase("reference", "reference outputs of the unoptimized model")
    ref_runtime_name = "onnxruntime" if loaded.kind == "onnx" else "torch"
    reference_runtime = create_runtime(ref_runtime_name, spec.device, "float32", threads)
    reference_runtime.prepare(loaded.model, inputs.measure)
    reference = _infer_all(reference_runtime, inputs.fidelity, specs[0].shape[0], batched)
    del reference_runtime

    # -- optimize ------------------------------------------------------------------------------
    model, fmt = loaded.model, loaded.kind
    chain = build_chain(spec.plugins, fmt, spec.device, spec.runtime)
    reports = []
    if chain:
        example = [torch.from_numpy(a).to(spec.device) for a in inputs.measure]
        context = PluginContext(
            device=spec.device, dtype=spec.dtype, example_inputs=example, data=data, seed=spec.seed,
            workdir=workdir, input_names=[s.name or f"input_{i}" for i, s in enumerate(specs)],
            cancelled=cancelled, emit=lambda kind, payload: emit(kind, **payload))
        for index, step in enumerate(chain):
            name = step.name + (" (auto-inserted)" if step.auto_inserted else "")
            phase("optimize", f"step {index + 1}/{len(chain)}: {name}")

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
        loaded.model, loaded.kind = model, fmt
        optimized_info = describe_model(loaded, spec, specs)
        emit("model_info", stage="optimized", info=optimized_info.to_dict())
    else:
        optimized_info = original_info

    artifact = None
    if spec.save_model:
        phase("save", f"saving optimized model to {spec.save_model}")
        artifact = save_model(model, fmt, spec.save_model, [torch.from_numpy(a) for a in inputs.measure])
        emit("artifact", **artifact)

    # -- measure -------------------------------------------------------------------------------
    runtime_name = spec.runtime if spec.runtime != "auto" else ("onnxruntime" if fmt == "onnx" else "torch")
    runtime = create_runtime(runtime_name, spec.device, spec.dtype, threads)
    phase("prepare", f"preparing {runtime_name} on {spec.device}")
    runtime.prepare(model, inputs.measure)
    settings = MeasureSettings(min_iters=spec.iters, min_duration_s=spec.duration_s,
                               max_duration_s=spec.max_duration_s, warmup_min_iters=spec.warmup_min_iters,
                               warmup_max_s=spec.warmup_max_s)
    if spec.device.startswith("cuda") and settings.min_duration_s < 3.0:
        # The NVML energy counter needs a window of seconds to give a per-inference figure.
        settings.min_duration_s = 3.0
        notes.append("timed phase extended to 3 s on GPU so energy per inference can be measured")
    seen = {"measure": 0}
    current = {"phase": None}

    def on_batch(kind: str, values: list[int]) -> None:
        if kind != current["phase"]:
            current["phase"] = kind
            emit("phase", phase=kind, message="")
        seen[kind] = seen.get(kind, 0) + len(values)
        emit("latency_batch", phase=kind, values_ns=values)
        if kind == "measure":
            emit("progress", phase="measure", fraction=min(1.0, seen["measure"] / spec.iters), message="")

    try:
        with runtime.timing_context()():
            result = measure(runtime.call, runtime.timer_kind, settings, runtime.synchronize, on_batch, cancelled)
    except WorkbenchError:
        raise
    except Exception as exc:
        if seen.get("cold", 0) == 0:   # the very first call failed: almost always the inputs
            given = ", ".join(str(s) for s in specs)
            expected = ", ".join(str(s) for s in loaded.inputs) or "not declared by the model"
            raise InputShapeError(f"the model rejected inputs {given} (model expects: {expected}): "
                                  f"{type(exc).__name__}: {str(exc).strip().splitlines()[0] if str(exc).strip() else ''}") from None
        raise
    if cancelled():
        raise RunCancelled("cancelled by the user")
    emit("measure_window", t_start=result.t_start, t_end=result.t_end, iterations=result.iterations,
         batch=specs[0].shape[0])
    notes += result.notes

    # -- fidelity ------------------------------------------------------------------------------
    phase("fidelity", "comparing outputs with the unoptimized model")
    with runtime.timing_context()():
        outputs = _infer_all(runtime, inputs.fidelity, specs[0].shape[0], batched)
    fidelity = compare_outputs(reference, outputs, inputs.labels)
    flags = []
    if fidelity.nonfinite_outputs:
        flags.append(f"model outputs contain NaN/Inf ({fidelity.nonfinite_outputs} values)")
    if not np.all(np.isfinite(reference)):
        flags.append("the unoptimized model's own outputs contain NaN/Inf")

    stats = compute_latency_stats(result.latencies_ns, batch=specs[0].shape[0], seed=spec.seed)
    emit("result", result={
        "latency": stats.to_dict(),
        "cold_ms": result.cold_ns / 1e6,
        "warmup": {"iterations": result.warmup_iters, "stable": result.warmup_stable},
        "window": {"t_start": result.t_start, "t_end": result.t_end, "iterations": result.iterations},
        "gc_disabled_while_timing": result.gc_disabled,
        "fidelity": fidelity.to_dict(),
        "fidelity_inputs": inputs.source,
        "inputs": [str(s) for s in specs],
        "model_info": original_info.to_dict(),
        "optimized_model_info": optimized_info.to_dict() if chain else None,
        "plugin_reports": reports,
        "runtime": runtime.info(),
        "runtime_name": runtime_name,
        "device_memory": runtime.memory(),
        "threads": threads,
        "artifact": artifact,
        "notes": notes,
        "flags": flags,
        "worker_env": _worker_environment(),
    })


def _infer_all(runtime, arrays: list[np.ndarray], batch: int, batched) -> np.ndarray:
    outs = []
    for chunk, valid in batched(arrays, batch):
        outs.append(runtime.infer(chunk)[:valid])
    return np.concatenate(outs)


def _worker_environment() -> dict:
    import torch
    from .worker_env import worker_conditions
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


if __name__ == "__main__":
    sys.exit(main())
