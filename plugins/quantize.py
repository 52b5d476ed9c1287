"""``quantize``: lower-precision weights (and activations) for torch and ONNX models.

The plugin decides *what* to do and reports it; every library call goes through
``workbench_plugins._quant_backend`` (eager and torchao), ``_quant_pt2e`` (graph mode: static int8,
.pt2 programs) and ``_quant_layers`` (which layers: Conv1D, tied weights, skip patterns), so the
deprecated torch.ao paths can move to torchao without changing this surface.
"""
from __future__ import annotations

from typing import Any

from workbench.plugin_api import (Param, Plugin, PluginContext, PluginError, PluginReport, device_kind,
                                  format_bytes, match_patterns, split_patterns)

from . import _quant_backend as backend
from . import _quant_layers as layers_of
from . import _quant_pt2e as graph

METHODS = ("dynamic_int8", "static_int8", "weight_only_int8", "int4", "fp16", "bf16")
ONNX_METHODS = ("dynamic_int8", "static_int8")
INT_METHODS = ("dynamic_int8", "static_int8", "weight_only_int8", "int4")
CAST_METHODS = ("fp16", "bf16")
SMALL_BATCH = 4     # static int8 at this batch or below: activation (de)quantization dominates

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
# Where a method runs but is known to be slow (the form shows these; the chain check warns).
WEIGHT_ONLY_CPU = ("weight_only_int8 on CPU is usually slower than fp32 in eager (0.6x measured on a Llama and "
                   "DistilBERT): it dequantizes the int8 weights at every call, so it saves memory, not time; "
                   "add fuse:method=torch_compile after it, or use dynamic_int8 for speed on CPU")
STATIC_EAGER = ("static_int8 can be slower than fp32 in eager: on models torch.fx cannot trace (most Hugging Face "
                "models) it makes a quantize/dequantize graph (0.35x measured on a ResNet-18); add "
                "fuse:method=torch_compile after it")
_CAVEATS = {"weight_only_int8": {"cpu": WEIGHT_ONLY_CPU}, "static_int8": {"cpu": STATIC_EAGER}}
NO_DATA_MESSAGE = ("quantize static_int8 needs calibration data to measure activation ranges: give a .npz "
                   "with x_train (CLI: --data file.npz; GUI: Run panel > data file), or use method=dynamic_int8 "
                   "or weight_only_int8, which need no data")


