"""The environment fingerprint stored with every run: enough to know whether two runs compare."""
from __future__ import annotations

import platform
import sys
from importlib import metadata


def _version(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def collect_environment(include_gpu: bool = True) -> dict:
    """Host side of the fingerprint; never imports torch (the GUI calls it)."""
    from ..telemetry.host import host_environment
    env = {
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "packages": {name: _version(name) for name in
                     ("workbench", "torch", "onnxruntime", "onnxruntime-gpu", "onnx", "numpy", "torchao",
                      "torch-pruning", "nvidia-ml-py")},
        "host": host_environment(),
    }
    if include_gpu:
        from ..telemetry.nvml import gpu_environment
        env["gpu"] = gpu_environment()
    return env
