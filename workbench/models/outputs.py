"""What counts as "the output" of a model, for fidelity and for training alike."""
from __future__ import annotations

from typing import Any


def first_output(outputs: Any) -> Any:
    """The tensor a model's outputs stand for: the tensor itself, a Hugging Face output's
    ``logits`` (its first value may be a loss), else the first value of a tuple, list or dict."""
    if isinstance(outputs, dict):
        if "logits" in outputs:
            return outputs["logits"]
        return first_output(next(iter(outputs.values()))) if outputs else None
    if hasattr(outputs, "logits"):
        return outputs.logits
    if isinstance(outputs, (list, tuple)):
        return first_output(outputs[0]) if outputs else None
    if hasattr(outputs, "to_tuple"):
        return first_output(outputs.to_tuple())
    return outputs
