"""Hugging Face models as Workbench sees them: ``HFModelInfo`` (what the folder is) and
``HFForward`` (the module every HF model is loaded as: one tensor out, traceable).

``HFForward.model`` is the ``transformers`` PreTrainedModel; plugins work on it in place and keep
its config matching its weights, so the result still saves as an HF folder (``save.py``).
Reading folders is ``hf_load.py``'s job; this module imports torch, never transformers.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from .hf_tasks import ARCHITECTURE_SUFFIXES, task_of_architecture  # noqa: F401 (re-exported)

# Task -> the transformers Auto class that builds it.
AUTO_CLASSES = {
    "causal-lm": "AutoModelForCausalLM",
    "masked-lm": "AutoModelForMaskedLM",
    "sequence-classification": "AutoModelForSequenceClassification",
    "token-classification": "AutoModelForTokenClassification",
    "image-classification": "AutoModelForImageClassification",
    "feature-extraction": "AutoModel",
}
RANDOM_WEIGHTS_NOTE = "random weights: speed figures only"
POOLINGS = ("mean", "cls")


@dataclass
class HFModelInfo:
    folder: str | None              # the folder it was loaded from (None: built in memory)
    task: str                       # one of spec.TASKS except "auto"
    config: Any                     # transformers PretrainedConfig
    tokenizer: Any = None           # the folder's tokenizer (PreTrainedTokenizerBase) or None
    random_weights: bool = False    # config.json only: the weights are random (speed figures only)
    architecture: str = ""          # the class built, e.g. "LlamaForCausalLM"
    # extended: how feature-extraction pools (sentence-transformers' 1_Pooling), and the weights read
    pooling: str = "mean"
    weights: str = ""               # "model.safetensors", "3 safetensors shards", "pytorch_model.bin", ""

    @property
    def is_image(self) -> bool:
        return self.task == "image-classification" or getattr(self.config, "num_channels", None) is not None \
            and not hasattr(self.config, "vocab_size")

    def summary(self) -> str:
        """One line for a model description: task, architecture, layers/heads, vocabulary."""
        c = self.config
        parts = [self.task, self.architecture or type(c).__name__]
        layers = getattr(c, "num_hidden_layers", None)
        heads = getattr(c, "num_attention_heads", None)
        kv = getattr(c, "num_key_value_heads", None)
        if layers:
            parts.append(f"{layers} layers")
        if heads:
            parts.append(f"{heads} heads" + (f" ({kv} key/value heads)" if kv and kv != heads else ""))
        hidden = getattr(c, "hidden_size", None)
        if hidden:
            parts.append(f"hidden {hidden}")
        vocab = getattr(c, "vocab_size", None)
        if vocab:
            parts.append(f"vocabulary {vocab}")
        if self.task == "feature-extraction" and not self.is_image:
            parts.append(f"{self.pooling} pooling")
        return ", ".join(parts)


class HFForward(nn.Module):
    """Eval-mode wrapper returning ONE tensor: logits (causal-LM with ``use_cache=False``,
    masked-LM, classification), or for feature extraction the last hidden state pooled over the
    attention mask (mean, or the first token for ``pooling="cls"``). No data-dependent Python
    control flow, so ``torch.export`` and ONNX export trace it."""

    def __init__(self, model: nn.Module, task: str, pooling: str = "mean", tokenizer: Any = None) -> None:
        super().__init__()
        if pooling not in POOLINGS:
            raise ValueError(f"pooling must be one of {POOLINGS}, not {pooling!r}")
        self.model = model
        self.task = task
        self.pooling = pooling
        self.tokenizer = tokenizer          # kept for saving the folder again (not a submodule)
        self.eval()

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None) -> torch.Tensor:
        if attention_mask is None:
            attention_mask = torch.ones_like(input_ids)
        if self.task == "causal-lm":
            return self.model(input_ids=input_ids, attention_mask=attention_mask, use_cache=False).logits
        if self.task == "feature-extraction":
            hidden = self.model(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
            return pool(hidden, attention_mask, self.pooling)
        return self.model(input_ids=input_ids, attention_mask=attention_mask).logits


class HFImageForward(HFForward):
    """An image model: ``forward(pixel_values)``; logits, or the mean of the last hidden state."""

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        out = self.model(pixel_values=pixel_values)
        if self.task == "feature-extraction":
            hidden = out.last_hidden_state
            return hidden[:, 0] if self.pooling == "cls" else hidden.flatten(2).mean(-1) if hidden.dim() == 4 \
                else hidden.mean(1)
        return out.logits


def pool(hidden: torch.Tensor, attention_mask: torch.Tensor, pooling: str = "mean") -> torch.Tensor:
    """(batch, seq, hidden) -> (batch, hidden): the first token, or the mean over unmasked tokens."""
    if pooling == "cls":
        return hidden[:, 0]
    mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
    return (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
