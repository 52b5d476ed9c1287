"""Shared training / evaluation helpers for the prune and distill plugins.

Everything here is seeded (``seeded``), cancellable (``context.check_cancelled()`` every
step) and streams ``"train"`` events (``{"step", "epoch", "loss", "student_accuracy"}``) so
the GUI can draw live curves. torch is imported inside the functions: importing this module
must not import torch (the GUI lists plugins without it).
"""
from __future__ import annotations

import contextlib
import copy
import math
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator

from workbench.plugin_api import PluginError, device_kind, first_output

DATA_HINT = "pass --data file.npz with x_train and y_train"


# ---------------------------------------------------------------------------------------------
# Small utilities
# ---------------------------------------------------------------------------------------------
@contextlib.contextmanager
def seeded(seed: int, device: str = "cpu") -> Iterator[None]:
    """Seed torch (CPU and the run's CUDA device) without leaking RNG state to the caller."""
    import torch

    devices = []
    if device_kind(str(device)) == "cuda" and torch.cuda.is_available():
        index = torch.device(device).index
        devices = [torch.cuda.current_device() if index is None else index]
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(int(seed))
        yield


def copy_model(model: Any) -> Any:
    """A deep copy, so a plugin never changes the model the previous step handed over."""
    try:
        return copy.deepcopy(model)
    except Exception as exc:
        raise PluginError(f"could not copy the model ({type(exc).__name__}: {exc}); "
                          "plugins work on a copy so the baseline stays intact") from exc


def model_float_dtype(model: Any) -> Any:
    import torch

    for p in model.parameters():
        if p.is_floating_point():
            return p.dtype
    return torch.float32


def to_eval(model: Any) -> Any:
    """``model.eval()``, except for torch.export programs (.pt2), which refuse it: they are inference
    graphs already."""
    try:
        model.eval()
    except NotImplementedError:
        pass
    return model


@contextlib.contextmanager
def eval_mode(model: Any) -> Iterator[Any]:
    """Eval mode (no BatchNorm statistics updates, no dropout) for the block; mode restored after."""
    was_training = model.training
    to_eval(model)
    try:
        yield model
    finally:
        try:
            model.train(was_training)
        except NotImplementedError:      # a .pt2 program: it has no training mode
            pass


def output_shape(model: Any, example_inputs: list) -> tuple[int, ...]:
    import torch

    with eval_mode(model), torch.no_grad():
        out = first_output(model(*example_inputs))
    return tuple(out.shape)


def output_elements(batch_shape: tuple[int, ...], count: int) -> int:
    """Elements of the outputs for ``count`` samples, given the output shape of one batch."""
    per_sample = 1
    for dim in batch_shape[1:]:
        per_sample *= int(dim)
    return per_sample * int(count)


def check_runs(model: Any, example_inputs: list, expected_shape: tuple[int, ...], what: str) -> None:
    """Raise PluginError unless ``model`` runs on the example inputs with the expected output shape."""
    try:
        shape = output_shape(model, example_inputs)
    except Exception as exc:
        raise PluginError(f"{what}: the resulting model no longer runs on the run's inputs "
                          f"({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''})") from exc
    if shape != tuple(expected_shape):
        raise PluginError(f"{what}: the output shape changed from {tuple(expected_shape)} to {shape}")


# ---------------------------------------------------------------------------------------------
# Data
# ---------------------------------------------------------------------------------------------
def has_split(data: dict | None, split: str, labels: bool = False) -> bool:
    if not data or data.get(f"x_{split}") is None:
        return False
    return not labels or data.get(f"y_{split}") is not None