class Quantize(Plugin):
    name = "quantize"
    summary = ("Quantize weights (and activations) to int8/int4/fp16/bf16 with torch.ao/torchao, or with "
               "ONNX Runtime for ONNX models.")
    params_schema = (
        Param("method", "choice", "dynamic_int8",
              "dynamic_int8: int8 Linear/Conv1D/LSTM/GRU weights, activations quantized per batch (CPU; the "
              "fast int8 choice on CPU); static_int8: int8 weights+activations calibrated on data (CPU, needs "
              "--data; slow in eager on models torch.fx cannot trace and at small batches: follow it with "
              "fuse:torch_compile); weight_only_int8: torchao int8 weights (CPU/CUDA; on CPU smaller but "
              "slower in eager: it dequantizes every call); int4: torchao int4 weights (CUDA); "
              "fp16 (CUDA) / bf16 (CPU with bf16 support, CUDA): cast the whole model",
              choices=METHODS),
        Param("calibration_samples", "int", 256,
              "static_int8: how many x_train samples calibrate the activation ranges", minimum=1,
              methods=("static_int8",)),
        Param("group_size", "choice", "64",
              "int4: weights per quantization group (smaller = more accurate, larger = faster)",
              choices=("32", "64", "128", "256"), methods=("int4",)),
        Param("skip", "str", "",
              "module names left in float: fnmatch patterns (* ?) separated by ';' or spaces, e.g. "
              "model.lm_head;*.attn.c_proj (a name also covers the layers inside it)", methods=INT_METHODS),
        Param("quantize_tied", "bool", False,
              "also quantize layers whose weight is shared with another module (GPT-2's lm_head is tied to "
              "the token embedding): that unties them, the embedding keeps a float copy and the model grows",
              methods=INT_METHODS),
    )
    accepts = ("torch", "onnx")
    devices = ("cpu", "cuda")
    method_devices = _DEVICES
    method_caveats = _CAVEATS

    # -- validation -----------------------------------------------------------------------------

    def onnx_export_blocker(self, input_format: str) -> str | None:
        method = self.params["method"]
        if input_format != "torch" or method in CAST_METHODS:
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

    def caveats(self, model_format: str, device: str, batch: int | None = None,
                compiled_after: bool = False) -> list[str]:
        method, kind = self.params["method"], device_kind(device)
        if model_format != "torch":
            return []
        found = []
        if method == "weight_only_int8" and kind == "cpu" and not compiled_after:
            found.append(WEIGHT_ONLY_CPU)
        if method == "static_int8":
            if not compiled_after:
                found.append(STATIC_EAGER)
            found += filter(None, [_small_batch_caveat(batch)])
        if method == "bf16" and kind == "cpu":
            ok, how = backend.cpu_bf16_support()
            if ok and "slower" in how:
                found.append(f"bf16 on this CPU: {how}")
        return found

    def check_model(self, model: Any, model_format: str) -> None:
        self._target_plan(model, model_format)

    def _target_plan(self, model: Any, model_format: str) -> Any:
        """What this step will change in ``model`` (a LayerPlan for an nn.Module, the skipped names for
        a graph or ONNX model); PluginError, before anything runs, when it would change nothing."""
        method = self.params["method"]
        skip = split_patterns(self.params.get("skip"))
        if model_format == "onnx" or type(model).__name__ == "ModelProto":
            if method not in ONNX_METHODS:
                return None
            nodes = backend.onnx_candidates(model, method)
            if not nodes:
                looked = "MatMul/Gemm/Attention/LSTM" if method == "dynamic_int8" else "Conv/MatMul/Gemm/LSTM/GRU"
                raise PluginError(f"quantize {method} found no node it can quantize in this ONNX model: it looks "
                                  f"for {looked} nodes")
            return sorted(match_patterns(nodes, skip, "quantize:skip")) if skip else []
        if _is_torchscript(model):
            if method in CAST_METHODS:
                return None
            raise PluginError(f"quantize {method} needs a Python nn.Module: a TorchScript model cannot have its "
                              "layers replaced. Load it from its state_dict + factory, or export it to ONNX and "
                              "use ONNX Runtime quantization (dynamic_int8/static_int8)")
        if method in CAST_METHODS:
            if not any(p.is_floating_point() for p in model.parameters()):
                raise PluginError(f"quantize {method} found no floating-point weight to cast")
            return None
        if graph.is_exported_graph(model):
            if method not in ("dynamic_int8", "static_int8"):
                raise PluginError(f"quantize {method} replaces nn.Linear weights, and a .pt2 program is a flat "
                                  "graph without nn.Linear modules: load the model as a state_dict + factory (or "
                                  "an HF folder) for torchao, or use dynamic_int8 / static_int8, which quantize "
                                  "the graph with PT2E")
            found = layers_of.graph_layers(model, method)
            if not found:
                raise PluginError(f"quantize {method} found no layer it can quantize in this .pt2 graph: it looks "
                                  f"for {'/'.join(layers_of.GRAPH_OPS[method])} ops")
            return sorted(match_patterns(found, skip, "quantize:skip")) if skip else []
        return layers_of.plan_layers(model, method, skip, bool(self.params.get("quantize_tied")))

    # -- work -----------------------------------------------------------------------------------
    def apply(self, model: Any, context: PluginContext) -> tuple[Any, PluginReport]:
        from workbench.plugin_api import count_parameters, model_bytes

        method = self.params["method"]
        is_onnx = type(model).__name__ == "ModelProto"
        self.check("onnx" if is_onnx else "torch", context.device)
        plan = self._target_plan(model, "onnx" if is_onnx else "torch")
        is_graph = not is_onnx and graph.is_exported_graph(model)
        bytes_before = model_bytes(model)
        params_before = count_parameters(model)
        notes: list[str] = []
        extra: dict[str, Any] = {"method": method}
        context.progress(0.0, f"quantizing ({method})")

        if is_onnx:
            result = self._apply_onnx(model, context, extra, plan or [])
        elif method in CAST_METHODS:
            if method == "bf16" and device_kind(context.device) == "cpu":
                notes.append(f"bf16 on this CPU: {backend.cpu_bf16_support()[1]}")
            result = backend.cast(model, "float16" if method == "fp16" else "bfloat16", context.device)
            if _is_torchscript(model) or is_graph:
                _check_cast_graph_runs(result.model, context, method)
        elif is_graph:
            batches = (self._calibration_batches(context, extra, notes) if method == "static_int8"
                       else [list(context.example_inputs)])
            result = graph.graph_int8(model, method, context.example_inputs, batches, set(plan),
                                      self._on_batch(context, len(batches)))
        elif method == "dynamic_int8":
            result = backend.dynamic_int8(model, plan)
        elif method == "static_int8":
            batches = self._calibration_batches(context, extra, notes)
            result = graph.static_int8(model, context.example_inputs, batches, plan,
                                       self._on_batch(context, len(batches)))
            notes += filter(None, [_small_batch_caveat(_batch_of(context))])
        else:
            result = backend.weight_only(model, 8 if method == "weight_only_int8" else 4, context.device, plan,
                                         int(self.params["group_size"]))

        quantized, layers = result.model, result.layers
        notes += result.notes
        extra.update(result.extra)
        extra["backend"] = result.backend
        extra["layers_quantized"] = len(layers)
        total, kinds = _totals(model, method, plan, layers, result, is_onnx)
        extra["layers_total"] = total
        extra["layer_types"] = kinds
        recurrent = sum(n for kind, n in (kinds or {}).items() if kind in ("LSTM", "GRU"))
        if recurrent and method == "dynamic_int8" and not is_onnx:
            notes.append(f"{recurrent} LSTM/GRU layer(s) quantized: torch's dynamic int8 LSTM/GRU runs its own "
                         "kernel, which can be several times slower than the fp32 one (0.12× on the model zoo's "
                         "LSTM, docs/compatibility.md); compare, and keep them in float with skip= if so")
        if isinstance(plan, layers_of.LayerPlan):
            notes += plan.notes
            extra["layers_skipped"] = dict(plan.skipped)
            if plan.conv1d_targets():
                notes.append(f"{len(plan.conv1d_targets())} transformers Conv1D layers (GPT-2 style, weight stored "
                             "transposed) were converted to the equivalent nn.Linear to be quantized")
        elif plan:
            extra["layers_skipped"] = {name: "skip pattern" for name in plan}
        if is_onnx or is_graph or method in ("dynamic_int8", "static_int8"):
            # int8 eager modules and PT2E constants keep weights outside nn.Parameters
            params_after = (count_parameters(quantized) if is_onnx else backend.count_weight_elements(quantized))
        else:
            params_after = count_parameters(quantized)
        bytes_after = model_bytes(quantized)
        if not layers:
            notes.append(self._nothing_quantized_note(method, is_onnx))
        summary = self._summary(method, len(layers), total, kinds, result, extra, is_onnx,
                                format_bytes(bytes_before), format_bytes(bytes_after))
        context.progress(1.0, "quantized")
        return quantized, PluginReport(
            plugin=self.name, summary=summary, params_before=params_before, params_after=params_after,
            bytes_before=bytes_before, bytes_after=bytes_after, layers_changed=list(layers),
            notes=notes, extra=extra, changed=bool(layers))

    def _summary(self, method: str, done: int, total: int, kinds: dict, result: Any, extra: dict,
                 is_onnx: bool, before: str, after: str) -> str:
        target = {"fp16": "fp16", "bf16": "bf16", "int4": "int4"}.get(method, "int8")
        if method in CAST_METHODS:
            what = f"{done} of {total} layers cast"
        elif is_onnx:
            what = f"{done} of {total} nodes quantized"
        else:
            what = f"{done} of {total} {layers_of.noun(method)} quantized"
        library = "onnxruntime" if is_onnx else next(
            (lib for lib in ("torchao", "torch.ao") if result.backend.startswith(lib)), "torch")
        flow = f"{extra['flow']} flow, " if extra.get("flow") else ""
        kinds_text = f" [{', '.join(f'{n} {k}' for k, n in sorted(kinds.items()))}]" if kinds else ""
        summary = f"{what}{kinds_text} -> {target} ({method}, {flow}{library}): {before} -> {after}"
        if extra.get("layers_skipped"):
            summary += f", {len(extra['layers_skipped'])} kept in float"
        if "calibration_samples" in extra:
            summary += f", calibrated on {extra['calibration_samples']} samples"
        return summary

    def _apply_onnx(self, model: Any, context: PluginContext, extra: dict, exclude: list[str]) -> backend.QuantResult:
        method = self.params["method"]
        workdir = context.workdir
        if method == "dynamic_int8":
            return backend.onnx_dynamic_int8(model, workdir, exclude)
        notes: list[str] = []
        fixed = _onnx_fixed_batch(model)
        batches = self._calibration_batches(context, extra, notes, batch_size=fixed)
        result = backend.onnx_static_int8(model, workdir, batches, self._on_batch(context, len(batches)), exclude)
        result.notes[:0] = notes
        return result

    def _calibration_batches(self, context: PluginContext, extra: dict, notes: list[str],
                             batch_size: int | None = None) -> list:
        import numpy as np
        import torch

        data = context.data or {}
        if len(context.example_inputs) != 1:
            return self._multi_input_batches(context, extra, notes)
        key = "x_train" if data.get("x_train") is not None else ("x_test" if data.get("x_test") is not None else None)
        if key is None:
            raise PluginError(NO_DATA_MESSAGE)
        if key == "x_test":
            notes.append("calibrated on x_test (no x_train given): accuracy measured on the same data is optimistic")
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

    def _multi_input_batches(self, context: PluginContext, extra: dict, notes: list[str]) -> list:
        """Calibration for a model with several inputs (a Hugging Face model takes input_ids and
        attention_mask): ``<input name>_train`` arrays from the data file when it has one for every
        input, else the run's own inputs (noted: fidelity measured on them is then optimistic)."""
        import numpy as np
        import torch
        data = context.data or {}
        names = context.input_names or [f"input_{i}" for i in range(len(context.example_inputs))]
        keys = [f"{name}_train" for name in names]
        wanted = int(self.params["calibration_samples"])
        if all(data.get(k) is not None for k in keys):
            arrays = [np.asarray(data[k])[:wanted] for k in keys]
            columns = [torch.from_numpy(np.ascontiguousarray(a)).to(t.dtype)
                       for a, t in zip(arrays, context.example_inputs)]
            source = ", ".join(keys)
        else:
            columns = [t.detach().cpu() for t in context.example_inputs]
            source = "the run's inputs"
            notes.append(f"calibrated on the run's own inputs ({columns[0].shape[0]} samples): give "
                         f"{' and '.join(keys)} arrays in the data file to calibrate on other samples; "
                         "fidelity measured on the same inputs is optimistic")
        count = int(columns[0].shape[0])
        extra["calibration_samples"] = count
        extra["calibration_source"] = source
        step = max(1, int(context.example_inputs[0].shape[0]), 16)
        return [[c[i:i + step] for c in columns] for i in range(0, count, step)]

    @staticmethod
    def _on_batch(context: PluginContext, total: int):
        def on_batch(index: int) -> None:
            context.check_cancelled()
            context.progress(0.05 + 0.85 * index / max(total, 1), f"calibrating batch {index + 1}/{total}")
        return on_batch

    @staticmethod
    def _nothing_quantized_note(method: str, is_onnx: bool) -> str:
        what = "node" if is_onnx else "layer"
        return (f"0 {what}s quantized: the library left every candidate {what} in float (e.g. a Linear subclass "
                f"it does not map); the model is unchanged")


