"""Per-layer comparison of an optimized torch model with its unoptimized original.

``layer_report`` runs both models on the run's own inputs with forward hooks, matched by module
name, and gives for every layer: how far its output drifted (relative error ‖o − r‖/‖r‖ and
cosine over the samples), what happened to its weights (the seed formulas: the quantization error
|w − q(w)| of a quantized layer, mean and max, relative to ‖w‖; the pruning sensitivity ‖Δw‖/‖w‖
of a pruned layer), and its parameters and FLOPs before and after.

Stored format (``result["layers"]``, or a file written by ``workbench layers``)::

    {"samples": 32, "inputs": "eval data (x_test)", "seconds": 0.4, "notes": [...],
     "rows": [{"name": "blocks.0.attn.q_proj", "type": "Linear", "type_after": "Linear(dynamic int8)",
               "leaf": true, "params_before": 50400, "params_after": 50400,
               "flops_before": 802816, "flops_after": null,
               "drift": {"relative_error": 0.0081, "cosine": 0.99997} | {"shape_changed": [[..], [..]]} | null,
               "weight": {"kind": "quantized", "to": "qint8", "mean_abs": 1.2e-4, "max_abs": 4.1e-4,
                          "relative": 0.0093, "mean_relative": 0.0087, "max_relative": 0.0039} | null}],
     "only_before": [...], "only_after": [...],        # module names found on one side only
     "summary": {"layers": 40, "weights_changed": 14, "most_drift": ["head", ...]}}

``weight.kind`` is "quantized" (also fp16/bf16 casts: ``to`` names the dtype), "pruned" (zeros
added: ``relative`` = ‖Δw‖/‖w‖, ``sparsity_before/after``), "channels removed" (structured
pruning: ``shape_before/after``; ``relative`` is estimated from the norms, ``estimated``: true) or
"changed" (rewritten otherwise: fused, fine-tuned).
"""
from __future__ import annotations

import math
import time
from typing import Any, Callable

import numpy as np

MAX_SAMPLES = 32                 # the layers are compared on this many of the run's fidelity samples
CAPTURE_BYTES = 256 << 20        # the original's layer outputs kept per batch (then later layers are skipped)
MAX_ROWS = 2000


class NotComparable(Exception):
    """Raised inside when two layers' outputs cannot be compared (kept as a row note)."""


def layer_report(original: Any, optimized: Any, arrays: list[np.ndarray], batch: int, device: str = "cpu",
                 original_info: dict | None = None, optimized_info: dict | None = None,
                 source: str = "", max_samples: int = MAX_SAMPLES,
                 cancelled: Callable[[], bool] = lambda: False) -> dict:
    """Compare ``optimized`` with ``original`` layer by layer on up to ``max_samples`` samples of
    ``arrays`` (the run's fidelity inputs), ``batch`` at a time."""
    import torch
    started = time.perf_counter()
    notes: list[str] = []
    for which, module in (("original", original), ("optimized", optimized)):
        if isinstance(module, torch.jit.ScriptModule):
            raise TypeError(f"the {which} model is TorchScript: its layers run inside compiled code and take no "
                            "forward hooks; load it from its state_dict + factory to compare layers")
    before = {name: m for name, m in original.named_modules() if name}
    after = {name: m for name, m in optimized.named_modules() if name and not _internal(m)}
    n = min(max_samples, len(arrays[0])) if arrays else 0
    drift, order, skipped = _compare_outputs(original, optimized, [a[:n] for a in arrays], batch, device,
                                             before, after, cancelled)
    if skipped:
        notes.append(f"output drift not compared for {skipped} later layer(s): their outputs exceed "
                     f"{CAPTURE_BYTES >> 20} MiB per batch")
    if cancelled():
        notes.append("cancelled: the output drift covers part of the samples")
    flops_b, flops_a = _info_column(original_info, "flops"), _info_column(optimized_info, "flops")
    names = [name for name in order if name in before] + [name for name in before if name not in order]
    rows = []
    for name in names[:MAX_ROWS]:
        mod_b, mod_a = before[name], after.get(name)
        rows.append({
            "name": name, "type": type(mod_b).__name__, "type_after": _type_name(mod_a) if mod_a is not None else None,
            "leaf": not any(True for _ in mod_b.children()),
            "params_before": _own_params(mod_b), "params_after": _own_params(mod_a) if mod_a is not None else 0,
            "flops_before": flops_b.get(name), "flops_after": flops_a.get(name),
            "drift": drift.get(name), "weight": weight_change(mod_b, mod_a) if mod_a is not None else None})
    if len(names) > MAX_ROWS:
        notes.append(f"{len(names) - MAX_ROWS} more layers not listed")
    estimated = [r for r in rows if (r["weight"] or {}).get("kind") == "quantized" and r["flops_after"] is None
                 and r["flops_before"] is not None]
    for row in estimated:       # the same multiply-adds, in int8: torch's FLOP counter skips quantized kernels
        row["flops_after"], row["flops_after_estimated"] = row["flops_before"], True
    if estimated:
        notes.append(f"FLOPs after of {len(estimated)} quantized layer(s): the same multiply-adds as before, in lower "
                     "precision (torch's FLOP counter does not count quantized kernels)")
    if not rows:
        notes.append("the model has no named layers to compare (a single module, or a torch.export graph whose "
                      "layers were flattened); the run's fidelity compares the whole model")
    changed = [r for r in rows if r["weight"]]
    ranked = sorted((r for r in rows if r["leaf"] and (r["drift"] or {}).get("relative_error") is not None),
                    key=lambda r: -r["drift"]["relative_error"])
    return {"samples": int(n), "inputs": source, "seconds": round(time.perf_counter() - started, 3),
            "rows": rows, "only_before": [n_ for n_ in before if n_ not in after],
            "only_after": [n_ for n_ in after if n_ not in before], "notes": notes,
            "summary": {"layers": len(rows), "weights_changed": len(changed),
                        "most_drift": [r["name"] for r in ranked[:5]]}}


