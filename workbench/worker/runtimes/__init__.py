"""Execution backends behind one interface (``Runtime``)."""
from __future__ import annotations

from ...errors import SpecError
from .base import Runtime


def create_runtime(name: str, device: str, dtype: str, threads: int | None) -> Runtime:
    if name == "torch":
        from .torch_eager import TorchRuntime
        return TorchRuntime(device, dtype, threads)
    if name == "onnxruntime":
        from .onnxrt import OnnxRuntime
        return OnnxRuntime(device, dtype, threads)
    raise SpecError(f"unknown runtime {name!r}; choose torch or onnxruntime")
