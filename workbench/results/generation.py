"""The generate scenario's and language-model fidelity's figures as comparison-row keys (the
results table, ``workbench compare``, reports and the verdict read them from the row)."""
from __future__ import annotations

from typing import Any


def generation_fields(result: dict) -> dict[str, Any]:
    """Row keys from ``result["generation"]`` and ``result["lm_fidelity"]``; None where not measured
    (a forward run of a causal LM still has its perplexity and next-token agreement)."""
    generation = result.get("generation") or {}
    lm = result.get("lm_fidelity") or {}
    scenario = result.get("scenario") or ("generate" if generation else "forward" if result else None)
    return {
        "scenario": scenario, "task": result.get("task"),
        "ttft_ms": generation.get("ttft_ms"), "ttft_ci_ms": generation.get("ttft_ci_ms"),
        "decode_tok_s": generation.get("decode_tokens_per_s"), "e2e_tok_s": generation.get("e2e_tokens_per_s"),
        "kv_cache_bytes": generation.get("kv_cache_bytes"),
        "energy_j_per_token": generation.get("energy_j_per_token"),
        "prompt_tokens": generation.get("prompt_tokens"), "new_tokens": generation.get("new_tokens"),
        "perplexity": lm.get("perplexity"), "reference_perplexity": lm.get("reference_perplexity"),
        "perplexity_delta_pct": lm.get("perplexity_delta_pct"),
        "next_token_agreement": lm.get("next_token_agreement"), "kl_divergence": lm.get("kl_divergence"),
        "continuation_agreement": lm.get("continuation_agreement"),
    }


def attach_energy_per_token(result: dict) -> None:
    """Fill ``result["generation"]["energy_j_per_token"]`` from the parent's energy over the timed
    window (GPU telemetry; stays None without it). The parent calls this after merging telemetry."""
    from .stats import per_token_energy
    generation = result.get("generation")
    if not generation:
        return
    window = result.get("window") or {}
    generation["energy_j_per_token"] = per_token_energy(result.get("energy"), window, window.get("decode_tokens") or 0)
