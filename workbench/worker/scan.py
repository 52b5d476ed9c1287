"""Sensitivity scan: apply one plugin to one layer at a time and measure what each costs.

The plugin is first applied to the whole model, which says which layers it changes (and the
fidelity of the whole). Then, for each of those layers alone, either the plugin runs again with
its ``skip`` parameter naming every other layer (the plugin's own code decides, so a structured
prune still follows its dependency graph), or, for a plugin without ``skip``, the original model
gets that one layer from the fully optimized copy. Each variant's outputs are compared with the
reference outputs; the layers are ranked by the fidelity they cost, and the scan suggests skipping
the few that cost the most, checked by one more application with those skipped.

Stored format (a file beside the run, written by ``workbench layers --scan``)::

    {"plugin": "quantize", "params": {"method": "dynamic_int8"}, "how": "skip" | "swap",
     "metric": "top1_agreement" | "token_agreement" | "cosine", "samples": 360, "seconds": 9.1, "cancelled": false,
     "all_layers": {<fidelity>, "output_error": 0.02}, "notes": [...],
     "layers": [{"name": "head", "type": "Linear", "drop": 0.011, "output_error": 0.004,
                 "fidelity": {<fidelity: cosine, top1_agreement, accuracy, ...>}, "seconds": 0.3}, ...],
     "ranking": ["head", ...],                   # most sensitive first
     "suggestion": {"skip": ["head", ...], "params": {"method": "dynamic_int8", "skip": "head;..."},
                    "fidelity": {...}, "drop": 0.001, "all_layers_drop": 0.012} | null}

``drop`` is 1 − top-1 agreement with the unoptimized model for classifiers, 1 − the per-token argmax
agreement for per-token logits (language models), else 1 − cosine;
``output_error`` is ‖o − r‖/‖r‖ over the samples (it ranks layers whose drop ties, often 0).
"""
from __future__ import annotations

import copy
import math
import time
from typing import Any, Callable

import numpy as np

SKIP_PARAM = "skip"
SKIP_SEPARATOR = ";"             # ';' survives the CLI's plugin:key=value,key=value syntax
SUGGEST_SHARE = 0.5              # suggest skipping the layers that hold this share of the summed cost ...
SUGGEST_MAX_FRACTION = 0.25      # ... but never more than this fraction of the scanned layers


