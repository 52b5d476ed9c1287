"""``fuse``: fewer, bigger kernels — conv+bn folding, ``torch.compile``, the attention kernel of a
Hugging Face model, ONNX Runtime graph optimization."""
from __future__ import annotations

import time
from typing import Any

from workbench.plugin_api import Param, Plugin, PluginContext, PluginError, PluginReport, device_kind

METHODS = ("conv_bn", "torch_compile", "attention", "onnxruntime")
COMPILE_MODES = ("default", "reduce-overhead", "max-autotune-no-cudagraphs")
LEVELS = ("basic", "extended", "all")
ATTENTION = ("sdpa", "eager")
_TORCH_METHODS = ("torch_compile", "attention")
# Measured: ResNet-18, CPU, 1 thread: torch_compile 0.74x (slower). Said in the form and the report.
COMPILE_CPU_NOTE = ("on CPU, and at 1 thread most of all, torch.compile often does not pay off (ResNet-18 ran "
                    "0.74x at 1 thread): oneDNN already runs the big ops, and Inductor's fused elementwise "
                    "kernels gain little; measure before keeping it")

_NOT_HF = ("fuse method=attention switches a Hugging Face transformers model's attention implementation, but "
           "this is a {kind}: open the model's HF folder, or use method=torch_compile")

_TORCHSCRIPT = ("fuse method={method} needs a Python nn.Module, not TorchScript (its modules cannot be replaced, "
                "and torch.compile does not take it); load the model from its state_dict + factory or .pt2, or "
                "export it to ONNX and use method=conv_bn / onnxruntime on the ONNX model")


