"""Save an (optimized) ``HFForward`` as a Hugging Face folder that ``load_model`` opens again:
``save_pretrained`` (safetensors + config.json), the tokenizer, and the pooling of an encoder
(sentence-transformers' 1_Pooling/config.json)."""
from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from ..errors import WorkbenchError
from .hf_load import POOLING_CONFIG

# Weight files a previous save may have left in the target (they would shadow the new ones).
_OLD_WEIGHTS = ("model*.safetensors", "model.safetensors.index.json", "pytorch_model*.bin",
                "pytorch_model.bin.index.json")


def save_hf_folder(model: Any, fmt: str, path: str) -> dict:
    from .hf import HFForward
    target = Path(path).expanduser()
    wrapper = getattr(model, "_orig_mod", model)        # torch.compile wraps the module it was given
    if fmt == "onnx" or not isinstance(wrapper, HFForward):
        what = "an ONNX graph" if fmt == "onnx" else f"a {type(model).__name__}"
        raise WorkbenchError(f"--save-model {path} writes a Hugging Face folder, but the optimized model is {what}, "
                             "not a Hugging Face model: save it as " + (".onnx" if fmt == "onnx" else ".pt or .pt2"))
    blocker = getattr(wrapper, "hf_save_blocker", None)    # a plugin changed it beyond what the config says
    if blocker:
        raise WorkbenchError(f"--save-model {path}: {blocker}")
    hf_model = wrapper.model
    _check_storable(hf_model)
    source = getattr(hf_model, "name_or_path", "") or ""
    if source and target.exists() and Path(source).exists() and target.resolve() == Path(source).resolve():
        raise WorkbenchError(f"--save-model {path} is the folder the model was loaded from: pick another folder "
                             "(its weights are still being read)")
    if target.exists() and not target.is_dir():
        raise WorkbenchError(f"--save-model {path}: a file of that name exists (a Hugging Face model is a folder)")
    target.mkdir(parents=True, exist_ok=True)
    for pattern in _OLD_WEIGHTS:
        for old in target.glob(pattern):
            old.unlink()
    try:
        hf_model.save_pretrained(str(target))
        if wrapper.tokenizer is not None:
            wrapper.tokenizer.save_pretrained(str(target))
    except Exception as exc:
        raise WorkbenchError(f"saving the Hugging Face folder {target} failed: {type(exc).__name__}: "
                             f"{str(exc).strip().splitlines()[0] if str(exc).strip() else ''} "
                             "(save it as .pt2 or .onnx instead)") from exc
    if wrapper.task == "feature-extraction":
        _write_pooling(target, wrapper.pooling, getattr(hf_model.config, "hidden_size", None))
    files = sorted(p for p in target.rglob("*") if p.is_file())
    digest = hashlib.sha256()
    for file in files:
        digest.update(file.relative_to(target).as_posix().encode())
        digest.update(file.read_bytes())
    artifact = {"path": str(target.resolve()), "kind": "hf", "bytes": sum(f.stat().st_size for f in files),
                "sha256": digest.hexdigest()}
    note = _reopen_note(hf_model.config)
    if note:
        artifact["note"] = note
    return artifact


def _reopen_note(config: Any) -> str | None:
    """What opens the folder when its config records pruned heads the architecture cannot express."""
    from .hf_heads import CONFIG_KEY
    value = getattr(config, CONFIG_KEY, None)
    if not value:
        return None
    return (f"config.json records {value.get('num_attention_heads')} attention heads of size {value.get('head_dim')} "
            f"under {CONFIG_KEY} ({type(config).__name__} derives the head size from hidden_size / "
            "num_attention_heads): `workbench bench DIR` reopens the folder; plain transformers.from_pretrained "
            "cannot (it refuses the weights' shapes)")


def _check_storable(hf_model: Any) -> None:
    """safetensors holds plain tensors only: a quantized model (torchao tensor subclasses, packed
    int8 params of torch.ao) cannot be written as an HF folder; say so before writing anything."""
    import torch
    for key, value in hf_model.state_dict().items():
        if type(value) in (torch.Tensor, torch.nn.Parameter) and not value.is_quantized:
            continue
        if isinstance(value, torch.Tensor):
            what = f"{'quantized' if value.is_quantized else type(value).__name__} tensors ({key})"
        else:       # torch.ao's packed parameters: a Linear's weights and their quantization settings
            what = f"packed quantized parameters ({key.split('._packed_params')[0]})"
        raise WorkbenchError(f"the optimized model holds {what}, which safetensors cannot store, so no Hugging Face "
                             "folder can be written: save it as .pt2 or .onnx instead")


def _write_pooling(target: Path, pooling: str, hidden: int | None) -> None:
    path = target / POOLING_CONFIG
    path.parent.mkdir(exist_ok=True)
    modes = {"word_embedding_dimension": hidden, "pooling_mode_cls_token": pooling == "cls",
             "pooling_mode_mean_tokens": pooling == "mean", "pooling_mode_max_tokens": False}
    path.write_text(json.dumps(modes, indent=2) + "\n", encoding="utf-8")
