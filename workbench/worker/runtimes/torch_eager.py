"""PyTorch eager execution (CPU or CUDA) — also runs torch.compile'd and quantized modules."""
from __future__ import annotations

from typing import Any

import numpy as np

from ...errors import DeviceError
from ...spec import device_kind
from .base import Runtime, model_call_error, output_array

_TORCH_DTYPES = {"float32": "float32", "float16": "float16", "bfloat16": "bfloat16"}


def check_torch_device(device: str) -> None:
    import torch
    if device_kind(device) == "cuda":
        if not torch.cuda.is_available():
            build = "this torch build has no CUDA support" if torch.version.cuda is None else \
                "no CUDA GPU is visible (driver missing or CUDA_VISIBLE_DEVICES empty)"
            raise DeviceError(f"--device {device} requested but {build}; use --device cpu")
        index = int(device.split(":")[1]) if ":" in device else 0
        if index >= torch.cuda.device_count():
            raise DeviceError(f"--device {device}: only {torch.cuda.device_count()} CUDA device(s) visible")


class TorchRuntime(Runtime):
    name = "torch"

    def __init__(self, device: str, dtype: str, threads: int | None) -> None:
        super().__init__(device, dtype, threads)
        import torch
        check_torch_device(device)
        self.torch = torch
        self.timer_kind = "cuda" if device_kind(device) == "cuda" else "cpu"
        if threads:
            torch.set_num_threads(threads)
        self.threads = torch.get_num_threads()
        self.model: Any = None
        self.inputs: list = []
        self.input_dtype = None

    def prepare(self, model: Any, inputs: list[np.ndarray]) -> None:
        torch = self.torch
        model = _eval_mode(model)
        if not _is_quantized_cpu_module(model):
            model = model.to(self.device)
            if self.dtype != "float32":
                model = model.to(getattr(torch, _TORCH_DTYPES[self.dtype]))
        self.model = model
        self.input_dtype = _float_dtype_of(model) or getattr(torch, self.dtype)
        self.inputs = self.to_tensors(inputs)
        if device_kind(self.device) == "cuda":
            torch.cuda.reset_peak_memory_stats(self.device)

    def to_tensors(self, arrays: list[np.ndarray]) -> list:
        tensors = []
        for array in arrays:
            t = self.torch.from_numpy(np.ascontiguousarray(array)).to(self.device)
            if t.is_floating_point():
                t = t.to(self.input_dtype)
            tensors.append(t)
        return tensors

    def call(self) -> Any:
        return self.model(*self.inputs)

    def infer(self, inputs: list[np.ndarray]) -> np.ndarray:
        with self.torch.no_grad():
            try:
                outputs = self.model(*self.to_tensors(inputs))
            except Exception as exc:
                given = ", ".join("x".join(map(str, a.shape)) + f":{a.dtype}" for a in inputs)
                raise model_call_error(exc, given) from exc
            return output_array(outputs)

    def threads_in_force(self) -> int | None:
        return self.torch.get_num_threads()

    def synchronize(self) -> None:
        if device_kind(self.device) == "cuda":
            self.torch.cuda.synchronize(self.device)

    def timing_context(self):
        return self.torch.no_grad

    def info(self) -> dict:
        torch = self.torch
        data = {"runtime": "torch", "torch": torch.__version__, "threads": torch.get_num_threads(),
                "interop_threads": torch.get_num_interop_threads(), "device": self.device,
                "dtype": str(self.input_dtype).replace("torch.", "")}
        if device_kind(self.device) == "cuda":
            data["cuda"] = torch.version.cuda
            data["cudnn"] = torch.backends.cudnn.version()
            data["gpu_name"] = torch.cuda.get_device_name(self.device)
        return data

    def memory(self) -> dict:
        if device_kind(self.device) != "cuda":
            return {}
        torch = self.torch
        return {"torch_peak_allocated_bytes": int(torch.cuda.max_memory_allocated(self.device)),
                "torch_peak_reserved_bytes": int(torch.cuda.max_memory_reserved(self.device))}


def _eval_mode(model: Any) -> Any:
    try:
        return model.eval()
    except NotImplementedError:   # torch.export programs' modules are already traced for inference
        return model


def _float_dtype_of(model: Any):
    try:
        for p in model.parameters():
            if p.is_floating_point():
                return p.dtype
    except Exception:
        pass
    return None


def _is_quantized_cpu_module(model: Any) -> bool:
    # Eager int8 modules only exist on CPU; moving them would fail with an obscure error.
    try:
        return any("quantized" in type(m).__module__ for m in model.modules())
    except Exception:
        return False