def split_tensors(data: dict | None, split: str, example_inputs: list, device: str,
                  dtype: Any = None) -> tuple[list, Any]:
    """``x_<split>`` as a list of one input tensor (checked against the run's input) and
    ``y_<split>`` as an int64 tensor or None. Returns ``([], None)`` when the split is absent."""
    import numpy as np
    import torch

    if not has_split(data, split):
        return [], None
    x = np.asarray(data[f"x_{split}"])
    if len(example_inputs) != 1:
        raise PluginError(f"the data file has a single x_{split} array but the model takes "
                          f"{len(example_inputs)} inputs")
    example = example_inputs[0]
    if tuple(x.shape[1:]) != tuple(example.shape[1:]):
        raise PluginError(f"x_{split} samples have shape {tuple(x.shape[1:])} but the model's input "
                          f"is {tuple(example.shape[1:])} per sample")
    if example.is_floating_point():
        tensor = torch.as_tensor(x, dtype=dtype or example.dtype, device=device)
    else:
        tensor = torch.as_tensor(x, dtype=example.dtype, device=device)
    y = data.get(f"y_{split}")
    labels = None
    if y is not None:
        y = np.asarray(y)
        if len(y) != len(x):
            raise PluginError(f"y_{split} has {len(y)} labels for {len(x)} samples of x_{split}")
        labels = torch.as_tensor(y.astype(np.int64), device=device)
    return [tensor], labels


def synthetic_inputs(example_inputs: list, count: int, seed: int, device: str) -> list:
    """Seeded random inputs shaped like the run's inputs: N(0, 1) for float inputs, integers in
    the example's observed range (e.g. token ids) otherwise."""
    import torch

    gen = torch.Generator(device="cpu").manual_seed(int(seed) + 7919)
    out = []
    for example in example_inputs:
        shape = (int(count),) + tuple(example.shape[1:])
        if example.is_floating_point():
            t = torch.randn(shape, generator=gen, dtype=torch.float32).to(example.dtype)
        elif example.dtype == torch.bool:
            t = torch.randint(0, 2, shape, generator=gen).bool()
        else:
            high = max(int(example.max().item()) + 1, 2)
            low = min(int(example.min().item()), 0)
            t = torch.randint(low, high, shape, generator=gen, dtype=torch.int64).to(example.dtype)
        out.append(t.to(device))
    return out


def batches(count: int, batch_size: int, generator: Any = None, shuffle: bool = True) -> list:
    """Index batches over ``count`` samples; a trailing batch of one is dropped (BatchNorm in
    training mode cannot normalise a single sample)."""
    import torch

    order = torch.randperm(count, generator=generator) if shuffle else torch.arange(count)
    chunks = list(order.split(int(batch_size)))
    if len(chunks) > 1 and len(chunks[-1]) < 2:
        chunks.pop()
    return chunks


# ---------------------------------------------------------------------------------------------
# Evaluation
# ---------------------------------------------------------------------------------------------
def predict(model: Any, inputs: list, batch_size: int = 512,
            check: Callable[[], None] | None = None) -> Any:
    """Logits for all samples (eval mode, no grad); the model's mode is restored afterwards."""
    import torch

    outs = []
    with eval_mode(model), torch.no_grad():
        for start in range(0, len(inputs[0]), batch_size):
            if check is not None:
                check()
            outs.append(first_output(model(*[x[start:start + batch_size] for x in inputs])))
    return torch.cat(outs)


def accuracy(model: Any, inputs: list, labels: Any, batch_size: int = 512,
             check: Callable[[], None] | None = None) -> float | None:
    """Top-1 accuracy, or None without inputs/labels."""
    if not inputs or labels is None:
        return None
    logits = predict(model, inputs, batch_size, check)
    return float((logits.argmax(-1) == labels).float().mean().item())


def agreement(teacher: Any, student: Any, inputs: list, batch_size: int = 512,
              check: Callable[[], None] | None = None) -> float | None:
    """Fraction of samples where both models predict the same class (no labels needed)."""
    if not inputs:
        return None
    a = predict(teacher, inputs, batch_size, check).argmax(-1)
    b = predict(student, inputs, batch_size, check).argmax(-1)
    return float((a == b).float().mean().item())


# ---------------------------------------------------------------------------------------------
# Training loop
# ---------------------------------------------------------------------------------------------
@dataclass
class TrainResult:
    epochs: int = 0
    steps: int = 0
    epoch_losses: list[float] = field(default_factory=list)
    step_losses: list[float] = field(default_factory=list)
    accuracies: list[float | None] = field(default_factory=list)

    @property
    def final_loss(self) -> float | None:
        return self.epoch_losses[-1] if self.epoch_losses else None

    def step_curve(self, limit: int = 2000) -> list[float]:
        """Per-step losses, strided down to at most ``limit`` points for the report."""
        stride = max(1, math.ceil(len(self.step_losses) / limit))
        return [round(v, 6) for v in self.step_losses[::stride]]


