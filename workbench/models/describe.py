"""Build a ``ModelInfo`` for a loaded model (runs in the worker: it needs torch).

Like Netron, but with numbers that come from running the model: one forward pass on zeros of the
example input's shapes gives every layer's output shape (forward hooks on the layers, or the
graph's own nodes for a ``torch.export`` program) and FLOPs (``torch.utils.flop_counter``, read
before and after each layer). ONNX graphs get the same rows from shape inference (``info.py``).
Without an example shape (a TorchScript file that declares no inputs) the rows keep their
parameters and the shapes stay unknown.
"""
from __future__ import annotations

from typing import Any

from ..spec import InputSpec, RunSpec
from .info import (LAYER_ROWS_LIMIT, LayerRow, ModelInfo, count_parameters, describe_onnx, hf_description,
                   layer_summary, layer_type, model_bytes)
from .loaders import LoadedModel

MAX_OUTPUT_SHAPES = 4          # per layer (a layer returning a long tuple shows its first ones)
SHAPES_FROM_HOOKS = "one forward pass on the example input"
SHAPES_FROM_ONNX = "ONNX shape inference on the example input"


def describe_model(loaded: LoadedModel, spec: RunSpec, concrete: list[InputSpec] | None = None) -> ModelInfo:
    """``concrete``: the run's input specs; without them (describing a model on its own) the
    model's declared inputs at ``spec.batch``, or batch 1 where the batch dimension is open."""
    notes = list(loaded.notes)
    shapes = concrete if concrete is not None else _example_specs(spec, loaded)
    batch = shapes[0].shape[0] if shapes and shapes[0].shape else None
    info = ModelInfo(
        source=spec.model, format=loaded.format, parameters=count_parameters(loaded.model),
        bytes=model_bytes(loaded.model), inputs=list(spec.inputs or loaded.inputs),
        input_fixed_by_model=loaded.input_fixed_by_model, notes=notes,
        hf=hf_description(loaded.hf) if loaded.hf is not None else None)
    if loaded.kind == "onnx":
        graph = describe_onnx(loaded.model, [s.shape for s in shapes] if shapes else None)
        info.layer_counts, info.layers, info.layers_total = graph.counts, graph.rows, graph.total_rows
        info.flops, info.flops_partial, info.flops_uncounted = graph.flops, graph.flops_partial, graph.uncounted
        info.shapes_from = SHAPES_FROM_ONNX if graph.shapes_known and shapes else None
        if graph.flops_partial and graph.flops is not None:
            notes.append(f"FLOPs: partial, not counted for {', '.join(graph.uncounted)}")
    else:
        _describe_torch(loaded.model, shapes, info)
    info.flops_batch = batch if info.flops is not None or info.shapes_from else None
    return info


def _describe_torch(model: Any, shapes: list[InputSpec] | None, info: ModelInfo) -> None:
    graph_rows = _export_graph_rows(model)
    counts, rows = layer_summary(model, limit=1 << 30) if graph_rows is None else _counted(graph_rows)
    if shapes:
        flops, traced, why = _trace(model, _example_tensors(shapes), graph_rows is not None)
        info.flops = flops
        if flops is None:
            info.notes.append("FLOPs: torch could not count this model")
        if traced:
            info.shapes_from = SHAPES_FROM_HOOKS
            for row in rows:
                row.output_shapes, row.flops = traced.get(row.name, (None, None))
        elif why:
            info.notes.append(f"layer output shapes: {why}")
    info.layer_counts, info.layers, info.layers_total = counts, rows[:LAYER_ROWS_LIMIT], len(rows)


def _example_specs(spec: RunSpec, loaded: LoadedModel) -> list[InputSpec] | None:
    specs = spec.inputs or loaded.inputs
    if not specs or any(d == -1 for s in specs for d in s.shape[1:]):
        return None
    return [InputSpec(s.concrete_shape(spec.batch), s.dtype, s.name) for s in specs]


def _example_tensors(shapes: list[InputSpec]) -> list[Any]:
    """Zeros; an attention mask of ones (a mask of zeros hides every token)."""
    import torch
    return [(torch.ones if s.name == "attention_mask" else torch.zeros)(s.shape, dtype=getattr(torch, s.dtype))
            for s in shapes]


def _tensor_shapes(value: Any) -> list[list[int]] | None:
    """Shapes of the tensors in a layer's output (a tensor, or tuples/lists/dicts of them)."""
    found: list[list[int]] = []

    def walk(item: Any) -> None:
        if len(found) >= MAX_OUTPUT_SHAPES:
            return
        if hasattr(item, "shape") and hasattr(item, "dtype"):
            found.append([int(d) for d in item.shape])
        elif isinstance(item, (tuple, list)):
            for part in item:
                walk(part)
        elif isinstance(item, dict):
            for part in item.values():
                walk(part)

    walk(value)
    return found or None


