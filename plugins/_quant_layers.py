"""Which layers ``quantize`` touches: the matmul / conv layers a model really has, weights tied to
another module, and the user's ``skip`` patterns — decided before anything is quantized, so a model
with nothing to quantize is refused up front and the report can say "N of M matmul layers".

A "matmul layer" is an ``nn.Linear``, a ``transformers`` ``Conv1D`` (GPT-2's projections: a Linear
with its weight stored transposed) or, for dynamic int8, an LSTM/GRU. Static int8 also takes
convolutions. Nothing here imports torch at module level (the GUI imports plugin modules without it).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from workbench.plugin_api import PluginError, match_patterns

RNN_TYPES = ("LSTM", "GRU", "LSTMCell", "GRUCell", "RNNCell")
CONV_TYPES = ("Conv1d", "Conv2d", "Conv3d")
# Layer kinds each method quantizes (nn.Module class names; Conv1D = transformers.pytorch_utils.Conv1D).
METHOD_KINDS = {
    "dynamic_int8": ("Linear", "Conv1D") + RNN_TYPES,
    "static_int8": ("Linear", "Conv1D") + CONV_TYPES,
    "weight_only_int8": ("Linear", "Conv1D"),
    "int4": ("Linear", "Conv1D"),
}
LOOKED_FOR = {
    "dynamic_int8": "nn.Linear, transformers Conv1D, LSTM/GRU layers",
    "static_int8": "nn.Linear, transformers Conv1D, Conv1d/2d/3d layers",
    "weight_only_int8": "nn.Linear or transformers Conv1D layers",
    "int4": "nn.Linear or transformers Conv1D layers",
}
# aten ops of an exported graph (.pt2) that each method quantizes, by op name.
GRAPH_OPS = {
    "dynamic_int8": ("linear",),
    "static_int8": ("linear", "conv1d", "conv2d", "conv3d"),
}


def noun(method: str) -> str:
    return "conv/matmul layers" if method == "static_int8" else "matmul layers"


def layer_kind(module: Any) -> str | None:
    """The quantizable kind of ``module`` ("Linear", "Conv1D", "LSTM", "Conv2d", ...) or None."""
    import torch
    cls = type(module)
    if cls.__name__ == "Conv1D" and cls.__module__.startswith("transformers"):
        return "Conv1D"
    if isinstance(module, torch.nn.Linear):
        return "Linear"
    for name in RNN_TYPES + CONV_TYPES:
        if type(module) is getattr(torch.nn, name):
            return name
    return None


@dataclass
class LayerPlan:
    """What one quantize step will do to a torch model, by module name."""

    method: str
    candidates: dict[str, str]                         # every layer the method could take -> its kind
    skipped: dict[str, str] = field(default_factory=dict)   # name -> why it stays in float
    targets: list[str] = field(default_factory=list)  # the layers it will quantize
    notes: list[str] = field(default_factory=list)

    @property
    def total(self) -> int:
        return len(self.candidates)

    def conv1d_targets(self) -> list[str]:
        return [n for n in self.targets if self.candidates[n] == "Conv1D"]


def plan_layers(model: Any, method: str, skip: list[str], quantize_tied: bool) -> LayerPlan:
    """The candidates of ``method`` in ``model``, minus the user's skip patterns and (unless
    ``quantize_tied``) the layers whose weight is shared with another module. Refuses a model with
    no candidate, or one where every candidate is skipped, saying what it looked for."""
    kinds = METHOD_KINDS[method]
    modules = dict(model.named_modules())
    candidates = {name: kind for name, module in modules.items()
                  if name and (kind := layer_kind(module)) in kinds}
    if not candidates:
        present = _present_types(model)
        hint = (" Convolutions need static_int8 (with calibration data)."
                if method == "dynamic_int8" and any(k.startswith("Conv") for k in present) else "")
        raise PluginError(f"quantize {method} found no layer it can quantize: it looks for {LOOKED_FOR[method]} "
                          f"and this model has none (it has {_type_list(present)}).{hint}")
    plan = LayerPlan(method, candidates)
    for name in sorted(match_patterns(modules, skip, "quantize:skip") if skip else ()):
        if name in candidates:
            plan.skipped[name] = "skip pattern"
    for name, owners in tied_weights(model, candidates).items():
        if name in plan.skipped:
            continue
        shared = ", ".join(owners)
        if quantize_tied:
            plan.notes.append(f"{name}: its weight was tied to {shared}; quantize_tied=true quantized it anyway, "
                              f"so it is untied now and {shared} keeps a float copy (the model holds both)")
        else:
            plan.skipped[name] = f"weight tied to {shared}"
            plan.notes.append(f"{name} kept in float: its weight is tied to {shared}, and quantizing it would "
                              "untie them and store a second copy (the model would grow); quantize_tied=true "
                              "quantizes it anyway")
    plan.targets = [n for n in candidates if n not in plan.skipped]
    if not plan.targets:
        why = "; ".join(f"{n} ({w})" for n, w in list(plan.skipped.items())[:5])
        raise PluginError(f"quantize {method}: every one of the {len(candidates)} {noun(method)} it could "
                          f"quantize is skipped ({why}); nothing would change")
    return plan


def tied_weights(model: Any, names: dict[str, str]) -> dict[str, list[str]]:
    """For each layer in ``names`` whose weight Parameter is also held by another module: the other
    holders (``lm_head`` -> ``["transformer.wte.weight"]`` on GPT-2)."""
    holders: dict[int, list[str]] = {}
    for pname, param in model.named_parameters(remove_duplicate=False):
        holders.setdefault(id(param), []).append(pname)
    modules = dict(model.named_modules())
    tied: dict[str, list[str]] = {}
    for name in names:
        weight = getattr(modules[name], "weight", None)
        others = [h for h in holders.get(id(weight), []) if h != f"{name}.weight"] if weight is not None else []
        if others:
            tied[name] = others
    return tied


def conv1d_to_linear(model: Any, names: list[str]) -> None:
    """Replace each transformers ``Conv1D`` in ``names`` by the equivalent ``nn.Linear`` (in place).

    ``Conv1D(nf, nx)`` computes ``x @ W + b`` with ``W`` of shape (nx, nf); ``nn.Linear(nx, nf)``
    computes ``x @ W.T + b``, so its weight is the transpose. The quantization libraries know Linear
    only: without this, GPT-2's 48 projections stayed fp32 and only lm_head was touched."""
    import torch
    from torch import nn
    for name in names:
        parent_name, _, attr = name.rpartition(".")
        parent = model.get_submodule(parent_name) if parent_name else model
        old = getattr(parent, attr)
        new = nn.Linear(old.nx, old.nf, bias=old.bias is not None, device=old.weight.device, dtype=old.weight.dtype)
        with torch.no_grad():
            new.weight.copy_(old.weight.t())
            if old.bias is not None:
                new.bias.copy_(old.bias)
        new.train(old.training)
        setattr(parent, attr, new)


def graph_layers(graph_module: Any, method: str) -> dict[str, str]:
    """Candidates of ``method`` in an exported graph (.pt2): module name -> aten op, from the
    ``nn_module_stack`` each node keeps."""
    ops = GRAPH_OPS.get(method, ())
    found: dict[str, str] = {}
    for node in graph_module.graph.nodes:
        if node.op != "call_function":
            continue
        op = str(getattr(node.target, "__name__", node.target)).split(".")[0]
        if op in ops:
            found.setdefault(module_name_of(node), op)
    return found


def module_name_of(node: Any) -> str:
    stack = node.meta.get("nn_module_stack") or {}
    return list(stack.values())[-1][0] if stack else node.name


def _present_types(model: Any) -> dict[str, int]:
    counts: dict[str, int] = {}
    for name, module in model.named_modules():
        if name and next(module.parameters(recurse=False), None) is not None:
            counts[type(module).__name__] = counts.get(type(module).__name__, 0) + 1
    return counts


def _type_list(counts: dict[str, int]) -> str:
    if not counts:
        return "no layer with weights"
    return ", ".join(f"{n} {k}" for k, n in sorted(counts.items(), key=lambda kv: -kv[1])[:6])
