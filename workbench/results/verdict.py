"""The one verdict on a variant: its speed-up and what it did to the outputs, in one rule.

Every face (CLI, API, GUI table and charts, HTML/PDF/CSV reports) shows this verdict and none
recomputes it. A variant whose outputs fall below the fidelity gate is a failure whatever its
speed-up ("3.2× faster but accuracy −89.7 pts" is red); a speed-up inside the run-to-run noise
is neither a win nor a loss.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

from ..errors import SpecError

DEFAULT_MIN_FIDELITY = 0.99     # next-token agreement for LMs, top-1 agreement for classifiers, else cosine
# A language model also fails when its perplexity on the held-out text rises by more than this
# (in %, over the unoptimized model's, measured in the same run): int8 weight-only quantization of
# a well-trained LM costs well under 1 %, a damaged model tens of %.
DEFAULT_MAX_PERPLEXITY_INCREASE_PCT = 5.0
# The default gate, read for a language model's next-token agreement. An argmax over thousands of
# tokens flips on near-ties that cost nothing: lossless-in-perplexity int8 and bf16 of the demo LM
# agree on 98.4-98.9 % of positions (benchmarks/results/llm.json), 8-bit LLM quantizations on about
# 99 %, damaging 4-bit ones on 94-96 %. An explicit --min-fidelity other than 0.99 applies as given.
DEFAULT_MIN_TOKEN_AGREEMENT = 0.97
UNCHANGED = 0.9999              # at or above this (agreement and cosine), the outputs did not change
# Verdict levels, and how every face colours them.
WIN, LOSS, NOISE, BASELINE, FAILED = "win", "loss", "noise", "baseline", "failed"


@dataclass(frozen=True)
class Verdict:
    level: str             # win | loss | noise | baseline | failed
    text: str              # "2.61× faster, outputs unchanged"
    fidelity_ok: bool | None
    fidelity_text: str     # "outputs unchanged", "accuracy −89.7 pts", "top-1 agreement 10.0 %"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def parse_min_fidelity(text: str | float) -> float:
    """'0.99', '99', '99%' -> 0.99; 0 turns the gate off."""
    raw = str(text).strip()
    try:
        value = float(raw.rstrip("%"))
    except ValueError:
        raise SpecError(f"bad fidelity gate {text!r}: give a fraction (0.99) or a percentage (99%)") from None
    if raw.endswith("%") or value > 1:
        value /= 100
    if not math.isfinite(value) or not 0 <= value <= 1:
        raise SpecError(f"bad fidelity gate {text!r}: it must lie between 0 and 1 (0 %-100 %)")
    return value


def fidelity_score(row: dict) -> tuple[str | None, float | None]:
    """(what is gated, its value): next-token agreement for language models (with the perplexity
    bound beside it, ``perplexity_ok``), top-1 agreement for classifiers, else cosine similarity
    (embeddings: ``worker.fidelity`` gives them no top-1 agreement)."""
    if row.get("next_token_agreement") is not None:
        return "next-token agreement", row["next_token_agreement"]
    if row.get("top1_agreement") is not None:
        return "top-1 agreement", row["top1_agreement"]
    if row.get("cosine") is not None:
        return "cosine similarity", row["cosine"]
    return None, None


def default_gate(row: dict) -> float:
    """The default fidelity gate as it applies to ``row``'s gated figure (see DEFAULT_MIN_TOKEN_AGREEMENT)."""
    return DEFAULT_MIN_TOKEN_AGREEMENT if fidelity_score(row)[0] == "next-token agreement" else DEFAULT_MIN_FIDELITY


def perplexity_ok(row: dict, max_increase_pct: float = DEFAULT_MAX_PERPLEXITY_INCREASE_PCT) -> bool | None:
    """A language model's perplexity within the bound (None: no perplexity measured)."""
    delta = row.get("perplexity_delta_pct")
    if delta is None:
        return None if row.get("perplexity") is None or math.isfinite(row["perplexity"]) else False
    return bool(math.isfinite(delta) and delta <= max_increase_pct)


