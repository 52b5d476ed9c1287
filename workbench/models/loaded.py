"""What every loader returns (``LoadedModel``) and the words loaders share: the hint to trust a
pickle, and a library error's first line without advice to switch a safety off."""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from ..spec import InputSpec

TRUST_HINT = ("Loading it would execute code from the file. If you trust it, re-run with "
              "--trust-pickle (GUI: tick 'Trust this file (runs code from it)').")


@dataclass
class LoadedModel:
    model: Any                          # torch nn.Module / ScriptModule, or onnx.ModelProto
    format: str                         # torchscript | pt2 | onnx | state_dict | pickle | demo
    kind: str                           # "torch" | "onnx": what runtimes and plugins see
    inputs: list[InputSpec]             # known input specs (may be empty: the user must give --input)
    input_fixed_by_model: bool
    data: dict | None = None            # eval/train arrays shipped with the model (demos)
    default_batch: int | None = None
    notes: list[str] = field(default_factory=list)
    # A Hugging Face folder (or demo:tiny-lm): ``models.hf.HFModelInfo`` (task, config, tokenizer,
    # random_weights, the PreTrainedModel inside ``model``); None for every other format.
    hf: Any = None


# Sentences in library errors that advise switching a safety off; never shown to the user.
_UNSAFE_ADVICE = re.compile(r"weights_only|allow_pickle|trusted source|arbitrary code", re.IGNORECASE)


def error_detail(exc: BaseException) -> str:
    """A library's error in one line, without terminal colour codes or any sentence advising to
    switch a safety off. Its first line; when that line only announces a list ("Error(s) in loading
    state_dict for Net:"), the indented lines of the list follow (the missing/unexpected key names)."""
    text = re.sub(r"\x1b\[[0-9;?]*[ -/]*[@-~]", "", str(exc)).strip()
    lines = text.splitlines()
    line = lines[0] if lines else ""
    if line.rstrip().endswith(":"):
        for more in lines[1:]:
            if more.strip() and not more[:1].isspace():
                break
            line += " " + more.strip()
    kept = [s for s in re.split(r"(?<=[.!?])\s+", line) if not _UNSAFE_ADVICE.search(s)]
    line = " ".join(" ".join(kept).split())
    limit = 600
    return (line if len(line) <= limit else line[:limit].rsplit(" ", 1)[0] + " …") if line else type(exc).__name__
