"""Knowledge distillation: train a smaller student to match the (frozen) teacher.

Students: ``width`` (the teacher with a fraction of its channels removed by torch-pruning,
keeping the surviving weights or re-initialised), ``depth`` (the teacher with only the first N
blocks of its largest stack of identical blocks) or ``factory`` (any ``package.module:callable``
returning an ``nn.Module``); ``auto`` (the default) is depth for a Hugging Face transformer, width
otherwise. Loss: ``(1 - alpha)·KL(teacher_T ‖ student_T)·T² + alpha·CE(student, y)`` (pure KL when
there are no labels), on ``x_train`` or, with ``synthetic=true``, seeded Gaussian inputs (the
report is then flagged data-free).

Hugging Face transformers: the depth student is the teacher with layers removed evenly (every
other layer by default), the width student has fewer heads and MLP channels (``_prune_transformer``);
either way its config is updated so it saves as an HF folder. A language model is distilled on the
token windows of the text's train part (``context.data["x_train"]``, int64 (N, seq), with
``attention_mask_train``): per-token KL on the logits, plus ``alpha`` × the next-token loss for a
causal LM; an embedding model matches the teacher's embeddings by cosine (a softmax over embedding
features means nothing). Data-free distillation of a model that takes token ids is refused: random
ids are not language, and a student trained on them is garbage on text.
"""
from __future__ import annotations

import importlib
from typing import Any

from workbench.plugin_api import Param, Plugin, PluginContext, PluginError, PluginReport

from . import _prune_transformer as HF
from . import _training as T
from ._prune_channels import _human, _ratio, channel_prune, count_flops

NO_DATA_MESSAGE = (
    "distillation needs training data: pass --data file.npz with x_train[, y_train], or set "
    "synthetic=true to distill on seeded random inputs (the report will be flagged data-free)")
DATA_FREE_NOTE = (
    "data-free: the student was trained on seeded Gaussian noise shaped like the inputs, not on "
    "real data; it matches the teacher on noise, its accuracy on real inputs may be much lower")
NO_TEXT_MESSAGE = (
    "distillation of a text model needs training text: give --text FILE (a model folder with a "
    "tokenizer uses the bundled corpus by default); without a tokenizer there is no text to train on")
DATA_FREE_TOKENS = (
    "distill: data-free distillation (synthetic=true) of a model that takes token ids is refused: random "
    "ids are not language, so the student would learn to copy the teacher on noise and be garbage on real "
    "text (a BERT distilled this way ended at cosine -0.99); give training text with --text FILE")
CACHE_LIMIT = 64_000_000          # floats of teacher outputs kept in memory (256 MB)
_DEPTH_ATTRS = ("depth", "num_layers", "n_layers", "num_blocks", "n_blocks")


def _takes_text(model: Any) -> bool:
    """A Hugging Face text model (``HFForward``; ``HFImageForward`` reads pixels)."""
    return isinstance(getattr(model, "task", None), str) and hasattr(model, "model") \
        and type(model).__name__ != "HFImageForward"


# ---------------------------------------------------------------------------------------------
# Students
# ---------------------------------------------------------------------------------------------
def parse_factory(spec: str) -> tuple[str, str]:
    """``"package.module:callable"`` -> (module, attribute path); PluginError when malformed."""
    text = str(spec or "").strip()
    module, sep, attr = text.partition(":")
    if not text:
        raise PluginError("distill: student=factory needs factory=package.module:callable "
                          "(a callable returning the student nn.Module)")
    if not sep or not module.strip() or not attr.strip() or ":" in attr:
        raise PluginError(f"distill: factory {text!r} is not of the form package.module:callable")
    return module.strip(), attr.strip()


def load_factory(spec: str) -> Any:
    """Import the callable named by ``spec``; every failure is a PluginError naming the string."""
    module_name, attr = parse_factory(spec)
    try:
        obj: Any = importlib.import_module(module_name)
    except Exception as exc:
        raise PluginError(f"distill: factory {spec!r}: cannot import module {module_name!r} "
                          f"({type(exc).__name__}: {exc})") from exc
    for part in attr.split("."):
        if not hasattr(obj, part):
            raise PluginError(f"distill: factory {spec!r}: {module_name!r} has no attribute {attr!r}")
        obj = getattr(obj, part)
    if not callable(obj):
        raise PluginError(f"distill: factory {spec!r} is not callable")
    return obj


