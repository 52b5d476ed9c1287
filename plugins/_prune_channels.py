"""Structured channel removal for any PyTorch model with torch-pruning's dependency graph (convs,
BatchNorms, residual adds, attention q/k/v found by name), shared by ``prune`` (method=structured on
models that are not Hugging Face transformers) and ``distill`` (width-reduced students).

Hugging Face transformers go through ``_prune_transformer`` instead (whole heads, see ``_prune_heads``,
and MLP channels, config updated). Nothing here imports torch at module level.
"""
from __future__ import annotations

import re
import warnings
from typing import Any

from workbench.plugin_api import PluginError

_HEAD_DIM_ATTRS = ("head_dim", "head_size", "attention_head_size", "d_head", "dim_head")
_INNER_DIM_ATTRS = ("d_model", "embed_dim", "all_head_size", "inner_dim", "hidden_size")
_WIDTH_ATTRS = ("d_model", "embed_dim", "hidden_size", "hidden_dim", "d_ff", "dim_feedforward")
_QKV_NAMES = (("q_proj", "k_proj", "v_proj"), ("query", "key", "value"), ("q", "k", "v"),
              ("to_q", "to_k", "to_v"))


# ---------------------------------------------------------------------------------------------
# Helpers shared with distill (width-reduced students)
# ---------------------------------------------------------------------------------------------
def prunable_layers(model: Any) -> list[tuple[str, Any]]:
    """Conv and Linear modules with a floating-point weight Parameter, in definition order."""
    import torch
    from torch import nn

    out = []
    for name, module in model.named_modules():
        if isinstance(module, (nn.modules.conv._ConvNd, nn.Linear)):
            weight = getattr(module, "weight", None)
            if isinstance(weight, nn.Parameter) and torch.is_floating_point(weight):
                out.append((name, module))
    return out


def output_layers(model: Any, example_inputs: list) -> list[Any]:
    """The Conv/Linear layer(s) producing the model's output: the last one executed, plus any
    whose output tensor is returned as is. These are never pruned (the class count is kept)."""
    import torch

    order: list[Any] = []
    produced: dict[int, Any] = {}
    hooks = []

    def hook(module: Any, _inputs: Any, output: Any) -> None:
        order.append(module)
        if isinstance(output, torch.Tensor):
            produced[id(output)] = module

    for _, module in prunable_layers(model):
        hooks.append(module.register_forward_hook(hook))
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            out = model(*example_inputs)
    finally:
        for h in hooks:
            h.remove()
        model.train(was_training)
    found: list[Any] = []
    if order:
        found.append(order[-1])
    flat = list(out) if isinstance(out, (tuple, list)) else list(out.values()) if isinstance(out, dict) else [out]
    for item in flat:
        module = produced.get(id(item))
        if module is not None and all(module is not f for f in found):
            found.append(module)
    return found


def _attention_modules(model: Any):
    """Yield ``(module, num_heads, layers)`` for each attention module that keeps ``num_heads`` as
    an int: ``layers`` is its separate (q, k, v) Linears, a fused ``(qkv,)``, or ``()`` for
    ``nn.MultiheadAttention`` (which torch-pruning handles itself)."""
    from torch import nn

    for module in model.modules():
        if isinstance(module, nn.MultiheadAttention):
            yield module, module.num_heads, ()
            continue
        n = getattr(module, "num_heads", None) or getattr(module, "num_attention_heads", None)
        if not isinstance(n, int) or n < 1:
            continue
        for names in _QKV_NAMES:
            layers = [getattr(module, a, None) for a in names]
            if all(isinstance(layer, nn.Linear) for layer in layers):
                yield module, n, tuple(layers)
                break
        else:
            qkv = getattr(module, "qkv", None)
            if isinstance(qkv, nn.Linear):
                yield module, n, (qkv,)


def _attention_heads(model: Any) -> dict[Any, int]:
    """``{q/k/v Linear: num_heads}`` for attention modules that keep ``num_heads`` as an int, so
    torch-pruning removes the same number of dims in every head (the reshape still works)."""
    heads: dict[Any, int] = {}
    for module, n, layers in _attention_modules(model):
        for layer in layers or (module,):
            heads[layer] = n
    return heads


