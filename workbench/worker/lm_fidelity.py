"""What an optimization did to a causal language model's predictions, on held-out token sequences.

The unoptimized model is scanned once before the plugin chain runs (``reference_scan``): its
negative log-likelihood of every next token (perplexity), its top-1 prediction at every position,
its logits at the first positions (as many as ``KL_MAX_VALUES`` floats allow: a 128 k vocabulary
keeps 256 positions, the demo LM all of them) and its greedy continuations of a few prompts. The
measured model is scanned the same way afterwards (``compare_scan``) and gives:

- perplexity of both and its change in %;
- next-token agreement: the share of positions where both predict the same next token;
- KL(reference ‖ variant) of the next-token distributions, the mean over the kept positions;
- continuation agreement: the share of identical tokens in the greedy continuations (position by
  position) of the same prompts.

Sequences arrive as the run's input arrays (``input_ids`` first, ``attention_mask`` second if the
model takes one) and are scored through ``infer(arrays) -> logits``, so an exported model (ONNX
Runtime) is scored the same way as a torch one; an ONNX model exported with its KV cache generates
its continuations on ONNX Runtime too (``lm_phases.decoder_for``).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from .fidelity import Fidelity
from .inputs import batched

KL_MAX_VALUES = 1 << 25         # reference logits kept for KL and cosine: 32 M floats (128 MB)
CONTINUATION_PROMPTS = 4        # greedy continuations compared, from the first held-out sequences
CONTINUATION_MAX_TOKENS = 32


@dataclass
class Scan:
    """One model's pass over the held-out sequences."""
    positions: int                 # next tokens scored
    nll_sum: float                 # summed negative log-likelihood (nats)
    argmax: np.ndarray             # (positions,) top-1 prediction at every position
    correct: int                   # predictions equal to the real next token
    logits: np.ndarray             # (kept, vocab) float32: the first positions' logits
    nonfinite: int                 # NaN/Inf values among all logits
    continuations: np.ndarray | None = None   # (prompts, tokens) greedy continuations

    @property
    def perplexity(self) -> float:
        if not self.positions:
            return float("nan")
        mean = self.nll_sum / self.positions
        return math.exp(mean) if mean < 700 else float("inf")


