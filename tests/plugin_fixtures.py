"""The bundled demo models and digits data, shared by the plugin tests."""
from __future__ import annotations

import numpy as np


def digits_data() -> dict:
    from workbench.models.demos import assets_dir, load_eval_data
    return {k: np.asarray(v) for k, v in load_eval_data(assets_dir() / "digits.npz").items()}


def demo_module(kind: str):
    """A fresh copy of ``digits-cnn`` / ``digits-transformer`` with its trained weights, in eval mode."""
    from workbench.models.demos import build_demo_module
    return build_demo_module(f"digits-{kind}").eval()
