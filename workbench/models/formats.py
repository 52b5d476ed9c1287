"""Which file names Workbench opens as models: the one suffix table behind the GUI's File ▸ Open
filter and drag-and-drop and the loaders' choice of reader (the loaders then check the content)."""
from __future__ import annotations

from pathlib import Path

__all__ = ["MODEL_SUFFIXES", "STATE_DICT_SUFFIXES", "TORCH_SUFFIXES", "is_model_file"]

# suffix -> the family a file dialog lists it under
MODEL_SUFFIXES = {
    ".onnx": "ONNX",
    ".pt": "PyTorch", ".pt2": "PyTorch", ".pth": "PyTorch", ".safetensors": "safetensors", ".ts": "PyTorch",
    ".torchscript": "PyTorch", ".bin": "PyTorch", ".ckpt": "PyTorch",
}
TORCH_SUFFIXES = tuple(s for s, family in MODEL_SUFFIXES.items() if family != "ONNX")
# Files that may hold a bare state_dict (it needs a factory) or a pickled module (it needs trust).
STATE_DICT_SUFFIXES = (".pt", ".pth", ".safetensors", ".bin", ".ckpt")


def is_model_file(path: str | Path) -> bool:
    """A model file by its suffix, or a Hugging Face folder (one with a config.json)."""
    path = Path(path)
    return path.suffix.lower() in MODEL_SUFFIXES or (path / "config.json").is_file()
