"""Bundled demo models: catalog, assets, weights and recorded accuracies."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from workbench.models import demos

REPO = Path(__file__).resolve().parents[2]
ASSETS = REPO / "assets"


@pytest.fixture(autouse=True)
def _bundled_assets(monkeypatch):
    """Always test the assets committed in the repo, whatever the environment says."""
    monkeypatch.setenv(demos.ASSETS_ENV, str(ASSETS))


@pytest.fixture(scope="module")
def digits():
    return demos.load_eval_data(ASSETS / "digits.npz")


def test_catalog_entries_are_consistent():
    assert demos.demo_names() == ["digits-cnn", "digits-transformer", "tiny-lm"]   # tiny-lm: test_demo_lm.py
    assert demos.demo_names("module") == ["digits-cnn", "digits-transformer"]
    for name in demos.demo_names("module"):
        entry = demos.get_demo(name)
        assert entry.name == name
        assert entry.summary and "\n" not in entry.summary
        assert entry.input_shape == (1, 1, 8, 8)
        assert entry.input_dtype == "float32"
        assert entry.data == "digits.npz"
        assert (ASSETS / entry.weights).is_file(), entry.weights
        module_name, _, func = entry.factory.partition(":")
        assert module_name == "workbench.models.demo_nets" and func
    assert "prune" in demos.get_demo("digits-cnn").good_for
    assert "quantize" in demos.get_demo("digits-transformer").good_for


def test_assets_dir_default_and_override(monkeypatch, tmp_path):
    from importlib import resources

    monkeypatch.delenv(demos.ASSETS_ENV, raising=False)
    # the installed package's data (the repo's assets/ in an editable install), never a source-tree path
    assert demos.assets_dir() == resources.files(demos.ASSETS_PACKAGE)
    assert (demos.assets_dir() / demos.get_demo("digits-cnn").weights).is_file()
    monkeypatch.setenv(demos.ASSETS_ENV, str(tmp_path))
    assert demos.assets_dir() == tmp_path
    # no demos.json there -> no metrics, not an error
    assert demos.demo_metrics("digits-cnn") == {}


def test_a_source_checkout_on_the_path_finds_its_own_assets(tmp_path):
    """PYTHONPATH=checkout without an install (how the GPU check runs): workbench.assets is not a
    package there, so the checkout's assets/ folder is used; an install still uses its package data."""
    code = (f"import sys; sys.path.insert(0, {str(REPO)!r}); import workbench.models.demos as d; "
            "print(d.assets_dir())")
    env = {k: v for k, v in os.environ.items() if k != demos.ASSETS_ENV}
    proc = subprocess.run([sys.executable, "-S", "-c", code], cwd=tmp_path, capture_output=True, text=True,
                          timeout=60, env=env)
    assert proc.returncode == 0, proc.stderr
    assert Path(proc.stdout.strip()) == Path(REPO) / "assets"


def test_unknown_demo_lists_available_names():
    with pytest.raises(ValueError) as info:
        demos.get_demo("no-such-demo")
    message = str(info.value)
    assert "no-such-demo" in message
    for name in demos.demo_names():
        assert name in message
    with pytest.raises(KeyError):  # also catchable as a lookup error
        demos.get_demo("no-such-demo")
    with pytest.raises(ValueError, match="digits-cnn"):
        demos.build_demo_module("no-such-demo")


