"""Small models and helpers for the core tests (no Qt). Imported by the core tests."""
from __future__ import annotations

import sys
import textwrap
from pathlib import Path

# Factories the worker imports (via PYTHONPATH) to build misbehaving models.
BAD_MODELS = textwrap.dedent('''
    import ctypes, os, signal, sys, time
    import torch
    from torch import nn

    class _Base(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(4, 3)

    class Segfault(_Base):
        def forward(self, x):
            ctypes.string_at(0)          # reads address 0: SIGSEGV

    class Exits(_Base):
        def forward(self, x):
            sys.exit(3)

    class Hangs(_Base):
        def forward(self, x):
            time.sleep(3600)

    class OomKilled(_Base):
        def forward(self, x):
            os.kill(os.getpid(), signal.SIGKILL)   # what the kernel's OOM killer does

    class ReturnsNan(_Base):
        def forward(self, x):
            y = self.fc(x)
            return y * float("nan")

    class Slow(_Base):
        def forward(self, x):
            time.sleep(0.002)
            return self.fc(x)

    def segfault(): return Segfault()
    def exits(): return Exits()
    def hangs(): return Hangs()
    def oom_killed(): return OomKilled()
    def returns_nan(): return ReturnsNan()
    def slow(): return Slow()
    def tiny(): return _Base()
    def not_a_module(): return 42
''')


def write_bad_models(directory: Path) -> Path:
    """Write the factories module and a matching state_dict; returns the weights path."""
    import torch
    (directory / "wb_bad_models.py").write_text(BAD_MODELS)
    sys.path.insert(0, str(directory))
    try:
        import wb_bad_models  # noqa: F401
        weights = directory / "bad_weights.pt"
        torch.save(wb_bad_models.tiny().state_dict(), weights)
    finally:
        sys.path.remove(str(directory))
        sys.modules.pop("wb_bad_models", None)
    return weights


def make_tiny_models(directory: Path) -> dict[str, Path]:
    """A 64-256-10 MLP saved in every supported format."""
    import torch
    from torch import nn
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(64, 256), nn.ReLU(), nn.Linear(256, 10)).eval()
    example = torch.randn(4, 64)
    paths = {
        "torchscript": directory / "tiny.ts",
        "state_dict": directory / "tiny_sd.pt",
        "safetensors": directory / "tiny.safetensors",
        "pickle": directory / "tiny_pickle.pt",
        "pt2": directory / "tiny.pt2",
        "onnx": directory / "tiny.onnx",
    }
    torch.jit.save(torch.jit.trace(model, example), paths["torchscript"])
    torch.save(model.state_dict(), paths["state_dict"])
    from safetensors.torch import save_file
    save_file(model.state_dict(), str(paths["safetensors"]))
    torch.save(model, paths["pickle"])
    torch.export.save(torch.export.export(model, (example,)), str(paths["pt2"]))
    from workbench.plugin_api.onnx_export import export_to_onnx
    import onnx
    onnx.save(export_to_onnx(model, [example], ["x"]), str(paths["onnx"]))
    return paths


TINY_FACTORY_MODULE = textwrap.dedent('''
    from torch import nn
    def mlp():
        return nn.Sequential(nn.Linear(64, 256), nn.ReLU(), nn.Linear(256, 10))
''')


def constant_weights_onnx(path: Path) -> Path:
    """An MLP whose weights come from Constant / ConstantOfShape nodes, not initializers."""
    import numpy as np
    import onnx
    from onnx import TensorProto, helper, numpy_helper
    rng = np.random.default_rng(0)
    w1 = rng.standard_normal((16, 32)).astype(np.float32)
    w2 = rng.standard_normal((32, 5)).astype(np.float32)
    nodes = [
        helper.make_node("Constant", [], ["w1"], value=numpy_helper.from_array(w1)),
        helper.make_node("Constant", [], ["b1_shape"], value=numpy_helper.from_array(np.array([32], np.int64))),
        helper.make_node("ConstantOfShape", ["b1_shape"], ["b1"],
                         value=numpy_helper.from_array(np.array([0.5], np.float32))),
        helper.make_node("Constant", [], ["w2"], value=numpy_helper.from_array(w2)),
        helper.make_node("MatMul", ["x", "w1"], ["h0"]),
        helper.make_node("Add", ["h0", "b1"], ["h1"]),
        helper.make_node("Relu", ["h1"], ["h2"]),
        helper.make_node("MatMul", ["h2", "w2"], ["y"]),
    ]
    graph = helper.make_graph(nodes, "const_mlp",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 16])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 5])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


def process_alive(pid: int) -> bool:
    """Whether ``pid`` is a live process; a zombie (exited, not yet reaped) counts as gone."""
    import os
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"   # the name in (...) may hold spaces
    except OSError:
        return False