def _trace(model: Any, tensors: list, from_graph: bool) -> tuple[int | None, dict[str, tuple], str]:
    """One forward pass on ``tensors`` counting FLOPs: ``(total FLOPs or None, {layer name:
    (output shapes, FLOPs)}, why there are no per-layer shapes)``."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode
    counter = FlopCounterMode(display=False)
    traced: dict[str, tuple] = {}
    try:
        with counter, torch.no_grad():
            if from_graph:
                _GraphRecorder(model, counter, traced).run(*tensors)
                why = ""
            else:
                handles, why = _add_hooks(model, counter, traced)
                try:
                    model(*tensors)
                finally:
                    for handle in handles:
                        handle.remove()
        return int(counter.get_total_flops()), traced, why
    except Exception as exc:   # the model's own failure is the run's business; here: nothing known
        return None, {}, f"the forward pass on zeros failed ({type(exc).__name__})"


def _add_hooks(model: Any, counter: Any, traced: dict[str, tuple]) -> tuple[list, str]:
    """Hooks recording each row's output shapes and the FLOPs counted while it ran."""
    import torch
    if isinstance(model, torch.jit.ScriptModule):
        return [], "not available for TorchScript (its layers run inside compiled code, without hooks)"
    handles = []
    for name, module in model.named_modules():
        own = any(True for _ in module.parameters(recurse=False))
        leaf = not any(True for _ in module.children())
        if not leaf and not own:
            continue
        key = name or layer_type(module)
        started: list[int] = []

        def before(_module, _args, _started=started) -> None:
            _started.append(counter.get_total_flops())

        def after(_module, _args, output, _key=key, _started=started, _leaf=leaf) -> None:
            # a module with children of its own: their rows hold the FLOPs, not this one
            flops = counter.get_total_flops() - _started.pop() if _started else None
            flops = flops if _leaf else None
            if _key in traced:          # called again (a shared layer): add up its FLOPs
                shapes, earlier = traced[_key]
                traced[_key] = (shapes, None if flops is None else (earlier or 0) + flops)
            else:
                traced[_key] = (_tensor_shapes(output), flops)

        try:
            handles.append(module.register_forward_pre_hook(before))
            handles.append(module.register_forward_hook(after))
        except RuntimeError:           # a scripted submodule takes no hooks: its row stays unknown
            continue
    return handles, ""


# -- torch.export programs: layers are gone, their nodes remember which module they came from --------
def _export_graph_rows(model: Any) -> list[LayerRow] | None:
    """Rows of a ``torch.export`` program's graph module, one per original module (from each
    node's ``nn_module_stack``), in execution order; None for other models."""
    import torch
    if not isinstance(model, torch.fx.GraphModule):
        return None
    owners: dict[str, str] = {}
    for node in model.graph.nodes:
        owner = _owner(node)
        if owner is not None and node.op == "call_function":
            owners.setdefault(*owner)
    if not owners:
        return None
    params = dict(model.named_parameters())
    rows = []
    for path, kind in owners.items():
        prefix = f"{path}."
        count = sum(p.numel() for name, p in params.items() if name.startswith(prefix))
        rows.append(LayerRow(path, kind, int(count)))
    return rows


def _owner(node: Any) -> tuple[str, str] | None:
    stack = node.meta.get("nn_module_stack")
    if not stack:
        return None
    path, kind = list(stack.values())[-1]
    kind_name = kind if isinstance(kind, str) else getattr(kind, "__name__", str(kind))
    return str(path), kind_name.rsplit(".", 1)[-1]


def _counted(rows: list[LayerRow]) -> tuple[dict[str, int], list[LayerRow]]:
    counts: dict[str, int] = {}
    for row in rows:
        counts[row.type] = counts.get(row.type, 0) + 1
    return counts, rows


def _graph_recorder_class():
    import torch

    class GraphRecorder(torch.fx.Interpreter):
        """Runs the graph node by node, noting each original module's last output and FLOPs."""

        def __init__(self, module: Any, counter: Any, traced: dict[str, tuple]) -> None:
            super().__init__(module)
            self.counter, self.traced = counter, traced

        def run_node(self, node: Any) -> Any:
            before = self.counter.get_total_flops()
            result = super().run_node(node)
            owner = _owner(node) if node.op == "call_function" else None
            if owner is not None:
                _, flops = self.traced.get(owner[0], (None, 0))
                self.traced[owner[0]] = (_tensor_shapes(result), (flops or 0) + self.counter.get_total_flops() - before)
            return result

    return GraphRecorder


def _GraphRecorder(module: Any, counter: Any, traced: dict[str, tuple]) -> Any:   # noqa: N802 - a class
    return _graph_recorder_class()(module, counter, traced)
