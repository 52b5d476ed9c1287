"""The per-op profile: an opt-in phase after timing (``--profile``), never inside the timed window.

``profile_phase`` runs the measured runtime a few more iterations under the library's own profiler
(``torch.profiler`` with input shapes on CPU/CUDA; ONNX Runtime's session profiler for ONNX runs),
reduces what it recorded to one op table and keeps the Chrome/Perfetto trace as a file beside the
run. The table is per iteration, so two runs profiled over different iteration counts compare.

Stored format (``result["profile"]``; ``workbench.results.profile_diff`` reads it, torch-free)::

    {"source": "torch.profiler" | "onnxruntime", "device": "cpu", "iterations": 10,
     "time_basis": "cpu" | "device",      # what "time_us" is: CPU self time, or GPU kernel time
     "total_us": 812.4,                   # sum of the ops' time_us, per iteration
     "wall_ms_per_iteration": 1.31,       # the profiled loop (profiler overhead included)
     "ops": [{"op": "quantized::linear_dynamic", "calls": 14.0, "time_us": 402.1, "self_cpu_us": 402.1,
              "cpu_total_us": 405.0, "device_us": 0.0, "share": 0.495,
              "shapes": [{"shapes": "[1, 8, 224], [], []", "calls": 12.0, "time_us": 300.2}, ...]}, ...],
     "ops_total": 42,                     # before the MAX_OPS cap
     "trace_path": ".../run-7/profile_trace.json", "trace_bytes": 1762526,
     "seconds": 0.61, "notes": [...]}

On failure: ``{"error": "...", "seconds": ...}`` (the run itself is kept).
"""
from __future__ import annotations

import json
import shutil
import time
from pathlib import Path
from typing import Any, Callable

TRACE_NAME = "profile_trace.json"
MAX_OPS = 200                 # rows kept per profile (the rest are summed into the total only)
SHAPES_PER_OP = 3             # the most expensive input-shape signatures kept per op
TARGET_SECONDS = 0.3          # profile about this long ...
MIN_ITERATIONS, MAX_ITERATIONS = 3, 20     # ... within these bounds ("a few iterations")


def profile_iterations(median_ms: float | None) -> int:
    """A few iterations: about TARGET_SECONDS of the model, at least 3 and at most 20."""
    if not median_ms or median_ms <= 0:
        return MIN_ITERATIONS
    return int(min(MAX_ITERATIONS, max(MIN_ITERATIONS, round(TARGET_SECONDS * 1000 / median_ms))))


def profile_phase(runtime: Any, model: Any, workdir: Path, iterations: int,
                  cancelled: Callable[[], bool] = lambda: False,
                  progress: Callable[[float, str], None] = lambda f, m: None) -> dict:
    """Profile ``runtime`` (already prepared and warm) for ``iterations`` calls; the op table."""
    started = time.perf_counter()
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    try:
        if getattr(runtime, "name", "") == "onnxruntime":
            profile = _profile_onnxruntime(runtime, model, workdir, iterations, cancelled, progress)
        else:
            profile = _profile_torch(runtime, workdir, iterations, cancelled, progress)
    except Exception as exc:   # noqa: BLE001 - a profiler failure must never cost the measured run
        return {"error": f"the profiler failed: {type(exc).__name__}: {str(exc).strip()[:300]}",
                "seconds": round(time.perf_counter() - started, 3)}
    profile["seconds"] = round(time.perf_counter() - started, 3)
    return profile


# -- torch.profiler ------------------------------------------------------------------------------
def _profile_torch(runtime: Any, workdir: Path, iterations: int, cancelled, progress) -> dict:
    import torch
    from torch.autograd.profiler import profile

    on_gpu = getattr(runtime, "timer_kind", "cpu") == "cuda"
    done = 0
    with runtime.timing_context()():
        runtime.call()                          # one unrecorded call: caches and allocator settle
        runtime.synchronize()
        # torch.autograd.profiler (Kineto) is what torch.profiler.profile drives; called directly it
        # skips torch.profiler's lazy import of torch._inductor (seconds, for nothing here).
        with profile(use_cpu=True, use_device="cuda" if on_gpu else None, record_shapes=True,
                     use_kineto=True) as prof:
            loop_started = time.perf_counter()
            for done in range(1, iterations + 1):
                runtime.call()
                if cancelled():
                    break
                progress(done / iterations, f"iteration {done}/{iterations}")
            runtime.synchronize()
            loop_s = time.perf_counter() - loop_started
    notes = [] if done == iterations else [f"cancelled after {done} of {iterations} iterations"]
    rows: dict[str, dict] = {}
    for event in prof.key_averages(group_by_input_shape=True):
        name = str(event.key)
        if name.startswith("ProfilerStep") or getattr(event, "is_user_annotation", False):
            continue
        device_us = float(getattr(event, "self_device_time_total", 0.0) or 0.0)
        row = rows.setdefault(name, {"op": name, "calls": 0.0, "self_cpu_us": 0.0, "cpu_total_us": 0.0,
                                     "device_us": 0.0, "shapes": []})
        row["calls"] += event.count
        row["self_cpu_us"] += float(event.self_cpu_time_total)
        row["cpu_total_us"] += float(event.cpu_time_total)
        row["device_us"] += device_us
        row["shapes"].append({"shapes": _shape_text(getattr(event, "input_shapes", None)),
                              "calls": float(event.count),
                              "time_us": device_us if on_gpu else float(event.self_cpu_time_total)})
    trace = workdir / TRACE_NAME
    prof.export_chrome_trace(str(trace))
    basis = "device" if on_gpu else "cpu"
    for row in rows.values():
        row["time_us"] = row["device_us"] if on_gpu else row["self_cpu_us"]
    table = _per_iteration(list(rows.values()), max(done, 1))
    if on_gpu:
        notes.append("time is GPU kernel time (self device time); CPU-side launch time is in self_cpu_us")
    return {"source": "torch.profiler", "torch": torch.__version__, "device": runtime.device,
            "iterations": done, "time_basis": basis, **table,
            "wall_ms_per_iteration": round(loop_s * 1000 / max(done, 1), 4),
            "trace_path": str(trace), "trace_bytes": trace.stat().st_size, "notes": notes}


