#!/usr/bin/env python3
"""Train ``demo:tiny-lm``: a small Llama-style causal LM on the bundled corpus (seeded, CPU, minutes).

    python -m workbench.assets.make_tiny_lm              # corpus (if missing) + tokenizer + model + metrics
    python -m workbench.assets.make_tiny_lm --steps 50   # a quick smoke run (a worse model)
    python -m workbench.assets.make_tiny_lm --eval-only  # re-measure the shipped folder's perplexities

Writes to the demo assets folder (``workbench.models.demos.assets_dir()``) or ``--out``:

* ``corpus.txt``  if missing, from ``make_corpus.py`` (generated English; Apache-2.0).
* ``tiny-lm/``    an HF folder: ``config.json`` (LlamaForCausalLM, grouped-query attention),
                  ``model.safetensors`` (fp32), ``generation_config.json``, ``tokenizer.json`` +
                  ``tokenizer_config.json`` (byte-level BPE trained with ``tokenizers`` on the train part).
* ``demos.json``  the ``tiny-lm`` record: held-out perplexity (and a unigram model's, for scale),
                  the corpus split, the recipe, timings; the other demos' records are kept.

The split is ``workbench.worker.text_inputs.corpus_splits()``: the tokenizer and the model see only
the train part; perplexity is measured on the held-out part exactly as the worker measures it
(``token_stream`` -> ``windows`` of 128 tokens, padding masked out).
"""
from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import pathlib
import platform
import sys
import time

import numpy as np
import torch

from workbench.assets.make_demos import set_seed   # one seeding rule for every demo
from workbench.models import demos
from workbench.worker import text_inputs

SEED = 0
THREADS = 2
NAME = "tiny-lm"
FOLDER = "tiny-lm"
EOS = "<|endoftext|>"
VOCAB_SIZE = 2048
EVAL_SEQ_LEN = text_inputs.DEFAULT_SEQ_LEN
ARCHITECTURE = dict(hidden_size=192, intermediate_size=512, num_hidden_layers=4, num_attention_heads=4,
                    num_key_value_heads=2, max_position_embeddings=256, tie_word_embeddings=True,
                    rms_norm_eps=1e-5, rope_theta=10000.0)
RECIPE = dict(steps=400, batch_size=8, seq_len=256, lr=3e-3, min_lr_ratio=0.05, warmup_steps=40,
              weight_decay=0.05, betas=(0.9, 0.95), grad_clip=1.0)


def log(msg: str) -> None:
    print(msg, flush=True)


