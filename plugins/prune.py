"""Pruning: unstructured magnitude sparsity (torch.nn.utils.prune) or structured removal (whole
attention heads and MLP channels of a Hugging Face transformer, config updated; channels of any
other model through torch-pruning's dependency graph), with an optional short recovery fine-tune.

Unstructured pruning only zeroes weights: dense kernels still multiply the zeros, so it gives
no speed-up and the same file size; the report says so and measures the real sparsity. It covers
every matmul layer the model really has (``nn.Linear``, GPT-2's ``Conv1D``, convolutions; the linear
and conv weights of a ``.pt2`` program) and says "N of M". Structured pruning removes whole
channels, so the model really gets smaller and faster; the output layer is never pruned. When the
pruned model's outputs moved far from the original's, the report carries a warning.
"""
from __future__ import annotations

from typing import Any

from workbench.plugin_api import Param, Plugin, PluginContext, PluginError, PluginReport, match_patterns, split_patterns

from . import _prune_transformer as HF
from . import _training as T
from ._prune_channels import _human, _ratio, channel_prune, count_flops, prunable_layers, resolve_modules

NO_SPEEDUP_NOTE = (
    "unstructured sparsity gives no speed-up: the weights are still dense tensors and dense "
    "kernels multiply the zeros as well; the file size is unchanged too unless it is compressed "
    "or stored in a sparse format. Use method=structured for a smaller, faster model.")
NO_PYTHON_LAYERS = (
    "prune {method}: {what} has no Python layers to prune ({why}). Load the model as a state_dict + "
    "--factory (or a Hugging Face folder) to prune it, or export it to ONNX and use quantize "
    "(ONNX Runtime int8) instead")


def _is_torchscript(model: Any) -> bool:
    import torch
    return isinstance(model, torch.jit.ScriptModule)


def _is_graph(model: Any) -> bool:
    from ._quant_pt2e import is_exported_graph
    return is_exported_graph(model)


def matmul_layers(model: Any) -> dict[str, Any]:
    """Every layer with a float weight that a matmul or convolution uses: nn.Linear, transformers'
    Conv1D (GPT-2's projections), Conv1d/2d/3d. Name -> module."""
    found = dict(prunable_layers(model))
    for name, module in model.named_modules():
        if HF.is_matmul(module) and name not in found:
            found[name] = module
    return {n: found[n] for n, _ in model.named_modules() if n in found}


def graph_weights(graph_module: Any) -> dict[str, Any]:
    """The weights of a .pt2 program's linear and conv ops: parameter name -> Parameter."""
    params = dict(graph_module.named_parameters())
    found = {}
    for node in graph_module.graph.nodes:
        op = str(getattr(node.target, "__name__", node.target)).split(".")[0]
        if node.op == "call_function" and op in ("linear", "conv1d", "conv2d", "conv3d", "convolution") \
                and len(node.args) > 1 and getattr(node.args[1], "op", None) == "get_attr":
            name = node.args[1].target
            if name in params and params[name].is_floating_point():
                found[name] = params[name]
    return found


