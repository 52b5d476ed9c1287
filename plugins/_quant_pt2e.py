"""Graph-mode int8 for ``quantize``: static int8 (torch.ao FX first, torchao PT2E when FX cannot
trace the model) and every int8 method on an exported program (.pt2), which is already a graph.

PT2E needs a ``torch.export`` graph. torch.export specializes a dimension whose example size is 1
to the constant 1, so a model run at batch 1 used to come out of the export able to take batch 1
only, and calibration (batches of up to 64) then failed with "Guard failed: x.size()[0] == 1".
The export here traces at batch 2 with the batch dimension marked dynamic; where the model allows
no dynamic batch, it exports at the run's batch and calibration is re-cut to exactly that batch.
"""
from __future__ import annotations

import contextlib
import copy
from typing import Any, Callable

from workbench.plugin_api import PluginError

from . import _quant_backend as backend
from ._quant_layers import LayerPlan, conv1d_to_linear, graph_layers, module_name_of

QDQ_NOTE = ("its output is a quantize/dequantize graph, slower than fp32 in eager; add `fuse method=torch_compile` "
            "(freezing on, the default) after this step: Inductor then lowers it to oneDNN int8 kernels")


def is_exported_graph(model: Any) -> bool:
    """A torch.export program's module (a loaded .pt2, or a PT2E result): a flat graph whose layers
    are aten ops, not nn.Modules, and that refuses ``.eval()``."""
    import torch
    return isinstance(model, torch.fx.GraphModule) and any(
        n.op == "call_function" and isinstance(n.target, torch._ops.OpOverload) for n in model.graph.nodes)


def eval_mode(model: Any) -> Any:
    try:
        return model.eval()
    except NotImplementedError:   # torch.export graphs refuse eval(): they are inference graphs already
        return model


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text.splitlines()[0] if text else ''}"


# ---------------------------------------------------------------------------------------------
# static int8 on an nn.Module: FX, else PT2E
# ---------------------------------------------------------------------------------------------
def static_int8(model: Any, example_inputs: list, batches: list[list], plan: LayerPlan,
                on_batch: Callable[[int], None] = lambda n: None) -> backend.QuantResult:
    backend.require_float32(model, "static_int8")
    engine, engine_note = backend.use_engine()
    model = eval_mode(copy.deepcopy(model))
    conv1d_to_linear(model, plan.conv1d_targets())
    try:
        from torch.ao.quantization import get_default_qconfig_mapping
        from torch.ao.quantization.quantize_fx import convert_fx, prepare_fx
        mapping = get_default_qconfig_mapping(engine)
        for name in plan.skipped:
            mapping.set_module_name(name, None)
        with backend.quiet():
            prepared = prepare_fx(model, mapping, tuple(example_inputs))
    except Exception as exc:  # not symbolically traceable (most Hugging Face models): PT2E below
        fx_error = _first_line(exc)
    else:
        _calibrate(prepared, batches, on_batch)
        with backend.quiet():
            quantized = convert_fx(prepared)
        return backend.QuantResult(
            quantized, backend.quantized_layer_names(quantized),
            f"torch.ao FX prepare_fx/convert_fx, x86 QConfigMapping (engine {engine})", [engine_note],
            {"flow": "FX"})
    try:
        with backend.quiet():
            exported, export_note = export_for_quantization(model, example_inputs)
    except Exception as exc:
        raise PluginError(f"quantize static_int8: FX could not trace the model ({fx_error}) and torch.export "
                          f"failed too ({_first_line(exc)}); use method=dynamic_int8 or weight_only_int8") from exc
    result = pt2e(exported, "static", batches, list(plan.skipped), on_batch)
    result.notes.append(f"FX could not trace the model ({fx_error}): used PT2E; {QDQ_NOTE}")
    if export_note:
        result.notes.append(export_note)
    return result


def export_for_quantization(model: Any, example_inputs: list) -> tuple[Any, str | None]:
    """``torch.export`` with a dynamic batch dimension (traced at batch >= 2, see the module doc);
    when the model does not allow one, at the run's batch (returned note says so)."""
    import torch
    batch = example_inputs[0].shape[0] if example_inputs and example_inputs[0].dim() > 0 else None
    batched = [t for t in example_inputs if t.dim() > 0 and t.shape[0] == batch]
    if batch is not None and len(batched) == len(example_inputs):
        args = tuple(torch.cat([t, t]) if batch == 1 else t for t in example_inputs)
        dim = torch.export.Dim("batch", min=1)
        for dims in (dim, torch.export.Dim.AUTO):
            with contextlib.suppress(Exception):
                return torch.export.export(model, args, dynamic_shapes=tuple({0: dims} for _ in args)).module(), None
    exported = torch.export.export(model, tuple(example_inputs)).module()
    return exported, (f"the model does not export with a dynamic batch: exported at batch {batch}, calibrated "
                      f"at that batch; it runs at batch {batch} only")


def fixed_batch(graph_module: Any) -> int | None:
    """The batch an exported graph is fixed to (its first input's static first dimension), or None."""
    for node in graph_module.graph.nodes:
        if node.op == "placeholder":
            value = node.meta.get("val")
            shape = getattr(value, "shape", None)
            if shape is None or len(shape) == 0:
                return None
            return int(shape[0]) if isinstance(shape[0], int) else None
    return None