def sensitivity_scan(original: Any, params: dict, run_plugin: Callable[[Any, dict], Any],
                     infer: Callable[[Any], np.ndarray], reference: np.ndarray, labels: np.ndarray | None,
                     has_skip: bool, progress: Callable[[float, str], None] = lambda f, m: None,
                     cancelled: Callable[[], bool] = lambda: False) -> dict:
    """Scan ``original`` with the plugin behind ``run_plugin(model, params) -> optimized model``;
    ``infer(model)`` gives a model's outputs on the fidelity inputs ``reference`` was made from."""
    from .layers import weight_change
    started = time.perf_counter()
    user_skip = [p for p in str(params.get(SKIP_PARAM) or "").split(SKIP_SEPARATOR) if p.strip()]
    progress(0.0, "applying the plugin to every layer")
    full = run_plugin(copy.deepcopy(original), dict(params))
    before = dict(original.named_modules())
    after = dict(full.named_modules())
    candidates = [name for name, module in before.items()
                  if name and name in after and (type(after[name]) is not type(module)
                                                 or weight_change(module, after[name]) is not None)]
    candidates = _outermost(candidates)
    whole = _score(infer(full), reference, labels)
    metric = next(m for m in ("top1_agreement", "token_agreement", "cosine") if whole.get(m) is not None)
    result = {"params": dict(params), "how": "skip" if has_skip else "swap", "metric": metric,
              "samples": int(len(reference)), "all_layers": whole, "layers": [], "ranking": [],
              "suggestion": None, "cancelled": False, "notes": []}
    if not candidates:
        result["notes"].append("the plugin changed no layer of this model: nothing to scan")
        result["seconds"] = round(time.perf_counter() - started, 3)
        return result

    def only(names: list[str]) -> Any:
        """The model with the plugin applied to ``names`` only."""
        if has_skip:
            others = [n for n in candidates if n not in names] + user_skip
            return run_plugin(copy.deepcopy(original), {**params, SKIP_PARAM: SKIP_SEPARATOR.join(others)})
        hybrid = copy.deepcopy(original)
        for name in names:
            hybrid.set_submodule(name, copy.deepcopy(after[name]))
        return hybrid

    for index, name in enumerate(candidates):
        if cancelled():
            result["cancelled"] = True
            result["notes"].append(f"cancelled after {index} of {len(candidates)} layers")
            break
        progress((index + 1) / (len(candidates) + 2), f"layer {index + 1}/{len(candidates)}: {name}")
        layer_started = time.perf_counter()
        score = _score(infer(only([name])), reference, labels)
        result["layers"].append({"name": name, "type": type(before[name]).__name__, "drop": score["drop"],
                                 "output_error": score["output_error"], "fidelity": score,
                                 "seconds": round(time.perf_counter() - layer_started, 3)})
    ranked = sorted(result["layers"], key=lambda r: (-(r["drop"] or 0.0), -(r["output_error"] or 0.0)))
    result["ranking"] = [r["name"] for r in ranked]
    if ranked and not result["cancelled"]:
        chosen = _suggested(ranked)
        progress((len(candidates) + 1) / (len(candidates) + 2), f"checking with {len(chosen)} layer(s) skipped")
        kept = [n for n in candidates if n not in chosen]
        if has_skip:
            checked = run_plugin(copy.deepcopy(original),
                                 {**params, SKIP_PARAM: SKIP_SEPARATOR.join(chosen + user_skip)})
        else:
            checked = only(kept)
        score = _score(infer(checked), reference, labels)
        result["suggestion"] = {"skip": chosen, "params": {**params, SKIP_PARAM: SKIP_SEPARATOR.join(chosen + user_skip)},
                                "fidelity": score, "drop": score["drop"], "all_layers_drop": whole["drop"],
                                "layers_still_optimized": len(kept)}
        if not has_skip:
            result["notes"].append(f"the plugin has no '{SKIP_PARAM}' parameter: each layer was taken from the fully "
                                   "optimized model; the suggestion cannot be applied with this plugin")
    progress(1.0, "done")
    result["seconds"] = round(time.perf_counter() - started, 3)
    return result


def _outermost(names: list[str]) -> list[str]:
    """Drop names inside another candidate (a replaced block's own children)."""
    chosen: list[str] = []
    for name in names:
        if not any(name.startswith(parent + ".") for parent in chosen):
            chosen.append(name)
    return chosen


def _suggested(ranked: list[dict]) -> list[str]:
    """The fewest most sensitive layers that hold SUGGEST_SHARE of the summed cost (at least one)."""
    drops = [r["drop"] or 0.0 for r in ranked]
    # The fidelity drop when some layer costs any, else the output error (which orders the ties).
    cost = drops if sum(drops) > 0 else [r["output_error"] or 0.0 for r in ranked]
    total = sum(cost)
    limit = max(1, int(len(ranked) * SUGGEST_MAX_FRACTION))
    chosen, held = [], 0.0
    for row, value in zip(ranked, cost):
        if len(chosen) >= limit or (chosen and total > 0 and held >= SUGGEST_SHARE * total):
            break
        chosen.append(row["name"])
        held += value
    return chosen


def _score(outputs: np.ndarray, reference: np.ndarray, labels: np.ndarray | None) -> dict:
    """Fidelity of ``outputs`` against ``reference``, its drop and the relative output error."""
    from .fidelity import compare_outputs
    fidelity = compare_outputs(reference, outputs, labels).to_dict()
    ref = np.asarray(reference, dtype=np.float64)
    out = np.asarray(outputs, dtype=np.float64)
    norm = float(np.linalg.norm(ref))
    error = float(np.linalg.norm(out - ref)) / norm if norm > 0 else 0.0
    agreement = fidelity.get("top1_agreement")
    if agreement is None and ref.ndim >= 3 and ref.shape[-1] > 1:    # per-token logits (a language model)
        agreement = fidelity["token_agreement"] = float(np.mean(ref.argmax(-1) == out.argmax(-1)))
    drop = 1.0 - agreement if agreement is not None else 1.0 - fidelity["cosine"]
    fidelity["drop"] = round(max(0.0, drop), 8) if math.isfinite(drop) else None
    fidelity["output_error"] = round(error, 8) if math.isfinite(error) else None
    return fidelity