def describe_fidelity(row: dict) -> str:
    """What the variant did to the outputs, in the terms that fit the data it was measured on."""
    if row.get("nonfinite_outputs"):
        return "outputs contain NaN/Inf"
    kind, score = fidelity_score(row)
    if score is None:
        return "fidelity not measured"
    if kind == "next-token agreement":
        return _describe_language_model(row, score)
    cosine = row.get("cosine")
    if score >= UNCHANGED and (cosine is None or cosine >= UNCHANGED):
        return "outputs unchanged"
    accuracy, reference = row.get("accuracy"), row.get("baseline_accuracy")
    if accuracy is not None and reference is not None:
        return f"accuracy {_signed_points(accuracy - reference)}"
    if kind == "top-1 agreement":
        return f"top-1 agreement {100 * score:.1f} %"
    return f"cosine {score:.4f}"


def verdict_for(row: dict, min_fidelity: float = DEFAULT_MIN_FIDELITY,
                max_perplexity_increase_pct: float = DEFAULT_MAX_PERPLEXITY_INCREASE_PCT) -> Verdict:
    """The verdict on one comparison row (``results.compare.comparison_row``). A language model
    passes when its next-token agreement clears ``min_fidelity`` and its perplexity rose by at most
    ``max_perplexity_increase_pct``; the text names the figure that failed, with its gate."""
    if row.get("status") != "done":
        return Verdict(FAILED, row.get("status") or "not measured", None, "")
    fidelity_text = describe_fidelity(row)
    kind, score = fidelity_score(row)
    if min_fidelity == DEFAULT_MIN_FIDELITY:
        min_fidelity = default_gate(row)
    fidelity_ok = None if score is None else (score >= min_fidelity and not row.get("nonfinite_outputs"))
    gate = f" (gate {100 * min_fidelity:g} %)" if "accuracy" not in fidelity_text else ""
    if kind == "next-token agreement":
        ppl_ok = perplexity_ok(row, max_perplexity_increase_pct)
        if ppl_ok is False:
            fidelity_ok = False
            if score >= min_fidelity:     # the agreement passed: the perplexity bound is what failed
                gate = f" (bound +{max_perplexity_increase_pct:g} %)"
    if row.get("nonfinite_outputs"):
        fidelity_ok = False
    speedup = row.get("speedup")
    if speedup is None:
        if row.get("baseline_id") is None and row.get("chain") == "baseline":
            return Verdict(BASELINE, "baseline", fidelity_ok, fidelity_text)
        return Verdict(NOISE, f"no baseline to compare with; {fidelity_text}", fidelity_ok, fidelity_text)
    speed = _speed_words(speedup, row.get("speedup_significant"))
    if row.get("scenario") == "generate":
        speed = speed.replace("faster", "faster decode").replace("(slower)", "(slower decode)")
        if row.get("prefill_speedup") is not None:      # compute-bound prefill moves differently
            speed += f" ({row['prefill_speedup']:.2f}× prefill)"
    if fidelity_ok is False:
        return Verdict(LOSS, f"{speed} but {fidelity_text}{gate}", False, fidelity_text)
    if not row.get("speedup_significant"):
        return Verdict(NOISE, f"{speed}, {fidelity_text}", fidelity_ok, fidelity_text)
    level = WIN if speedup > 1 else LOSS
    return Verdict(level, f"{speed}, {fidelity_text}", fidelity_ok, fidelity_text)


def _describe_language_model(row: dict, agreement: float) -> str:
    """'perplexity +0.8 %, next-token agreement 99.1 %' (both gated figures, perplexity first)."""
    delta = row.get("perplexity_delta_pct")
    if agreement >= UNCHANGED and (delta is None or abs(delta) < 0.005):
        return "predictions unchanged"
    agree = f"next-token agreement {100 * agreement:.1f} %"
    if delta is None:
        return agree if row.get("perplexity") is None else f"perplexity not finite, {agree}"
    ppl = (f"{delta:+.2f}" if abs(delta) < 0.1 else f"{delta:+.1f}").replace("-", "−")
    return f"perplexity {ppl} %, {agree}"


def _speed_words(speedup: float, significant: bool | None) -> str:
    if not significant:
        return f"inside the noise ({speedup:.2f}×)"
    return f"{speedup:.2f}× faster" if speedup > 1 else f"{speedup:.2f}× (slower)"


def _signed_points(delta: float) -> str:
    points = 100 * delta
    if abs(points) < 0.05:
        return "unchanged"
    return f"{points:+.1f} pts".replace("-", "−")
