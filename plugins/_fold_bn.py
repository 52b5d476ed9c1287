"""Conv+BatchNorm folding read from the model's graph, never from the order of its children.

Three graphs, tried in this order for a Python module:
- torch.fx (``symbolic_trace``): cheap, works on plain models; the pairs are ``call_module`` nodes.
- torch.export (non-strict): works on models fx cannot trace (Hugging Face models); each aten op
  names the parameter it reads, which names its module.
Either way the pairs are folded *in the module tree* (conv weights replaced, BatchNorm -> Identity),
so the model keeps its class and module names (an ``HFForward`` keeps its ``.model``).

A ``.pt2`` program arrives as the GraphModule that ``ExportedProgram.module()`` gives: there the
aten graph itself is rewritten (``fold_exported_graph``). ONNX graphs: ``_fold_bn_onnx``.

A pair is folded only when it is safe: the conv output feeds the BatchNorm and nothing else, each
module is called once, the BatchNorm uses running statistics over the conv's output channels.
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

# aten ops (by name: no torch import at module level)
_CONV_OPS = {"aten.conv1d.default", "aten.conv2d.default", "aten.conv3d.default", "aten.conv1d.padding",
             "aten.conv2d.padding", "aten.conv3d.padding", "aten.convolution.default", "aten.linear.default"}
_BN_OPS = {"aten.batch_norm.default", "aten._native_batch_norm_legit_no_training.default"}
_ACTIVATION_OPS = ("relu", "relu6", "silu", "gelu", "hardswish", "leaky_relu", "hardtanh")
_BN_FOR_CONV = {"Conv1d": "BatchNorm1d", "Conv2d": "BatchNorm2d", "Conv3d": "BatchNorm3d", "Linear": "BatchNorm1d"}


@dataclass
class Fold:
    """What a fold did: the pairs, the graph they were read from, the BatchNorms left and why."""

    model: Any
    graph: str                                         # where the pairs were read
    pairs: list[dict[str, str]] = field(default_factory=list)
    batchnorms_before: int = 0
    left: dict[str, str] = field(default_factory=dict)  # BatchNorm left -> why
    notes: list[str] = field(default_factory=list)


def count_batchnorms(model: Any) -> int:
    """BatchNorm modules of a module tree, or BatchNorm ops of an exported graph."""
    if is_exported_graph(model):
        return sum(1 for n in model.graph.nodes if n.op == "call_function" and str(n.target) in _BN_OPS)
    from torch.nn.modules.batchnorm import _BatchNorm
    return sum(isinstance(m, _BatchNorm) for m in model.modules())


def is_exported_graph(model: Any) -> bool:
    """A GraphModule of aten ops (what a .pt2 program's ``module()`` is), not a module tree."""
    import torch
    return isinstance(model, torch.fx.GraphModule) and any(
        n.op == "call_function" and str(n.target).startswith("aten.") for n in model.graph.nodes)


# ---------------------------------------------------------------------------------------------
# Module trees: pairs from a graph, folded in place
# ---------------------------------------------------------------------------------------------
def fold_module(model: Any, example_inputs: list) -> Fold:
    """Fold every safe Conv/Linear+BatchNorm pair of ``model`` (modified in place; pass a copy)."""
    from torch.nn.modules.batchnorm import _BatchNorm

    batchnorms = [name for name, m in model.named_modules() if isinstance(m, _BatchNorm)]
    if not batchnorms:
        return Fold(model, "none (no BatchNorm layer)")
    left: dict[str, str] = {}
    try:
        graph, candidates = "torch.fx graph", _pairs_from_fx(model, example_inputs, left)
    except Exception as fx_exc:  # fx cannot trace most real models (control flow): use torch.export
        left.clear()
        try:
            graph, candidates = "torch.export graph", _pairs_from_export(model, example_inputs, left)
        except Exception as export_exc:
            from workbench.plugin_api import PluginError
            from workbench.plugin_api.onnx_export import exporter_reason
            raise PluginError("fuse conv_bn could not read the model's graph to find Conv+BatchNorm pairs: "
                              f"torch.fx: {_short(fx_exc)}; torch.export: {exporter_reason(export_exc)}"
                              ) from export_exc
    modules = dict(model.named_modules())
    pairs = []
    for pair in candidates:
        reason = _module_pair_blocker(modules[pair["conv"]], modules[pair["bn"]])
        if reason:
            left[pair["bn"]] = reason
            continue
        _fold_modules(model, modules, pair["conv"], pair["bn"])
        pairs.append(pair)
    done = {p["bn"] for p in pairs}
    for name in batchnorms:
        if name not in done:
            left.setdefault(name, "not fed by a Conv/Linear whose output goes only to it")
    return Fold(model, graph, pairs, len(batchnorms), {k: left[k] for k in batchnorms if k in left})


def _pairs_from_fx(model: Any, example_inputs: list, left: dict[str, str]) -> list[dict[str, str]]:
    import torch
    from torch.fx.passes.shape_prop import ShapeProp
    from torch.nn.modules.batchnorm import _BatchNorm

    traced = torch.fx.symbolic_trace(model)
    try:   # shapes tell a Linear's (N, C) output, which a BatchNorm1d folds into, from (N, L, C)
        with torch.no_grad():
            ShapeProp(traced).propagate(*example_inputs)
    except Exception:
        pass
    modules = dict(model.named_modules())
    calls = Counter(n.target for n in traced.graph.nodes if n.op == "call_module")
    pairs = []
    for node in traced.graph.nodes:
        if node.op != "call_module" or not isinstance(modules.get(node.target), _BatchNorm):
            continue
        source = node.args[0] if node.args else None
        if getattr(source, "op", None) != "call_module":
            left[node.target] = "its input is not the output of a Conv/Linear module"
            continue
        if len(source.users) != 1:
            left[node.target] = f"the output of {source.target} is also used elsewhere"
            continue
        if calls[source.target] != 1 or calls[node.target] != 1:
            left[node.target] = "a module called more than once (shared weights)"
            continue
        meta = source.meta.get("tensor_meta")
        if type(modules[source.target]).__name__ == "Linear" and (meta is None or len(meta.shape) != 2):
            left[node.target] = "a BatchNorm1d after a Linear folds only on (batch, features) outputs"
            continue
        pairs.append(_pair(source.target, node.target, _activation_after(node, modules)))
    return pairs


def _pairs_from_export(model: Any, example_inputs: list, left: dict[str, str]) -> list[dict[str, str]]:
    import torch

    with torch.no_grad():
        program = torch.export.export(model, tuple(example_inputs), strict=False)
    signature = program.graph_signature
    owner = {**signature.inputs_to_parameters, **signature.inputs_to_buffers}   # placeholder -> "a.b.weight"

    def module_of(arg: Any) -> str | None:
        name = owner.get(getattr(arg, "name", None))
        return name.rsplit(".", 1)[0] if name and "." in name else None

    pairs = []
    for node in program.graph.nodes:
        if node.op != "call_function" or str(node.target) not in _BN_OPS:
            continue
        args = list(node.args)
        bn = module_of(args[3])                          # running_mean
        if bn is None:
            continue
        source = args[0]
        if getattr(source, "op", None) != "call_function" or str(source.target) not in _CONV_OPS:
            left[bn] = "its input is not the output of a Conv/Linear"
            continue
        conv = module_of(source.args[1])
        bias = source.args[2] if len(source.args) > 2 else source.kwargs.get("bias")
        if conv is None or (bias is not None and module_of(bias) != conv):
            left[bn] = "the conv before it computes its weights (not a plain parameter)"
            continue
        if len(source.users) != 1:
            left[bn] = f"the output of {conv} is also used elsewhere"
            continue
        if len(source.args[1].users) != 1 or len(args[3].users) != 1:
            left[bn] = "a module called more than once (shared weights)"
            continue
        if str(source.target) == "aten.linear.default" and _rank(source) != 2:
            left[bn] = "a BatchNorm1d after a Linear folds only on (batch, features) outputs"
            continue
        pairs.append(_pair(conv, bn, _activation_op_after(node)))
    return pairs


def _module_pair_blocker(conv: Any, bn: Any) -> str | None:
    want = _BN_FOR_CONV.get(type(conv).__name__)
    if want is None or type(bn).__name__ != want:
        return f"{type(conv).__name__} followed by {type(bn).__name__} is not a foldable pair"
    if not getattr(bn, "track_running_stats", True) or bn.running_mean is None:
        return "the BatchNorm keeps no running statistics (it normalizes with batch statistics)"
    out = getattr(conv, "out_channels", None) or getattr(conv, "out_features", None)
    if out != bn.num_features:
        return f"the BatchNorm normalizes {bn.num_features} features, the conv gives {out} channels"
    return None


def _fold_modules(model: Any, modules: dict[str, Any], conv_name: str, bn_name: str) -> None:
    from torch import nn
    from torch.nn.utils.fusion import fuse_conv_bn_eval, fuse_linear_bn_eval

    conv, bn = modules[conv_name], modules[bn_name]
    fold = fuse_linear_bn_eval if isinstance(conv, nn.Linear) else fuse_conv_bn_eval
    _replace(model, conv_name, fold(conv.eval(), bn.eval()))
    _replace(model, bn_name, nn.Identity())


def _replace(model: Any, name: str, module: Any) -> None:
    parent_name, _, leaf = name.rpartition(".")
    setattr(model.get_submodule(parent_name) if parent_name else model, leaf, module)


# ---------------------------------------------------------------------------------------------
# Exported programs (.pt2): the aten graph rewritten
# ---------------------------------------------------------------------------------------------
def fold_exported_graph(gm: Any) -> Fold:
    """Fold conv/linear -> batch_norm op pairs of an unlifted exported GraphModule (in place)."""
    import torch
    from torch.nn.utils.fusion import fuse_conv_bn_weights, fuse_linear_bn_weights

    before = count_batchnorms(gm)
    left: dict[str, str] = {}
    pairs = []
    for index, node in enumerate(list(gm.graph.nodes)):
        if node.op != "call_function" or str(node.target) not in _BN_OPS:
            continue
        label = f"{node.name}"
        found = _graph_pair(gm, node)
        if isinstance(found, str):
            left[label] = found
            continue
        conv, weights = found
        activation = _activation_op_after(node if str(node.target) == "aten.batch_norm.default" else
                                          next((u for u in node.users if u.args[1] == 0), node))
        bn_args = list(node.args)
        is_legacy = str(node.target) == "aten.batch_norm.default"
        eps = float(bn_args[7] if is_legacy else bn_args[6])
        w, b = weights["conv_w"], weights["conv_b"]
        bn_w, bn_b = weights["bn_w"], weights["bn_b"]
        if bn_w is None:
            bn_w = torch.ones_like(weights["mean"])
        if bn_b is None:
            bn_b = torch.zeros_like(weights["mean"])
        if str(conv.target) == "aten.linear.default":
            new_w, new_b = fuse_linear_bn_weights(w, b, weights["mean"], weights["var"], eps, bn_w, bn_b)
        else:
            new_w, new_b = fuse_conv_bn_weights(w, b, weights["mean"], weights["var"], eps, bn_w, bn_b)
        w_name, b_name = f"_bn_folded_{index}_weight", f"_bn_folded_{index}_bias"
        gm.register_parameter(w_name, torch.nn.Parameter(new_w.detach(), requires_grad=False))
        gm.register_parameter(b_name, torch.nn.Parameter(new_b.detach(), requires_grad=False))
        with gm.graph.inserting_before(conv):
            w_node, b_node = gm.graph.get_attr(w_name), gm.graph.get_attr(b_name)
        conv_args = list(conv.args) + [None] * max(0, 3 - len(conv.args))
        conv_args[1], conv_args[2] = w_node, b_node
        conv.args = tuple(conv_args)
        conv.kwargs = {k: v for k, v in conv.kwargs.items() if k != "bias"}
        outputs = [u for u in node.users] if not is_legacy else [node]
        for out in outputs:   # _native_batch_norm_legit_no_training returns (out, mean, rstd): item 0 is used
            if out is node or (out.target.__name__ == "getitem" and out.args[1] == 0):
                out.replace_all_uses_with(conv)
        pairs.append(_pair(weights["conv_name"], weights["bn_name"], activation))
    gm.graph.eliminate_dead_code()
    _drop_unused_attributes(gm)
    gm.recompile()
    return Fold(gm, "exported program's aten graph", pairs, before, left)


def _graph_pair(gm: Any, bn: Any) -> tuple[Any, dict[str, Any]] | str:
    """(conv node, the tensors to fold) or why this batch_norm op cannot be folded."""
    args = list(bn.args)
    is_legacy = str(bn.target) == "aten.batch_norm.default"
    if is_legacy and args[5]:
        return "it runs in training mode (batch statistics)"
    conv = args[0]
    if getattr(conv, "op", None) != "call_function" or str(conv.target) not in _CONV_OPS:
        return "its input is not the output of a convolution/linear op"
    if str(conv.target) == "aten.convolution.default" and conv.args[6]:
        return "a transposed convolution"
    if len(conv.users) != 1:
        return "the convolution's output is also used elsewhere"
    if str(conv.target) == "aten.linear.default" and _rank(conv) != 2:
        return "a batch_norm after a linear folds only on (batch, features) outputs"
    bias = conv.args[2] if len(conv.args) > 2 else conv.kwargs.get("bias")
    tensors: dict[str, Any] = {}
    for key, arg in (("conv_w", conv.args[1]), ("conv_b", bias), ("bn_w", args[1]), ("bn_b", args[2]),
                     ("mean", args[3]), ("var", args[4])):
        if arg is None and key in ("conv_b", "bn_w", "bn_b"):
            tensors[key] = None
            continue
        if getattr(arg, "op", None) != "get_attr":
            return f"its {key.replace('_', ' ')} is computed, not a stored tensor"
        tensors[key] = _fetch(gm, arg.target)
    if tensors["mean"] is None or tensors["conv_w"].shape[0] != tensors["mean"].shape[0]:
        return "its statistics do not match the convolution's output channels"
    tensors["conv_name"] = conv.args[1].target.rsplit(".", 1)[0]
    tensors["bn_name"] = args[3].target.rsplit(".", 1)[0]
    return conv, tensors


def _fetch(gm: Any, target: str) -> Any:
    owner, _, leaf = target.rpartition(".")
    return getattr(gm.get_submodule(owner) if owner else gm, leaf)


def _drop_unused_attributes(gm: Any) -> None:
    """Delete the tensors no get_attr reads any more (the old conv weights, the BatchNorm stats)."""
    used = {n.target for n in gm.graph.nodes if n.op == "get_attr"}
    for name, _ in list(gm.named_parameters()) + list(gm.named_buffers()):
        if name not in used:
            owner, _, leaf = name.rpartition(".")
            module = gm.get_submodule(owner) if owner else gm
            if hasattr(module, leaf):
                delattr(module, leaf)


# ---------------------------------------------------------------------------------------------
# shared bits
# ---------------------------------------------------------------------------------------------
def _pair(conv: str, bn: str, activation: str | None) -> dict[str, str]:
    return {"conv": conv, "bn": bn, **({"activation": activation} if activation else {})}


def _rank(node: Any) -> int | None:
    value = node.meta.get("val")
    return value.dim() if hasattr(value, "dim") else None


def _activation_after(node: Any, modules: dict[str, Any]) -> str | None:
    users = list(node.users)
    if len(users) != 1:
        return None
    user = users[0]
    if user.op == "call_module" and type(modules.get(user.target)).__name__ in (
            "ReLU", "ReLU6", "SiLU", "GELU", "Hardswish", "LeakyReLU", "Hardtanh"):
        return str(user.target)
    if user.op in ("call_function", "call_method") and getattr(user.target, "__name__", str(user.target)) in \
            _ACTIVATION_OPS:
        return user.name
    return None


def _activation_op_after(node: Any) -> str | None:
    users = list(node.users)
    if len(users) == 1 and users[0].op == "call_function":
        op = str(users[0].target)
        if any(op.startswith(f"aten.{name}.") or op.startswith(f"aten.{name}_.") for name in _ACTIVATION_OPS):
            return users[0].name
    return None


def _short(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text[:200]}" if text else type(exc).__name__