def _shape_text(shapes: Any) -> str:
    if not shapes:
        return ""
    return ", ".join(str(list(s)) if isinstance(s, (list, tuple)) else str(s) for s in shapes)


# -- ONNX Runtime ----------------------------------------------------------------------------------
def _profile_onnxruntime(runtime: Any, model: Any, workdir: Path, iterations: int, cancelled, progress) -> dict:
    """A second session with ORT's profiler on (it cannot be switched on for the timed one), with
    the timed session's threads and providers; the first call is dropped (allocations, caches)."""
    ort = runtime.ort
    options = ort.SessionOptions()
    if runtime.threads:
        options.intra_op_num_threads = runtime.threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.enable_profiling = True
    options.profile_file_prefix = str(workdir / "ort_profile")
    payload = model.SerializeToString() if hasattr(model, "SerializeToString") else str(model)
    session = ort.InferenceSession(payload, options, providers=runtime.providers)
    session.run(None, runtime.feed)
    done = 0
    loop_started = time.perf_counter()
    for done in range(1, iterations + 1):
        session.run(None, runtime.feed)
        if cancelled():
            break
        progress(done / iterations, f"iteration {done}/{iterations}")
    loop_s = time.perf_counter() - loop_started
    written = Path(session.end_profiling())
    trace = workdir / TRACE_NAME
    shutil.move(str(written), trace)
    events = json.loads(trace.read_text())
    table = _per_iteration(_onnx_rows(events), max(done, 1))
    notes = [] if done == iterations else [f"cancelled after {done} of {iterations} iterations"]
    if runtime.binding is not None:
        notes.append("profiled with host inputs and outputs (the timed session kept them on the GPU); node times "
                     "are ONNX Runtime's host-side kernel times")
    return {"source": "onnxruntime", "onnxruntime": ort.__version__, "device": runtime.device,
            "iterations": done, "time_basis": "cpu", **table,
            "wall_ms_per_iteration": round(loop_s * 1000 / max(done, 1), 4),
            "trace_path": str(trace), "trace_bytes": trace.stat().st_size, "notes": notes}


def _onnx_rows(events: list[dict]) -> list[dict]:
    """Node kernel times by op type, without the first (unrecorded-in-spirit) model_run."""
    runs = sorted((e for e in events if e.get("cat") == "Session" and e.get("name") == "model_run"),
                  key=lambda e: e.get("ts", 0))
    skip_before = runs[0]["ts"] + runs[0]["dur"] if runs else float("-inf")
    rows: dict[str, dict] = {}
    for event in events:
        name = str(event.get("name", ""))
        if event.get("cat") != "Node" or not name.endswith("_kernel_time") or event.get("ts", 0) < skip_before:
            continue
        args = event.get("args") or {}
        op = str(args.get("op_name") or name)
        dur = float(event.get("dur") or 0.0)
        row = rows.setdefault(op, {"op": op, "calls": 0.0, "self_cpu_us": 0.0, "cpu_total_us": 0.0,
                                   "device_us": 0.0, "provider": args.get("provider"), "shapes": {}})
        row["calls"] += 1
        row["self_cpu_us"] += dur
        row["cpu_total_us"] += dur
        key = ", ".join(str(next(iter(s.values()), "")) for s in args.get("input_type_shape") or [] if s)
        entry = row["shapes"].setdefault(key, {"shapes": key, "calls": 0.0, "time_us": 0.0})
        entry["calls"] += 1
        entry["time_us"] += dur
    for row in rows.values():
        row["shapes"] = list(row["shapes"].values())
        row["time_us"] = row["self_cpu_us"]
    return list(rows.values())


# -- the common table --------------------------------------------------------------------------------
def _per_iteration(rows: list[dict], iterations: int) -> dict:
    """Rows divided by the iteration count, sorted by time, with their share of the total."""
    total = sum(r["time_us"] for r in rows)
    for row in rows:
        row["share"] = round(row["time_us"] / total, 5) if total > 0 else 0.0
        for key in ("calls", "self_cpu_us", "cpu_total_us", "device_us", "time_us"):
            row[key] = round(row[key] / iterations, 3)
        shapes = sorted(row["shapes"], key=lambda s: -s["time_us"])[:SHAPES_PER_OP]
        row["shapes"] = [{"shapes": s["shapes"], "calls": round(s["calls"] / iterations, 3),
                          "time_us": round(s["time_us"] / iterations, 3)} for s in shapes]
    rows.sort(key=lambda r: (-r["time_us"], -r["self_cpu_us"], r["op"]))
    return {"total_us": round(total / iterations, 3), "ops": rows[:MAX_OPS], "ops_total": len(rows)}