def train(model: Any, inputs: list, labels: Any, loss_fn: Callable[[Any, list, Any, Any], Any], *,
          context: Any, epochs: int, lr: float, batch_size: int, what: str = "training",
          evaluate: Callable[[], float | None] | None = None,
          span: tuple[float, float] = (0.0, 1.0)) -> TrainResult:
    """Adam + cosine schedule over ``epochs`` passes of ``inputs``.

    ``loss_fn(outputs, batch_inputs, batch_labels, batch_index)`` returns the scalar loss
    (``batch_index``: the sample indices, e.g. into cached teacher outputs). Cancellation is
    checked every step; a ``"train"`` event is emitted every step (``student_accuracy`` is set
    on the last step of each epoch, from ``evaluate``); progress is reported per epoch within
    ``span``. The caller seeds (see ``seeded``); shuffling uses a generator drawn from torch's RNG.
    """
    import torch

    n = len(inputs[0])
    if n < 2:
        raise PluginError(f"{what} needs at least 2 samples, got {n}")
    generator = torch.Generator().manual_seed(int(torch.randint(0, 2**31 - 1, (1,)).item()))
    params = [p for p in model.parameters() if p.requires_grad]
    if not params:
        raise PluginError(f"{what}: the model has no trainable parameters")
    optimizer = torch.optim.Adam(params, lr=float(lr))
    steps_per_epoch = len(batches(n, batch_size, shuffle=False))
    total = max(1, steps_per_epoch * int(epochs))
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: 0.5 * (1.0 + math.cos(math.pi * min(s, total) / total)))
    result = TrainResult()
    lo, hi = span
    was_training = model.training
    step = 0
    try:
        for epoch in range(1, int(epochs) + 1):
            context.check_cancelled()
            model.train()
            chunks = batches(n, batch_size, generator)
            running = 0.0
            pending = None
            for idx in chunks:
                context.check_cancelled()
                batch_inputs = [x[idx] for x in inputs]
                batch_labels = labels[idx] if labels is not None else None
                outputs = first_output(model(*batch_inputs))
                loss = loss_fn(outputs, batch_inputs, batch_labels, idx)
                if not torch.isfinite(loss):
                    raise PluginError(f"{what}: the loss became {loss.item()} at step {step + 1}; "
                                      "lower lr")
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                scheduler.step()
                step += 1
                value = float(loss.item())
                running += value
                result.step_losses.append(value)
                if pending is not None:
                    context.emit("train", pending)
                pending = {"step": step, "epoch": epoch, "loss": value, "student_accuracy": None}
            mean = running / max(1, len(chunks))
            result.epoch_losses.append(mean)
            acc = evaluate() if evaluate is not None else None
            result.accuracies.append(acc)
            if pending is not None:
                pending["student_accuracy"] = acc
                context.emit("train", pending)
            result.epochs = epoch
            result.steps = step
            acc_text = f", accuracy {acc:.3f}" if acc is not None else ""
            context.progress(lo + (hi - lo) * epoch / int(epochs),
                             f"{what}: epoch {epoch}/{epochs}, loss {mean:.4f}{acc_text}")
    finally:
        model.train(was_training)
        optimizer.zero_grad(set_to_none=True)
    return result


