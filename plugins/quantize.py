"""``quantize``: lower-precision weights (and activations) for torch and ONNX models.

The plugin only decides *what* to do and reports it; every library call goes through
``workbench_plugins._quant_backend`` so the deprecated torch.ao paths can move to torchao without
changing this surface (methods, params, report fields).
"""
from __future__ import annotations

from typing import Any

from workbench.plugin_api import (Param, Plugin, PluginContext, PluginError, PluginReport, device_kind,
                                  format_bytes)

from . import _quant_backend as backend

METHODS = ("dynamic_int8", "static_int8", "weight_only_int8", "int4", "fp16", "bf16")
ONNX_METHODS = ("dynamic_int8", "static_int8")

# Devices per method, and why a device is missing (shown by check()).
_DEVICES = {
    "dynamic_int8": ("cpu",),
    "static_int8": ("cpu",),
    "weight_only_int8": ("cpu", "cuda"),
    "int4": ("cuda",),
    "fp16": ("cuda",),
    "bf16": ("cpu", "cuda"),
}
_WHY_NOT = {
    ("dynamic_int8", "cuda"): "dynamic_int8 runs on CPU only: eager int8 kernels (fbgemm/oneDNN/qnnpack) have "
                              "no CUDA implementation; use weight_only_int8, int4 or fp16 on cuda",
    ("static_int8", "cuda"): "static_int8 runs on CPU only: eager int8 kernels (fbgemm/oneDNN/qnnpack) have "
                             "no CUDA implementation; use weight_only_int8, int4 or fp16 on cuda",
    ("int4", "cpu"): "int4 runs on CUDA only: torchao's int4 weight-only kernels (tinygemm/mslk) have no CPU "
                     "implementation in this version; use weight_only_int8 or dynamic_int8 on cpu",
    ("fp16", "cpu"): "fp16 runs on CUDA only: CPU fp16 kernels are missing or slower than fp32 for most ops; "
                     "use bf16 on cpu (native on CPUs with AMX/AVX512-BF16) or dynamic_int8",
}
NO_DATA_MESSAGE = ("quantize static_int8 needs calibration data to measure activation ranges: give a .npz "
                   "with x_train (CLI: --data file.npz; GUI: Run panel > data file), or use method=dynamic_int8 "
                   "or weight_only_int8, which need no data")