# -- output drift ------------------------------------------------------------------------------------
def _compare_outputs(original: Any, optimized: Any, arrays: list[np.ndarray], batch: int, device: str,
                     before: dict, after: dict, cancelled) -> tuple[dict, list[str], int]:
    """``({name: drift}, names in execution order, layers skipped by the memory cap)``."""
    import torch
    sums: dict[str, list[float]] = {}        # name -> [Σ(o−r)², Σr², Σo·r, Σo²]
    shape_changed: dict[str, list] = {}
    order: list[str] = []
    skipped: set[str] = set()
    total = len(arrays[0]) if arrays else 0
    for start in range(0, total, max(1, batch)):
        if cancelled():
            break
        chunk = [a[start:start + batch] for a in arrays]
        captured: dict[str, Any] = {}
        budget = [CAPTURE_BYTES]

        def keep(name: str, output: Any) -> None:
            tensor = _first_tensor(output)
            if tensor is None or name in captured:
                return
            if name not in order:
                order.append(name)
            size = tensor.numel() * 4
            if size > budget[0]:
                skipped.add(name)
                return
            budget[0] -= size
            captured[name] = tensor.detach().float().cpu()

        def compare(name: str, output: Any) -> None:
            ref, tensor = captured.pop(name, None), _first_tensor(output)
            if ref is None or tensor is None:
                return
            out = tensor.detach().float().cpu()
            if out.shape != ref.shape:
                shape_changed[name] = [list(ref.shape), list(out.shape)]
                return
            ref64, out64 = ref.double(), out.double()
            acc = sums.setdefault(name, [0.0, 0.0, 0.0, 0.0])
            acc[0] += float(((out64 - ref64) ** 2).sum())
            acc[1] += float((ref64 ** 2).sum())
            acc[2] += float((out64 * ref64).sum())
            acc[3] += float((out64 ** 2).sum())

        with torch.no_grad():
            _run_hooked(original, before, keep, chunk, device)
            _run_hooked(optimized, after, compare, chunk, device)
    drift: dict[str, dict] = {}
    for name, (sq_diff, sq_ref, dot, sq_out) in sums.items():
        rel = math.sqrt(sq_diff / sq_ref) if sq_ref > 0 else (0.0 if sq_diff == 0 else math.inf)
        norms = math.sqrt(sq_ref * sq_out)
        cosine = dot / norms if norms > 0 else (1.0 if sq_diff == 0 else 0.0)
        drift[name] = {"relative_error": _finite(rel), "cosine": _finite(cosine)}
    for name, shapes in shape_changed.items():
        drift[name] = {"shape_changed": shapes}
    return drift, order, len(skipped - set(drift))


def _run_hooked(model: Any, modules: dict, on_output: Callable[[str, Any], None], arrays: list, device: str) -> None:
    handles = []
    for name, module in modules.items():
        try:
            handles.append(module.register_forward_hook(lambda _m, _i, out, _n=name: on_output(_n, out)))
        except RuntimeError:         # a scripted submodule takes no hooks
            continue
    try:
        model(*_tensors_for(model, arrays, device))
    finally:
        for handle in handles:
            handle.remove()


def _tensors_for(model: Any, arrays: list[np.ndarray], device: str) -> list:
    """The inputs as ``model`` takes them: on its device, floats in its weights' dtype."""
    import torch
    dtype, where = torch.float32, device
    for p in model.parameters():
        if p.is_floating_point():
            dtype, where = p.dtype, p.device
            break
    else:
        if any("quantized" in type(m).__module__ for m in model.modules()):
            where = "cpu"            # eager int8 modules live on the CPU
    tensors = []
    for array in arrays:
        t = torch.from_numpy(np.ascontiguousarray(array)).to(where)
        tensors.append(t.to(dtype) if t.is_floating_point() else t)
    return tensors


