"""``ModelInfo``: what a loaded model is (parameters, bytes, FLOPs, inputs, layers with their
output shapes), and the counting behind it. ONNX graphs are read here too: per-node output shapes
by ``onnx.shape_inference`` on the example input's shapes, parameters from the initializers, FLOPs
of the ops whose cost is known. (Torch models are traced in ``describe.py``.)

FLOPs follow ``torch.utils.flop_counter``'s convention so both formats agree: 2 per
multiply-accumulate of matrix products and convolutions; element-wise, normalization, pooling
and data-movement ops count 0.
"""
from __future__ import annotations

import io
import math
from dataclasses import asdict, dataclass, field
from typing import Any

from ..spec import InputSpec

LAYER_ROWS_LIMIT = 500          # rows kept in a ModelInfo (a huge graph is summarized by its counts)


@dataclass
class LayerRow:
    name: str
    type: str
    params: int
    output_shapes: list[list[int | str]] | None = None   # one shape per tensor output; None: unknown
    flops: int | None = None                             # this layer's FLOPs at ModelInfo.flops_batch


@dataclass
class ModelInfo:
    source: str                     # path or demo:NAME
    format: str                     # torchscript | pt2 | onnx | state_dict | pickle | demo
    parameters: int
    bytes: int                      # serialized size of the weights (honest for quantized/packed models)
    inputs: list[InputSpec]
    input_fixed_by_model: bool      # False: the user may edit the input spec
    flops: int | None = None        # per forward at ``flops_batch`` (the example input's first dim)
    layer_counts: dict[str, int] = field(default_factory=dict)
    layers: list[LayerRow] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    # added in issue 12 (older stored infos lack them: readers use .get)
    flops_batch: int | None = None  # the batch the FLOPs and the layers' output shapes assume
    flops_partial: bool = False     # some ops' FLOPs are unknown (not counted): ``flops`` is a floor
    flops_uncounted: list[str] = field(default_factory=list)   # the op types behind flops_partial
    layers_total: int = 0           # rows before the LAYER_ROWS_LIMIT cap
    shapes_from: str | None = None  # how the output shapes were found (None: not found)
    # added in issue 14: a Hugging Face model's task, architecture, sizes (``hf_description``); None otherwise
    hf: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def hf_description(hf: Any) -> dict[str, Any]:
    """What a ``models.hf.HFModelInfo`` says, as plain data: task, architecture, whether the weights
    are random, vocabulary, layers, heads (and key/value heads), hidden size, positions, tokenizer."""
    config = hf.config
    positions = next((getattr(config, n) for n in ("max_position_embeddings", "n_positions")
                      if isinstance(getattr(config, n, None), int)), None)
    return {"task": hf.task, "architecture": hf.architecture, "model_type": getattr(config, "model_type", None),
            "random_weights": bool(hf.random_weights), "vocab_size": getattr(config, "vocab_size", None),
            "layers": getattr(config, "num_hidden_layers", None), "heads": getattr(config, "num_attention_heads", None),
            "kv_heads": getattr(config, "num_key_value_heads", None), "hidden": getattr(config, "hidden_size", None),
            "max_positions": positions, "tokenizer": hf.tokenizer is not None, "folder": hf.folder,
            "pooling": getattr(hf, "pooling", None) if hf.task == "feature-extraction" else None,
            "weights": getattr(hf, "weights", None) or None,
            "summary": hf.summary() + (" (random weights: speed figures only)" if hf.random_weights else "")}


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
    """FLOPs of one forward pass at the example inputs' shapes, counted by torch (or, for an ONNX
    graph, from its inferred shapes); None when they cannot be counted in full."""
    if _is_onnx(model):
        graph = describe_onnx(model, [list(x.shape) for x in example_inputs])
        return None if graph.flops_partial else graph.flops
    import torch
    from torch.utils.flop_counter import FlopCounterMode
    try:
        counter = FlopCounterMode(display=False)
        with counter, torch.no_grad():
            model(*example_inputs)
        return int(counter.get_total_flops())
    except Exception:
        return None


