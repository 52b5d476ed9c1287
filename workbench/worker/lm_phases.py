"""The pipeline's phases for token models (Hugging Face folders, demo:tiny-lm): their inputs from
text, the language-model reference scan and comparison, and the timed generate scenario.

``pipeline.run_job`` calls these where a run's model is a Hugging Face one; everything else stays
as it is for other models.
"""
from __future__ import annotations

from typing import Any, Callable

import numpy as np

from ..errors import RunCancelled
from ..spec import device_kind

LATENCY_NOTE = ("generate scenario: 'latency' is the per-token decode latency (one decode step, KV cache on), "
                "so speed-ups compare decode speed; prefill (time to first token) and tokens/s are under "
                "'generation'")


def is_causal_lm(loaded: Any) -> bool:
    return getattr(getattr(loaded, "hf", None), "task", None) == "causal-lm"


def max_positions(config: Any) -> int | None:
    value = getattr(config, "max_position_embeddings", None) or getattr(config, "n_positions", None)
    return int(value) if isinstance(value, int) and value > 0 else None


def token_inputs(spec: Any, loaded: Any, batch: int | None, scenario: str):
    """``text_inputs.TokenInputs`` for a Hugging Face text model; None for every other model."""
    hf = getattr(loaded, "hf", None)
    if hf is None or hf.is_image:
        return None
    from .text_inputs import build_token_inputs
    return build_token_inputs(
        hf.tokenizer, getattr(hf.config, "vocab_size", None), max_positions(hf.config), text_path=spec.text,
        prompt=spec.prompt, seq_len=spec.seq_len, batch=batch or 1, seed=spec.seed, task=hf.task,
        prompt_len=spec.prompt_len, gen_len=spec.gen_len if scenario == "generate" else None)


def plugin_data(tokens: Any) -> dict:
    """What plugins get as ``context.data`` for a token model: ids as x_*, masks as attention_mask_*;
    the calibration / training rows come from the text's train part only."""
    data = {"x_test": tokens.fidelity[0], "attention_mask_test": tokens.fidelity[1]}
    if tokens.calibration is not None:
        data.update(x_train=tokens.calibration[0], attention_mask_train=tokens.calibration[1])
    return data


def eval_arrays(tokens: Any) -> list[np.ndarray]:
    """The held-out sequences perplexity is measured on (synthetic ids when there is no tokenizer)."""
    if tokens.eval_ids is not None:
        return [tokens.eval_ids, tokens.eval_mask]
    return list(tokens.fidelity)


# -- language-model fidelity -------------------------------------------------------------------
def decoder_for(runtime: Any, device: str) -> Any:
    """A greedy decoder on the prepared runtime's model: torch (a transformers causal LM inside) or
    ONNX Runtime (a model exported with its KV cache); a PluginError says why anything else cannot."""
    from .generate import GreedyDecoder, causal_lm_of
    if getattr(runtime, "name", "") == "onnxruntime":
        from .generate_onnx import OnnxGreedyDecoder
        return OnnxGreedyDecoder(runtime)
    return GreedyDecoder(causal_lm_of(runtime.model), device)


def _decoder(runtime: Any, device: str):
    """A greedy decoder on the runtime's model, or None where it cannot generate (an ONNX export
    without the KV cache, a traced program)."""
    from ..errors import PluginError
    try:
        return decoder_for(runtime, device)
    except PluginError:
        return None


def lm_scan(runtime: Any, tokens: Any, spec: Any, batch: int, reference: Any = None):
    """One model's scan of the held-out text (``lm_fidelity.scan``) plus its greedy continuations."""
    import torch

    from .lm_fidelity import continuation_length, continuation_prompts, continuations, scan
    arrays = eval_arrays(tokens)
    keep = None if reference is None else len(reference.logits)
    with runtime.timing_context()():
        result = scan(runtime.infer, arrays, batch, keep)
    decoder = _decoder(runtime, spec.device)
    if decoder is not None and (reference is None or reference.continuations is not None):
        length = continuation_length(spec.gen_len)
        positions = max_positions(decoder.config)
        prompts = continuation_prompts(arrays, tokens.prompt_len or arrays[0].shape[1], length, positions)
        if prompts is not None:
            result.continuations = continuations(decoder, torch.from_numpy(prompts).to(spec.device), length)
    return result


