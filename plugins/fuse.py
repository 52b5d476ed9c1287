"""``fuse``: fewer, bigger kernels — conv+bn folding, ``torch.compile``, ONNX Runtime graph optimization."""
from __future__ import annotations

import time
from typing import Any

from workbench.plugin_api import Param, Plugin, PluginContext, PluginError, PluginReport, device_kind

METHODS = ("conv_bn", "torch_compile", "onnxruntime")
COMPILE_MODES = ("default", "reduce-overhead", "max-autotune-no-cudagraphs")
LEVELS = ("basic", "extended", "all")
_TORCH_METHODS = ("conv_bn", "torch_compile")

# Conv/Linear type -> the BatchNorm type that can be folded into it (by class name: no torch here).
_FOLDABLE = {"Conv1d": "BatchNorm1d", "Conv2d": "BatchNorm2d", "Conv3d": "BatchNorm3d",
             "Linear": "BatchNorm1d"}
_ACTIVATIONS = ("ReLU", "ReLU6", "SiLU", "GELU", "Hardswish", "LeakyReLU")


class Fuse(Plugin):
    name = "fuse"
    summary = ("Fuse operations: fold BatchNorm into the preceding conv, torch.compile (Inductor), or "
               "ONNX Runtime graph optimizations saved as an optimized ONNX file.")
    params_schema = (
        Param("method", "choice", "conv_bn",
              "conv_bn: fold Conv+BatchNorm(+act) pairs into one conv (torch, eval semantics); "
              "torch_compile: compile with Inductor (torch); onnxruntime: ORT graph optimizations (ONNX)",
              choices=METHODS),
        Param("mode", "choice", "default",
              "torch_compile: default (fast compile), reduce-overhead (CUDA graphs on GPU), "
              "max-autotune-no-cudagraphs (slow compile, tuned kernels)", choices=COMPILE_MODES,
              methods=("torch_compile",)),
        Param("freezing", "bool", True,
              "torch_compile: treat the weights as constants (Inductor freezing): folds them and pre-packs "
              "them for oneDNN on CPU, and lowers PT2E int8 graphs to int8 kernels; inference only",
              methods=("torch_compile",)),
        Param("level", "choice", "all",
              "onnxruntime: basic (constant folding, redundant nodes), extended (op fusions), "
              "all (plus layout optimizations; hardware-specific)", choices=LEVELS, methods=("onnxruntime",)),
    )
    accepts = ("torch", "onnx")
    devices = ("cpu", "cuda")

    def check(self, model_format: str, device: str) -> None:
        method = self.params["method"]
        if method in _TORCH_METHODS and model_format != "torch":
            hint = (" (ONNX Runtime's basic level folds Conv+BatchNormalization)" if method == "conv_bn" else "")
            raise PluginError(f"fuse method={method} needs a torch model but gets {model_format}: use "
                              f"method=onnxruntime for ONNX models{hint}, or move fuse before the ONNX export")
        if method == "onnxruntime" and model_format != "onnx":
            raise PluginError("fuse method=onnxruntime needs an ONNX model but gets torch: add onnx_export "
                              "before it (CLI: --plugin onnx_export --plugin fuse:method=onnxruntime), or use "
                              "method=conv_bn / torch_compile for torch models")

    def apply(self, model: Any, context: PluginContext) -> tuple[Any, PluginReport]:
        method = self.params["method"]
        is_onnx = type(model).__name__ == "ModelProto"
        self.check("onnx" if is_onnx else "torch", context.device)
        if not is_onnx:
            import torch
            if isinstance(model, torch.jit.ScriptModule):
                raise PluginError(f"fuse method={method} needs a Python nn.Module, not TorchScript (its modules "
                                  "cannot be replaced, and torch.compile does not take it); load the model from "
                                  "its state_dict + factory, or export it to ONNX and use method=onnxruntime")
        if method == "conv_bn":
            return self._conv_bn(model, context)
        if method == "torch_compile":
            return self._torch_compile(model, context)
        return self._onnxruntime(model, context)

    # -- conv + bn folding ------------------------------------------------------------------------
    def _conv_bn(self, model: Any, context: PluginContext) -> tuple[Any, PluginReport]:
        import copy

        from torch import nn
        from torch.nn.utils.fusion import fuse_conv_bn_eval, fuse_linear_bn_eval

        from workbench.plugin_api import count_parameters, model_bytes

        notes: list[str] = []
        if getattr(model, "training", False):
            notes.append("the model was in training mode: switched to eval() — folding uses the BatchNorm "
                         "running statistics (eval semantics), so batch statistics are no longer used")
        model = _eval(copy.deepcopy(model))
        bytes_before, params_before = model_bytes(model), count_parameters(model)
        context.progress(0.0, "finding Conv+BatchNorm pairs")
        pairs: list[dict[str, Any]] = []
        for parent_name, parent in list(model.named_modules()):
            if not isinstance(parent, nn.Sequential):
                continue
            context.check_cancelled()
            children = list(parent.named_children())
            for i in range(len(children) - 1):
                (first_name, first), (second_name, second) = children[i], children[i + 1]
                want = _FOLDABLE.get(type(first).__name__)
                if want is None or type(second).__name__ != want or not _foldable(first, second):
                    continue
                fold = fuse_linear_bn_eval if isinstance(first, nn.Linear) else fuse_conv_bn_eval
                fused = fold(first, second)
                setattr(parent, first_name, fused)
                setattr(parent, second_name, nn.Identity())
                prefix = f"{parent_name}." if parent_name else ""
                pair = {"conv": prefix + first_name, "bn": prefix + second_name}
                if i + 2 < len(children) and type(children[i + 2][1]).__name__ in _ACTIVATIONS:
                    pair["activation"] = prefix + children[i + 2][0]
                pairs.append(pair)
        skipped = _unfused_batchnorms(model)
        if skipped:
            notes.append(f"{len(skipped)} BatchNorm layer(s) left as they are: not directly after a Conv/Linear "
                         f"in an nn.Sequential ({', '.join(skipped[:5])}{'...' if len(skipped) > 5 else ''})")
        if not pairs:
            notes.append("no Conv+BatchNorm pair found: conv_bn folds only pairs that are adjacent children of "
                         "an nn.Sequential (the order of other modules' children says nothing about data flow)")
        if any("activation" in p for p in pairs):
            notes.append("activations after a folded pair stay separate modules: eager PyTorch has no fused "
                         "conv+activation kernel (torch_compile fuses them)")
        context.progress(1.0, f"folded {len(pairs)} pair(s)")
        with_act = sum(1 for p in pairs if "activation" in p)
        summary = f"folded {len(pairs)} Conv+BatchNorm pair(s)" + (f" ({with_act} followed by an activation)"
                                                                  if with_act else "")
        return model, PluginReport(
            plugin=self.name, summary=summary, params_before=params_before,
            params_after=count_parameters(model), bytes_before=bytes_before, bytes_after=model_bytes(model),
            layers_changed=[p["conv"] for p in pairs], notes=notes,
            extra={"method": "conv_bn", "pairs": pairs, "pairs_fused": len(pairs),
                   "backend": "torch.nn.utils.fusion.fuse_conv_bn_eval"})

    # -- torch.compile ----------------------------------------------------------------------------
    def _torch_compile(self, model: Any, context: PluginContext) -> tuple[Any, PluginReport]:
        import torch

        mode = self.params["mode"]
        notes: list[str] = []
        if getattr(model, "training", False):
            notes.append("the model was in training mode: compiled in eval()")
        model = _eval(model)
        if mode == "reduce-overhead" and device_kind(context.device) != "cuda":
            notes.append("reduce-overhead uses CUDA graphs, which do not apply on CPU: same as default here")
        context.progress(0.0, f"torch.compile (mode={mode}): compiling on the first call")
        from torch._inductor import config as inductor_config
        freezing = bool(self.params["freezing"])
        compiled = torch.compile(model, mode=mode, backend="inductor")
        started = time.perf_counter()
        try:
            # The runtime times under no_grad: compile for that (grad mode is a guard). Freezing is
            # patched around this first compile only (torch.compile(options={"freezing": True}) fails
            # on PT2E int8 graphs in torch 2.13); a later recompile for another shape is not frozen.
            with torch.no_grad(), inductor_config.patch(freezing=freezing):
                compiled(*context.example_inputs)
        except Exception as exc:
            raise PluginError(f"torch.compile (mode={mode}) failed on the first call: {_compile_reason(exc)}. "
                              "Inductor needs a working C++ compiler on CPU (g++/clang, or set CXX) and Triton "
                              "on CUDA; use method=conv_bn or no fuse step") from exc
        compile_seconds = time.perf_counter() - started
        if freezing:
            notes.append("freezing: weights are compile-time constants; changing them later needs a new compile")
        notes.append("compile time is spent here (extra.compile_seconds), not in the timed iterations; "
                     "a new input shape recompiles (batch becomes dynamic after the first change)")
        context.progress(1.0, f"compiled in {compile_seconds:.1f} s")
        from workbench.plugin_api import model_bytes
        size = model_bytes(model)
        return compiled, PluginReport(
            plugin=self.name, summary=f"torch.compile mode={mode} (Inductor): compiled in {compile_seconds:.1f} s",
            bytes_before=size, bytes_after=size, notes=notes,
            extra={"method": "torch_compile", "mode": mode, "compile_seconds": compile_seconds,
                   "freezing": freezing,
                   "backend": "torch.compile(backend='inductor')", "torch": torch.__version__})

    # -- ONNX Runtime graph optimization --------------------------------------------------------
    def _onnxruntime(self, model: Any, context: PluginContext) -> tuple[Any, PluginReport]:
        import onnx
        import onnxruntime as ort

        level_name = self.params["level"]
        level = {"basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
                 "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
                 "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL}[level_name]
        workdir = context.workdir
        workdir.mkdir(parents=True, exist_ok=True)
        target = workdir / f"optimized_{level_name}.onnx"
        notes: list[str] = []
        providers = ["CPUExecutionProvider"]
        if device_kind(context.device) == "cuda":
            if "CUDAExecutionProvider" not in ort.get_available_providers():
                raise PluginError("fuse onnxruntime on cuda needs the CUDA execution provider "
                                  "(pip install onnxruntime-gpu); use --device cpu")
            providers.insert(0, "CUDAExecutionProvider")
        options = ort.SessionOptions()
        options.graph_optimization_level = level
        options.optimized_model_filepath = str(target)
        context.progress(0.0, f"ONNX Runtime graph optimization (level {level_name})")
        try:
            ort.InferenceSession(model.SerializeToString(), options, providers=providers)
        except Exception as exc:
            raise PluginError(f"ONNX Runtime could not optimize the model: {_compile_reason(exc)}") from exc
        if not target.is_file():
            raise PluginError(f"ONNX Runtime did not write the optimized model to {target}")
        optimized = onnx.load(str(target))
        before, after = len(model.graph.node), len(optimized.graph.node)
        if level_name == "all":
            notes.append("level all includes layout optimizations for this machine's CPU/EP "
                         f"({', '.join(providers)}): run the saved graph on the same kind of hardware")
        notes.append("ONNX Runtime already applies level 'all' when it loads any model, so this step saves the "
                     "optimization at load time and gives you the optimized graph; do not expect a latency "
                     "gain over an unoptimized ONNX run measured in Workbench")
        context.progress(1.0, f"{before} -> {after} nodes")
        return optimized, PluginReport(
            plugin=self.name, summary=f"ONNX Runtime level {level_name}: {before} -> {after} nodes",
            bytes_before=model.ByteSize(), bytes_after=optimized.ByteSize(), notes=notes,
            extra={"method": "onnxruntime", "level": level_name, "nodes_before": before, "nodes_after": after,
                   "ops_before": _op_counts(model), "ops_after": _op_counts(optimized),
                   "artifact": str(target), "providers": providers})


def _eval(model: Any) -> Any:
    try:
        return model.eval()
    except NotImplementedError:   # torch.export / PT2E graphs refuse eval(): already inference graphs
        return model


def _foldable(first: Any, bn: Any) -> bool:
    """A BatchNorm can be folded when it tracks running stats over the conv's output channels."""
    if not getattr(bn, "track_running_stats", True) or bn.running_mean is None:
        return False
    out = getattr(first, "out_channels", None) or getattr(first, "out_features", None)
    return out == bn.num_features and not getattr(first, "transposed", False)


def _unfused_batchnorms(model: Any) -> list[str]:
    return [name for name, module in model.named_modules() if type(module).__name__.startswith("BatchNorm")]


def _op_counts(proto: Any) -> dict[str, int]:
    counts: dict[str, int] = {}
    for node in proto.graph.node:
        counts[node.op_type] = counts.get(node.op_type, 0) + 1
    return dict(sorted(counts.items()))


def _compile_reason(exc: Exception) -> str:
    text = str(exc).strip()
    lines = [line for line in text.splitlines() if line.strip()]
    # Inductor wraps the real cause; its first lines name it (e.g. "CppCompileError: C++ compile error").
    head = " ".join(lines[:2])[:400] if lines else ""
    return f"{type(exc).__name__}: {head}" if head else type(exc).__name__