def factory_student(spec: str) -> Any:
    from torch import nn

    fn = load_factory(spec)
    try:
        student = fn()
    except Exception as exc:
        raise PluginError(f"distill: factory {spec!r} failed when called with no arguments "
                          f"({type(exc).__name__}: {exc})") from exc
    if not isinstance(student, nn.Module):
        raise PluginError(f"distill: factory {spec!r} returned {type(student).__name__}, not a torch nn.Module")
    return student


def _signature(module: Any) -> tuple:
    return (type(module),
            tuple((n, tuple(p.shape)) for n, p in module.named_parameters()),
            tuple(type(m).__name__ for m in module.modules()))


def find_block_stack(model: Any) -> tuple[str, Any, int, int] | None:
    """The largest run of ≥ 2 consecutive identical blocks (same type, same parameter shapes)
    in any nn.ModuleList / nn.Sequential: (container name, container, start, length)."""
    from torch import nn

    best = None
    best_key = (0, 0)
    for name, container in model.named_modules():
        if not isinstance(container, (nn.ModuleList, nn.Sequential)):
            continue
        children = list(container.children())
        i = 0
        while i < len(children):
            sig = _signature(children[i])
            j = i + 1
            while j < len(children) and _signature(children[j]) == sig:
                j += 1
            run = j - i
            size = sum(p.numel() for c in children[i:j] for p in c.parameters())
            if run >= 2 and size > 0 and (run, size) > best_key:
                best, best_key = (name, container, i, run), (run, size)
            i = j
    return best


def truncate_depth(model: Any, depth: int) -> str:
    """Keep the first ``depth`` blocks of the largest identical-block stack, in place."""
    found = find_block_stack(model)
    if found is None:
        raise PluginError("distill: student=depth needs a stack of at least 2 identical blocks in an "
                          "nn.ModuleList or nn.Sequential, and this model has none; use student=width "
                          "or student=factory")
    name, container, start, run = found
    label = name or type(model).__name__
    if depth >= run:
        raise PluginError(f"distill: depth={depth} keeps all {run} blocks of {label!r}; choose "
                          f"depth < {run}")
    total = len(container)
    del container[start + depth:start + run]
    parent = model.get_submodule(name.rpartition(".")[0]) if "." in name else model
    for attr in _DEPTH_ATTRS:
        if getattr(parent, attr, None) == total and isinstance(getattr(parent, attr), int):
            setattr(parent, attr, len(container))
    return f"{label}: {run}→{depth} blocks"


def reinitialise(model: Any) -> int:
    """Call ``reset_parameters`` on every module that has one (seeded by the caller)."""
    count = 0
    for module in model.modules():
        reset = getattr(module, "reset_parameters", None)
        if callable(reset) and any(True for _ in module.parameters(recurse=False)):
            reset()
            count += 1
    return count


