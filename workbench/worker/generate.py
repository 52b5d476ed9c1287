"""The generate scenario: greedy decoding with a KV cache, every step timed.

One generation = a prefill (the whole prompt in one call; its end is the first new token, so its
time is the time to first token) and ``gen_len - 1`` decode steps (one call per further token,
reading and extending the cache). Exactly ``gen_len`` new tokens, EOS ignored. The loop is our
own (``model(ids, cache=..., use_cache=True)`` on a ``DynamicCache``), not ``model.generate``, so
that every step is timed: ``perf_counter_ns`` on CPU; on CUDA an event pair per step and one
synchronisation per generation (the host never waits inside the loop).

An ONNX model exported with its cache (``onnx_export:with_cache=true``) decodes through
``generate_onnx.OnnxGreedyDecoder``, which keeps this contract (``lm_phases.decoder_for`` picks).

``measure_generation`` repeats whole generations: a cold one, warm-ups until the per-token
latency is stable, then timed repetitions until the spec's iteration target (counted in decode
tokens) and duration are met, and at least ``MIN_REPETITIONS``.
"""
from __future__ import annotations

import gc
import inspect
import statistics
import time
from dataclasses import dataclass, field
from typing import Any, Callable

from ..errors import PluginError, SpecError

MIN_REPETITIONS = 3         # timed generations, at least (prefill statistics need a few)
STABLE_TOLERANCE = 0.05     # warm-up ends when two generations' median per-token latency agree this well
GENERATING_TASK = "causal-lm"
WHAT_GENERATES = ("a Hugging Face causal language model (a folder whose config names a *ForCausalLM or "
                  "*LMHeadModel, or demo:tiny-lm)")


# -- which scenario, and can this model / chain generate ---------------------------------------
def resolve_scenario(scenario: str, loaded: Any) -> str:
    """'auto' -> 'generate' for causal LMs, 'forward' otherwise; '--scenario generate' on anything
    else is refused in one line."""
    hf = getattr(loaded, "hf", None)
    task = getattr(hf, "task", None)
    if scenario == "auto":
        return "generate" if task == GENERATING_TASK else "forward"
    if scenario == "generate" and task != GENERATING_TASK:
        if hf is not None:
            what = f"a {task} model ({hf.architecture or type(hf.config).__name__})"
            fix = "use --scenario forward" + (", or --task causal-lm if the folder holds a causal LM"
                                              if task in ("feature-extraction", "masked-lm") else "")
        else:
            what = f"a {getattr(loaded, 'format', 'non-Hugging-Face')} model, not a language model"
            fix = "use --scenario forward"
        raise SpecError(f"--scenario generate needs {WHAT_GENERATES}; this is {what}: {fix}")
    return scenario


def check_chain_generates(output_format: str, chain: list) -> None:
    """Refuse, before any plugin runs, a chain whose output cannot decode with a KV cache. ``chain``:
    the ``ChainStep``s (or their names); an ONNX model decodes when the chain exported it with
    ``onnx_export:with_cache=true``."""
    if output_format == "torch" or (output_format == "onnx" and exports_cache(chain)):
        return
    steps = " → ".join(getattr(step, "name", step) for step in chain) or "the model"
    raise PluginError(
        f"--scenario generate cannot run on the output of {steps}: it is an {output_format.upper()} model "
        "exported without a KV cache interface, so every new token would recompute the whole sequence. "
        "What works: onnx_export:with_cache=true (ONNX Runtime then decodes token by token), drop the export to "
        "time generation in torch (quantize, prune, fuse keep a torch model), or time the exported model with "
        "--scenario forward (one pass over --seq-len tokens)")


def exports_cache(chain: list) -> bool:
    """The chain's ONNX export keeps the KV cache as inputs and outputs (``onnx_export:with_cache``)."""
    return any(getattr(step, "name", step) == "onnx_export"
               and getattr(getattr(step, "plugin", None), "params", {}).get("with_cache") for step in chain)


def causal_lm_of(module: Any) -> Any:
    """The transformers PreTrainedModel inside an ``HFForward`` (through a torch.compile wrapper),
    or a PluginError saying why the model can no longer generate."""
    inner = getattr(module, "_orig_mod", module)      # torch.compile's OptimizedModule
    lm = getattr(inner, "model", None)
    can = getattr(lm, "can_generate", None)
    if lm is None or not callable(can) or not can():
        raise PluginError(f"--scenario generate needs {WHAT_GENERATES}, but the model to measure is a "
                          f"{type(inner).__name__} without one inside (did a plugin replace it with a traced or "
                          "exported program?); use --scenario forward for it")
    return lm


