"""How much an optimized model's outputs moved away from the reference (unoptimized) model."""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from ..errors import OutputShapeChanged


@dataclass
class Fidelity:
    samples: int
    cosine: float                 # mean per-sample cosine similarity of flattened outputs
    max_abs_error: float
    mean_abs_error: float
    top1_agreement: float | None  # fraction of samples with the same argmax (classifier outputs)
    accuracy: float | None        # vs labels, when they exist
    reference_accuracy: float | None
    nonfinite_outputs: int        # NaN/Inf values in the measured model's outputs
    exact: bool                   # bit-identical outputs

    def to_dict(self) -> dict:
        return asdict(self)


def collect_outputs(runtime: Any, arrays: list[np.ndarray], batch: int) -> np.ndarray:
    """The first output of ``runtime`` for every sample of ``arrays``, run batch by batch."""
    from .inputs import batched
    outs: list[np.ndarray] = []
    first_shape = None
    for index, (chunk, valid) in enumerate(batched(arrays, batch)):
        out = np.atleast_1d(runtime.infer(chunk))
        if first_shape is None:
            first_shape = out.shape
        elif out.shape != first_shape:
            raise OutputShapeChanged(
                f"the model's output shape changed between calls: {_shape(first_shape)} for the first batch, "
                f"{_shape(out.shape)} for batch {index + 1}, from inputs of the same shape. Workbench compares "
                "outputs batch by batch, so the model must return the same shape for the same input shape")
        outs.append(out[:valid])
    return np.concatenate(outs)


def _shape(shape: tuple) -> str:
    return "x".join(map(str, shape)) or "a scalar"


# Tasks whose (N, k) outputs are not class scores: an embedding's largest component means nothing.
NOT_CLASS_SCORES = ("feature-extraction",)


def compare_outputs(reference: np.ndarray, outputs: np.ndarray, labels: np.ndarray | None = None,
                    optimized: bool = True, task: str | None = None) -> Fidelity:
    """Compare two batches of outputs shaped (N, ...) produced from the same inputs; ``optimized``
    says whether ``outputs`` come from an optimized model or from the same model called again.
    ``task`` (a Hugging Face model's) keeps embeddings from being read as classifier logits."""
    ref = np.asarray(reference, dtype=np.float64)
    out = np.asarray(outputs, dtype=np.float64)
    if ref.shape != out.shape:
        if optimized:
            raise OutputShapeChanged(
                f"output shape changed: the optimized model's outputs have shape {out.shape} but the original "
                f"model's have {ref.shape}; fidelity needs outputs of the same shape (does a plugin change "
                "the model's output layer?)")
        raise OutputShapeChanged(
            f"output shape changed: the model's output shape changed between calls: {ref.shape} for the "
            f"reference outputs, {out.shape} when measured, from the same inputs. Workbench needs the same "
            "output shape for the same inputs")
    n = ref.shape[0] if ref.ndim else 1
    ref2, out2 = ref.reshape(n, -1), out.reshape(n, -1)
    nonfinite = int(np.size(out2) - np.count_nonzero(np.isfinite(out2)))
    diff = np.abs(np.nan_to_num(out2, nan=np.inf) - ref2)
    norms = np.linalg.norm(ref2, axis=1) * np.linalg.norm(out2, axis=1)
    dots = np.einsum("ij,ij->i", ref2, out2)
    with np.errstate(invalid="ignore", divide="ignore"):
        cos = np.where(norms > 0, dots / norms, np.where(np.all(ref2 == out2, axis=1), 1.0, 0.0))
    top1 = acc = ref_acc = None
    if ref.ndim == 2 and ref.shape[1] > 1 and task not in NOT_CLASS_SCORES:   # classifier logits
        ref_cls, out_cls = ref.argmax(1), out.argmax(1)
        top1 = float(np.mean(ref_cls == out_cls))
        if labels is not None and len(labels) == n:
            acc = float(np.mean(out_cls == labels))
            ref_acc = float(np.mean(ref_cls == labels))
    return Fidelity(
        samples=int(n), cosine=float(np.nanmean(cos)), max_abs_error=float(np.max(diff)) if diff.size else 0.0,
        mean_abs_error=float(np.mean(diff)) if diff.size else 0.0, top1_agreement=top1, accuracy=acc,
        reference_accuracy=ref_acc, nonfinite_outputs=nonfinite, exact=bool(np.array_equal(ref, out)))
