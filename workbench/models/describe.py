"""Build a ``ModelInfo`` for a loaded model (runs in the worker: it needs torch)."""
from __future__ import annotations

from typing import Any

from ..spec import InputSpec, RunSpec
from .info import ModelInfo, count_flops, count_parameters, layer_summary, model_bytes
from .loaders import LoadedModel


def describe_model(loaded: LoadedModel, spec: RunSpec, concrete: list[InputSpec] | None = None) -> ModelInfo:
    notes = list(loaded.notes)
    flops = None
    shapes = concrete
    if shapes is None:
        specs = spec.inputs or loaded.inputs
        if specs and all(d != -1 for s in specs for d in s.shape[1:]):
            batch = spec.batch or loaded.default_batch or 1
            shapes = [InputSpec(s.concrete_shape(batch), s.dtype, s.name) for s in specs]
    if loaded.kind == "torch" and shapes:
        flops = count_flops(loaded.model, _example_tensors(shapes))
        if flops is None:
            notes.append("FLOPs: torch could not count this model")
    counts, rows = layer_summary(loaded.model)
    return ModelInfo(
        source=spec.model, format=loaded.format, parameters=count_parameters(loaded.model),
        bytes=model_bytes(loaded.model), inputs=list(spec.inputs or loaded.inputs),
        input_fixed_by_model=loaded.input_fixed_by_model, flops=flops, layer_counts=counts,
        layers=rows, notes=notes)


def _example_tensors(shapes: list[InputSpec]) -> list[Any]:
    import torch
    tensors = []
    for s in shapes:
        dtype = getattr(torch, s.dtype)
        if dtype.is_floating_point:
            tensors.append(torch.zeros(s.shape, dtype=dtype))
        else:
            tensors.append(torch.zeros(s.shape, dtype=dtype))
    return tensors