def _small_batch_caveat(batch: int | None) -> str | None:
    if batch is None or batch > SMALL_BATCH:
        return None
    return (f"static_int8 at batch {batch}: quantizing and dequantizing the activations around every layer costs "
            "about as much as int8 saves at small batches; dynamic_int8 or a larger batch is usually faster")


def _batch_of(context: PluginContext) -> int | None:
    example = context.example_inputs[0] if context.example_inputs else None
    return int(example.shape[0]) if example is not None and example.dim() > 0 else None


def _is_torchscript(model: Any) -> bool:
    import torch
    return isinstance(model, torch.jit.ScriptModule)


def _totals(model: Any, method: str, plan: Any, layers: list[str], result: Any,
            is_onnx: bool) -> tuple[int, dict[str, int]]:
    """M (every layer the method could take) and the kinds of the N layers it took."""
    if isinstance(plan, layers_of.LayerPlan):
        modules = dict(model.named_modules())
        kinds: dict[str, int] = {}
        for name in layers:
            kind = plan.candidates.get(name) or (type(modules[name]).__name__ if name in modules else "weight")
            kinds[kind] = kinds.get(kind, 0) + 1
        return max(plan.total, len(layers)), kinds
    if is_onnx:
        return max(len(backend.onnx_candidates(model, method)), len(layers)), {}
    if "layers_total" in result.extra:          # a .pt2 graph: its linear/conv ops
        return max(result.extra["layers_total"], len(layers)), {}
    with_weights = [n for n, m in model.named_modules() if n and next(m.parameters(False), None) is not None]
    return max(len(with_weights), len(layers)), {}


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


def _check_cast_graph_runs(model: Any, context: PluginContext, method: str) -> None:
    """A TorchScript or .pt2 graph may record float32 ops (GPT-2's and Llama's masks, oneDNN's LSTM):
    casting its weights then breaks it. One call on the example inputs tells, and a failure is this
    step's refusal in one line instead of a crash while measuring."""
    import torch
    dtype = torch.float16 if method == "fp16" else torch.bfloat16
    inputs = [t.to(dtype) if t.is_floating_point() else t for t in context.example_inputs]
    try:
        with torch.no_grad():
            (model.module() if hasattr(model, "module") and not isinstance(model, torch.nn.Module) else model)(*inputs)
    except Exception as exc:
        lines = [line.strip() for line in str(exc).strip().splitlines() if line.strip()] or [type(exc).__name__]
        # TorchScript puts the interpreter's preamble first and the real error last
        first = next((line for line in reversed(lines) if "Error" in line), lines[0])[:200]
        raise PluginError(f"quantize {method}: this {'TorchScript' if _is_torchscript(model) else '.pt2'} graph "
                          f"records float32 operations, so casting its weights breaks it ({first}); load the model "
                          "as a state_dict + factory or a Hugging Face folder to cast it") from None
