"""The one adapter between the ``quantize`` plugin and the quantization libraries.

Every torch.ao / torchao / onnxruntime.quantization call lives here, behind small functions that
take a model and return a :class:`QuantResult`. ``torch.ao.quantization`` is deprecated upstream
(eager ``quantize_dynamic`` and the FX flow are moving to torchao ``quantize_`` and PT2E): when a
backend moves, only this file changes; the plugin's methods, params and reports stay the same.

What runs where, with this stack (torch 2.13, torchao 0.18, onnxruntime 1.32):

* ``dynamic_int8``   torch.ao ``quantize_dynamic`` (nn.Linear / LSTM / GRU / cells, by module name),
                     eager int8 kernels of the host engine (``x86`` = fbgemm + oneDNN, ``qnnpack`` on
                     ARM). CPU only.
* ``static_int8``    (in ``_quant_pt2e``) torch.ao FX ``prepare_fx`` / ``convert_fx`` with the x86
                     QConfigMapping: real int8 modules that are fast in eager. PT2E (torchao
                     ``prepare_pt2e`` / ``convert_pt2e`` + ``X86InductorQuantizer``) for models FX cannot
                     trace and for .pt2 programs: a Q/DQ graph, fast only once ``torch.compile``'d. CPU only.
* ``weight_only_int8`` torchao ``quantize_(model, Int8WeightOnlyConfig())``: CPU and CUDA.
* ``int4``           torchao ``Int4WeightOnlyConfig`` (tile_packed_to_4d / tinygemm, bf16): CUDA only —
                     every int4 packing format in torchao 0.18 needs CUDA (or the mslk package).
* ``fp16`` / ``bf16``  ``model.to(dtype)``.
* ONNX ``dynamic_int8`` / ``static_int8``: ``onnxruntime.quantization.quantize_dynamic`` /
  ``quantize_static`` (QDQ, per-channel, MinMax calibration) after ``quant_pre_process``.

Nothing here imports torch or onnx at module level (the GUI imports plugin modules without torch).
"""
from __future__ import annotations

import contextlib
import copy
import io
import logging
import os
import platform
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from workbench.plugin_api import PluginError, device_kind

from ._quant_layers import LayerPlan, conv1d_to_linear

# torch module types that dynamic int8 quantization replaces (by name: no torch import here).
DYNAMIC_TYPES = ("Linear", "LSTM", "GRU", "LSTMCell", "GRUCell", "RNNCell")
# ONNX ops that run with int8 weights after onnxruntime quantization.
_ONNX_INT_OPS = ("MatMulInteger", "ConvInteger", "QLinearConv", "QLinearMatMul", "QGemm",
                 "DynamicQuantizeMatMul", "MatMulIntegerToFloat", "DynamicQuantizeLSTM", "QAttention")
# Weight-bearing ONNX ops (their weight input feeds from a DequantizeLinear in a QDQ model).
_ONNX_WEIGHT_OPS = ("Conv", "ConvTranspose", "MatMul", "Gemm", "LSTM", "GRU", "Attention")
# Dynamic ONNX quantization: MatMul-like ops only. ConvInteger has no fast CPU kernel (it made
# the demo CNN ~8x slower here), the same reason torch's dynamic flow leaves Conv alone.
_ONNX_DYNAMIC_OPS = ["MatMul", "Gemm", "Attention", "LSTM"]


@dataclass
class QuantResult:
    model: Any
    layers: list[str]               # names of the layers whose weights are now low precision
    backend: str                    # library + API + engine, e.g. "torch.ao quantize_dynamic (x86)"
    notes: list[str] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)


# ---------------------------------------------------------------------------------------------
# Host capabilities (no torch import)
# ---------------------------------------------------------------------------------------------
def _cpu_flags() -> set[str] | None:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            for line in fh:
                if line.startswith("flags"):
                    return set(line.split(":", 1)[1].split())
    except OSError:
        return None
    return set()