def test_catalog_does_not_import_torch():
    code = (
        "import sys, workbench.models.demos as d; "
        "d.demo_names(); d.get_demo('digits-cnn'); d.assets_dir(); d.demo_metrics('digits-cnn'); "
        "assert 'torch' not in sys.modules, 'torch imported'"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0, proc.stderr


def test_eval_data_arrays(digits):
    assert set(digits) == {"x_train", "y_train", "x_test", "y_test"}
    n_train, n_test = len(digits["y_train"]), len(digits["y_test"])
    assert n_train + n_test == 1797
    assert abs(n_test / 1797 - 0.2) < 0.01
    for split, n in (("train", n_train), ("test", n_test)):
        x, y = digits[f"x_{split}"], digits[f"y_{split}"]
        assert x.dtype == np.float32 and x.shape == (n, 1, 8, 8)
        assert y.dtype == np.int64 and y.shape == (n,)
        assert x.min() >= 0.0 and x.max() <= 1.0 and x.max() > 0.9
        assert set(np.unique(y).tolist()) == set(range(10))
    # stratified: every class is present in the test split in roughly the same proportion
    counts = np.bincount(digits["y_test"], minlength=10)
    assert counts.min() >= 30
    # relative name resolves against the assets dir; no pickles allowed
    again = demos.load_eval_data("digits.npz")
    assert np.array_equal(again["y_test"], digits["y_test"])


def test_demos_json_records(digits):
    data = json.loads((ASSETS / "demos.json").read_text())
    assert data["data"]["n_test"] == len(digits["y_test"])
    for name in demos.demo_names("module"):
        m = demos.demo_metrics(name)
        assert m, name
        for key in ("test_accuracy", "train_accuracy", "params", "bytes", "epochs", "seed"):
            assert key in m, (name, key)
        assert m["bytes"] == (ASSETS / demos.get_demo(name).weights).stat().st_size
    assert demos.demo_metrics("digits-cnn")["pruning"]["speedup"] > 1.0
    assert demos.demo_metrics("digits-transformer")["int8_dynamic"]["speedup"] > 1.0
    total = sum(p.stat().st_size for p in ASSETS.iterdir() if p.is_file())
    assert total < 7_000_000


@pytest.mark.parametrize("name", ["digits-cnn", "digits-transformer"])
def test_demo_loads_and_matches_recorded_accuracy(name, digits):
    import torch

    torch.set_num_threads(2)
    module = demos.build_demo_module(name)
    assert not module.training
    metrics = demos.demo_metrics(name)
    assert metrics["params"] == sum(p.numel() for p in module.parameters())
    x = torch.from_numpy(digits["x_test"])
    y = torch.from_numpy(digits["y_test"])
    with torch.inference_mode():
        logits = module(x)  # whole split in one batch, as make_demos.py measures it
        assert logits.shape == (len(y), 10) and logits.dtype == torch.float32
        acc = float((logits.argmax(dim=1) == y).double().mean().item())
        # dynamic batch: a single sample works too
        assert module(x[:1]).shape == (1, 10)
    assert acc >= 0.9
    assert abs(acc - metrics["test_accuracy"]) <= 1e-6


def test_weights_are_strict_fp32_state_dicts(tmp_path, monkeypatch):
    from safetensors.torch import load_file, save_file
    import torch

    for name in demos.demo_names("module"):
        state = load_file(str(ASSETS / demos.get_demo(name).weights))
        floats = [t for t in state.values() if t.is_floating_point()]
        assert floats and all(t.dtype == torch.float32 for t in floats)
    # a missing key must fail the (strict) load
    cnn = load_file(str(ASSETS / "digits-cnn.safetensors"))
    assert any("running_mean" in k for k in cnn), "BatchNorm buffers must be stored"
    cnn.pop(next(k for k in cnn if k.endswith("running_var")))
    save_file(cnn, str(tmp_path / "digits-cnn.safetensors"))
    monkeypatch.setenv(demos.ASSETS_ENV, str(tmp_path))
    with pytest.raises(RuntimeError, match="running_var"):
        demos.build_demo_module("digits-cnn")
    with pytest.raises(FileNotFoundError, match="make_demos"):
        demos.build_demo_module("digits-transformer")


def test_transformer_uses_plain_linears():
    import torch
    from torch import nn

    from workbench.models import demo_nets

    model = demo_nets.digits_transformer()
    assert isinstance(model, demo_nets.DigitsTransformer) and not model.training
    linears = [m for m in model.modules() if type(m) is nn.Linear]
    assert len(linears) >= 4 * model.depth
    assert not any(isinstance(m, (nn.MultiheadAttention, nn.TransformerEncoderLayer)) for m in model.modules())
    for block in model.blocks:
        for proj in ("q_proj", "k_proj", "v_proj", "out_proj"):
            assert type(getattr(block.attn, proj)) is nn.Linear
        assert type(block.ff.fc1) is nn.Linear and type(block.ff.fc2) is nn.Linear
    # a reduced copy (for distillation) builds and runs
    small = demo_nets.DigitsTransformer(d_model=64, depth=1, num_heads=2)
    with torch.inference_mode():
        assert small.eval()(torch.zeros(3, 1, 8, 8)).shape == (3, 10)


def test_cnn_has_conv_bn_relu_blocks():
    import torch
    from torch import nn

    from workbench.models import demo_nets

    model = demo_nets.digits_cnn()
    assert isinstance(model, demo_nets.DigitsCNN) and not model.training
    seqs = [m for m in model.modules() if isinstance(m, nn.Sequential)]
    pairs = 0
    for seq in seqs:
        children = list(seq.children())
        for a, b in zip(children, children[1:]):
            if isinstance(a, nn.Conv2d):
                assert isinstance(b, nn.BatchNorm2d) and b.num_features == a.out_channels
                pairs += 1
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    assert pairs == len(convs) >= 3
    assert isinstance(model.classifier, nn.Linear)
    assert sum(isinstance(m, (nn.MaxPool2d, nn.AvgPool2d)) for m in model.modules()) == 1
    small = demo_nets.DigitsCNN(channels=(8, 16, 32))
    with torch.inference_mode():
        assert small.eval()(torch.zeros(2, 1, 8, 8)).shape == (2, 10)