class Quantize(Plugin):
    name = "quantize"
    summary = ("Quantize weights (and activations) to int8/int4/fp16/bf16 with torch.ao/torchao, or with "
               "ONNX Runtime for ONNX models.")
    params_schema = (
        Param("method", "choice", "dynamic_int8",
              "dynamic_int8: int8 Linear/LSTM/GRU weights, activations quantized per batch (CPU); "
              "static_int8: int8 weights+activations calibrated on data (CPU, needs --data); "
              "weight_only_int8: torchao int8 weights (CPU/CUDA); int4: torchao int4 weights (CUDA); "
              "fp16 (CUDA) / bf16 (CPU with bf16 support, CUDA): cast the whole model",
              choices=METHODS),
        Param("calibration_samples", "int", 256,
              "static_int8: how many x_train samples calibrate the activation ranges", minimum=1,
              methods=("static_int8",)),
        Param("group_size", "choice", "64",
              "int4: weights per quantization group (smaller = more accurate, larger = faster)",
              choices=("32", "64", "128", "256"), methods=("int4",)),
    )
    accepts = ("torch", "onnx")
    devices = ("cpu", "cuda")
    method_devices = _DEVICES

    # -- validation -----------------------------------------------------------------------------

    def onnx_export_blocker(self, input_format: str) -> str | None:
        method = self.params["method"]
        if input_format != "torch" or method in ("fp16", "bf16"):
            return None
        # torch.ao quantized modules and torchao's quantized tensors have no ONNX export
        fix = (f"quantize the ONNX model instead (put onnx_export before it: --plugin onnx_export "
               f"--plugin quantize:method={method})" if method in ONNX_METHODS
               else "run it with --runtime torch")
        return f"torch's {method} quantized layers have no ONNX form; {fix}"

    def check(self, model_format: str, device: str) -> None:
        method = self.params["method"]
        kind = device_kind(device)
        if model_format == "onnx" and method not in ONNX_METHODS:
            raise PluginError(
                f"quantize method={method} needs a torch model but gets ONNX: for ONNX models use "
                f"method=dynamic_int8 or static_int8 (ONNX Runtime quantization), or move quantize before "
                f"the ONNX export step")
        if kind not in _DEVICES[method]:
            reason = _WHY_NOT.get((method, kind), f"{method} does not run on {kind}")
            raise PluginError(f"quantize: {reason}")
        if method == "bf16" and kind == "cpu":
            ok, how = backend.cpu_bf16_support()
            if not ok:
                raise PluginError(f"quantize bf16 on cpu: {how}; use dynamic_int8 on cpu, or bf16 on cuda")

    # -- work -----------------------------------------------------------------------------------
    def apply(self, model: Any, context: PluginContext) -> tuple[Any, PluginReport]:
        from workbench.plugin_api import count_parameters, model_bytes

        method = self.params["method"]
        is_onnx = type(model).__name__ == "ModelProto"
        self.check("onnx" if is_onnx else "torch", context.device)
        if not is_onnx and method not in ("fp16", "bf16") and _is_torchscript(model):
            raise PluginError(f"quantize {method} needs a Python nn.Module: a TorchScript model cannot have its "
                              "layers replaced. Load it from its state_dict + factory, or export it to ONNX and "
                              "use ONNX Runtime quantization (dynamic_int8/static_int8)")
        bytes_before = model_bytes(model)
        params_before = count_parameters(model)
        notes: list[str] = []
        extra: dict[str, Any] = {"method": method}
        context.progress(0.0, f"quantizing ({method})")

        if is_onnx:
            result = self._apply_onnx(model, context, extra)
        elif method == "dynamic_int8":
            result = backend.dynamic_int8(model)
        elif method == "static_int8":
            batches = self._calibration_batches(context, extra, notes)
            result = backend.static_int8(model, context.example_inputs, batches,
                                         self._on_batch(context, len(batches)))
        elif method in ("weight_only_int8", "int4"):
            result = backend.weight_only(model, 8 if method == "weight_only_int8" else 4, context.device,
                                         int(self.params["group_size"]))
        else:
            if method == "bf16" and device_kind(context.device) == "cpu":
                notes.append(f"bf16 on this CPU: {backend.cpu_bf16_support()[1]}")
            result = backend.cast(model, "float16" if method == "fp16" else "bfloat16", context.device)

        quantized = result.model
        layers = result.layers
        notes += result.notes
        extra.update(result.extra)
        extra["backend"] = result.backend
        extra["layers_quantized"] = len(layers)
        if not is_onnx:
            kinds = _layer_types(model, layers)
            extra["layer_types"] = kinds
            # int8 eager modules keep weights outside nn.Parameters: count them from the state_dict
            params_after = (backend.count_weight_elements(quantized) if method in ("dynamic_int8", "static_int8")
                            else count_parameters(quantized))
        else:
            kinds = {}
            params_after = count_parameters(quantized)
        bytes_after = model_bytes(quantized)
        if not layers:
            notes.append(self._nothing_quantized_note(method, is_onnx))
        count = (f"{len(layers)} layer{'' if len(layers) == 1 else 's'}" if not kinds
                 else ", ".join(f"{n} {k}" for k, n in sorted(kinds.items())))
        target = {"fp16": "fp16", "bf16": "bf16", "int4": "int4"}.get(method, "int8")
        verb = "cast" if method in ("fp16", "bf16") else "quantized"
        library = "onnxruntime" if is_onnx else result.backend.split(" ")[0]
        summary = (f"{count} {verb} -> {target} ({method}, {library}): "
                   f"{format_bytes(bytes_before)} -> {format_bytes(bytes_after)}")
        if "calibration_samples" in extra:
            summary += f", calibrated on {extra['calibration_samples']} samples"
        context.progress(1.0, "quantized")
        return quantized, PluginReport(
            plugin=self.name, summary=summary, params_before=params_before, params_after=params_after,
            bytes_before=bytes_before, bytes_after=bytes_after, layers_changed=list(layers),
            notes=notes, extra=extra)

    def _apply_onnx(self, model: Any, context: PluginContext, extra: dict) -> backend.QuantResult:
        method = self.params["method"]
        workdir = context.workdir
        if method == "dynamic_int8":
            return backend.onnx_dynamic_int8(model, workdir)
        notes: list[str] = []
        fixed = _onnx_fixed_batch(model)
        batches = self._calibration_batches(context, extra, notes, batch_size=fixed)
        result = backend.onnx_static_int8(model, workdir, batches, self._on_batch(context, len(batches)))
        result.notes[:0] = notes
        return result

    def _calibration_batches(self, context: PluginContext, extra: dict, notes: list[str],
                             batch_size: int | None = None) -> list:
        import numpy as np
        import torch

        data = context.data or {}
        key = "x_train" if data.get("x_train") is not None else ("x_test" if data.get("x_test") is not None else None)
        if key is None:
            raise PluginError(NO_DATA_MESSAGE)
        if key == "x_test":
            notes.append("calibrated on x_test (no x_train given): accuracy measured on the same data is optimistic")
        if len(context.example_inputs) != 1:
            raise PluginError(f"quantize static_int8 calibrates single-input models (x_train feeds the input); "
                              f"this model takes {len(context.example_inputs)} inputs")
        example = context.example_inputs[0]
        x = np.asarray(data[key])
        if tuple(x.shape[1:]) != tuple(example.shape[1:]):
            raise PluginError(f"quantize static_int8: calibration data {key} has samples of shape "
                              f"{tuple(x.shape[1:])} but the model input is {tuple(example.shape[1:])}; "
                              "give a data file that matches the model input")
        wanted = int(self.params["calibration_samples"])
        x = x[:wanted]
        # Larger calibration batches than the run's when samples are small: the histogram observers
        # of the x86 qconfig cost per call (16 calls of 16 samples took 15 s on the transformer demo).
        per_sample = int(np.prod(example.shape[1:])) if example.dim() > 1 else 1
        batch = batch_size or max(1, int(example.shape[0]), 64 if per_sample <= 1_000_000 else 1)
        if batch_size and len(x) < batch_size:
            raise PluginError(f"quantize static_int8: the ONNX model has a fixed batch of {batch_size} but only "
                              f"{len(x)} calibration samples were given; raise calibration_samples")
        if batch_size:
            x = x[: len(x) - len(x) % batch_size]
        if len(x) < wanted:
            notes.append(f"asked for {wanted} calibration samples, used {len(x)} ({key} has {len(data[key])})")
        extra["calibration_samples"] = int(len(x))
        extra["calibration_source"] = key
        tensor = torch.from_numpy(np.ascontiguousarray(x)).to(dtype=example.dtype)
        return [[chunk] for chunk in tensor.split(batch)]

    @staticmethod
    def _on_batch(context: PluginContext, total: int):
        def on_batch(index: int) -> None:
            context.check_cancelled()
            context.progress(0.05 + 0.85 * index / max(total, 1), f"calibrating batch {index + 1}/{total}")
        return on_batch

    @staticmethod
    def _nothing_quantized_note(method: str, is_onnx: bool) -> str:
        if method == "dynamic_int8":
            return ("0 layers quantized: dynamic int8 only replaces " +
                    ("MatMul/Gemm/LSTM nodes" if is_onnx else "nn.Linear/LSTM/GRU layers") +
                    " and this model has none; use static_int8 (with calibration data) for convolutions")
        if method in ("weight_only_int8", "int4"):
            return "0 layers quantized: torchao weight-only quantization only replaces nn.Linear weights"
        return f"0 layers quantized: {method} found no layer it applies to"


def _is_torchscript(model: Any) -> bool:
    import torch
    return isinstance(model, torch.jit.ScriptModule)


def _layer_types(model: Any, layers: list[str]) -> dict[str, int]:
    modules = dict(model.named_modules())
    counts: dict[str, int] = {}
    for name in layers:
        module = modules.get(name)
        kind = type(module).__name__ if module is not None else "weight"
        counts[kind] = counts.get(kind, 0) + 1
    return counts


def _onnx_fixed_batch(proto: Any) -> int | None:
    initializers = {t.name for t in proto.graph.initializer}
    for graph_input in proto.graph.input:
        if graph_input.name in initializers:
            continue
        dims = graph_input.type.tensor_type.shape.dim
        if dims and dims[0].HasField("dim_value") and dims[0].dim_value > 0:
            return int(dims[0].dim_value)
        return None
    return None