def cpu_bf16_support() -> tuple[bool, str]:
    """(usable, how) for bf16 on this CPU, read from /proc/cpuinfo without importing torch.

    oneDNN runs bf16 natively with AMX-BF16 / AVX512-BF16, and emulates it (correct, slower than
    fp32) with plain AVX512; without AVX512 torch falls back to slow reference kernels.
    """
    flags = _cpu_flags()
    if flags is None:   # not Linux: ask torch (only when it is already loaded: cheap)
        import sys
        torch = sys.modules.get("torch")
        if torch is not None and torch.ops.mkldnn._is_mkldnn_bf16_supported():
            return True, "supported by oneDNN on this CPU"
        if platform.machine().lower() in ("arm64", "aarch64"):
            return True, "ARM CPU (bf16 support depends on the core; check speed)"
        return False, "could not tell whether this CPU supports bf16"
    if "amx_bf16" in flags:
        return True, "native bf16 via AMX-BF16 (oneDNN)"
    if "avx512_bf16" in flags:
        return True, "native bf16 via AVX512-BF16 (oneDNN)"
    if {"avx512f", "avx512bw", "avx512vl"} <= flags:
        return True, "bf16 emulated with AVX512 (oneDNN): correct but usually slower than fp32"
    if "bf16" in flags:   # aarch64 with the BF16 extension
        return True, "native bf16 (ARM BF16 extension)"
    return False, "this CPU has neither AVX512 nor a bf16 extension, so bf16 runs on slow reference kernels"


def host_engine() -> str:
    """The eager int8 engine for this CPU: x86 (fbgemm+oneDNN), else fbgemm, else qnnpack (ARM)."""
    import torch
    engines = torch.backends.quantized.supported_engines
    arm = platform.machine().lower() in ("arm64", "aarch64") or "arm" in platform.machine().lower()
    order = ("qnnpack",) if arm else ("x86", "fbgemm", "onednn", "qnnpack")
    for name in order:
        if name in engines:
            return name
    raise PluginError(f"this torch build has no int8 CPU engine (engines: {', '.join(engines) or 'none'})")


def use_engine() -> tuple[str, str]:
    import torch
    engine = host_engine()
    torch.backends.quantized.engine = engine
    note = (f"sets torch.backends.quantized.engine = {engine!r} for this process "
            "(the packed int8 weights are built for that engine)")
    return engine, note


# The quantization libraries' own loggers, and their source folders: onnxruntime.quantization also
# logs hints through the root logger (module-level ``logging.warning``), told apart by the file.
_CHATTY_LOGGERS = ("onnxruntime", "torchao", "torch.ao")
_CHATTY_SOURCES = tuple(os.path.join(*parts) + os.sep for parts in
                        (("onnxruntime", "quantization"), ("torchao",), ("torch", "ao")))


