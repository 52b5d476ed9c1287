"""Fold ONNX ``BatchNormalization`` nodes into the ``Conv`` before them: new weight and bias
initializers, one node less. (Workbench's own dynamo export already does this; ONNX files made by
other tools, or by the TorchScript exporter, often do not.)"""
from __future__ import annotations

from collections import Counter
from typing import Any

_FLOAT_TYPES = (1, 10, 11, 16)   # FLOAT, FLOAT16, DOUBLE, BFLOAT16 (TensorProto codes)


def count_batchnorm_nodes(proto: Any) -> int:
    return sum(1 for n in proto.graph.node if n.op_type == "BatchNormalization" and n.domain in ("", "ai.onnx"))


def fold_onnx(proto: Any) -> tuple[Any, list[dict[str, str]], dict[str, str]]:
    """(a folded copy of ``proto``, the pairs folded, the BatchNorm nodes left -> why)."""
    import numpy as np
    import onnx
    from onnx import numpy_helper

    model = onnx.ModelProto()
    model.CopyFrom(proto)
    graph = model.graph
    inits = {t.name: t for t in graph.initializer}
    uses = Counter(name for node in graph.node for name in node.input if name)
    uses.update(o.name for o in graph.output)
    producer = {out: node for node in graph.node for out in node.output if out}
    pairs: list[dict[str, str]] = []
    left: dict[str, str] = {}
    drop: list[Any] = []
    replaced: set[str] = set()     # initializers the folded nodes no longer read
    for bn in list(graph.node):
        if bn.op_type != "BatchNormalization" or bn.domain not in ("", "ai.onnx"):
            continue
        label = bn.name or bn.output[0]
        conv = producer.get(bn.input[0])
        reason = _blocker(bn, conv, inits, uses, graph)
        if reason:
            left[label] = reason
            continue
        attrs = {a.name: onnx.helper.get_attribute_value(a) for a in bn.attribute}
        eps = float(attrs.get("epsilon", 1e-5))
        scale, beta, mean, var = (numpy_helper.to_array(inits[n]).astype(np.float64) for n in bn.input[1:5])
        weight_init = inits[conv.input[1]]
        weight = numpy_helper.to_array(weight_init)
        bias = (numpy_helper.to_array(inits[conv.input[2]]).astype(np.float64)
                if len(conv.input) > 2 and conv.input[2] else np.zeros(weight.shape[0]))
        factor = scale / np.sqrt(var + eps)
        new_weight = (weight.astype(np.float64) * factor.reshape(-1, *([1] * (weight.ndim - 1)))).astype(weight.dtype)
        new_bias = ((bias - mean) * factor + beta).astype(weight.dtype)
        stem = conv.name or conv.output[0]
        w_name, b_name = _unique(f"{stem}.bn_folded_weight", inits), _unique(f"{stem}.bn_folded_bias", inits)
        for name, array in ((w_name, new_weight), (b_name, new_bias)):
            tensor = numpy_helper.from_array(array, name)
            graph.initializer.append(tensor)
            inits[name] = tensor
        old_inputs = list(conv.input[1:])
        del conv.input[1:]
        conv.input.extend([w_name, b_name])
        for name in old_inputs + list(bn.input[1:5]):
            uses[name] -= 1
            replaced.add(name)
        conv.output[0] = bn.output[0]
        drop.append(bn)
        pairs.append({"conv": conv.name or stem, "bn": label})
    for bn in drop:
        graph.node.remove(bn)
    unused = [t for t in graph.initializer if t.name in replaced and uses[t.name] <= 0]
    for tensor in unused:
        graph.initializer.remove(tensor)
    gone = {t.name for t in unused}
    for stale in [i for i in graph.input if i.name in gone]:   # old IRs list initializers as inputs
        graph.input.remove(stale)
    _drop_stale_value_info(graph)
    return model, pairs, left


def _blocker(bn: Any, conv: Any, inits: dict[str, Any], uses: Counter, graph: Any) -> str | None:
    if len([o for o in bn.output if o]) > 1:
        return "it runs in training mode (outputs running statistics)"
    if conv is None or conv.op_type != "Conv" or conv.domain not in ("", "ai.onnx"):
        return "its input is not the output of a Conv node"
    if uses[bn.input[0]] != 1:
        return f"the output of {conv.name or 'the Conv'} is also used elsewhere"
    params = list(conv.input[1:]) + list(bn.input[1:5])
    missing = [n for n in params if n and n not in inits]
    if missing:
        return f"{missing[0]} is computed in the graph, not a stored initializer"
    if any(inits[n].data_location == 1 for n in params if n):   # EXTERNAL
        return "its weights are stored outside the .onnx file"
    if inits[conv.input[1]].data_type not in _FLOAT_TYPES:
        return "the Conv weights are not floating point (quantized?)"
    if inits[conv.input[1]].dims[0] != inits[bn.input[3]].dims[0]:
        return "its statistics do not match the Conv's output channels"
    return None


def _unique(name: str, taken: dict[str, Any]) -> str:
    candidate, n = name, 1
    while candidate in taken:
        n += 1
        candidate = f"{name}_{n}"
    return candidate


def _drop_stale_value_info(graph: Any) -> None:
    """value_info for tensors no node produces any more (the old conv outputs)."""
    produced = {o for node in graph.node for o in node.output} | {i.name for i in graph.input}
    stale = [v for v in graph.value_info if v.name not in produced]
    for info in stale:
        graph.value_info.remove(info)