# -- one greedy generation ---------------------------------------------------------------------
@dataclass
class Generation:
    prefill_ns: int
    decode_ns: list[int]                  # one per decode step: gen_len - 1 values
    total_ns: int                         # wall clock of the whole generation (cache creation included)
    tokens: Any                           # (batch, gen_len) int64 tensor of the new tokens
    cache: Any                            # the KV cache after the last step
    decode_start: float = 0.0             # time.monotonic() when decoding began / ended (host clock;
    decode_end: float = 0.0               # on CUDA after the generation's synchronisation)


class GreedyDecoder:
    """Greedy decoding of a causal LM with a ``DynamicCache``; ``run`` times every step."""

    def __init__(self, lm: Any, device: str = "cpu") -> None:
        import torch
        from transformers import DynamicCache
        self.torch, self.lm, self.device = torch, lm, device
        self.config = lm.config
        self.cuda = str(device).startswith("cuda")
        self._DynamicCache = DynamicCache
        params = inspect.signature(lm.forward).parameters
        # transformers 5 renamed past_key_values to cache; take whichever the model's forward has.
        self.cache_arg = "cache" if "cache" in params else "past_key_values"
        # Only the last position's logits are needed (model.generate does the same).
        self.extra = {"logits_to_keep": 1} if "logits_to_keep" in params else {}
        self._events: list = []

    def new_cache(self) -> Any:
        try:
            return self._DynamicCache(config=self.lm.config)
        except TypeError:                 # older transformers: DynamicCache()
            return self._DynamicCache()

    def step(self, ids: Any, cache: Any) -> Any:
        """One call: the next greedy token (batch, 1), the cache extended in place."""
        out = self.lm(input_ids=ids, use_cache=True, **{self.cache_arg: cache}, **self.extra)
        return out.logits[:, -1].argmax(-1, keepdim=True)

    def run(self, prompt_ids: Any, gen_len: int, cancelled: Callable[[], bool] = lambda: False) -> Generation | None:
        """Generate exactly ``gen_len`` tokens after ``prompt_ids`` (batch, prompt_len); None if cancelled."""
        return (self._run_cuda if self.cuda else self._run_cpu)(prompt_ids, gen_len, cancelled)

    def _run_cpu(self, prompt_ids, gen_len, cancelled) -> Generation | None:
        torch, clock = self.torch, time.perf_counter_ns
        start = clock()
        cache = self.new_cache()
        t0 = clock()
        token = self.step(prompt_ids, cache)
        prefill = clock() - t0
        tokens, decode = [token], []
        decode_start = time.monotonic()
        for _ in range(gen_len - 1):
            if cancelled():
                return None
            t0 = clock()
            token = self.step(token, cache)
            decode.append(clock() - t0)
            tokens.append(token)
        end = clock()
        return Generation(prefill, decode, end - start, torch.cat(tokens, 1), cache, decode_start, time.monotonic())

    def _run_cuda(self, prompt_ids, gen_len, cancelled) -> Generation | None:
        torch = self.torch
        while len(self._events) < gen_len + 1:
            self._events.append(torch.cuda.Event(enable_timing=True))
        events = self._events[:gen_len + 1]
        torch.cuda.synchronize(self.device)
        start = time.perf_counter_ns()
        cache = self.new_cache()
        events[0].record()
        token = self.step(prompt_ids, cache)
        events[1].record()
        tokens = [token]
        for index in range(2, gen_len + 1):
            if cancelled():
                torch.cuda.synchronize(self.device)
                return None
            token = self.step(token, cache)
            events[index].record()
            tokens.append(token)
        events[gen_len].synchronize()
        end = time.perf_counter_ns()
        # Event i -> i+1 brackets call i: the stream runs the calls back to back, so the time between
        # consecutive records is one step's (kernel time plus any wait for the host to launch it).
        steps = [int(a.elapsed_time(b) * 1e6) for a, b in zip(events, events[1:])]
        decode_s = sum(steps[1:]) / 1e9
        done = time.monotonic()
        return Generation(steps[0], steps[1:], end - start, torch.cat(tokens, 1), cache, done - decode_s, done)