def finetune(model: Any, context: Any, *, epochs: int, lr: float, batch_size: int,
             what: str = "fine-tune", span: tuple[float, float] = (0.0, 1.0)) -> TrainResult:
    """Cross-entropy fine-tune on ``x_train``/``y_train`` (accuracy on ``x_test`` each epoch).

    Raises PluginError when there are no labelled training data.
    """
    import torch.nn.functional as F

    if not has_split(context.data, "train", labels=True):
        raise PluginError(f"{what} for {epochs} epoch(s) needs labelled training data: {DATA_HINT}, "
                          "or set finetune_epochs=0")
    dtype = model_float_dtype(model)
    x_train, y_train = split_tensors(context.data, "train", context.example_inputs, context.device, dtype)
    x_test, y_test = split_tensors(context.data, "test", context.example_inputs, context.device, dtype)

    def loss_fn(outputs: Any, _inputs: list, labels: Any, _index: Any) -> Any:
        return F.cross_entropy(outputs.float(), labels)

    def evaluate() -> float | None:
        return accuracy(model, x_test, y_test, check=context.check_cancelled)

    with seeded(context.seed, context.device):
        return train(model, x_train, y_train, loss_fn, context=context, epochs=epochs, lr=lr,
                     batch_size=batch_size, what=what, evaluate=evaluate, span=span)


def eval_accuracy(model: Any, context: Any) -> float | None:
    """Accuracy on ``x_test``/``y_test`` when the run has them, else None."""
    if not has_split(context.data, "test", labels=True):
        return None
    if is_token_model(model, context.example_inputs):     # a text classifier: one label per sequence
        import numpy as np
        import torch
        x = token_tensors(context.data, "test", context.example_inputs, context.device)
        y = np.asarray(context.data["y_test"])
        if y.ndim != 1 or len(y) != len(x[0]):
            return None
        return accuracy(model, x, torch.as_tensor(y.astype(np.int64), device=context.device),
                        check=context.check_cancelled)
    x, y = split_tensors(context.data, "test", context.example_inputs, context.device,
                         model_float_dtype(model))
    return accuracy(model, x, y, check=context.check_cancelled)


# ---------------------------------------------------------------------------------------------
# Token models (Hugging Face text models behind HFForward): context.data holds int64 arrays
# x_train / x_test (N, seq) of token ids and attention_mask_train / attention_mask_test
# ---------------------------------------------------------------------------------------------
def is_token_model(model: Any, example_inputs: list) -> bool:
    """A Hugging Face text model (``HFForward``): token ids in, one tensor out, a ``task``."""
    return bool(example_inputs) and not example_inputs[0].is_floating_point() \
        and isinstance(getattr(model, "task", None), str) and hasattr(model, "model")


def is_causal_lm(model: Any) -> bool:
    return getattr(model, "task", None) == "causal-lm"


def token_tensors(data: dict | None, split: str, example_inputs: list, device: str,
                  limit: int | None = None) -> list:
    """``[input_ids, attention_mask]`` of a split (as many as the model takes), or [] without it."""
    import numpy as np
    import torch

    if not has_split(data, split):
        return []
    ids = np.asarray(data[f"x_{split}"])[:limit]
    if ids.ndim != 2 or not np.issubdtype(ids.dtype, np.integer):
        raise PluginError(f"x_{split} must be an integer array of token ids (sequences, length) for a language "
                          f"model, not {ids.dtype} of shape {ids.shape}")
    mask = data.get(f"attention_mask_{split}")
    mask = np.ones_like(ids) if mask is None else np.asarray(mask)[:limit]
    tensors = [torch.as_tensor(ids.astype(np.int64), device=device),
               torch.as_tensor(mask.astype(np.int64), device=device)]
    return tensors[:max(1, len(example_inputs))]


def next_token_loss(logits: Any, ids: Any, mask: Any = None) -> Any:
    """Cross-entropy of each position's prediction of the next token, padding not scored."""
    import torch.nn.functional as F

    pred, target = logits[:, :-1].float(), ids[:, 1:]
    losses = F.cross_entropy(pred.reshape(-1, pred.shape[-1]), target.reshape(-1), reduction="none")
    if mask is None:
        return losses.mean()
    weight = mask[:, 1:].reshape(-1).to(losses.dtype)
    return (losses * weight).sum() / weight.sum().clamp(min=1.0)


