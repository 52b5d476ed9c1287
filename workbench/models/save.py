"""Save an (optimized) model as a file the core loader can open again, or, for a Hugging Face
model and a path without a suffix, as an HF folder (``hf_save.py``)."""
from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

from ..errors import WorkbenchError


def save_model(model: Any, fmt: str, path: str, example_inputs: list) -> dict:
    """ONNX → .onnx; torch → TorchScript (trace) or .pt2 (torch.export) by the file suffix; no suffix
    (or a trailing slash) → a Hugging Face folder."""
    if is_folder_target(path):
        from .hf_save import save_hf_folder
        return save_hf_folder(model, fmt, path)
    target = Path(path).expanduser()
    target.parent.mkdir(parents=True, exist_ok=True)
    suffix = target.suffix.lower()
    note = None
    try:
        if fmt == "onnx":
            if suffix != ".onnx":
                raise WorkbenchError(f"the optimized model is ONNX: save it as .onnx, not {suffix or 'no suffix'}")
            import onnx
            onnx.save(model, str(target))
            kind = "onnx"
            # how the graph is laid out, where its exporter said (a causal LM exported with its KV cache)
            note = next((p.value for p in getattr(model, "metadata_props", []) if p.key == "workbench.note"), None)
        elif suffix == ".pt2":
            import torch
            program = torch.export.export(model, tuple(example_inputs))
            torch.export.save(program, str(target))
            kind = "pt2"
        elif suffix in (".pt", ".ts", ".torchscript"):
            import torch
            with torch.no_grad():
                scripted = torch.jit.trace(model, tuple(example_inputs), check_trace=False)
            torch.jit.save(scripted, str(target))
            kind = "torchscript"
        else:
            raise WorkbenchError(f"cannot save a torch model as {suffix or 'no suffix'}: use .pt (TorchScript) or .pt2")
    except WorkbenchError:
        raise
    except Exception as exc:
        raise WorkbenchError(f"saving the model to {target} failed: {type(exc).__name__}: {exc}") from exc
    data = target.read_bytes()
    return {"path": str(target.resolve()), "kind": kind, "bytes": len(data),
            "sha256": hashlib.sha256(data).hexdigest(), **({"note": note} if note else {})}


def is_folder_target(path: str) -> bool:
    """A save path naming a folder: a trailing slash, or a last part without a suffix
    (the rule of ``RunSpec.save_model_is_folder``)."""
    text = path.rstrip()
    return text.endswith(("/", "\\")) or "." not in text.replace("\\", "/").rsplit("/", 1)[-1]