def _fix_attention_attrs(model: Any) -> set[int]:
    """After head-dim pruning, update the int attributes attention modules use in reshapes.
    Returns the ids of the attention modules handled."""
    handled: set[int] = set()
    for module, n, layers in _attention_modules(model):
        if not layers:                                  # nn.MultiheadAttention
            module.head_dim = module.embed_dim // module.num_heads
            handled.add(id(module))
        elif len(layers) == 3:
            q, _, v = layers
            for attr in _HEAD_DIM_ATTRS:
                if isinstance(getattr(module, attr, None), int):
                    setattr(module, attr, q.out_features // n)
            for attr in _INNER_DIM_ATTRS:
                if isinstance(getattr(module, attr, None), int):
                    setattr(module, attr, v.out_features)
            handled.add(id(module))
    return handled


def _fix_width_attrs(model: Any, before: dict, after: dict, skip: set[int]) -> None:
    """Keep int width attributes (``d_model``, ``hidden_size``...) of non-attention modules in
    step with the layers, where every layer of that old width got the same new width, so a
    model's own bookkeeping (e.g. a ``config()`` that rebuilds it) describes the pruned model."""
    seen: dict[int, set[int]] = {}
    for name, (_, in_b, out_b) in before.items():
        if name in after:
            _, in_a, out_a = after[name]
            seen.setdefault(in_b, set()).add(in_a)
            seen.setdefault(out_b, set()).add(out_a)
    mapping = {old: next(iter(new)) for old, new in seen.items() if len(new) == 1 and old not in new}
    if not mapping:
        return
    for module in model.modules():
        if id(module) in skip:
            continue                                   # attention modules: _fix_attention_attrs
        for attr in _WIDTH_ATTRS:
            value = getattr(module, attr, None)
            if type(value) is int and value in mapping:
                setattr(module, attr, mapping[value])


def _layer_shapes(model: Any) -> dict[str, tuple[str, int, int]]:
    from torch import nn

    shapes = {}
    for name, module in prunable_layers(model):
        if isinstance(module, nn.Linear):
            shapes[name] = ("features", module.in_features, module.out_features)
        else:
            shapes[name] = ("channels", module.in_channels, module.out_channels)
    return shapes


def _changes(before: dict, after: dict) -> list[str]:
    lines = []
    for name, (unit, in_b, out_b) in before.items():
        if name not in after:
            continue
        _, in_a, out_a = after[name]
        parts = []
        if out_a != out_b:
            parts.append(f"{out_b}→{out_a} out {unit}")
        if in_a != in_b:
            parts.append(f"{in_b}→{in_a} in {unit}")
        if parts:
            lines.append(f"{name}: {', '.join(parts)}")
    return lines


def resolve_modules(model: Any, names: str, what: str) -> list[Any]:
    """Modules named in a list separated by ';', ',' or spaces (';' survives the CLI's
    ``plugin:key=value,key=value`` syntax); unknown names are an error listing a few known."""
    wanted = [n for n in re.split(r"[;,\s]+", str(names or "")) if n]
    if not wanted:
        return []
    modules = dict(model.named_modules())
    missing = [n for n in wanted if n not in modules]
    if missing:
        known = ", ".join(name for name, _ in prunable_layers(model)[:12])
        raise PluginError(f"{what}: no module named {', '.join(missing)} (e.g. {known})")
    return [modules[n] for n in wanted]


def channel_prune(model: Any, example_inputs: list, amount: float, *, p: int = 1,
                  global_pruning: bool = False, round_to: int | None = None,
                  ignored: list | None = None, what: str = "prune") -> tuple[list[str], list[str]]:
    """Remove ``amount`` of the channels/features of every prunable group, in place.

    torch-pruning builds the dependency graph (coupled convs, BatchNorms, residual adds,
    attention q/k/v) and physically removes the lowest-L``p``-magnitude channels. The output
    layer(s) are ignored so the output shape is kept. Returns (layers changed, warnings).
    """
    import torch

    try:
        import torch_pruning as tp
    except ImportError as exc:
        raise PluginError(f"{what}: structured pruning needs torch-pruning (pip install torch-pruning)") from exc

    keep = output_layers(model, example_inputs) + list(ignored or [])
    before = _layer_shapes(model)
    heads = _attention_heads(model)
    was_training = model.training
    flags = {p_: p_.requires_grad for p_ in model.parameters()}
    model.eval()
    caught: list[str] = []
    try:
        for param in model.parameters():
            param.requires_grad_(True)           # tracing follows grad_fn
        with warnings.catch_warnings(record=True) as records, torch.enable_grad():
            warnings.simplefilter("always")
            pruner = tp.pruner.BasePruner(
                model,
                example_inputs=tuple(example_inputs),
                importance=tp.importance.GroupMagnitudeImportance(p=p),
                pruning_ratio=float(amount),
                global_pruning=global_pruning,
                max_pruning_ratio=0.95 if global_pruning else 1.0,
                ignored_layers=keep,
                round_to=round_to if round_to and round_to > 1 else None,
                num_heads=heads,
                prune_num_heads=False,
                prune_head_dims=True,
            )
            pruner.step()
        caught = sorted({str(r.message).splitlines()[0][:200] for r in records})
    except PluginError:
        raise
    except Exception as exc:
        raise PluginError(f"{what}: torch-pruning could not prune this model ({type(exc).__name__}: "
                          f"{str(exc).splitlines()[0] if str(exc) else ''}); try method=unstructured "
                          "or list the offending modules in ignore=") from exc
    finally:
        for param in model.parameters():
            param.requires_grad_(flags.get(param, True))
        model.train(was_training)
    after = _layer_shapes(model)
    _fix_width_attrs(model, before, after, skip=_fix_attention_attrs(model))
    return _changes(before, after), caught


def count_flops(model: Any, example_inputs: list) -> int | None:
    """FLOPs per forward (torch's counter; torch-pruning's MAC count ×2 as a fallback)."""
    from workbench.plugin_api import count_flops as torch_flops

    flops = torch_flops(model, example_inputs)
    if flops:
        return flops
    try:
        import torch_pruning as tp

        macs, _ = tp.utils.count_ops_and_params(model, list(example_inputs))
        return int(2 * macs)
    except Exception:
        return None


def _ratio(a: int | None, b: int | None) -> str:
    return f"{a / b:.2f}×" if a and b else "?"


def _human(n: int | None) -> str:
    if n is None:
        return "?"
    for unit, scale in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(n) >= scale:
            return f"{n / scale:.2f}{unit}"
    return str(n)

