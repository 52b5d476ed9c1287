"""``ModelInfo``: what a loaded model is (parameters, bytes, FLOPs, inputs, layers)."""
from __future__ import annotations

import io
from dataclasses import asdict, dataclass, field
from typing import Any

from ..spec import InputSpec


@dataclass
class LayerRow:
    name: str
    type: str
    params: int


@dataclass
class ModelInfo:
    source: str                     # path or demo:NAME
    format: str                     # torchscript | pt2 | onnx | state_dict | pickle | demo
    parameters: int
    bytes: int                      # serialized size of the weights (honest for quantized/packed models)
    inputs: list[InputSpec]
    input_fixed_by_model: bool      # False: the user may edit the input spec
    flops: int | None = None        # per forward at the given inputs (torch.utils.flop_counter)
    layer_counts: dict[str, int] = field(default_factory=dict)
    layers: list[LayerRow] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def count_parameters(model: Any) -> int:
    """Parameters of a torch module (packed quantized weights included) or an ONNX graph."""
    if _is_onnx(model):
        from onnx import numpy_helper
        total = sum(int(numpy_helper.to_array(t).size) for t in model.graph.initializer)
        return total + _onnx_constant_elements(model)
    total = sum(p.numel() for p in model.parameters())
    # Quantized modules keep weights as quantized tensors or packed params, not nn.Parameters:
    # count those from the state_dict.
    for key, value in model.state_dict().items():
        if "_packed_params" in key:
            for item in value if isinstance(value, tuple) else (value,):
                if hasattr(item, "numel"):
                    total += item.numel()
        elif getattr(value, "is_quantized", False):
            total += value.numel()
    return int(total)


def model_bytes(model: Any) -> int:
    """Bytes of the serialized weights: the state_dict saved by torch, or the ONNX protobuf."""
    if _is_onnx(model):
        return int(model.ByteSize())
    import torch
    buffer = io.BytesIO()
    try:
        torch.save(model.state_dict(), buffer)
    except Exception:  # e.g. a scripted module with unusual state: save the whole program
        torch.jit.save(model, buffer)
    return buffer.tell()


def count_flops(model: Any, example_inputs: list) -> int | None:
    """FLOPs of one forward pass, counted by torch (None when torch cannot count this model)."""
    if _is_onnx(model):
        return None
    import torch
    from torch.utils.flop_counter import FlopCounterMode
    try:
        counter = FlopCounterMode(display=False)
        with counter, torch.no_grad():
            model(*example_inputs)
        return int(counter.get_total_flops())
    except Exception:
        return None


def layer_summary(model: Any, limit: int = 200) -> tuple[dict[str, int], list[LayerRow]]:
    """Counts per layer type, and the leaf layers in order (capped for huge models)."""
    counts: dict[str, int] = {}
    rows: list[LayerRow] = []
    if _is_onnx(model):
        for node in model.graph.node:
            counts[node.op_type] = counts.get(node.op_type, 0) + 1
            if len(rows) < limit:
                rows.append(LayerRow(node.name or node.op_type, node.op_type, 0))
        return counts, rows
    for name, module in model.named_modules():
        if any(True for _ in module.children()):
            continue
        kind = type(module).__name__
        counts[kind] = counts.get(kind, 0) + 1
        if len(rows) < limit:
            rows.append(LayerRow(name or kind, kind, sum(p.numel() for p in module.parameters(recurse=False))))
    return counts, rows


def _is_onnx(model: Any) -> bool:
    return type(model).__name__ == "ModelProto"


def _onnx_constant_elements(model: Any) -> int:
    """Float weights stored in Constant nodes count as parameters too (integer shapes do not)."""
    from onnx import numpy_helper
    total = 0
    for node in model.graph.node:
        if node.op_type == "Constant":
            for attr in node.attribute:
                if attr.name == "value" and attr.t is not None:
                    array = numpy_helper.to_array(attr.t)
                    if array.dtype.kind == "f":
                        total += int(array.size)
    return total
