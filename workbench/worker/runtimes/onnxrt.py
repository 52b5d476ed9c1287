"""ONNX Runtime execution: CPU, or the CUDA execution provider when present."""
from __future__ import annotations

from typing import Any

import numpy as np

from ...errors import DeviceError, InputShapeError
from ...spec import device_kind
from .base import Runtime, model_call_error


class OnnxRuntime(Runtime):
    name = "onnxruntime"
    timer_kind = "cpu"   # run() is synchronous (the CUDA EP syncs its stream before returning)

    def __init__(self, device: str, dtype: str, threads: int | None) -> None:
        super().__init__(device, dtype, threads)
        import onnxruntime as ort
        self.ort = ort
        available = ort.get_available_providers()
        if device_kind(device) == "cuda":
            if "CUDAExecutionProvider" not in available:
                raise DeviceError(f"--device {device} with onnxruntime needs the CUDA execution provider "
                                  f"(pip install onnxruntime-gpu); this install has {', '.join(available)}")
            index = int(device.split(":")[1]) if ":" in device else 0
            self.providers = [("CUDAExecutionProvider", {"device_id": index}), "CPUExecutionProvider"]
        else:
            self.providers = ["CPUExecutionProvider"]
        self.session = None
        self.feed: dict[str, np.ndarray] = {}
        self.binding = None
        self.cache_layout = None      # a causal LM exported with its KV cache (plugin_api.onnx_cache_export)

    def prepare(self, model: Any, inputs: list[np.ndarray]) -> None:
        ort = self.ort
        options = ort.SessionOptions()
        if self.threads:
            options.intra_op_num_threads = self.threads
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        payload = model.SerializeToString() if hasattr(model, "SerializeToString") else str(model)
        try:
            self.session = ort.InferenceSession(payload, options, providers=self.providers)
        except Exception as exc:
            raise InputShapeError(f"ONNX Runtime could not create a session: {_first_line(exc)}") from None
        self.input_names = [i.name for i in self.session.get_inputs()]
        from ...plugin_api.onnx_cache_export import layout_from_graph
        self.cache_layout = layout_from_graph(self.session.get_inputs(),
                                              self.session.get_modelmeta().custom_metadata_map)
        self.feed = self._feed(inputs)
        if device_kind(self.device) == "cuda":
            # Keep inputs and outputs on the GPU so host<->device copies are not timed.
            self.binding = self.session.io_binding()
            for name, array in self.feed.items():
                if not array.size:        # a cache export's empty pasts: ORT takes no empty device buffer
                    self.binding.bind_cpu_input(name, array)
                    continue
                value = ort.OrtValue.ortvalue_from_numpy(array, "cuda", self._device_index())
                self.binding.bind_ortvalue_input(name, value)
            for out in self.session.get_outputs():
                self.binding.bind_output(out.name, "cuda", self._device_index())

    def _device_index(self) -> int:
        return int(self.device.split(":")[1]) if ":" in self.device else 0

    def _feed(self, inputs: list[np.ndarray]) -> dict[str, np.ndarray]:
        if self.cache_layout is not None and len(inputs) in (1, 2):
            inputs = self._with_empty_cache(inputs)
        if len(inputs) != len(self.input_names):
            raise InputShapeError(f"the model has {len(self.input_names)} input(s) "
                                  f"({', '.join(self.input_names)}) but {len(inputs)} were given")
        feed = {}
        for meta, array in zip(self.session.get_inputs(), inputs):
            want = _ORT_TYPES.get(meta.type)
            feed[meta.name] = np.ascontiguousarray(array.astype(want) if want is not None else array)
        return feed

    def _with_empty_cache(self, inputs: list[np.ndarray]) -> list[np.ndarray]:
        """A cache export called on whole sequences (the forward scenario, fidelity): a prefill, with
        positions from the mask and pasts of length 0."""
        from ...plugin_api.onnx_cache_export import positions_from_mask
        layout = self.cache_layout
        ids = np.asarray(inputs[0])
        mask = np.asarray(inputs[1], dtype=np.int64) if len(inputs) > 1 else np.ones(ids.shape, np.int64)
        dtype = np.dtype(layout.dtype) if layout.dtype != "bfloat16" else np.float32
        positions = [positions_from_mask(mask, ids.shape[1])] if layout.position_ids else []
        pasts = [np.zeros(layout.past_shape(i // 2, ids.shape[0], 0), dtype) for i in range(2 * layout.layers)]
        return [ids, mask, *positions, *pasts]

    def call(self) -> Any:
        if self.binding is not None:
            return self.session.run_with_iobinding(self.binding)
        return self.session.run(None, self.feed)

    def infer(self, inputs: list[np.ndarray]) -> np.ndarray:
        feed = self._feed(inputs)
        first = [self.session.get_outputs()[0].name]      # a cache export's presents are not needed here
        try:
            out = self.session.run(first, feed)[0]
        except Exception as exc:
            expected = ", ".join(f"{i.name} {i.shape}" for i in self.session.get_inputs())
            given = ", ".join("x".join(map(str, a.shape)) for a in inputs)
            raise model_call_error(exc, given, expected) from exc
        return np.asarray(out, dtype=np.float32)

    def info(self) -> dict:
        return {"runtime": "onnxruntime", "onnxruntime": self.ort.__version__,
                "providers": self.session.get_providers() if self.session else [p if isinstance(p, str) else p[0] for p in self.providers],
                "threads": self.threads or "onnxruntime default (physical cores)", "device": self.device}


_ORT_TYPES = {"tensor(float)": np.float32, "tensor(float16)": np.float16, "tensor(double)": np.float64,
              "tensor(int64)": np.int64, "tensor(int32)": np.int32, "tensor(int8)": np.int8,
              "tensor(uint8)": np.uint8, "tensor(bool)": np.bool_}


def _first_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())   # ORT spreads one message over several lines
    return text[:400] if text else type(exc).__name__