def file_sha256(path: pathlib.Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# -- tokenizer ----------------------------------------------------------------------------------
def train_tokenizer(train_text: str, folder: pathlib.Path):
    """Byte-level BPE (GPT-2 style: any UTF-8 text encodes, nothing is unknown) on the train part."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=VOCAB_SIZE, special_tokens=[EOS], show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(text_inputs.paragraphs(train_text), trainer=trainer)
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token=EOS, eos_token=EOS, unk_token=None,
                                   model_max_length=ARCHITECTURE["max_position_embeddings"])
    fast.save_pretrained(str(folder))
    # transformers 5 writes its own class name, which 4.x cannot resolve; both load this one
    config_path = folder / "tokenizer_config.json"
    config = json.loads(config_path.read_text(encoding="utf-8"))
    config["tokenizer_class"] = "PreTrainedTokenizerFast"
    config_path.write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")
    return fast


# -- model --------------------------------------------------------------------------------------
def build_model(vocab_size: int, eos_id: int):
    from transformers import LlamaConfig, LlamaForCausalLM
    config = LlamaConfig(vocab_size=vocab_size, bos_token_id=eos_id, eos_token_id=eos_id, **ARCHITECTURE)
    return LlamaForCausalLM(config)


def train(model, stream: np.ndarray, *, steps: int, batch_size: int, seq_len: int, lr: float,
          min_lr_ratio: float, warmup_steps: int, weight_decay: float, betas, grad_clip: float) -> dict:
    """AdamW, linear warm-up then cosine decay; each batch is random windows of the train stream."""
    gen = torch.Generator().manual_seed(SEED)
    data = torch.from_numpy(stream)
    decay = [p for n, p in model.named_parameters() if p.dim() >= 2]
    no_decay = [p for n, p in model.named_parameters() if p.dim() < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": weight_decay},
                             {"params": no_decay, "weight_decay": 0.0}], lr=lr, betas=betas)

    def lr_at(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / warmup_steps
        progress = (step - warmup_steps) / max(1, steps - warmup_steps)
        return min_lr_ratio + (1 - min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * progress))

    sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_at)
    model.train()
    t0, losses = time.perf_counter(), []
    for step in range(steps):
        starts = torch.randint(0, len(data) - seq_len - 1, (batch_size,), generator=gen)
        batch = torch.stack([data[s:s + seq_len] for s in starts.tolist()])
        loss = model(input_ids=batch, labels=batch).loss
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
        opt.step()
        sched.step()
        losses.append(loss.item())
        if step % 50 == 0 or step == steps - 1:
            recent = sum(losses[-50:]) / len(losses[-50:])
            log(f"  step {step:4d}/{steps}  loss {recent:.3f}  {time.perf_counter() - t0:6.1f} s")
    model.eval()
    return {"train_seconds": round(time.perf_counter() - t0, 1), "final_train_loss": round(sum(losses[-50:]) / len(losses[-50:]), 4)}


# -- evaluation ---------------------------------------------------------------------------------
@torch.inference_mode()
def perplexity(model, ids: np.ndarray, mask: np.ndarray, batch: int = 16) -> float:
    """exp(mean next-token cross-entropy) over real tokens (padding masked out), as the worker does."""
    total, count = 0.0, 0
    for start in range(0, len(ids), batch):
        x = torch.from_numpy(ids[start:start + batch])
        m = torch.from_numpy(mask[start:start + batch])
        logits = model(input_ids=x, attention_mask=m).logits.float()
        target, keep = x[:, 1:], (m[:, 1:] * m[:, :-1]).bool()
        nll = torch.nn.functional.cross_entropy(logits[:, :-1].transpose(1, 2), target, reduction="none")
        total += float(nll[keep].sum())
        count += int(keep.sum())
    return math.exp(total / count)


def unigram_perplexity(train: np.ndarray, heldout: np.ndarray, vocab_size: int) -> float:
    """A unigram model from the train stream (add-one smoothing) on the held-out stream: the scale
    below which a model has learned something beyond word frequencies."""
    counts = np.bincount(train, minlength=vocab_size).astype(np.float64) + 1.0
    logp = np.log(counts / counts.sum())
    return float(math.exp(-logp[heldout].mean()))


def int8_dynamic_perplexity(model, ids: np.ndarray, mask: np.ndarray) -> float:
    """Perplexity after ``quantize_dynamic({nn.Linear}, qint8)``: shows that the model is sensitive
    enough for optimizations to show in its perplexity."""
    import copy
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        quantized = torch.ao.quantization.quantize_dynamic(copy.deepcopy(model), {torch.nn.Linear}, dtype=torch.qint8)
    return perplexity(quantized, ids, mask)


def ensure_corpus(out: pathlib.Path) -> pathlib.Path:
    path = out / text_inputs.CORPUS_FILE
    if not path.is_file():
        from workbench.assets import make_corpus
        log(f"corpus: generating {path}")
        make_corpus.main(["--out", str(out)])
    return path


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=pathlib.Path, default=None, help="assets folder (default: the installed one)")
    ap.add_argument("--steps", type=int, default=RECIPE["steps"], help="training steps")
    ap.add_argument("--eval-only", action="store_true",
                    help="keep the trained folder, re-measure its perplexities (training figures are kept)")
    args = ap.parse_args(argv)
    out = (args.out or demos.assets_dir()).resolve()
    out.mkdir(parents=True, exist_ok=True)
    os.environ[demos.ASSETS_ENV] = str(out)     # text_inputs.corpus_splits() reads this folder's corpus
    torch.set_num_threads(THREADS)
    set_seed(SEED)
    t_start = time.perf_counter()
    folder = out / FOLDER
    json_path = out / demos.METRICS_FILE
    meta = json.loads(json_path.read_text(encoding="utf-8")) if json_path.exists() else {"schema": 1, "demos": {}}
    previous = meta.get("demos", {}).get(NAME, {})

    corpus = ensure_corpus(out)
    splits = text_inputs.corpus_splits()
    if args.eval_only:
        from transformers import AutoTokenizer
        tokenizer = AutoTokenizer.from_pretrained(str(folder), local_files_only=True)
        training = {k: previous[k] for k in TRAINING_FIELDS if k in previous}
    else:
        folder.mkdir(exist_ok=True)
        log(f"tokenizer: byte-level BPE, {VOCAB_SIZE} tokens, on the train part ({splits.boundary} characters)")
        tokenizer = train_tokenizer(splits.train, folder)
        training = train_and_save(tokenizer, splits, folder, dict(RECIPE, steps=args.steps))
    record = evaluate(folder, tokenizer, splits, corpus)
    record.update(training)
    if not args.eval_only:
        record["total_seconds"] = round(time.perf_counter() - t_start, 1)
    meta.setdefault("demos", {})[NAME] = record
    json_path.write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
    log(f"tiny-lm: held-out perplexity {record['heldout_perplexity']} (unigram {record['unigram_heldout_perplexity']}, "
        f"int8 dynamic {record['int8_dynamic_heldout_perplexity']}); train {record.get('train_seconds')} s; "
        f"{sum(p.stat().st_size for p in folder.iterdir()) / 1e6:.2f} MB in {folder}")
    return 0


# What --eval-only keeps from the previous record: how the weights were made.
TRAINING_FIELDS = ("train_seconds", "final_train_loss", "seconds_per_step", "total_seconds", "recipe",
                   "train_loadavg", "threads", "seed")


def train_and_save(tokenizer, splits, folder: pathlib.Path, recipe: dict) -> dict:
    train_stream = text_inputs.token_stream(tokenizer, splits.train)
    log(f"tokens: train {len(train_stream)}")
    set_seed(SEED)
    model = build_model(len(tokenizer), tokenizer.eos_token_id)
    params = sum(p.numel() for p in model.parameters())
    log(f"model: LlamaForCausalLM {params} parameters; {recipe['steps']} steps of {recipe['batch_size']}x{recipe['seq_len']} tokens")
    timing = train(model, train_stream, **recipe)
    model.save_pretrained(str(folder), safe_serialization=True)
    return {**timing, "seconds_per_step": round(timing["train_seconds"] / recipe["steps"], 3),
            "train_loadavg": round(os.getloadavg()[0], 2) if hasattr(os, "getloadavg") else None,
            "threads": THREADS, "seed": SEED,
            "recipe": {k: list(v) if isinstance(v, tuple) else v for k, v in recipe.items()}}


def evaluate(folder: pathlib.Path, tokenizer, splits, corpus: pathlib.Path) -> dict:
    """The record of what the catalog ships: the folder reloaded as the loaders will, measured on
    the held-out part exactly as the worker cuts it."""
    from transformers import AutoModelForCausalLM
    train_stream = text_inputs.token_stream(tokenizer, splits.train)
    heldout_stream = text_inputs.token_stream(tokenizer, splits.heldout)
    eval_ids, eval_mask = text_inputs.windows(heldout_stream, EVAL_SEQ_LEN, text_inputs.pad_id_of(tokenizer))
    train_ids, train_mask = text_inputs.windows(train_stream[: len(heldout_stream)], EVAL_SEQ_LEN, 0)
    log(f"evaluate: held-out {len(heldout_stream)} tokens ({len(eval_ids)} windows of {EVAL_SEQ_LEN})")
    model = AutoModelForCausalLM.from_pretrained(str(folder), local_files_only=True).eval()
    weights = folder / "model.safetensors"
    size = len(splits.train) + len(splits.heldout)
    return {
        "heldout_perplexity": round(perplexity(model, eval_ids, eval_mask), 4),
        "train_perplexity": round(perplexity(model, train_ids, train_mask), 4),
        "unigram_heldout_perplexity": round(unigram_perplexity(train_stream, heldout_stream, len(tokenizer)), 2),
        "int8_dynamic_heldout_perplexity": round(int8_dynamic_perplexity(model, eval_ids, eval_mask), 4),
        "eval": {"seq_len": EVAL_SEQ_LEN, "windows": int(len(eval_ids)), "tokens": int(eval_mask.sum()),
                 "how": "text_inputs.windows(token_stream(tokenizer, corpus_splits().heldout), 128, pad)"},
        "corpus": {"file": text_inputs.CORPUS_FILE, "bytes": corpus.stat().st_size, "sha256": file_sha256(corpus),
                   "characters": size, "train_chars": [0, splits.boundary], "heldout_chars": [splits.boundary, size],
                   "held_out_fraction": text_inputs.HELD_OUT_FRACTION,
                   "train_tokens": int(len(train_stream)), "heldout_tokens": int(len(heldout_stream)),
                   "source": "generated by make_corpus.py (seed 0); Apache-2.0, written for this project"},
        "params": sum(p.numel() for p in model.parameters()),
        "bytes": weights.stat().st_size,
        "sha256": file_sha256(weights),
        "architecture": {"class": "LlamaForCausalLM", "vocab_size": len(tokenizer), **ARCHITECTURE},
        "tokenizer": {"kind": "byte-level BPE (tokenizers)", "vocab_size": len(tokenizer), "eos": EOS,
                      "pad": "none (eos is used, masked out)"},
        "environment": {"torch": torch.__version__, "python": platform.python_version(), "cpu_count": os.cpu_count(),
                        "loadavg": round(os.getloadavg()[0], 2) if hasattr(os, "getloadavg") else None},
    }


if __name__ == "__main__":
    sys.exit(main())