# ---------------------------------------------------------------------------------------------
# The plugin
# ---------------------------------------------------------------------------------------------
class Distill(Plugin):
    name = "distill"
    summary = ("Train a smaller student (width- or depth-reduced copy of the model, or your own "
               "architecture) to mimic the model with a temperature-scaled KL loss.")
    params_schema = (
        Param("student", "choice", "auto",
              "auto: depth for a Hugging Face transformer, width otherwise; width: fewer channels "
              "(transformers: fewer heads and MLP channels); depth: fewer blocks (transformers: layers "
              "removed evenly, every other one by default; others: the first N blocks); factory: your own "
              "package.module:callable", choices=("auto", "width", "depth", "factory")),
        Param("width", "float", 0.5, "student=width: fraction of channels kept",
              minimum=0.0, maximum=1.0, exclusive_min=True, methods=("width",)),
        Param("inherit", "bool", True,
              "width/depth students: start from the teacher's surviving weights (false: re-initialise)",
              methods=("width", "depth")),
        Param("depth", "int", 1, "student=depth: number of blocks kept (transformers: every other layer "
              "unless set)", minimum=1, methods=("depth",)),
        Param("factory", "str", "",
              "student=factory: package.module:callable returning the student nn.Module (no arguments)",
              methods=("factory",)),
        Param("epochs", "int", 20, "training epochs (language models: 2 unless set)", minimum=1),
        Param("temperature", "float", 4.0, "softmax temperature of the distillation loss",
              minimum=0.0, exclusive_min=True),
        Param("alpha", "float", 0.5,
              "weight of the hard-label cross-entropy when labels exist (1 - alpha weighs the KL term)",
              minimum=0.0, maximum=1.0),
        Param("lr", "float", 1e-3, "learning rate (Adam, cosine schedule; language models: 3e-4 unless set)",
              minimum=0.0, exclusive_min=True),
        Param("batch_size", "int", 64, "batch size (language models: 8 unless set)", minimum=1),
        Param("synthetic", "bool", False,
              "train on seeded Gaussian inputs instead of x_train (data-free; the report is flagged)"),
        Param("synthetic_samples", "int", 2048, "synthetic=true: number of random inputs", minimum=2),
    )
    accepts = ("torch",)
    devices = ("cpu", "cuda")
    method_param = "student"

    def __init__(self, **params: Any) -> None:
        super().__init__(**params)
        self._given = set(params)
        if self.params["student"] == "factory":
            parse_factory(self.params["factory"])

    def check_model(self, model: Any, model_format: str) -> None:
        if self.params["synthetic"] and _takes_text(model):
            raise PluginError(DATA_FREE_TOKENS)

    def _setting(self, name: str, token_default: Any, tokens: bool) -> Any:
        return self.params[name] if name in self._given or not tokens else token_default

    # -- building the student ----------------------------------------------------------------
    def _build_student(self, teacher: Any, context: PluginContext) -> tuple[Any, list[str], list[str]]:
        p = self.params
        notes: list[str] = []
        kind = self._kind(teacher)
        if kind == "factory":
            student = factory_student(p["factory"])
            return student.to(context.device), [f"student built by {p['factory']}"], notes
        student = T.copy_model(teacher)
        if HF.pretrained_of(student) is not None and kind in ("width", "depth"):
            layers, hf_notes = self._transformer_student(student, kind)
            notes += hf_notes
        elif kind == "width":
            if p["width"] < 1.0:
                layers, caught = channel_prune(student, context.example_inputs, 1.0 - p["width"],
                                               p=1, what="distill")
                if not layers:
                    raise PluginError("distill: torch-pruning found no channel it could remove from "
                                      "this model; use student=depth or student=factory")
                notes += [f"torch-pruning: {msg}" for msg in caught[:5]]
            else:
                layers = []
                notes.append("width=1: the student has the teacher's architecture")
        else:
            layers = [truncate_depth(student, p["depth"])]
        if not p["inherit"]:
            count = reinitialise(student)
            notes.append(f"re-initialised {count} layers (inherit=false)")
        return student, layers, notes

    # -- run ---------------------------------------------------------------------------------
    def _kind(self, teacher: Any) -> str:
        kind = self.params["student"]
        if kind == "auto":
            return "depth" if HF.pretrained_of(teacher) is not None else "width"
        return kind

    def _transformer_student(self, student: Any, kind: str) -> tuple[list[str], list[str]]:
        """Fewer layers (evenly spread) or fewer heads/MLP channels, config updated."""
        p = self.params
        pretrained = HF.pretrained_of(student)
        if kind == "width":
            if p["width"] >= 1.0:
                return [], ["width=1: the student has the teacher's architecture"]
            changed, notes, _ = HF.prune_transformer(student, 1.0 - p["width"])
            return changed, notes
        total = len(HF.layer_stack(pretrained)[1])
        count = p["depth"] if "depth" in self._given else (total + 1) // 2
        if count >= total:
            raise PluginError(f"distill: the student would keep all {total} layers; choose depth < {total}")
        return [HF.keep_layers(pretrained, HF.spread(total, count))], []

    def apply(self, model: Any, context: PluginContext) -> tuple[Any, PluginReport]:
        self.check_model(model, "torch")
        example = context.example_inputs
        takes_ids = bool(example) and not example[0].is_floating_point()
        tokens = T.is_token_model(model, example)
        if self.params["synthetic"] and takes_ids:
            raise PluginError(DATA_FREE_TOKENS)
        if not self.params["synthetic"] and not T.has_split(context.data, "train"):
            raise PluginError(NO_TEXT_MESSAGE if tokens else NO_DATA_MESSAGE)
        with T.eval_mode(model):                       # the teacher is frozen: eval, no grad
            student, report = (self._distill_tokens if tokens else self._distill)(model, context)
        return student, report

    def _distill(self, teacher: Any, context: PluginContext) -> tuple[Any, PluginReport]:
        import torch
        import torch.nn.functional as F
        from workbench.plugin_api import count_parameters, model_bytes

        p = self.params
        data = context.data
        synthetic = p["synthetic"]
        kind = self._kind(teacher)
        context.progress(0.0, f"building the {kind} student")
        expected = T.output_shape(teacher, context.example_inputs)
        dtype = T.model_float_dtype(teacher)
        notes: list[str] = []

        with T.seeded(context.seed, context.device):
            student, layers, build_notes = self._build_student(teacher, context)
            notes += build_notes
            T.check_runs(student, context.example_inputs, expected, f"distill: the {kind} student")
            for param in student.parameters():
                param.requires_grad_(True)

            if synthetic:
                x_train = T.synthetic_inputs(context.example_inputs, p["synthetic_samples"],
                                             context.seed, context.device)
                y_train = None
                notes.append(DATA_FREE_NOTE)
                if T.has_split(data, "train"):
                    notes.append("synthetic=true: x_train was not used")
            else:
                x_train, y_train = T.split_tensors(data, "train", context.example_inputs,
                                                   context.device, dtype)
            x_test, y_test = T.split_tensors(data, "test", context.example_inputs, context.device, dtype)
            if y_train is None:
                notes.append("no labels: pure distillation loss (alpha unused)")

            teacher_acc = T.accuracy(teacher, x_test, y_test, check=context.check_cancelled)
            temperature, alpha = p["temperature"], p["alpha"]

            # The teacher is frozen and the inputs are fixed (no augmentation): its outputs are
            # computed once, unless they would take more than CACHE_LIMIT floats.
            cached = None
            if T.output_elements(expected, len(x_train[0])) <= CACHE_LIMIT:
                context.progress(0.02, "computing the teacher's outputs")
                cached = T.predict(teacher, x_train, check=context.check_cancelled).float()

            def loss_fn(outputs: Any, inputs: list, labels: Any, index: Any) -> Any:
                if cached is not None:
                    target = cached[index.to(cached.device)]
                else:
                    with torch.no_grad():
                        target = T.first_output(teacher(*inputs)).float()
                s = outputs.float().reshape(-1, outputs.shape[-1])
                t = target.reshape(-1, target.shape[-1])
                kd = F.kl_div(F.log_softmax(s / temperature, -1), F.log_softmax(t / temperature, -1),
                              log_target=True, reduction="batchmean") * temperature ** 2
                if labels is None or alpha == 0.0:
                    return kd
                return (1.0 - alpha) * kd + alpha * F.cross_entropy(s, labels.reshape(-1))

            def evaluate() -> float | None:
                return T.accuracy(student, x_test, y_test, check=context.check_cancelled)

            context.progress(0.05, "distilling")
            result = T.train(student, x_train, y_train, loss_fn, context=context, epochs=p["epochs"],
                             lr=p["lr"], batch_size=p["batch_size"], what="distill",
                             evaluate=evaluate, span=(0.05, 0.98))
            agree = T.agreement(teacher, student, x_test, check=context.check_cancelled)
        student.eval()

        student_acc = result.accuracies[-1] if result.accuracies else None
        t_params, s_params = count_parameters(teacher), count_parameters(student)
        summary = (f"{kind} student: params {_human(t_params)}→{_human(s_params)} "
                   f"({_ratio(t_params, s_params)} fewer)")
        if student_acc is not None:
            summary += f"; accuracy {student_acc:.3f}"
            if teacher_acc is not None:
                summary += f" vs teacher {teacher_acc:.3f}"
        elif agree is not None:
            summary += f"; agrees with the teacher on {agree:.1%} of x_test"
        summary += f" after {result.epochs} epochs (final loss {result.final_loss:.4f})"
        if synthetic:
            summary += " [data-free]"
        report = PluginReport(
            plugin=self.name, summary=summary,
            params_before=t_params, params_after=s_params,
            bytes_before=model_bytes(teacher), bytes_after=model_bytes(student),
            flops_before=count_flops(teacher, context.example_inputs),
            flops_after=count_flops(student, context.example_inputs),
            layers_changed=layers, notes=notes,
            extra={
                "student": kind, "data_free": bool(synthetic),
                "teacher_params": t_params, "student_params": s_params,
                "teacher_accuracy": teacher_acc, "student_accuracy": student_acc,
                "agreement": agree, "epochs": result.epochs, "steps": result.steps,
                "final_loss": result.final_loss, "loss_curve": result.epoch_losses,
                "accuracy_curve": result.accuracies, "step_loss_curve": result.step_curve(),
                "train_samples": len(x_train[0]),
            })
        context.progress(1.0, "distilled")
        return student, report

    # -- token models (Hugging Face text models) -------------------------------------------------
    def _distill_tokens(self, teacher: Any, context: PluginContext) -> tuple[Any, PluginReport]:
        """KL on the logits of every (unpadded) token, plus alpha × next-token loss for a causal LM;
        cosine to the teacher's embeddings for an embedding model."""
        import torch
        import torch.nn.functional as F
        from workbench.plugin_api import count_parameters, model_bytes

        p = self.params
        kind = self._kind(teacher)
        causal, task = T.is_causal_lm(teacher), getattr(teacher, "task", "")
        context.progress(0.0, f"building the {kind} student")
        expected = T.output_shape(teacher, context.example_inputs)
        with T.seeded(context.seed, context.device):
            student, layers, notes = self._build_student(teacher, context)
            T.check_runs(student, context.example_inputs, expected, f"distill: the {kind} student")
            for param in student.parameters():
                param.requires_grad_(True)
            x_train = T.token_tensors(context.data, "train", context.example_inputs, context.device)
            x_test = T.token_tensors(context.data, "test", context.example_inputs, context.device, limit=64)
            temperature, alpha = p["temperature"], p["alpha"]

            def loss_fn(outputs: Any, inputs: list, _labels: Any, _index: Any) -> Any:
                with torch.no_grad():
                    target = T.first_output(teacher(*inputs)).float()
                if task == "feature-extraction":
                    return T.match_loss(outputs, target, task)
                mask = inputs[1].float() if len(inputs) > 1 and outputs.dim() == 3 else None
                s = F.log_softmax(outputs.float() / temperature, -1)
                t = F.log_softmax(target / temperature, -1)
                kl = (t.exp() * (t - s)).sum(-1) * temperature ** 2          # per token (or per sample)
                kd = (kl * mask).sum() / mask.sum().clamp(min=1.0) if mask is not None else kl.mean()
                if not causal or alpha == 0.0:
                    return kd
                return (1.0 - alpha) * kd + alpha * T.next_token_loss(outputs, inputs[0], mask)

            def evaluate() -> float | None:
                return T.next_token_accuracy(student, x_test, check=context.check_cancelled) if causal else None

            teacher_acc = T.next_token_accuracy(teacher, x_test, check=context.check_cancelled) if causal else None
            context.progress(0.05, "distilling")
            result = T.train(student, x_train, None, loss_fn, context=context,
                             epochs=self._setting("epochs", 2, True), lr=self._setting("lr", 3e-4, True),
                             batch_size=self._setting("batch_size", 8, True), what="distill",
                             evaluate=evaluate, span=(0.05, 0.95))
        student = T.to_eval(student)
        drift = T.output_drift(teacher, student, context)
        student_acc = result.accuracies[-1] if result.accuracies else None
        t_params, s_params = count_parameters(teacher), count_parameters(student)
        summary = (f"{kind} student: params {_human(t_params)}→{_human(s_params)} "
                   f"({_ratio(t_params, s_params)} fewer)")
        if student_acc is not None and teacher_acc is not None:
            summary += f"; next-token accuracy {student_acc:.3f} vs teacher {teacher_acc:.3f} on held-out text"
        if "next_token_agreement" in drift:
            summary += f"; agrees with the teacher on {drift['next_token_agreement']:.1%} of next tokens"
        elif "output_cosine" in drift:
            summary += f"; output cosine {drift['output_cosine']:.3f} vs the teacher"
        summary += f" after {result.epochs} epochs (final loss {result.final_loss:.4f})"
        report = PluginReport(
            plugin=self.name, summary=summary, params_before=t_params, params_after=s_params,
            bytes_before=model_bytes(teacher), bytes_after=model_bytes(student),
            flops_before=count_flops(teacher, context.example_inputs),
            flops_after=count_flops(student, context.example_inputs),
            layers_changed=layers, notes=notes, changed=True,
            extra={"student": kind, "data_free": False, "teacher_params": t_params, "student_params": s_params,
                   "teacher_accuracy": teacher_acc, "student_accuracy": student_acc,
                   "agreement": drift.get("next_token_agreement"), "output_cosine": drift.get("output_cosine"),
                   "epochs": result.epochs, "steps": result.steps, "final_loss": result.final_loss,
                   "loss_curve": result.epoch_losses, "accuracy_curve": result.accuracies,
                   "step_loss_curve": result.step_curve(), "train_samples": len(x_train[0]),
                   "train_tokens": int(x_train[1].sum()) if len(x_train) > 1 else int(x_train[0].numel())})
        context.progress(1.0, "distilled")
        return student, report