def rebatch(batches: list[list], size: int) -> list[list]:
    """The calibration samples cut into batches of exactly ``size`` (a graph fixed to that batch
    takes no other); too few samples are repeated to fill one batch."""
    import torch
    columns = [torch.cat([b[i] for b in batches]) for i in range(len(batches[0]))]
    total = columns[0].shape[0]
    if total < size:
        reps = -(-size // total)
        columns = [c.repeat(reps, *([1] * (c.dim() - 1)))[:size] for c in columns]
        total = size
    usable = total - total % size
    return [[c[i:i + size] for c in columns] for i in range(0, usable, size)]


# ---------------------------------------------------------------------------------------------
# PT2E on an exported graph (the fallback above, or a loaded .pt2)
# ---------------------------------------------------------------------------------------------
def pt2e(graph_module: Any, mode: str, batches: list[list], skipped: list[str],
         on_batch: Callable[[int], None] = lambda n: None, targets: list[str] | None = None) -> backend.QuantResult:
    """``mode`` "static": activations calibrated on ``batches``; "dynamic": quantized per call
    (``batches`` only trace the observers once). ``targets``: only these module names (else all
    but ``skipped``)."""
    from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e
    from torchao.quantization.pt2e.quantizer import x86_inductor_quantizer as xiq
    engine, engine_note = backend.use_engine()
    notes = [engine_note]
    config = xiq.get_default_x86_inductor_quantization_config(is_dynamic=mode == "dynamic")
    quantizer = xiq.X86InductorQuantizer()
    if targets is None:
        quantizer.set_global(config)
        for name in skipped:
            quantizer.set_module_name_qconfig(name, None)
    else:
        for name in targets:
            quantizer.set_module_name_qconfig(name, config)
    # Unused branches (BERT's pooler when the wrapper returns the hidden states) leave a linear with
    # no output, which X86InductorQuantizer's pattern matcher cannot handle (IndexError).
    graph_module.graph.eliminate_dead_code()
    graph_module.recompile()
    fixed = fixed_batch(graph_module)
    if fixed is not None and any(b[0].shape[0] != fixed for b in batches):
        batches = rebatch(batches, fixed)
        notes.append(f"the graph takes batch {fixed} only: calibrated in batches of {fixed}")
    try:
        with backend.quiet():
            prepared = prepare_pt2e(graph_module, quantizer)
        _calibrate(prepared, batches, on_batch)
        with backend.quiet():
            quantized = convert_pt2e(prepared)
    except PluginError:
        raise
    except Exception as exc:
        raise PluginError(f"quantize: PT2E {mode} int8 failed ({_first_line(exc)}); "
                          "use method=dynamic_int8 or weight_only_int8 on the nn.Module") from exc
    # Like any torch.export graph, the result refuses .eval()/.train() (NotImplementedError), which
    # the torch runtime and the fuse plugin handle.
    _drop_unused_attributes(quantized)
    kind = "X86InductorQuantizer" + (" (dynamic)" if mode == "dynamic" else "")
    return backend.QuantResult(quantized, pt2e_quantized_layers(quantized),
                               f"torchao PT2E prepare_pt2e/convert_pt2e, {kind}", notes, {"flow": "PT2E"})


def graph_int8(graph_module: Any, method: str, example_inputs: list, batches: list[list], skip_names: set[str],
               on_batch: Callable[[int], None] = lambda n: None) -> backend.QuantResult:
    """dynamic_int8 / static_int8 on a loaded .pt2 program: PT2E directly on its graph."""
    graph_module = copy.deepcopy(graph_module)
    candidates = graph_layers(graph_module, method)
    targets = [n for n in candidates if n not in skip_names]
    if method == "dynamic_int8":
        result = pt2e(graph_module, "dynamic", [list(example_inputs)], [], on_batch, targets=targets)
    else:
        result = pt2e(graph_module, "static", batches, sorted(skip_names), on_batch)
    result.notes.append(f"a .pt2 program is a graph: quantized with PT2E; {QDQ_NOTE}")
    result.extra["layers_total"] = len(candidates)
    return result


def _calibrate(prepared: Any, batches: list, on_batch: Callable[[int], None]) -> None:
    import torch
    with torch.no_grad():
        for index, batch in enumerate(batches):
            on_batch(index)
            prepared(*batch)


def pt2e_quantized_layers(graph_module: Any) -> list[str]:
    """Original module names of the ops whose weight input is dequantized from int8 (PT2E graph)."""
    names: list[str] = []
    for node in graph_module.graph.nodes:
        if node.op != "call_function" or "dequantize_per_channel" not in str(node.target):
            continue
        for user in node.users:
            name = module_name_of(user)
            if name not in names:
                names.append(name)
    return names


def _drop_unused_attributes(graph_module: Any) -> None:
    """convert_pt2e keeps the original fp32 weights registered next to the int8 copies: drop them."""
    used = {str(node.target) for node in graph_module.graph.nodes if node.op == "get_attr"}
    for name in [n for n, _ in graph_module.named_parameters()] + [n for n, _ in graph_module.named_buffers()]:
        if name in used:
            continue
        owner_name, _, attr = name.rpartition(".")
        owner = graph_module.get_submodule(owner_name) if owner_name else graph_module
        with contextlib.suppress(AttributeError):
            delattr(owner, attr)