def layer_summary(model: Any, limit: int = LAYER_ROWS_LIMIT) -> tuple[dict[str, int], list[LayerRow]]:
    """Counts per layer type, and the layers in order (capped for huge models): a torch model's
    leaf modules and the modules that hold parameters of their own; an ONNX graph's nodes."""
    counts: dict[str, int] = {}
    rows: list[LayerRow] = []
    if _is_onnx(model):
        graph = describe_onnx(model, None, limit)
        return graph.counts, graph.rows
    for name, module in model.named_modules():
        own = sum(p.numel() for p in module.parameters(recurse=False))
        leaf = not any(True for _ in module.children())
        if not leaf and not own:
            continue
        kind = layer_type(module)
        if leaf:            # the counts are of layers; a container's own weights only get a row
            counts[kind] = counts.get(kind, 0) + 1
        if len(rows) < limit:
            rows.append(LayerRow(name or kind, kind, own))
    return counts, rows


def layer_type(module: Any) -> str:
    """A module's class name; a TorchScript module's original one (not RecursiveScriptModule)."""
    return getattr(module, "original_name", None) or type(module).__name__


# -- ONNX graphs -------------------------------------------------------------------------------------
# ops whose FLOPs are 0 in torch's convention (element-wise, normalization, pooling, data movement,
# quantization); an op in neither this set nor _FLOP_OPS makes the count partial
_ZERO_FLOP_OPS = frozenset("""
    Abs Acos Acosh Add And ArgMax ArgMin Asin Asinh Atan Atanh AveragePool BatchNormalization BitShift
    BitwiseAnd BitwiseNot BitwiseOr BitwiseXor Cast CastLike Ceil Celu Clip Compress Concat Constant
    ConstantOfShape Cos Cosh CumSum DepthToSpace DequantizeLinear Div Dropout DynamicQuantizeLinear Elu
    Equal Erf Exp Expand EyeLike Flatten Floor Gather GatherElements GatherND Gelu GlobalAveragePool
    GlobalLpPool GlobalMaxPool Greater GreaterOrEqual GroupNormalization HardSigmoid HardSwish Hardmax
    Identity InstanceNormalization IsInf IsNaN LRN LayerNormalization LeakyRelu Less LessOrEqual Log
    LogSoftmax LpNormalization LpPool Max MaxPool MaxRoiPool MaxUnpool Mean MeanVarianceNormalization Min
    Mish Mod Mul Neg NonZero Not OneHot Or PRelu Pad Pow QuantizeLinear Range Reciprocal ReduceL1 ReduceL2
    ReduceLogSum ReduceLogSumExp ReduceMax ReduceMean ReduceMin ReduceProd ReduceSum ReduceSumSquare
    Relu Reshape Resize Round ScatterElements ScatterND Selu Shape Shrink Sigmoid Sign Sin Sinh Size
    Slice Softmax Softplus Softsign SpaceToDepth Split Sqrt Squeeze Sub Sum Tan Tanh ThresholdedRelu
    Tile TopK Transpose Trilu Unsqueeze Upsample Where Xor
""".split())
_FLOP_OPS = frozenset("MatMul MatMulInteger QLinearMatMul Gemm Conv ConvInteger QLinearConv ConvTranspose".split())
# where the weight input sits, per op (the data input is 0)
_WEIGHT_INPUT = {"QLinearMatMul": 3, "QLinearConv": 3}


@dataclass
class OnnxGraph:
    counts: dict[str, int]
    rows: list[LayerRow]
    flops: int | None
    flops_partial: bool
    uncounted: list[str]
    shapes_known: bool
    total_rows: int


def describe_onnx(model: Any, input_shapes: list[list[int]] | None, limit: int = LAYER_ROWS_LIMIT) -> OnnxGraph:
    """Per node (Constant nodes aside, as Netron shows them): op type, output shapes inferred for
    ``input_shapes`` (the graph inputs in order; None: the graph's own, often symbolic), the
    parameters it is the first to read from the initializers, and its FLOPs where known."""
    graph = model.graph
    sizes = {t.name: math.prod(t.dims) for t in graph.initializer}
    shapes = _inferred_shapes(model, input_shapes)
    counts: dict[str, int] = {}
    rows: list[LayerRow] = []
    seen: set[str] = set()
    total, uncounted, flops_known, counted_any = 0, [], True, False
    for node in graph.node:
        op = node.op_type
        counts[op] = counts.get(op, 0) + 1
        flops, known = _node_flops(node, shapes)
        if known:
            total += flops or 0
            counted_any = counted_any or op in _FLOP_OPS
        else:
            flops_known = False
            if op not in uncounted:
                uncounted.append(op)
        if op == "Constant":
            continue
        params = 0
        for name in node.input:
            if name in sizes and name not in seen:
                seen.add(name)
                params += sizes[name]
        outputs = [shapes.get(name) for name in node.output if name]
        row = LayerRow(node.name or op, op if not node.domain else f"{node.domain}.{op}", int(params),
                       outputs if outputs and all(s is not None for s in outputs) else None,
                       flops if known and op in _FLOP_OPS else None)
        rows.append(row)
    shapes_known = any(row.output_shapes for row in rows)
    return OnnxGraph(counts, rows[:limit], int(total) if counted_any or not uncounted else None,
                     not flops_known, uncounted, shapes_known, len(rows))