def _first_tensor(value: Any):
    import torch
    if isinstance(value, torch.Tensor):
        return value if value.is_floating_point() or value.is_complex() else value.float()
    if isinstance(value, (tuple, list)):
        for item in value:
            found = _first_tensor(item)
            if found is not None:
                return found
    if isinstance(value, dict) or hasattr(value, "values") and callable(value.values):
        try:
            for item in value.values():
                found = _first_tensor(item)
                if found is not None:
                    return found
        except Exception:   # noqa: BLE001 - an output object we do not understand: no drift for it
            return None
    return None


def _finite(value: float) -> float | None:
    return round(value, 8) if math.isfinite(value) else None


# -- weights -----------------------------------------------------------------------------------------
def float_weight(module: Any) -> tuple[Any, str | None]:
    """``(weight as float32 on the CPU, how it is stored)``: dequantized for torch.ao quantized
    modules (``weight()``) and torchao tensor subclasses (``dequantize()``); ``(None, None)``
    when the module has no weight tensor."""
    import torch
    weight = getattr(module, "weight", None)
    if weight is not None and callable(weight) and not isinstance(weight, torch.Tensor):
        try:
            weight = weight()                      # torch.ao quantized Linear/Conv
        except Exception:   # noqa: BLE001
            return None, None
    if not isinstance(weight, torch.Tensor):
        return None, None
    with torch.no_grad():
        if weight.is_quantized:
            return weight.dequantize().float().cpu(), str(weight.dtype).replace("torch.", "")
        if type(weight).__module__.startswith("torchao") and hasattr(weight, "dequantize"):
            return weight.dequantize().float().cpu(), f"torchao {type(weight).__name__}"
        return weight.detach().float().cpu(), str(weight.dtype).replace("torch.", "")


def weight_change(before: Any, after: Any) -> dict | None:
    """What happened to one layer's own weight (None: unchanged or no weight)."""
    import torch
    w, kind_b = float_weight(before)
    q, kind_a = float_weight(after)
    if w is None or q is None:
        return None
    norm = float(torch.linalg.vector_norm(w))
    if w.shape != q.shape:
        kept = float(torch.linalg.vector_norm(q))
        ratio = kept * kept / (norm * norm) if norm > 0 else 1.0
        return {"kind": "channels removed", "shape_before": list(w.shape), "shape_after": list(q.shape),
                "relative": round(math.sqrt(max(0.0, 1.0 - ratio)), 6), "estimated": True}
    if kind_a == kind_b and torch.equal(w, q):
        return None
    diff = (w - q).abs()
    relative = float(torch.linalg.vector_norm(w - q)) / norm if norm > 0 else None
    if kind_a != kind_b:
        mean_w, max_w = float(w.abs().mean()), float(w.abs().max())
        return {"kind": "quantized", "from": kind_b, "to": kind_a, "mean_abs": float(diff.mean()),
                "max_abs": float(diff.max()), "relative": _round(relative),
                "mean_relative": _round(float(diff.mean()) / mean_w if mean_w else None),
                "max_relative": _round(float(diff.max()) / max_w if max_w else None)}
    zeros_b, zeros_a = int((w == 0).sum()), int((q == 0).sum())
    if zeros_a > zeros_b:
        return {"kind": "pruned", "relative": _round(relative), "sparsity_before": round(zeros_b / w.numel(), 6),
                "sparsity_after": round(zeros_a / w.numel(), 6)}
    return {"kind": "changed", "relative": _round(relative), "mean_abs": float(diff.mean()), "max_abs": float(diff.max())}


def _round(value: float | None) -> float | None:
    return None if value is None or not math.isfinite(value) else round(value, 8)


def _own_params(module: Any) -> int:
    """Weights and biases a module holds itself (quantized packed ones included)."""
    import torch
    total = sum(p.numel() for p in module.parameters(recurse=False))
    for attr in ("weight", "bias"):
        value = getattr(module, attr, None)
        if value is not None and callable(value) and not isinstance(value, torch.Tensor):
            try:
                value = value()
            except Exception:   # noqa: BLE001
                continue
            if isinstance(value, torch.Tensor):
                total += value.numel()
    return int(total)


def _internal(module: Any) -> bool:
    """Bookkeeping modules a quantized layer holds (packed params), not layers of the model."""
    return type(module).__name__ in ("LinearPackedParams", "EmbeddingPackedParams")


def _type_name(module: Any) -> str:
    name = type(module).__name__
    where = type(module).__module__
    if "quantized.dynamic" in where:
        return f"{name}(dynamic int8)"
    if "quantized" in where:
        return f"{name}(int8)"
    weight = getattr(module, "weight", None)
    if weight is not None and type(weight).__module__.startswith("torchao"):
        return f"{name}({type(weight).__name__})"
    return name


def _info_column(info: dict | None, key: str) -> dict:
    """``{layer name: value}`` from a stored ModelInfo dict's layer rows."""
    return {row["name"]: row.get(key) for row in (info or {}).get("layers") or [] if isinstance(row, dict)}
