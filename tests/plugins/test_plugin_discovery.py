"""Every first-party plugin is found through the `workbench.plugins` entry points, exactly as a
third-party one would be, and importing it (and discovering all of them) loads no torch, ONNX or
torchao: the GUI lists plugins and builds their forms without those libraries."""
from __future__ import annotations

import importlib
import subprocess
import sys

import pytest

from workbench.plugin_api import discover_plugins

FIRST_PARTY = {"quantize": "Quantize", "prune": "Prune", "fuse": "Fuse", "distill": "Distill"}
HEAVY = ("torch", "onnx", "onnxruntime", "torchao", "torch_pruning")


@pytest.mark.parametrize("name, class_name", sorted(FIRST_PARTY.items()))
def test_found_through_entry_points(name, class_name):
    info = discover_plugins(refresh=True)[name]
    assert info.ok, info.error
    assert info.cls is getattr(importlib.import_module(f"workbench_plugins.{name}"), class_name)
    assert info.source == "workbench"          # registered by this distribution's entry points


def test_importing_and_discovering_plugins_loads_no_heavy_library():
    modules = ", ".join(f"workbench_plugins.{name}" for name in FIRST_PARTY)
    code = (f"import sys, {modules}, workbench_plugins._quant_backend, workbench_plugins._training; "
            "from workbench.plugin_api import discover_plugins; registry = discover_plugins(); "
            f"assert all(registry[n].ok for n in {sorted(FIRST_PARTY)!r}), registry; "
            f"heavy = [m for m in {HEAVY!r} if m in sys.modules]; assert not heavy, heavy")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)