def _inferred_shapes(model: Any, input_shapes: list[list[int]] | None) -> dict[str, list[int | str]]:
    """Tensor name -> shape (ints, or the name of a symbolic dim, or '?') after shape inference
    on a light copy of the graph: the weights' data stay out (only their shapes matter, except
    small tensors such as Reshape's target shape, which inference reads)."""
    from onnx import helper, shape_inference
    graph = model.graph
    light = helper.make_graph([], graph.name or "graph", [], [])
    light.node.extend(graph.node)
    light.output.extend(graph.output)
    light.value_info.extend(graph.value_info)
    initializers = {t.name for t in graph.initializer}
    feeds = [value for value in graph.input if value.name not in initializers]
    light.input.extend(graph.input)
    for tensor in graph.initializer:
        if math.prod(tensor.dims) <= 64 and not tensor.external_data:
            light.initializer.append(tensor)
        elif tensor.name not in {v.name for v in graph.input}:
            light.input.append(helper.make_tensor_value_info(tensor.name, tensor.data_type, list(tensor.dims)))
    for value, shape in zip(feeds, input_shapes or ()):
        target = next(v for v in light.input if v.name == value.name)
        dims = target.type.tensor_type.shape.dim
        if len(dims) == len(shape):
            for dim, size in zip(dims, shape):
                if size and size > 0:
                    dim.Clear()
                    dim.dim_value = int(size)
    light_model = helper.make_model(light, opset_imports=list(model.opset_import))
    light_model.ir_version = model.ir_version
    light_model.functions.extend(model.functions)
    try:
        inferred = shape_inference.infer_shapes(light_model, data_prop=True)
    except Exception:   # a custom op or a graph inference rejects: what the file itself says
        inferred = light_model
    shapes: dict[str, list[int | str]] = {t.name: [int(d) for d in t.dims] for t in graph.initializer}
    for value in list(inferred.graph.input) + list(inferred.graph.value_info) + list(inferred.graph.output):
        tensor = value.type.tensor_type
        if not tensor.HasField("shape"):
            continue
        shapes[value.name] = [int(d.dim_value) if d.HasField("dim_value") else (d.dim_param or "?")
                              for d in tensor.shape.dim]
    return shapes


def _node_flops(node: Any, shapes: dict[str, list[int | str]]) -> tuple[int | None, bool]:
    """``(FLOPs, known)`` of one node at the inferred shapes."""
    op = node.op_type
    if node.domain not in ("", "ai.onnx") or (op not in _FLOP_OPS and op not in _ZERO_FLOP_OPS):
        return None, False
    if op not in _FLOP_OPS:
        return 0, True
    weight = node.input[_WEIGHT_INPUT.get(op, 1)] if len(node.input) > _WEIGHT_INPUT.get(op, 1) else None
    data, out = shapes.get(node.input[0]), shapes.get(node.output[0])
    w = shapes.get(weight) if weight else None
    if not all(_concrete(s) for s in (data, out, w)):
        return None, False
    if op in ("MatMul", "MatMulInteger", "QLinearMatMul"):
        return 2 * math.prod(out) * data[-1], True
    if op == "Gemm":
        trans_a = next((a.i for a in node.attribute if a.name == "transA"), 0)
        return 2 * math.prod(out) * (data[0] if trans_a else data[-1]), True
    if op == "ConvTranspose":           # every input pixel meets (Cout / group) x kernel weights
        return 2 * math.prod(data) * math.prod(w[1:]), True
    return 2 * math.prod(out) * math.prod(w[1:]), True        # Conv: (Cin / group) x kernel per output


def _concrete(shape: list | None) -> bool:
    return shape is not None and all(isinstance(d, int) and d > 0 for d in shape)


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
