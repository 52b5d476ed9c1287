#!/usr/bin/env python3
"""Regenerate the bundled demo assets (seeded, reproducible, CPU only, a few minutes on 2 cores).

    pip install 'workbench[demos]'                         # scikit-learn: the digits data
    python -m workbench.assets.make_demos              # data + both models + speed checks, then tiny-lm
    python -m workbench.assets.make_demos --bench-only # re-measure the speed-ups with the existing weights
    python -m workbench.assets.make_demos --no-bench   # train only (speed figures are left out)
    python -m workbench.assets.make_demos --no-tiny-lm # the digits demos only (tiny-lm: make_tiny_lm.py)

Writes to the folder the demos are loaded from (``workbench.models.demos.assets_dir()``: the
installed ``workbench.assets`` package, which is the repo's ``assets/`` in an editable install,
or ``$WORKBENCH_ASSETS``), or to ``--out``:

* ``digits.npz``    sklearn ``load_digits`` split 80/20 (stratified, ``random_state=SEED``):
                    ``x_train``/``x_test`` float32 (N, 1, 8, 8) in [0, 1], ``y_train``/``y_test`` int64.
* ``digits-cnn.safetensors``, ``digits-transformer.safetensors``: fp32 state_dicts
                    (BatchNorm running stats included) for the factories in
                    ``workbench/models/demo_nets.py``.
* ``demos.json``    per demo: accuracies, parameter count, bytes, epochs, seed, architecture and
                    the measured CPU speed-ups (batch 64, ``torch.set_num_threads(2)``, median of
                    many iterations after warm-up, variants timed in one run in alternating blocks):
                    dynamic int8 (``quantize_dynamic({nn.Linear}, qint8)``) for the transformer,
                    50 % structured channel pruning (torch-pruning) for the CNN.

Timings depend on the machine and on what else runs on it; weights and accuracies do not
(for a given torch version and CPU).
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import os
import pathlib
import platform
import random
import statistics
import sys
import time
import warnings

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from workbench.models import demos

MISSING_SKLEARN = ("make_demos needs scikit-learn for the digits data: pip install 'workbench[demos]' "
                   "(or pip install scikit-learn)")

SEED = 0
THREADS = 2
BENCH_BATCH = 64
TEST_SIZE = 0.2

CNN_NAME = "digits-cnn"
TF_NAME = "digits-transformer"

# Training recipes (kept here so demos.json can record them).
CNN_RECIPE = dict(epochs=20, batch_size=64, lr=2e-3, weight_decay=1e-4, shift=1, warmup_epochs=1)
TF_RECIPE = dict(
    epochs=60, batch_size=64, lr=1.5e-3, weight_decay=0.05, shift=1, warmup_epochs=3, dropout=0.1
)
PRUNE_FINETUNE_EPOCHS = 5


# --------------------------------------------------------------------------------------------
# helpers


def set_seed(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    torch.use_deterministic_algorithms(True)
    # deterministic mode would also NaN-fill every fresh tensor: slow and pointless here
    torch.utils.deterministic.fill_uninitialized_memory = False


def log(msg: str) -> None:
    print(msg, flush=True)


def make_data(out: pathlib.Path) -> dict[str, np.ndarray]:
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    digits = load_digits()
    x = (digits.images.astype(np.float32) / 16.0).reshape(-1, 1, 8, 8)
    y = digits.target.astype(np.int64)
    x_train, x_test, y_train, y_test = train_test_split(
        x, y, test_size=TEST_SIZE, stratify=y, random_state=SEED, shuffle=True
    )
    data = {
        "x_train": np.ascontiguousarray(x_train, dtype=np.float32),
        "y_train": np.ascontiguousarray(y_train, dtype=np.int64),
        "x_test": np.ascontiguousarray(x_test, dtype=np.float32),
        "y_test": np.ascontiguousarray(y_test, dtype=np.int64),
    }
    np.savez_compressed(out / "digits.npz", **data)
    return data


def random_shift(xb: torch.Tensor, max_shift: int, gen: torch.Generator) -> torch.Tensor:
    """Shift each image by up to ``max_shift`` pixels in x and y (zero fill)."""
    if max_shift <= 0:
        return xb
    n, _, h, w = xb.shape
    padded = F.pad(xb, (max_shift,) * 4)
    offs = torch.randint(0, 2 * max_shift + 1, (n, 2), generator=gen)
    rows = (offs[:, 0, None] + torch.arange(h))[:, :, None]  # (n, h, 1)
    cols = (offs[:, 1, None] + torch.arange(w))[:, None, :]  # (n, 1, w)
    idx = torch.arange(n)[:, None, None]
    return padded[:, 0][idx, rows, cols].unsqueeze(1)


def accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    """Top-1 accuracy, whole split in one batch (as tests/models/test_demos.py does)."""
    model.eval()
    with torch.inference_mode():
        pred = model(x).argmax(dim=1)
    return float((pred == y).double().mean().item())


def n_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def train(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    epochs: int,
    batch_size: int,
    lr: float,
    weight_decay: float,
    shift: int,
    warmup_epochs: int,
    seed: int,
    label: str,
    **_ignored,
) -> float:
    """Adam(W) + linear warm-up + cosine decay, light shift augmentation. Returns seconds."""
    gen = torch.Generator().manual_seed(seed)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)
    steps_per_epoch = math.ceil(len(x) / batch_size)
    total = epochs * steps_per_epoch
    warm = warmup_epochs * steps_per_epoch

    def lr_at(step: int) -> float:
        if step < warm:
            return (step + 1) / warm
        return 0.5 * (1 + math.cos(math.pi * (step - warm) / max(1, total - warm)))

    sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_at)
    t0 = time.perf_counter()
    for epoch in range(epochs):
        model.train()
        perm = torch.randperm(len(x), generator=gen)
        loss_sum = 0.0
        for i in range(0, len(x), batch_size):
            idx = perm[i : i + batch_size]
            xb = random_shift(x[idx], shift, gen)
            loss = F.cross_entropy(model(xb), y[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            sched.step()
            loss_sum += loss.item() * len(idx)
        if epoch == 0 or (epoch + 1) % 10 == 0 or epoch + 1 == epochs:
            log(
                f"  [{label}] epoch {epoch + 1:3d}/{epochs}  loss {loss_sum / len(x):.4f}"
                f"  ({time.perf_counter() - t0:.0f} s)"
            )
    model.eval()
    return time.perf_counter() - t0


def save_weights(model: nn.Module, path: pathlib.Path, name: str) -> None:
    from safetensors.torch import save_file

    state = {}
    for key, value in model.state_dict().items():
        t = value.detach().cpu().contiguous().clone()
        state[key] = t.float() if t.is_floating_point() else t
    # one metadata key only: safetensors writes a metadata map in arbitrary order, and the
    # files should be byte-for-byte reproducible (name/seed are recorded in demos.json)
    save_file(state, str(path), metadata={"format": "pt"})


def bench(models: dict, x: torch.Tensor, rounds: int = 8, iters: int = 40, warmup: int = 30):
    """Median wall time (ms) per model; models alternate in blocks of ``iters`` iterations."""
    times: dict[str, list[float]] = {k: [] for k in models}
    with torch.inference_mode():
        for m in models.values():
            for _ in range(warmup):
                m(x)
        for _ in range(rounds):
            for key, m in models.items():
                for _ in range(5):  # re-warm after the other variant ran
                    m(x)
                for _ in range(iters):
                    t0 = time.perf_counter()
                    m(x)
                    times[key].append(time.perf_counter() - t0)
    return {k: statistics.median(v) * 1e3 for k, v in times.items()}


def quantize_dynamic_int8(model: nn.Module, engine: str) -> nn.Module:
    from torch.ao.quantization import quantize_dynamic

    previous = torch.backends.quantized.engine
    torch.backends.quantized.engine = engine
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return quantize_dynamic(copy.deepcopy(model), {nn.Linear}, dtype=torch.qint8)
    finally:
        torch.backends.quantized.engine = previous


def prune_channels(model: nn.Module, ratio: float = 0.5) -> nn.Module:
    import torch_pruning as tp

    pruned = copy.deepcopy(model).eval()
    example = torch.zeros(1, 1, 8, 8)
    pruner = tp.pruner.MetaPruner(
        pruned,
        example,
        importance=tp.importance.GroupMagnitudeImportance(p=2),
        pruning_ratio=ratio,
        ignored_layers=[pruned.classifier],
    )
    pruner.step()
    return pruned.eval()


# --------------------------------------------------------------------------------------------
# speed checks


def check_transformer(model: nn.Module, data: dict) -> dict:
    torch.set_num_threads(THREADS)
    x_test, y_test = data["x_test"], data["y_test"]
    xb = x_test[:BENCH_BATCH].contiguous()
    default_engine = torch.backends.quantized.engine
    engines = [default_engine] + [
        e for e in ("onednn", "fbgemm") if e != default_engine and e in torch.backends.quantized.supported_engines
    ]
    variants = {"fp32": model}
    for e in engines:
        variants[f"int8-{e}"] = quantize_dynamic_int8(model, e)
    ms = bench(variants, xb)
    fp32_acc = accuracy(model, x_test, y_test)
    result = {
        "method": "torch.ao.quantization.quantize_dynamic(model, {nn.Linear}, dtype=torch.qint8)",
        "batch": BENCH_BATCH,
        "threads": THREADS,
        "default_engine": default_engine,
        "fp32_ms": round(ms["fp32"], 4),
        "engines": {},
    }
    for e in engines:
        q = variants[f"int8-{e}"]
        result["engines"][e] = {
            "int8_ms": round(ms[f"int8-{e}"], 4),
            "speedup": round(ms["fp32"] / ms[f"int8-{e}"], 3),
            "test_accuracy": accuracy(q, x_test, y_test),
        }
    best = max(result["engines"], key=lambda e: result["engines"][e]["speedup"])
    result["best_engine"] = best
    result["speedup"] = result["engines"][best]["speedup"]
    result["speedup_default_engine"] = result["engines"][default_engine]["speedup"]
    result["int8_test_accuracy"] = result["engines"][best]["test_accuracy"]
    result["accuracy_drop_points"] = round(100 * (fp32_acc - result["int8_test_accuracy"]), 3)
    return result


def check_cnn(model: nn.Module, data: dict, finetune: bool = True) -> dict:
    torch.set_num_threads(THREADS)
    x_test, y_test = data["x_test"], data["y_test"]
    xb = x_test[:BENCH_BATCH].contiguous()
    pruned = prune_channels(model, 0.5)
    result = {
        "method": (
            "torch_pruning.pruner.MetaPruner(importance=GroupMagnitudeImportance(p=2), "
            "pruning_ratio=0.5, ignored_layers=[classifier])"
        ),
        "batch": BENCH_BATCH,
        "threads": THREADS,
        "pruning_ratio": 0.5,
        "pruned_params": n_params(pruned),
        "pruned_channels": [m.out_channels for m in pruned.modules() if isinstance(m, nn.Conv2d)],
        "pruned_test_accuracy_no_finetune": accuracy(pruned, x_test, y_test),
    }
    ms = bench({"fp32": model, "pruned": pruned}, xb)
    result["fp32_ms"] = round(ms["fp32"], 4)
    result["pruned_ms"] = round(ms["pruned"], 4)
    result["speedup"] = round(ms["fp32"] / ms["pruned"], 3)
    if finetune:
        set_seed(SEED)
        recipe = dict(CNN_RECIPE, epochs=PRUNE_FINETUNE_EPOCHS, lr=5e-4, warmup_epochs=0)
        train(pruned, data["x_train"], data["y_train"], seed=SEED, label="cnn pruned finetune", **recipe)
        result["finetune_epochs"] = PRUNE_FINETUNE_EPOCHS
        result["pruned_test_accuracy_finetuned"] = accuracy(pruned, x_test, y_test)
    return result


# --------------------------------------------------------------------------------------------
# main


def file_sha256(path: pathlib.Path) -> str:
    import hashlib

    return hashlib.sha256(path.read_bytes()).hexdigest()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", type=pathlib.Path, default=None,
                    help="assets folder (default: where the demos are loaded from, $WORKBENCH_ASSETS or the package)")
    group = ap.add_mutually_exclusive_group()
    group.add_argument("--bench-only", action="store_true", help="keep data/weights, re-measure speed-ups")
    group.add_argument("--no-bench", action="store_true", help="skip the speed checks")
    ap.add_argument("--no-tiny-lm", action="store_true", help="skip demo:tiny-lm (make_tiny_lm.py, minutes)")
    args = ap.parse_args(argv)
    if not args.bench_only:
        try:
            import sklearn  # noqa: F401  (only the data step needs it; checked before any work)
        except ImportError:
            print(MISSING_SKLEARN, file=sys.stderr)
            return 2

    out: pathlib.Path = (args.out or demos.assets_dir()).resolve()
    out.mkdir(parents=True, exist_ok=True)
    os.environ[demos.ASSETS_ENV] = str(out)   # build_demo_module below loads what was just written

    torch.set_num_threads(THREADS)
    set_seed(SEED)
    json_path = out / demos.METRICS_FILE
    previous = json.loads(json_path.read_text()) if json_path.exists() else {}

    if args.bench_only:
        raw = demos.load_eval_data(out / "digits.npz")
    else:
        log("data: sklearn load_digits -> digits.npz")
        raw = make_data(out)
    data = {k: torch.from_numpy(v) for k, v in raw.items()}

    from workbench.models import demo_nets

    recipes = {CNN_NAME: CNN_RECIPE, TF_NAME: TF_RECIPE}
    records: dict[str, dict] = {}
    for name in (CNN_NAME, TF_NAME):
        entry = demos.get_demo(name)
        weights = out / entry.weights
        recipe = recipes[name]
        record = dict(previous.get("demos", {}).get(name, {})) if args.bench_only else {}
        if not args.bench_only:
            log(f"train {name}")
            set_seed(SEED)
            if name == CNN_NAME:
                model = demo_nets.DigitsCNN()
            else:
                model = demo_nets.DigitsTransformer(dropout=recipe["dropout"])
            seconds = train(model, data["x_train"], data["y_train"], seed=SEED, label=name, **recipe)
            save_weights(model, weights, name)
            record["train_seconds"] = round(seconds, 1)
        # Always evaluate what the catalog loads (factory + strict safetensors load).
        model = demos.build_demo_module(name)
        record.update(
            {
                "test_accuracy": accuracy(model, data["x_test"], data["y_test"]),
                "train_accuracy": accuracy(model, data["x_train"], data["y_train"]),
                "params": n_params(model),
                "bytes": weights.stat().st_size,
                "sha256": file_sha256(weights),
                "epochs": recipe["epochs"],
                "seed": SEED,
                "architecture": {"class": type(model).__name__, **model.config()},
                "recipe": {k: v for k, v in recipe.items() if k != "epochs"},
            }
        )
        if not args.no_bench:
            log(f"speed check {name} (batch {BENCH_BATCH}, {THREADS} threads)")
            if name == CNN_NAME:
                record["pruning"] = check_cnn(model, data)
            else:
                record["int8_dynamic"] = check_transformer(model, data)
            record["bench_loadavg"] = round(os.getloadavg()[0], 2) if hasattr(os, "getloadavg") else None
        records[name] = record

    meta = {
        "schema": 1,
        "generated_by": "python -m workbench.assets.make_demos",
        "seed": SEED,
        "data": {
            "file": "digits.npz",
            "source": "sklearn.datasets.load_digits",
            "split": f"stratified train_test_split(test_size={TEST_SIZE}, random_state={SEED})",
            "x": "float32 (N, 1, 8, 8), pixel / 16 in [0, 1]",
            "y": "int64 class 0-9",
            "n_train": int(len(raw["y_train"])),
            "n_test": int(len(raw["y_test"])),
            "bytes": (out / "digits.npz").stat().st_size,
        },
        "environment": {
            "torch": torch.__version__,
            "python": platform.python_version(),
            "machine": platform.machine(),
            "processor": platform.processor() or None,
            "cpu_count": os.cpu_count(),
            "threads": THREADS,
        },
        "demos": {**previous.get("demos", {}), **records},   # keeps tiny-lm's record (make_tiny_lm.py)
    }
    json_path.write_text(json.dumps(meta, indent=2) + "\n")

    # summary table
    log("")
    log(f"{'demo':<20} {'params':>9} {'bytes':>9} {'epochs':>6} {'train acc':>9} {'test acc':>9}  speed-up (batch 64, 2 threads)")
    for name, r in records.items():
        if "pruning" in r:
            p = r["pruning"]
            speed = f"50% pruned {p['speedup']:.2f}x ({p['fp32_ms']:.2f} -> {p['pruned_ms']:.2f} ms)"
        elif "int8_dynamic" in r:
            q = r["int8_dynamic"]
            parts = [
                f"{e} {v['speedup']:.2f}x ({q['fp32_ms']:.2f} -> {v['int8_ms']:.2f} ms, acc {v['test_accuracy']:.4f})"
                for e, v in q["engines"].items()
            ]
            speed = "int8 dynamic " + "; ".join(parts)
        else:
            speed = "-"
        log(
            f"{name:<20} {r['params']:>9} {r['bytes']:>9} {r['epochs']:>6} "
            f"{r['train_accuracy']:>9.4f} {r['test_accuracy']:>9.4f}  {speed}"
        )
    total = sum(p.stat().st_size for p in out.iterdir() if p.suffix in (".npz", ".safetensors", ".json"))
    log(f"assets total: {total / 1e6:.2f} MB in {out}")
    if not args.bench_only and not args.no_tiny_lm:
        from workbench.assets import make_tiny_lm
        log("train tiny-lm (make_tiny_lm.py)")
        return make_tiny_lm.main(["--out", str(out)])
    return 0


if __name__ == "__main__":
    sys.exit(main())