# -- the KV cache ------------------------------------------------------------------------------
def cache_tensors(cache: Any) -> list:
    """Every key/value tensor a transformers cache holds (DynamicCache layers, or the old lists)."""
    tensors = []
    for layer in getattr(cache, "layers", None) or []:
        for name in ("keys", "values"):
            t = getattr(layer, name, None)
            if t is not None and hasattr(t, "numel"):
                tensors.append(t)
    if not tensors:
        for name in ("key_cache", "value_cache"):
            tensors += [t for t in getattr(cache, name, None) or [] if hasattr(t, "numel")]
    return tensors


def cache_bytes(cache: Any) -> int:
    return int(sum(t.numel() * t.element_size() for t in cache_tensors(cache)))


def cache_element_bytes(cache: Any, default: int = 4) -> int:
    tensors = cache_tensors(cache)
    return int(tensors[0].element_size()) if tensors else default


def expected_cache_bytes(config: Any, batch: int, tokens: int, element_bytes: int) -> int | None:
    """2 (keys and values) × layers × kv_heads × head_dim × tokens × batch × bytes, from the config."""
    layers = getattr(config, "num_hidden_layers", None)
    heads = getattr(config, "num_attention_heads", None)
    kv_heads = getattr(config, "num_key_value_heads", None) or heads
    head_dim = getattr(config, "head_dim", None) or (getattr(config, "hidden_size", 0) // heads if heads else None)
    if not (layers and kv_heads and head_dim):
        return None
    return int(2 * layers * kv_heads * head_dim * tokens * batch * element_bytes)


# -- repeated generations ----------------------------------------------------------------------
@dataclass
class GenerationSettings:
    gen_len: int
    min_decode_tokens: int = 100          # the spec's iters, counted in decode steps
    min_duration_s: float = 1.0
    max_duration_s: float = 600.0
    warmup_min_tokens: int = 10
    warmup_max_s: float = 3.0
    min_repetitions: int = MIN_REPETITIONS

    @classmethod
    def from_spec(cls, spec: Any) -> "GenerationSettings":
        return cls(gen_len=spec.gen_len, min_decode_tokens=spec.iters, min_duration_s=spec.duration_s,
                   max_duration_s=spec.max_duration_s, warmup_min_tokens=spec.warmup_min_iters,
                   warmup_max_s=spec.warmup_max_s)


@dataclass
class GenerationRun:
    cold: Generation
    warmup: list[Generation]
    warmup_stable: bool
    timed: list[Generation]
    t_start: float                        # the timed window (monotonic): first decode's start ...
    t_end: float                          # ... last decode's end
    kv_cache_bytes: int
    peak_memory_bytes: int | None
    peak_memory_kind: str
    last_tokens: Any = None
    notes: list[str] = field(default_factory=list)

    @property
    def prefill_ns(self) -> list[int]:
        return [g.prefill_ns for g in self.timed]

    @property
    def decode_ns(self) -> list[int]:
        return [v for g in self.timed for v in g.decode_ns]


def _typical(generation: Generation) -> float:
    return statistics.median(generation.decode_ns) if generation.decode_ns else float(generation.prefill_ns)


def measure_generation(decoder: GreedyDecoder, prompt_ids: Any, settings: GenerationSettings,
                       on_generation: Callable[[str, int, Generation], None] = lambda phase, index, g: None,
                       cancelled: Callable[[], bool] = lambda: False) -> GenerationRun | None:
    """Cold, warm-up and timed generations of ``settings.gen_len`` tokens; None if cancelled.
    ``on_generation(phase, index, generation)`` hears each one ('cold', 'warmup', 'measure')."""
    torch = decoder.torch
    gen_len = settings.gen_len
    cold = decoder.run(prompt_ids, gen_len, cancelled)
    if cold is None:
        return None
    on_generation("cold", 0, cold)
    gc_was_enabled = gc.isenabled()
    gc.collect()
    gc.disable()
    try:
        warmup, stable = [], False
        started = time.monotonic()
        while not cancelled():
            g = decoder.run(prompt_ids, gen_len, cancelled)
            if g is None:
                return None
            warmup.append(g)
            on_generation("warmup", len(warmup) - 1, g)
            tokens = sum(max(1, len(w.decode_ns)) for w in warmup)
            if len(warmup) >= 2 and tokens >= settings.warmup_min_tokens:
                previous, last = _typical(warmup[-2]), _typical(warmup[-1])
                stable = previous > 0 and abs(last - previous) / previous < STABLE_TOLERANCE
                if stable:
                    break
            if time.monotonic() - started >= settings.warmup_max_s:
                break
        if decoder.cuda:
            torch.cuda.reset_peak_memory_stats(decoder.device)
        rss_peak = 0
        timed: list[Generation] = []
        t_start = time.monotonic()
        while True:
            if cancelled():
                return None
            g = decoder.run(prompt_ids, gen_len, cancelled)
            if g is None:
                return None
            if not decoder.cuda:
                rss_peak = max(rss_peak, _rss())       # the cache is at its largest here
            timed.append(g)
            on_generation("measure", len(timed) - 1, g)
            elapsed = time.monotonic() - t_start
            steps = sum(len(t.decode_ns) for t in timed) or len(timed)
            if (len(timed) >= settings.min_repetitions and steps >= settings.min_decode_tokens
                    and elapsed >= settings.min_duration_s) or elapsed >= settings.max_duration_s:
                break
    finally:
        if gc_was_enabled:
            gc.enable()
    last = timed[-1]
    notes = []
    if not stable:
        notes.append(f"warm-up did not stabilise within {settings.warmup_max_s:g} s ({len(warmup)} generations); "
                     "per-token latencies may still drift")
    if time.monotonic() - t_start >= settings.max_duration_s:
        notes.append(f"stopped at the {settings.max_duration_s:g} s cap before the token target")
    if decoder.cuda:
        peak, kind = int(torch.cuda.max_memory_allocated(decoder.device)), "torch CUDA allocator peak while generating"
    else:
        peak, kind = (rss_peak or None), "process RSS at the end of a generation (KV cache at its largest)"
    return GenerationRun(cold, warmup, stable, timed, timed[0].decode_start, last.decode_end,
                         cache_bytes(last.cache), peak, kind, last.tokens, notes)


def _rss() -> int:
    try:
        import psutil
        return int(psutil.Process().memory_info().rss)
    except Exception:         # psutil missing or the platform refuses: no figure rather than a failure
        return 0


# -- the result dict ---------------------------------------------------------------------------
def generation_result(run: GenerationRun, config: Any, batch: int, prompt_tokens: int, gen_len: int,
                      element_bytes: int, seed: int = 0) -> dict:
    """``result["generation"]`` (the contract in the helpers' COMMON.md), plus the arithmetic check."""
    from ..results.stats import compute_latency_stats, rate_summary
    prefill = compute_latency_stats(run.prefill_ns, batch=batch, seed=seed)
    decode = compute_latency_stats(run.decode_ns, batch=batch, seed=seed) if run.decode_ns else None
    decode_rates = [batch * len(g.decode_ns) / (sum(g.decode_ns) / 1e9) for g in run.timed if g.decode_ns]
    e2e_rates = [batch * gen_len / (g.total_ns / 1e9) for g in run.timed]
    cache_tokens = prompt_tokens + gen_len - 1     # the last new token is never fed back
    expected = expected_cache_bytes(config, batch, cache_tokens, element_bytes)
    return {
        "prompt_tokens": prompt_tokens, "new_tokens": gen_len, "batch": batch,
        "repetitions": len(run.timed), "warmup_repetitions": len(run.warmup), "warmup_stable": run.warmup_stable,
        "decode_steps_per_repetition": gen_len - 1,
        "prefill": prefill.to_dict(),
        "decode_token": decode.to_dict() if decode else None,
        "ttft_ms": prefill.median_ms,
        "ttft_ci_ms": prefill.median_ci_ms,
        # batch / median step: robust to a stalled step, and the same figure the decode speed-up uses
        "decode_tokens_per_s": decode.throughput_per_s if decode else None,
        # per-repetition rates (decode steps over their summed time), llama-bench's mean ± sd
        "decode_tokens_per_s_stats": rate_summary(decode_rates) if decode_rates else None,
        "e2e_tokens_per_s": rate_summary(e2e_rates)["median"],
        "e2e_tokens_per_s_stats": rate_summary(e2e_rates),
        "e2e_ms": [g.total_ns / 1e6 for g in run.timed],
        "cold_ttft_ms": run.cold.prefill_ns / 1e6,
        "kv_cache_bytes": run.kv_cache_bytes,
        "kv_cache_tokens": cache_tokens,
        "kv_cache_expected_bytes": expected,
        "peak_memory_bytes": run.peak_memory_bytes,
        "peak_memory_kind": run.peak_memory_kind,
        "energy_j_per_token": None,       # the parent fills it from GPU telemetry over the decode window
    }