# -- the generate scenario ---------------------------------------------------------------------
def measure_generate(runtime: Any, tokens: Any, spec: Any, emit: Callable, cancelled: Callable[[], bool],
                     stage: Any, threads: int, notes: list[str]) -> dict:
    """Timed greedy generations on the prepared runtime; the result's timing fields."""
    import torch

    from .generate import GenerationSettings, cache_element_bytes, generation_result, measure_generation
    from ..results.stats import compute_latency_stats
    decoder = decoder_for(runtime, spec.device)      # torch, or ONNX Runtime on a cache export
    prompt = torch.from_numpy(np.ascontiguousarray(tokens.prompt_ids)).to(spec.device)
    batch, prompt_len = (int(d) for d in prompt.shape)
    settings = GenerationSettings.from_spec(spec)
    if device_kind(spec.device) == "cuda" and settings.min_duration_s < 3.0:
        settings.min_duration_s = 3.0
        notes.append("timed phase extended to 3 s on GPU so energy per token can be measured")
    current = {"phase": None}
    steps_per_generation = max(1, spec.gen_len - 1)

    def on_generation(kind: str, index: int, g: Any) -> None:
        if kind != current["phase"]:
            current["phase"] = kind
            stage.phase(kind)
            emit("phase", phase=kind, message="")
        # The live latency stream carries per-token decode latencies (the cold call: its prefill);
        # the generation event adds the prefill, so a plot can mark it.
        values = [g.prefill_ns] if kind == "cold" or not g.decode_ns else g.decode_ns
        emit("latency_batch", phase=kind, values_ns=values)
        emit("generation", phase=kind, repetition=index, prefill_ns=g.prefill_ns, decode_ns=g.decode_ns,
             batch=batch, prompt_tokens=prompt_len)
        if kind == "measure":
            done = max((index + 1) / settings.min_repetitions,
                       (index + 1) * steps_per_generation / max(1, settings.min_decode_tokens))
            emit("progress", phase="measure", fraction=min(1.0, done), message="")

    stage.phase("cold")
    with runtime.timing_context()():
        run = measure_generation(decoder, prompt, settings, on_generation, cancelled)
    if run is None or cancelled():
        raise RunCancelled("cancelled by the user")
    element = cache_element_bytes(run.timed[-1].cache)
    generation = generation_result(run, decoder.config, batch, prompt_len, spec.gen_len, element, spec.seed)
    notes.extend(run.notes)
    expected = generation["kv_cache_expected_bytes"]
    if expected is not None and expected != generation["kv_cache_bytes"]:
        notes.append(f"the KV cache holds {generation['kv_cache_bytes']:,} bytes, the config's arithmetic says "
                     f"{expected:,} (2 × layers × key/value heads × head size × {generation['kv_cache_tokens']} "
                     f"tokens × batch {batch} × {element} bytes)")
    decode_ns = run.decode_ns
    if decode_ns:
        latency = compute_latency_stats(decode_ns, batch=batch, seed=spec.seed)
        notes.append(LATENCY_NOTE)
    else:
        latency = compute_latency_stats(run.prefill_ns, batch=batch, seed=spec.seed)
        notes.append("generate scenario with --gen-len 1: no decode step, so 'latency' is the prefill latency")
    steps = len(decode_ns) or len(run.timed)
    decode_s = sum(decode_ns) / 1e9 if decode_ns else sum(run.prefill_ns) / 1e9
    window = {"t_start": run.t_start, "t_end": run.t_end, "iterations": steps, "decode_s": decode_s,
              "decode_tokens": steps * batch}
    emit("measure_window", t_start=run.t_start, t_end=run.t_end, iterations=steps, batch=batch)
    in_force = runtime.threads_in_force()
    return {
        "latency": latency.to_dict(), "cold_ms": run.cold.prefill_ns / 1e6,
        "warmup": {"iterations": sum(len(g.decode_ns) for g in run.warmup), "generations": len(run.warmup),
                   "stable": run.warmup_stable},
        "window": window, "gc_disabled_while_timing": True, "generation": generation,
        "threads": in_force if in_force is not None else threads,
    }