class Prune(Plugin):
    name = "prune"
    summary = ("Prune weights: unstructured magnitude sparsity (no speed-up on dense kernels) or "
               "structured removal of attention heads, MLP and conv channels (smaller, faster model).")
    params_schema = (
        Param("method", "choice", "structured",
              "structured: remove whole heads/channels (real speed-up); unstructured: zero individual "
              "weights (sparsity only, no speed-up on dense kernels)",
              choices=("structured", "unstructured")),
        Param("amount", "float", 0.5,
              "fraction of heads/channels (structured) or weights (unstructured) to remove, strictly "
              "between 0 and 1", minimum=0.0, maximum=1.0, exclusive_min=True, exclusive_max=True),
        Param("importance", "choice", "l1",
              "structured only: channel importance, L1 or L2 norm of the channel's weights",
              choices=("l1", "l2"), methods=("structured",)),
        Param("scope", "choice", "layer",
              "layer: the same amount in every layer; global: rank weights/channels across layers "
              "(not for Hugging Face transformers: their config has one head count for all layers)",
              choices=("layer", "global")),
        Param("round_to", "int", 1,
              "structured only: keep channel counts a multiple of this (8 or 16 suit SIMD kernels; "
              "transformer MLPs: 8 unless set)",
              minimum=1, methods=("structured",)),
        Param("skip", "str", "",
              "modules left untouched: fnmatch patterns (* ?) separated by ';' or spaces, e.g. "
              "*.layers.0.* or model.lm_head; a Hugging Face transformer skips all attention blocks "
              "(*.self_attn) or all MLPs (*.mlp), never some"),
        Param("ignore", "str", "",
              "module names to leave unpruned, separated by ';' (e.g. features.0.0;features.1.0); "
              "the output layer is always kept"),
        Param("finetune", "choice", "auto",
              "recovery fine-tune after pruning: auto = when training data exists (x_train/y_train; for "
              "language models the token windows of the text's train part), on = require it, off = never "
              "(pruning without it can ruin a model: the report warns and the verdict shows the cost)",
              choices=("auto", "on", "off")),
        Param("finetune_epochs", "int", 3, "recovery fine-tune epochs (0 = none)", minimum=0),
        Param("lr", "float", 1e-3, "fine-tune learning rate (Adam; language models use 1e-4 unless set)",
              minimum=0.0, exclusive_min=True),
        Param("batch_size", "int", 64, "fine-tune batch size (language models use 8 unless set)", minimum=1),
    )
    accepts = ("torch",)
    devices = ("cpu", "cuda")

    def __init__(self, **params: Any) -> None:
        super().__init__(**params)
        self._given = set(params)

    @classmethod
    def resolve_params(cls, given: dict[str, Any]) -> dict[str, Any]:
        try:
            return super().resolve_params(given)
        except PluginError as exc:
            if str(exc).startswith(f"{cls.name}:amount:"):
                raise PluginError(f"{exc}: amount is the fraction to remove; 0 would prune nothing "
                                  "and 1 would remove everything, use e.g. amount=0.5") from None
            raise

    # -- refusals before anything runs ---------------------------------------------------------
    def check_model(self, model: Any, model_format: str) -> None:
        self._skipped(model)
        method = self.params["method"]
        if _is_torchscript(model):
            raise PluginError(NO_PYTHON_LAYERS.format(method=method, what="a TorchScript model", why=(
                "its layers are compiled code, not nn.Linear/Conv modules whose weights could be replaced")))
        if _is_graph(model):
            if method == "structured":
                raise PluginError(NO_PYTHON_LAYERS.format(method=method, what="a .pt2 program", why=(
                    "it is a flat graph of aten ops, so channels cannot be removed from its layers")))
            if not graph_weights(model):
                raise PluginError("prune unstructured found no linear or conv weight in this .pt2 program")
            return
        if method == "structured" and HF.pretrained_of(model) is not None:
            if self.params["scope"] == "global":
                raise PluginError("prune: scope=global would give the layers different head and channel counts, "
                                  "which a Hugging Face config cannot record (one num_attention_heads and one "
                                  "intermediate_size for all layers); use scope=layer")
            HF.prepare(model, self.params["amount"], self._round_to(), self._skipped(model))
        elif method == "unstructured" and not matmul_layers(model):
            raise PluginError("prune: the model has no Linear, Conv1D or Conv layer to prune")

    def _round_to(self) -> int:
        """Transformer MLP widths stay a multiple of 8 unless the user chose (SIMD-friendly GEMMs)."""
        return self.params["round_to"] if "round_to" in self._given else 8

    def _skipped(self, model: Any) -> set[str]:
        patterns = split_patterns(self.params.get("skip"))
        if not patterns:
            return set()
        return match_patterns([n for n, _ in model.named_modules()], patterns, "prune:skip")

    # -- run -------------------------------------------------------------------------------------
    def apply(self, model: Any, context: PluginContext) -> tuple[Any, PluginReport]:
        from workbench.plugin_api import count_parameters, model_bytes

        p = self.params
        self.check_model(model, "torch")
        self._epochs, skipped_note = self._finetune_epochs(model, context)
        context.progress(0.0, f"{p['method']} pruning")
        with T.eval_mode(model):
            expected = T.output_shape(model, context.example_inputs)
            acc_before = T.eval_accuracy(model, context)
            params_before = count_parameters(model)
            bytes_before = model_bytes(model)
            flops_before = count_flops(model, context.example_inputs)

        pruned = T.copy_model(model)
        skip = self._skipped(pruned) | {n for n in split_patterns(p["ignore"].replace(",", ";"))}
        resolve_modules(pruned, p["ignore"], "prune")        # unknown ignore= names are an error
        if p["method"] == "unstructured":
            report = self._unstructured(pruned, context, skip, model)
        elif HF.pretrained_of(pruned) is not None:
            report = self._transformer(pruned, context, skip, model)
        else:
            report = self._structured(pruned, context, skip)
        if skipped_note:
            report.notes.append(skipped_note)
        T.check_runs(pruned, context.example_inputs, expected, "prune")
        pruned = T.to_eval(pruned)

        report.params_before, report.params_after = params_before, count_parameters(pruned)
        report.bytes_before, report.bytes_after = bytes_before, model_bytes(pruned)
        report.flops_before = flops_before
        report.flops_after = count_flops(pruned, context.example_inputs)
        acc_after = T.eval_accuracy(pruned, context)
        if acc_before is not None:
            report.extra["accuracy_before"] = acc_before
            report.extra["accuracy_after"] = acc_after
            report.summary += f"; accuracy {acc_before:.3f}→{acc_after:.3f}"
        if p["method"] == "structured":
            what = "heads/channels" if "heads_before" in report.extra else "channels"
            report.summary = (f"structured {p['importance'].upper()} {p['amount']:.0%} {what}: params "
                              f"{_human(params_before)}→{_human(report.params_after)} "
                              f"({_ratio(params_before, report.params_after)} fewer), FLOPs "
                              f"{_human(flops_before)}→{_human(report.flops_after)}" + report.summary)
        self._fidelity(model, pruned, context, report)
        report.changed = True
        context.progress(1.0, "pruned")
        return pruned, report

    def _fidelity(self, original: Any, pruned: Any, context: PluginContext, report: PluginReport) -> None:
        """How far the outputs moved, on held-out inputs; a warning when the damage is large: accuracy
        down 10 points or more where labels exist, else next-token agreement under 50 % for a causal LM,
        else a mean output cosine under 0.9."""
        drift = T.output_drift(original, pruned, context)
        report.extra.update(drift)
        before, after = report.extra.get("accuracy_before"), report.extra.get("accuracy_after")
        if before is not None and after is not None:
            bad, figure = before - after >= 0.1, f"accuracy {before:.3f}→{after:.3f} on x_test"
        elif "next_token_agreement" in drift:
            bad = drift["next_token_agreement"] < 0.5
            figure = f"next-token agreement {drift['next_token_agreement']:.0%} on {drift['probe']}"
        elif "output_cosine" in drift:
            bad = drift["output_cosine"] < 0.9
            figure = f"output cosine {drift['output_cosine']:.3f} on {drift['probe']}"
        else:
            return
        report.extra["fidelity_warning"] = bad
        if not bad:
            return
        tuned = report.extra.get("finetune_epochs")
        after_text = f" even after {tuned} fine-tune epoch(s)" if tuned else \
            " and there was no fine-tune to recover (no training data, or finetune=off)"
        report.notes.insert(0, f"warning: pruning moved the outputs far from the original's ({figure}){after_text}: "
                               "expect a large fidelity loss; lower amount or fine-tune on data (--text FILE for "
                               "language models, --data for others)")

    # -- unstructured ------------------------------------------------------------------------
    def _unstructured(self, model: Any, context: PluginContext, skip: set[str], original: Any) -> PluginReport:
        import torch
        from torch.nn.utils import prune

        from ._quant_layers import tied_weights

        p = self.params
        if _is_graph(model):
            return self._unstructured_graph(model, skip)
        layers = matmul_layers(model)
        skipped = {n: "skip pattern" for n in layers if n in skip or any(n.startswith(s + ".") for s in skip)}
        for name, others in tied_weights(model, {n: "" for n in layers if n not in skipped}).items():
            skipped[name] = f"weight tied to {others[0]}: left whole so it stays tied"
        targets = [(n, m) for n, m in layers.items() if n not in skipped]
        noun = "conv/matmul layers" if any(not HF.is_matmul(m) for m in layers.values()) else "matmul layers"
        if not targets:
            raise PluginError(f"prune: every one of the {len(layers)} {noun} is skipped; nothing would change")
        if p["scope"] == "global":
            prune.global_unstructured([(m, "weight") for _, m in targets],
                                      pruning_method=prune.L1Unstructured, amount=p["amount"])
        else:
            for _, m in targets:
                prune.l1_unstructured(m, "weight", amount=p["amount"])
        context.progress(0.3, "weights masked")
        extra: dict[str, Any] = {}
        summary_tail = ""
        try:
            if self._epochs > 0:
                # Masks stay active while fine-tuning, so the pruned weights stay zero.
                result = self._finetune(model, original, context)
                extra.update(finetune_epochs=result.epochs, finetune_loss_curve=result.epoch_losses)
                summary_tail = f", fine-tuned {result.epochs} epoch(s)"
        finally:
            for _, m in targets:
                prune.remove(m, "weight")               # make it permanent: plain weight tensors
        zeros = total = 0
        lines, per_layer = [], {}
        with torch.no_grad():
            for name, m in targets:
                z, n = int((m.weight == 0).sum().item()), m.weight.numel()
                zeros, total = zeros + z, total + n
                per_layer[name] = z / n
                lines.append(f"{name}: {z / n:.1%} of {n} weights zero")
        sparsity = zeros / total
        extra.update(pruned_weights=total, zero_weights=zeros, layer_sparsity=per_layer,
                     layers_pruned=len(targets), layers_total=len(layers), layers_skipped=skipped,
                     nonzero_params=sum(int((q != 0).sum().item()) for q in model.parameters()))
        notes = [NO_SPEEDUP_NOTE] + [f"{n} kept: {why}" for n, why in list(skipped.items())[:5]
                                     if why != "skip pattern"]
        return PluginReport(
            plugin=self.name,
            summary=(f"unstructured {p['scope']} magnitude: {len(targets)} of {len(layers)} {noun} pruned, "
                     f"{sparsity:.1%} of their weights zero (no speed-up on dense kernels)" + summary_tail),
            sparsity=sparsity, layers_changed=lines, notes=notes, extra=extra)

    def _unstructured_graph(self, graph_module: Any, skip: set[str]) -> PluginReport:
        """A .pt2 program: its linear/conv weights zeroed in place by magnitude (no masks to keep)."""
        import torch

        p = self.params
        weights = graph_weights(graph_module)
        targets = {n: w for n, w in weights.items() if n.rpartition(".")[0] not in skip}
        if not targets:
            raise PluginError(f"prune: every one of the {len(weights)} weights is skipped; nothing would change")
        with torch.no_grad():
            if p["scope"] == "global":
                every = torch.cat([w.detach().abs().flatten() for w in targets.values()])
                cut = every.kthvalue(max(1, int(round(p["amount"] * every.numel())))).values
                for w in targets.values():
                    w.mul_((w.abs() > cut).to(w.dtype))
            else:
                for w in targets.values():
                    k = int(round(p["amount"] * w.numel()))
                    if k:
                        cut = w.abs().flatten().kthvalue(k).values
                        w.mul_((w.abs() > cut).to(w.dtype))
        zeros = sum(int((w == 0).sum()) for w in targets.values())
        total = sum(w.numel() for w in targets.values())
        notes = [NO_SPEEDUP_NOTE]
        if self._epochs:
            notes.append("no recovery fine-tune: a .pt2 program cannot be trained here")
        return PluginReport(
            plugin=self.name, sparsity=zeros / total, notes=notes,
            summary=(f"unstructured {p['scope']} magnitude: {len(targets)} of {len(weights)} linear/conv weights "
                     f"of the .pt2 program pruned, {zeros / total:.1%} zero (no speed-up on dense kernels)"),
            layers_changed=[f"{n}: {int((w == 0).sum()) / w.numel():.1%} of {w.numel()} weights zero"
                            for n, w in targets.items()],
            extra={"layers_pruned": len(targets), "layers_total": len(weights), "zero_weights": zeros,
                   "pruned_weights": total})

    # -- fine-tune -----------------------------------------------------------------------------
    def _finetune_epochs(self, model: Any, context: PluginContext) -> tuple[int, str | None]:
        """How many recovery epochs to run, and a note when 'auto' had to skip them."""
        p = self.params
        if p["finetune"] == "off" or p["finetune_epochs"] == 0:
            return 0, None
        tokens = T.is_token_model(model, context.example_inputs)
        if _is_graph(model) and p["finetune"] == "on":
            raise PluginError("prune: finetune=on cannot train a .pt2 program; set finetune=off")
        if T.has_split(context.data, "train", labels=not tokens):
            return p["finetune_epochs"], None
        if tokens:
            need = ("training text (the token windows of --text FILE, or the bundled corpus for a model with "
                    "a tokenizer)")
        else:
            need = f"labelled training data: {T.DATA_HINT}"
        if p["finetune"] == "on":
            raise PluginError(f"prune: finetune=on needs {need}, or set finetune=off")
        return 0, (f"no {'training text' if tokens else 'labelled training data (x_train/y_train)'}, so no "
                   "recovery fine-tune: accuracy may collapse; give " + ("--text FILE" if tokens else "--data")
                   + " to fine-tune")

    def _finetune(self, model: Any, original: Any, context: PluginContext) -> Any:
        p = self.params
        if not T.is_token_model(model, context.example_inputs):
            return T.finetune(model, context, epochs=self._epochs, lr=p["lr"], batch_size=p["batch_size"],
                              what="prune fine-tune", span=(0.3, 0.95))
        lr = p["lr"] if "lr" in self._given else 1e-4
        batch = p["batch_size"] if "batch_size" in self._given else 8
        return T.token_finetune(model, original, context, epochs=self._epochs, lr=lr, batch_size=batch,
                                what="prune fine-tune", span=(0.3, 0.95))

    # -- structured --------------------------------------------------------------------------
    def _structured(self, model: Any, context: PluginContext, skip: set[str]) -> PluginReport:
        p = self.params
        modules = dict(model.named_modules())
        ignored = [modules[n] for n in sorted(skip) if n in modules]
        layers, caught = channel_prune(
            model, context.example_inputs, p["amount"], p=1 if p["importance"] == "l1" else 2,
            global_pruning=p["scope"] == "global", round_to=p["round_to"], ignored=ignored)
        if not layers:
            raise PluginError("prune: torch-pruning found no channel it could remove (every layer is "
                              "an output layer or skipped); try method=unstructured")
        context.progress(0.3, f"{len(layers)} layers pruned")
        notes = [f"torch-pruning: {msg}" for msg in caught[:5]]
        return self._after_structured(model, None, context, layers, notes, {})

    def _transformer(self, model: Any, context: PluginContext, skip: set[str], original: Any) -> PluginReport:
        p = self.params
        changed, notes, figures = HF.prune_transformer(
            model, p["amount"], p=1 if p["importance"] == "l1" else 2, round_to=self._round_to(), skip=skip)
        context.progress(0.3, "; ".join(changed))
        return self._after_structured(model, original, context, changed, notes, dict(figures))

    def _after_structured(self, model: Any, original: Any, context: PluginContext, layers: list[str],
                          notes: list[str], extra: dict) -> PluginReport:
        tail = ""
        if self._epochs > 0:
            result = self._finetune(model, original, context)
            extra.update(finetune_epochs=result.epochs, finetune_loss_curve=result.epoch_losses)
            tail = f"; fine-tuned {result.epochs} epoch(s)"
        if "heads_before" in extra:
            heads = f"; heads {extra['heads_before']}→{extra['heads_after']}" \
                if extra["heads_before"] != extra["heads_after"] else "; heads kept"
            width = f"; MLP {extra['mlp_width_before']}→{extra['mlp_width_after']}" \
                if extra["mlp_width_before"] != extra["mlp_width_after"] else ""
            tail = heads + width + tail
        return PluginReport(plugin=self.name, summary=tail, layers_changed=layers, notes=notes, extra=extra)