def match_loss(outputs: Any, target: Any, task: str, temperature: float = 1.0) -> Any:
    """How far ``outputs`` are from a teacher's: 1 - cosine for embeddings (a softmax over the
    features of an embedding means nothing), temperature-scaled KL over the last axis for logits."""
    import torch.nn.functional as F

    s, t = outputs.float(), target.float()
    if task == "feature-extraction":
        return (1.0 - F.cosine_similarity(s.flatten(1), t.flatten(1), dim=1)).mean()
    s, t = s.reshape(-1, s.shape[-1]), t.reshape(-1, t.shape[-1])
    return F.kl_div(F.log_softmax(s / temperature, -1), F.log_softmax(t / temperature, -1),
                    log_target=True, reduction="batchmean") * temperature ** 2


def next_token_accuracy(model: Any, inputs: list, batch_size: int = 16,
                        check: Callable[[], None] | None = None) -> float | None:
    """Fraction of (unpadded) positions whose top-1 prediction is the text's next token."""
    if not inputs:
        return None
    logits = predict(model, inputs, batch_size, check)
    ids = inputs[0]
    hit = (logits[:, :-1].argmax(-1) == ids[:, 1:]).float()
    weight = inputs[1][:, 1:].float() if len(inputs) > 1 else hit.new_ones(hit.shape)
    return float((hit * weight).sum() / weight.sum().clamp(min=1.0))


def token_finetune(model: Any, original: Any, context: Any, *, epochs: int, lr: float, batch_size: int,
                   what: str = "fine-tune", span: tuple[float, float] = (0.0, 1.0)) -> TrainResult:
    """Recovery training of a token model on ``x_train``: next-token loss for a causal LM; for other
    tasks (no labels for what they output) matching the original model's outputs."""
    import torch

    train_inputs = token_tensors(context.data, "train", context.example_inputs, context.device)
    test_inputs = token_tensors(context.data, "test", context.example_inputs, context.device, limit=64)
    causal = is_causal_lm(model)
    task = getattr(model, "task", "")

    def loss_fn(outputs: Any, inputs: list, _labels: Any, _index: Any) -> Any:
        if causal:
            return next_token_loss(outputs, inputs[0], inputs[1] if len(inputs) > 1 else None)
        with torch.no_grad():
            target = first_output(original(*inputs))
        return match_loss(outputs, target, task)

    def evaluate() -> float | None:
        return next_token_accuracy(model, test_inputs, check=context.check_cancelled) if causal else None

    with eval_mode(original), seeded(context.seed, context.device):
        return train(model, train_inputs, None, loss_fn, context=context, epochs=epochs, lr=lr,
                     batch_size=batch_size, what=what, evaluate=evaluate, span=span)


def output_drift(original: Any, changed: Any, context: Any) -> dict:
    """How far ``changed``'s outputs moved from ``original``'s on held-out inputs (x_test, else the
    run's inputs): mean per-sample cosine, and next-token agreement for a causal LM. {} when the two
    cannot be compared (then the run's own fidelity phase still measures it)."""
    import numpy as np
    import torch

    data, example = context.data, context.example_inputs
    probe, where = list(example), "the run's inputs"
    try:
        if is_token_model(original, example) and has_split(data, "test"):
            probe, where = token_tensors(data, "test", example, context.device, limit=16), "held-out text"
        elif has_split(data, "test") and len(example) == 1 \
                and tuple(np.asarray(data["x_test"]).shape[1:]) == tuple(example[0].shape[1:]):
            probe, _ = split_tensors(data, "test", example, context.device, model_float_dtype(original))
            probe, where = [probe[0][:64]], "x_test"
        a = predict(original, probe, 16, context.check_cancelled).float()
        b = predict(changed, probe, 16, context.check_cancelled).float()
    except PluginError:
        raise
    except Exception:
        return {}
    if a.shape != b.shape:
        return {}
    result: dict[str, Any] = {"probe": where, "output_cosine": float(torch.nn.functional.cosine_similarity(
        a.flatten(1), b.flatten(1), dim=1).mean())}
    if is_causal_lm(original) and a.dim() == 3:
        same = (a.argmax(-1) == b.argmax(-1)).float()
        weight = probe[1].float() if len(probe) > 1 else same.new_ones(same.shape)
        result["next_token_agreement"] = float((same * weight).sum() / weight.sum().clamp(min=1.0))
    return result