class _LibraryChatterFilter(logging.Filter):
    """Drops the quantization libraries' records below ERROR; everything else passes."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno >= logging.ERROR:
            return True
        from_library = record.name.startswith(_CHATTY_LOGGERS) or any(s in record.pathname for s in _CHATTY_SOURCES)
        return not from_library


@contextlib.contextmanager
def quiet():
    """Silence torch.ao's deprecation warnings and onnxruntime's hints for the duration of one call.

    Warnings are caught only inside the call (``warnings.catch_warnings``). Log records are
    filtered, never re-levelled: a filter sits on the root logger and on these libraries' loggers
    while the call runs and drops only their records below ERROR; nobody else's logging changes.
    """
    import warnings
    chatter = _LibraryChatterFilter()
    names = [name for name in list(logging.root.manager.loggerDict)
             if name.startswith(_CHATTY_LOGGERS)]
    loggers = [logging.getLogger()] + [logging.getLogger(name) for name in names]
    for logger in loggers:
        logger.addFilter(chatter)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        for logger in loggers:
            logger.removeFilter(chatter)


_quiet = quiet


# ---------------------------------------------------------------------------------------------
# Which layers changed
# ---------------------------------------------------------------------------------------------
def _has_low_precision_weight(module: Any) -> bool:
    import torch
    if type(module).__name__ == "LinearPackedParams":
        return False
    if hasattr(module, "_all_weight_values"):          # dynamic quantized LSTM/GRU
        return True
    if hasattr(module, "_packed_params") and "quantized" in type(module).__module__:
        return True                                    # (dynamic) quantized Linear / cells
    weight = getattr(module, "weight", None)
    if callable(weight) and not isinstance(weight, torch.Tensor):
        try:
            weight = weight()                          # quantized conv/linear expose weight()
        except Exception:
            return False
    if isinstance(weight, torch.Tensor):
        if type(weight).__module__.startswith("torchao"):
            return True
        return weight.is_quantized
    return False


def quantized_layer_names(model: Any) -> list[str]:
    return [name for name, module in model.named_modules() if name and _has_low_precision_weight(module)]


def count_weight_elements(model: Any) -> int:
    """Weight/bias elements of a (possibly quantized) torch module.

    ``workbench.models.info.count_parameters`` sees nn.Parameters and packed Linear params, but a
    statically quantized conv keeps its int8 weight as a plain tensor: count those too.
    """
    import torch
    total = 0
    for key, value in model.state_dict().items():
        items = value if isinstance(value, (tuple, list)) else (value,)
        leaf = key.rsplit(".", 1)[-1]
        if leaf in ("scale", "zero_point", "running_mean", "running_var", "num_batches_tracked"):
            continue
        if key.endswith("_scale_0") or key.endswith("_zero_point_0"):
            continue
        for item in items:
            if isinstance(item, torch.Tensor) and item.dim() > 0:
                total += item.numel()
    return int(total)


# ---------------------------------------------------------------------------------------------
# torch models (static int8 and exported graphs: _quant_pt2e)
# ---------------------------------------------------------------------------------------------
def require_float32(model: Any, method: str) -> None:
    import torch
    for p in model.parameters():
        if p.is_floating_point() and p.dtype != torch.float32:
            raise PluginError(f"quantize {method} needs a float32 model but its weights are {p.dtype}; "
                              "put quantize before any fp16/bf16 step")


def _eval(model: Any) -> Any:
    try:
        return model.eval()
    except NotImplementedError:   # torch.export graphs (.pt2) refuse eval(): inference graphs already
        return model


def dynamic_int8(model: Any, plan: LayerPlan) -> QuantResult:
    """Weights int8 ahead of time, activations quantized per batch at run time (CPU): the layers of
    ``plan.targets`` only (GPT-2's Conv1D converted to Linear first; tied and skipped layers stay)."""
    import torch
    require_float32(model, "dynamic_int8")
    engine, note = use_engine()
    model = _eval(copy.deepcopy(model))
    conv1d_to_linear(model, plan.conv1d_targets())
    qconfig = torch.ao.quantization.default_dynamic_qconfig
    with _quiet():
        quantized = torch.ao.quantization.quantize_dynamic(model, {name: qconfig for name in plan.targets},
                                                           dtype=torch.qint8, inplace=True)
    return QuantResult(quantized, quantized_layer_names(quantized),
                       f"torch.ao.quantization.quantize_dynamic (engine {engine})", [note])


def weight_only(model: Any, bits: int, device: str, plan: LayerPlan, group_size: int = 64) -> QuantResult:
    """torchao ``quantize_``: int8 (per-channel) or int4 (groupwise, bf16 activations) weights."""
    import torch
    from torchao.quantization import Int4WeightOnlyConfig, Int8WeightOnlyConfig, quantize_
    model = _eval(copy.deepcopy(model))
    targets = set(plan.targets)
    notes = []
    if bits == 4:   # before any Conv1D is converted: a layer left in float keeps its own layout
        modules = dict(model.named_modules())
        uneven = {n for n in targets if _in_features(modules[n]) % group_size}
        if uneven:
            targets -= uneven
            notes.append(f"{len(uneven)} layer(s) kept in bf16: in_features not divisible by group_size="
                         f"{group_size} ({', '.join(sorted(uneven)[:5])}{'...' if len(uneven) > 5 else ''})")
        padded = {n for n in targets if not int4_is_smaller(_in_features(modules[n]), group_size)}
        if padded:
            targets -= padded
            notes.append(f"{len(padded)} layer(s) kept in bf16: tinygemm pads in_features to a multiple of 1024, "
                         f"and for these narrow layers an int4 weight would be no smaller than bf16 "
                         f"({', '.join(sorted(padded)[:5])}{'...' if len(padded) > 5 else ''})")
        if plan.targets and not targets:
            widest = max(_in_features(modules[n]) for n in plan.targets)
            raise PluginError(f"quantize int4: no layer is left to quantize: int4 needs in_features divisible by "
                              f"group_size={group_size} and wide enough to shrink after tinygemm pads it to a "
                              f"multiple of 1024 (the widest here has {widest}); use weight_only_int8 or bf16")
    conv1d_to_linear(model, [n for n in plan.conv1d_targets() if n in targets])
    if bits == 8:
        model = model.to(device)
        config = Int8WeightOnlyConfig(set_inductor_config=False)
        backend = "torchao quantize_(Int8WeightOnlyConfig)"
        if device_kind(device) != "cuda":
            notes.append("CPU eager dequantizes the int8 weights on every call: the model is smaller but "
                         "not faster; `fuse method=torch_compile` after this step fuses the dequantization")
    else:
        if device_kind(device) != "cuda":
            raise PluginError("quantize int4 runs on CUDA only: torchao's int4 weight kernels (tinygemm / "
                              "mslk) have no CPU implementation; use weight_only_int8 or dynamic_int8 on cpu")
        model = model.to(device=device, dtype=torch.bfloat16)
        config = Int4WeightOnlyConfig(group_size=group_size, int4_packing_format="tile_packed_to_4d",
                                      set_inductor_config=False)
        backend = f"torchao quantize_(Int4WeightOnlyConfig, tile_packed_to_4d, group_size={group_size})"
        notes.append("int4 (tinygemm) needs bf16: the model and its inputs are bfloat16 now")
    with _quiet():
        quantize_(model, config, filter_fn=lambda module, fqn: fqn in targets)
    return QuantResult(model, quantized_layer_names(model), backend, notes)


def int4_is_smaller(in_features: int, group_size: int) -> bool:
    """Whether a tinygemm int4 weight (in_features padded to a multiple of 1024, a bf16 scale and zero
    point per group) takes fewer bytes per output row than the same row in bf16."""
    padded = -(-in_features // 1024) * 1024
    int4_bytes = padded / 2 + 4 * padded / group_size
    return int4_bytes < 2 * in_features


def _in_features(module: Any) -> int:
    return module.in_features if hasattr(module, "in_features") else module.nx   # nn.Linear / Conv1D


def cast(model: Any, dtype_name: str, device: str) -> QuantResult:
    """fp16 / bf16: every floating-point weight cast (``Module.to``). torchao has no plain-cast
    config to prefer: its float8/int configs quantize, they do not cast."""
    import torch
    dtype = getattr(torch, dtype_name)
    model = _eval(copy.deepcopy(model)).to(device=device, dtype=dtype)
    layers = [name for name, module in model.named_modules()
              if name and any(p.dtype == dtype for p in module.parameters(recurse=False))]
    return QuantResult(model, layers, f"torch Module.to({dtype_name})",
                       [f"inputs are cast to {dtype_name} by the runtime (it follows the weights' dtype)"])


# ---------------------------------------------------------------------------------------------
# ONNX models (onnxruntime.quantization)
# ---------------------------------------------------------------------------------------------
def _onnx_input_names(proto: Any) -> list[str]:
    initializers = {t.name for t in proto.graph.initializer}
    return [i.name for i in proto.graph.input if i.name not in initializers]


def _preprocess(proto: Any, workdir: Path, notes: list[str]) -> Path:
    """Save the model and run ORT's recommended pre-processing (shape inference + basic fusions)."""
    import onnx
    from onnxruntime.quantization import quant_pre_process
    workdir.mkdir(parents=True, exist_ok=True)
    source = workdir / "quantize_input.onnx"
    onnx.save(proto, str(source))
    target = workdir / "quantize_preprocessed.onnx"
    try:
        with _quiet(), contextlib.redirect_stdout(io.StringIO()):
            quant_pre_process(str(source), str(target))
        return target
    except Exception as exc:
        notes.append(f"onnxruntime pre-processing skipped ({type(exc).__name__}): quantized as exported")
        return source


def onnx_quantized_nodes(proto: Any) -> list[str]:
    """Nodes that now compute with int8 weights (integer ops, or a QDQ weight input)."""
    initializers = {t.name for t in proto.graph.initializer}
    dequant_of_weight = {node.output[0] for node in proto.graph.node
                         if node.op_type == "DequantizeLinear" and node.input and
                         (node.input[0] in initializers or node.input[0].endswith("_quantized"))}
    # A DequantizeLinear whose input is produced by a Constant node is a weight too.
    constants = {o for node in proto.graph.node if node.op_type == "Constant" for o in node.output}
    dequant_of_weight |= {node.output[0] for node in proto.graph.node
                          if node.op_type == "DequantizeLinear" and node.input and node.input[0] in constants}
    names = []
    for index, node in enumerate(proto.graph.node):
        quantized = node.op_type in _ONNX_INT_OPS or (
            node.op_type in _ONNX_WEIGHT_OPS and any(i in dequant_of_weight for i in node.input[1:]))
        if quantized:
            names.append(node.name or f"{node.op_type}_{index}")
    return names


def onnx_candidates(proto: Any, method: str) -> list[str]:
    """Node names ONNX Runtime's ``method`` would quantize (MatMul-like ops; static adds Conv)."""
    ops = _ONNX_DYNAMIC_OPS if method == "dynamic_int8" else _ONNX_WEIGHT_OPS
    return [node.name or f"{node.op_type}_{i}" for i, node in enumerate(proto.graph.node) if node.op_type in ops]


def onnx_dynamic_int8(proto: Any, workdir: Path, exclude: list[str] | None = None) -> QuantResult:
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic
    notes: list[str] = []
    source = _preprocess(proto, workdir, notes)
    target = workdir / "quantized_dynamic_int8.onnx"
    with _quiet():
        quantize_dynamic(str(source), str(target), weight_type=QuantType.QInt8,
                         op_types_to_quantize=list(_ONNX_DYNAMIC_OPS), nodes_to_exclude=list(exclude or []))
    _cleanup(workdir)
    out = onnx.load(str(target))
    notes.append("Conv is left in float: ONNX Runtime's ConvInteger has no fast CPU kernel "
                 "(use static_int8 for convolutions)")
    return QuantResult(out, onnx_quantized_nodes(out), "onnxruntime.quantization.quantize_dynamic (QInt8 weights)",
                       notes, {"artifact": str(target)})


def onnx_static_int8(proto: Any, workdir: Path, batches: list,
                     on_batch: Callable[[int], None] = lambda n: None, exclude: list[str] | None = None) -> QuantResult:
    import numpy as np
    import onnx
    from onnxruntime.quantization import (CalibrationDataReader, CalibrationMethod, QuantFormat, QuantType,
                                          quantize_static)
    from onnx.helper import tensor_dtype_to_np_dtype
    names = _onnx_input_names(proto)
    declared = {i.name: i.type.tensor_type.elem_type for i in proto.graph.input}
    # Each input is fed as the graph declares it: token ids stay int64, masks int64, images float.
    dtypes = [tensor_dtype_to_np_dtype(declared[n]) if declared.get(n) else np.float32 for n in names]
    if batches and len(batches[0]) != len(names):
        raise PluginError(f"quantize static_int8: the calibration batches carry {len(batches[0])} array(s) but the "
                          f"ONNX model has {len(names)} inputs ({', '.join(names)})")
    notes: list[str] = []
    source = _preprocess(proto, workdir, notes)

    class _Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self.index = 0

        def get_next(self):
            if self.index >= len(batches):
                return None
            on_batch(self.index)
            batch = batches[self.index]
            self.index += 1
            return {name: np.ascontiguousarray(array.detach().cpu().numpy().astype(dtype))
                    for name, array, dtype in zip(names, batch, dtypes)}

    target = workdir / "quantized_static_int8.onnx"
    with _quiet(), contextlib.redirect_stdout(io.StringIO()):
        quantize_static(str(source), str(target), _Reader(), quant_format=QuantFormat.QDQ, per_channel=True,
                        activation_type=QuantType.QInt8, weight_type=QuantType.QInt8,
                        calibrate_method=CalibrationMethod.MinMax, nodes_to_exclude=list(exclude or []))
    _cleanup(workdir)
    out = onnx.load(str(target))
    return QuantResult(out, onnx_quantized_nodes(out),
                       "onnxruntime.quantization.quantize_static (QDQ, per-channel QInt8, MinMax calibration)",
                       notes, {"artifact": str(target)})


def _cleanup(workdir: Path) -> None:
    """Remove the intermediate files; the quantized model stays as the step's artifact."""
    for name in ("quantize_input.onnx", "quantize_preprocessed.onnx"):
        with contextlib.suppress(OSError):
            os.remove(workdir / name)