class Fuse(Plugin):
    name = "fuse"
    summary = ("Fuse operations: fold BatchNorm into the preceding conv (torch or ONNX), torch.compile "
               "(Inductor), switch a Hugging Face model's attention kernel (sdpa/eager), or ONNX Runtime graph "
               "optimizations saved as an optimized ONNX file.")
    params_schema = (
        Param("method", "choice", "conv_bn",
              "conv_bn: fold each BatchNorm into the Conv/Linear that feeds it, found in the model's graph "
              "(torch.fx, torch.export, a .pt2 program or an ONNX graph; eval semantics); "
              "torch_compile: compile with Inductor (torch; on CPU at 1 thread it is often slower); "
              "attention: a Hugging Face model's attention implementation (sdpa or eager); "
              "onnxruntime: ORT graph optimizations (ONNX)",
              choices=METHODS),
        Param("mode", "choice", "default",
              "torch_compile: default (fast compile), reduce-overhead (CUDA graphs on GPU), "
              "max-autotune-no-cudagraphs (slow compile, tuned kernels). On CPU at 1 thread compile often "
              "does not pay off (ResNet-18: 0.74x)", choices=COMPILE_MODES,
              methods=("torch_compile",)),
        Param("freezing", "bool", True,
              "torch_compile: treat the weights as constants (Inductor freezing): folds them and pre-packs "
              "them for oneDNN on CPU, and lowers PT2E int8 graphs to int8 kernels; inference only",
              methods=("torch_compile",)),
        Param("level", "choice", "all",
              "onnxruntime: basic (constant folding, redundant nodes), extended (op fusions), "
              "all (plus layout optimizations; hardware-specific)", choices=LEVELS, methods=("onnxruntime",)),
        Param("implementation", "choice", "sdpa",
              "attention: sdpa (torch's scaled_dot_product_attention: fused kernels) or eager (the model's "
              "own matmul+softmax; slower, but returns attention weights)", choices=ATTENTION,
              methods=("attention",)),
    )
    accepts = ("torch", "onnx")
    devices = ("cpu", "cuda")
    method_caveats = {"torch_compile": {"cpu": COMPILE_CPU_NOTE}}

    def check(self, model_format: str, device: str) -> None:
        method = self.params["method"]
        if method in _TORCH_METHODS and model_format != "torch":
            raise PluginError(f"fuse method={method} needs a torch model but gets {model_format}: use "
                              "method=onnxruntime or conv_bn for ONNX models, or move fuse before the ONNX export")
        if method == "onnxruntime" and model_format != "onnx":
            raise PluginError("fuse method=onnxruntime needs an ONNX model but gets torch: add onnx_export "
                              "before it (CLI: --plugin onnx_export --plugin fuse:method=onnxruntime), or use "
                              "method=conv_bn / torch_compile for torch models")

    def check_model(self, model: Any, model_format: str) -> None:
        """Refuse up front a model this step cannot touch at all: no BatchNorm for conv_bn, not a
        Hugging Face model (or one already on that attention) for attention. A model whose BatchNorms
        turn out not to be foldable is known only from its graph: ``apply`` reports "no change"."""
        method = self.params["method"]
        if model_format == "torch" and _is_torchscript(model):
            raise PluginError(_TORCHSCRIPT.format(method=method))
        if method == "conv_bn":
            if model_format == "onnx" or type(model).__name__ == "ModelProto":
                from ._fold_bn_onnx import count_batchnorm_nodes
                if count_batchnorm_nodes(model) == 0:
                    raise PluginError("fuse conv_bn has nothing to fold: the ONNX graph has no BatchNormalization "
                                      "node (Workbench's ONNX export already folds them into the convolutions)")
                return
            from ._fold_bn import count_batchnorms
            if count_batchnorms(model) == 0:
                raise PluginError("fuse conv_bn has nothing to fold: the model has no BatchNorm layer (it looked for "
                                  "BatchNorm1d/2d/3d after a Conv/Linear); try method=torch_compile")
        elif method == "attention" and model_format == "torch":
            hf = _hf_model(model)
            if hf is None:
                raise PluginError(_NOT_HF.format(kind=type(model).__name__))
            if getattr(hf.config, "_attn_implementation", None) == self.params["implementation"]:
                raise PluginError(f"fuse method=attention has nothing to change: the model already uses "
                                  f"{self.params['implementation']} attention")

    def apply(self, model: Any, context: PluginContext) -> tuple[Any, PluginReport]:
        method = self.params["method"]
        is_onnx = type(model).__name__ == "ModelProto"
        self.check("onnx" if is_onnx else "torch", context.device)
        if not is_onnx and _is_torchscript(model):
            raise PluginError(_TORCHSCRIPT.format(method=method))
        if method == "conv_bn":
            return self._conv_bn_onnx(model, context) if is_onnx else self._conv_bn(model, context)
        if method == "torch_compile":
            return self._torch_compile(model, context)
        if method == "attention":
            return self._attention(model, context)
        return self._onnxruntime(model, context)

    # -- conv + bn folding ------------------------------------------------------------------------
    def _conv_bn(self, model: Any, context: PluginContext) -> tuple[Any, PluginReport]:
        import copy

        from workbench.plugin_api import count_parameters, model_bytes

        from ._fold_bn import count_batchnorms, fold_exported_graph, fold_module, is_exported_graph

        notes: list[str] = []
        exported = is_exported_graph(model)
        if getattr(model, "training", False) and not exported:
            notes.append("the model was in training mode: switched to eval() — folding uses the BatchNorm "
                         "running statistics (eval semantics), so batch statistics are no longer used")
        model = _eval(copy.deepcopy(model))
        bytes_before, params_before = model_bytes(model), count_parameters(model)
        context.progress(0.0, "reading Conv+BatchNorm pairs from the model's graph")
        context.check_cancelled()
        fold = fold_exported_graph(model) if exported else fold_module(model, context.example_inputs)
        model = fold.model
        before, left = fold.batchnorms_before, count_batchnorms(model)
        pairs = fold.pairs
        if fold.left:
            shown = "; ".join(f"{name}: {why}" for name, why in list(fold.left.items())[:4])
            notes.append(f"{len(fold.left)} BatchNorm layer(s) left as they are ({shown}"
                         f"{'; ...' if len(fold.left) > 4 else ''})")
        if any("activation" in p for p in pairs):
            notes.append("activations after a folded pair stay separate ops: eager PyTorch has no fused "
                         "conv+activation kernel (torch_compile fuses them)")
        if pairs and _hf_model(model) is not None:
            model.hf_save_blocker = ("fuse conv_bn removed BatchNorm layers that the model's config still "
                                     "declares, and gave its convolutions biases: the result is no longer a "
                                     "Hugging Face model its config can rebuild; save it as .pt2 or .onnx")
            notes.append("saved as a Hugging Face folder the folded model would not reload (its config still "
                         "declares the BatchNorm layers): save it as .pt2 or .onnx")
        context.progress(1.0, f"folded {len(pairs)} pair(s)")
        if pairs:
            with_act = sum(1 for p in pairs if "activation" in p)
            summary = (f"folded {len(pairs)} Conv+BatchNorm pair(s) (read from the {fold.graph}; "
                       f"BatchNorm {before} -> {left})")
            summary += f", {with_act} followed by an activation" if with_act else ""
        elif before == 0:
            summary = "no change: the model has no BatchNorm layer to fold"
        else:
            first = next(iter(fold.left.values()), "no Conv/Linear feeds it alone")
            summary = (f"no change: none of the {before} BatchNorm layer(s) can be folded into a Conv/Linear "
                       f"({first})")
        return model, PluginReport(
            plugin=self.name, summary=summary, params_before=params_before,
            params_after=count_parameters(model), bytes_before=bytes_before, bytes_after=model_bytes(model),
            layers_changed=[p["conv"] for p in pairs], notes=notes, changed=bool(pairs),
            extra={"method": "conv_bn", "graph": fold.graph, "pairs": pairs, "pairs_fused": len(pairs),
                   "batchnorms_before": before, "batchnorms_after": left, "left": fold.left,
                   "backend": "torch.nn.utils.fusion (weights folded where the graph shows a pair)"})

    def _conv_bn_onnx(self, model: Any, context: PluginContext) -> tuple[Any, PluginReport]:
        from ._fold_bn_onnx import count_batchnorm_nodes, fold_onnx

        context.progress(0.0, "folding BatchNormalization nodes into their Conv")
        before = count_batchnorm_nodes(model)
        folded, pairs, left = fold_onnx(model)
        after = count_batchnorm_nodes(folded)
        notes = []
        if left:
            shown = "; ".join(f"{name}: {why}" for name, why in list(left.items())[:4])
            notes.append(f"{len(left)} BatchNormalization node(s) left as they are ({shown}"
                         f"{'; ...' if len(left) > 4 else ''})")
        if pairs:
            summary = (f"folded {len(pairs)} Conv+BatchNormalization pair(s) in the ONNX graph "
                       f"(BatchNormalization {before} -> {after})")
        elif before == 0:
            summary = ("no change: the ONNX graph has no BatchNormalization node (Workbench's ONNX export "
                       "already folds them into the convolutions)")
        else:
            summary = (f"no change: none of the {before} BatchNormalization node(s) follows a Conv it can be "
                       f"folded into ({next(iter(left.values()))})")
        context.progress(1.0, f"folded {len(pairs)} pair(s)")
        return folded if pairs else model, PluginReport(
            plugin=self.name, summary=summary, bytes_before=model.ByteSize(), bytes_after=folded.ByteSize(),
            layers_changed=[p["conv"] for p in pairs], notes=notes, changed=bool(pairs),
            extra={"method": "conv_bn", "graph": "ONNX graph", "pairs": pairs, "pairs_fused": len(pairs),
                   "batchnorms_before": before, "batchnorms_after": after, "left": left,
                   "nodes_before": len(model.graph.node), "nodes_after": len(folded.graph.node)})

    # -- attention implementation -------------------------------------------------------------------
    def _attention(self, model: Any, context: PluginContext) -> tuple[Any, PluginReport]:
        wanted = self.params["implementation"]
        hf = _hf_model(model)
        if hf is None:
            raise PluginError(_NOT_HF.format(kind=type(model).__name__))
        current = getattr(hf.config, "_attn_implementation", None)
        if current == wanted:
            return model, PluginReport(
                plugin=self.name, summary=f"no change: the attention implementation is already {wanted}",
                changed=False, extra={"method": "attention", "before": current, "after": current})
        context.progress(0.0, f"attention implementation {current} -> {wanted}")
        try:
            hf.set_attn_implementation(wanted)
        except Exception as exc:   # transformers refuses an implementation the architecture lacks
            raise PluginError(f"{type(hf).__name__} cannot use attention implementation {wanted}: "
                              f"{_compile_reason(exc)}") from exc
        after = getattr(hf.config, "_attn_implementation", None)
        if after != wanted:
            raise PluginError(f"{type(hf).__name__} does not support switching its attention implementation "
                              f"at run time (it stays {current}): load it with attn_implementation={wanted} instead")
        context.progress(1.0, f"attention: {after}")
        notes = []
        if wanted == "eager":
            notes.append("eager attention materializes the (seq x seq) attention matrix: slower and more memory "
                         "than sdpa at long sequences; use it to compare, or where sdpa is not available")
        return model, PluginReport(
            plugin=self.name, summary=f"attention implementation {current} -> {after}", changed=True, notes=notes,
            extra={"method": "attention", "before": current, "after": after})

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
        hf = _hf_model(model)
        if hf is not None:
            # In place on the PreTrainedModel: the wrapper keeps ``.model`` a PreTrainedModel (it saves as
            # an HF folder) and generation, which calls ``.model`` directly, runs the compiled forward too.
            hf.compile(mode=mode, backend="inductor")
            compiled = model
            notes.append("the Hugging Face model is compiled in place (.model stays a PreTrainedModel): generation "
                         "uses the compiled forward too, and each new decode length recompiles until the sequence "
                         "dimension turns dynamic")
        else:
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
        if device_kind(context.device) == "cpu":
            notes.append(COMPILE_CPU_NOTE + f" (this run: {torch.get_num_threads()} thread(s))")
        context.progress(1.0, f"compiled in {compile_seconds:.1f} s")
        from workbench.plugin_api import model_bytes
        size = model_bytes(model)
        return compiled, PluginReport(
            plugin=self.name, summary=f"torch.compile mode={mode} (Inductor): compiled in {compile_seconds:.1f} s",
            bytes_before=size, bytes_after=size, notes=notes, changed=True,
            extra={"method": "torch_compile", "mode": mode, "compile_seconds": compile_seconds,
                   "freezing": freezing, "compiled": "the transformers model in place" if hf is not None else
                   "the whole module (torch.compile wrapper)",
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
        changed = _op_counts(model) != _op_counts(optimized)
        return optimized, PluginReport(
            plugin=self.name, summary=("" if changed else "no change: ") +
            f"ONNX Runtime level {level_name}: {before} -> {after} nodes",
            bytes_before=model.ByteSize(), bytes_after=optimized.ByteSize(), notes=notes, changed=changed,
            extra={"method": "onnxruntime", "level": level_name, "nodes_before": before, "nodes_after": after,
                   "ops_before": _op_counts(model), "ops_after": _op_counts(optimized),
                   "artifact": str(target), "providers": providers})


def _eval(model: Any) -> Any:
    try:
        return model.eval()
    except NotImplementedError:   # torch.export / PT2E graphs refuse eval(): already inference graphs
        return model


def _is_torchscript(model: Any) -> bool:
    import torch
    return isinstance(model, torch.jit.ScriptModule)


def _hf_model(model: Any) -> Any:
    """The transformers PreTrainedModel inside an HFForward (or given bare), else None."""
    inner = getattr(model, "model", None)
    for candidate in (inner, model):
        if candidate is not None and hasattr(candidate, "config") and hasattr(candidate, "set_attn_implementation"):
            return candidate
    return None


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