def scan(infer: Callable[[list[np.ndarray]], np.ndarray], arrays: list[np.ndarray], batch: int,
         keep_positions: int | None = None) -> Scan:
    """Score every next token of ``arrays`` (input_ids[, attention_mask]) with ``infer``, ``batch``
    sequences per call (the shape the model was prepared for)."""
    import torch
    nll_sum, correct, nonfinite, positions = 0.0, 0, 0, 0
    argmaxes, kept = [], []
    kept_count = 0
    for chunk, valid in batched(arrays, batch):
        logits = np.asarray(infer(chunk))[:valid]
        if logits.ndim != 3:
            raise ValueError(f"a causal LM returns logits (batch, seq, vocab); this model returned shape {logits.shape}")
        ids = np.asarray(chunk[0][:valid], dtype=np.int64)
        mask = np.asarray(chunk[1][:valid]).astype(bool) if len(chunk) > 1 else np.ones(ids.shape, bool)
        use = mask[:, 1:] & mask[:, :-1]           # position t predicts token t+1; both must be real text
        flat = torch.from_numpy(np.ascontiguousarray(logits[:, :-1][use], dtype=np.float32))
        targets = torch.from_numpy(ids[:, 1:][use])
        nonfinite += int(flat.numel() - torch.isfinite(flat).sum())
        log_probs = flat.log_softmax(-1)          # stable in float32; the sum is taken in float64
        nll_sum += float(-log_probs.gather(1, targets[:, None]).double().sum())
        top = flat.argmax(-1)
        correct += int((top == targets).sum())
        argmaxes.append(top.numpy())
        positions += int(flat.shape[0])
        if keep_positions is None:
            keep_positions = max(1, KL_MAX_VALUES // max(1, flat.shape[1]))
        if kept_count < keep_positions:
            take = flat[:keep_positions - kept_count].numpy().copy()
            kept.append(take)
            kept_count += len(take)
    vocab = kept[0].shape[1] if kept else 0
    return Scan(positions, nll_sum, np.concatenate(argmaxes) if argmaxes else np.zeros(0, np.int64), correct,
                np.concatenate(kept) if kept else np.zeros((0, vocab), np.float32), nonfinite)


def continuations(decoder: Any, prompts: Any, gen_len: int) -> np.ndarray:
    """Greedy continuations of ``prompts`` (batch, prompt_len tensor), untimed."""
    import torch
    with torch.no_grad():
        generation = decoder.run(prompts, gen_len)
    return generation.tokens.cpu().numpy()


def continuation_prompts(arrays: list[np.ndarray], prompt_len: int, gen_len: int, max_positions: int | None):
    """The first held-out sequences' opening tokens as prompts (None when they are too short or padded)."""
    ids = np.asarray(arrays[0])
    count = min(CONTINUATION_PROMPTS, len(ids))
    length = min(prompt_len, ids.shape[1])
    if max_positions:
        length = min(length, max_positions - gen_len)
    if count == 0 or length < 1:
        return None
    if len(arrays) > 1 and not np.asarray(arrays[1])[:count, :length].all():
        return None          # padded prompts would need their own masks; the held-out text is unpadded
    return np.ascontiguousarray(ids[:count, :length], dtype=np.int64)


def continuation_length(gen_len: int) -> int:
    return max(1, min(gen_len, CONTINUATION_MAX_TOKENS))


def compare(reference: Scan, variant: Scan) -> tuple[dict, Fidelity]:
    """``result["lm_fidelity"]`` and the ``Fidelity`` every view reads (its top-1 agreement is the
    next-token agreement; cosine and errors are over the kept positions' logits)."""
    import torch
    if variant.positions != reference.positions:
        raise ValueError(f"the variant scored {variant.positions} positions, the reference {reference.positions}")
    agreement = float(np.mean(variant.argmax == reference.argmax)) if reference.positions else None
    kept = min(len(reference.logits), len(variant.logits))
    ref = torch.from_numpy(reference.logits[:kept]).double()
    out = torch.from_numpy(variant.logits[:kept]).double()
    kl = cosine = max_err = mean_err = None
    if kept:
        ref_lp, out_lp = ref.log_softmax(-1), out.log_softmax(-1)
        # KL(p_ref || p_var) >= 0; rounding can give -1e-17 for identical rows
        kl = float((ref_lp.exp() * (ref_lp - out_lp)).sum(-1).clamp(min=0).mean())
        cosine = float(torch.nn.functional.cosine_similarity(ref, out, dim=-1).mean())
        diff = (out - ref).abs()
        max_err, mean_err = float(diff.max()), float(diff.mean())
    ppl, ref_ppl = variant.perplexity, reference.perplexity
    delta = 100 * (ppl - ref_ppl) / ref_ppl if math.isfinite(ppl) and math.isfinite(ref_ppl) and ref_ppl > 0 else None
    continuation = None
    if reference.continuations is not None and variant.continuations is not None:
        continuation = float(np.mean(reference.continuations == variant.continuations))
    exact = bool(np.array_equal(reference.argmax, variant.argmax) and reference.nll_sum == variant.nll_sum
                 and np.array_equal(reference.logits[:kept], variant.logits[:kept]))
    lm = {
        "perplexity": ppl, "reference_perplexity": ref_ppl, "perplexity_delta_pct": 0.0 if exact else delta,
        "next_token_agreement": agreement, "kl_divergence": 0.0 if exact else kl,
        "continuation_agreement": continuation, "eval_tokens": reference.positions,
        "kl_positions": kept,
        "continuation_tokens": None if reference.continuations is None else int(reference.continuations.size),
        "next_token_accuracy": variant.correct / variant.positions if variant.positions else None,
        "reference_next_token_accuracy": reference.correct / reference.positions if reference.positions else None,
    }
    fidelity = Fidelity(samples=reference.positions, cosine=cosine if cosine is not None else float("nan"),
                        max_abs_error=max_err or 0.0, mean_abs_error=mean_err or 0.0, top1_agreement=agreement,
                        accuracy=None, reference_accuracy=None, nonfinite_outputs=variant.nonfinite, exact=exact)
    return lm, fidelity
