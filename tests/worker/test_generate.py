"""The generate scenario: greedy decoding with a KV cache, every step timed, the KV cache measured.

Tiny causal LMs built in memory from transformers configs (random init; a Llama with grouped-query
attention: 4 heads share 2 key/value heads), prompts of a few tokens, gen_len <= 4, a handful of
generations: each test runs in well under a second once transformers is imported.
"""
from __future__ import annotations

import types

import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from workbench.errors import PluginError, SpecError  # noqa: E402
from workbench.worker.generate import (GenerationSettings, GreedyDecoder, cache_bytes, causal_lm_of,  # noqa: E402
                                       check_chain_generates, expected_cache_bytes, generation_result,
                                       measure_generation, resolve_scenario)

VOCAB = 96


@pytest.fixture(scope="module")
def gpt2():
    torch.manual_seed(0)
    config = transformers.GPT2Config(n_embd=32, n_layer=2, n_head=2, n_positions=32, n_inner=64, vocab_size=VOCAB,
                                     bos_token_id=0, eos_token_id=0)
    return transformers.GPT2LMHeadModel(config).eval()


@pytest.fixture(scope="module")
def llama_gqa():
    torch.manual_seed(0)
    config = transformers.LlamaConfig(hidden_size=64, intermediate_size=64, num_hidden_layers=2,
                                      num_attention_heads=4, num_key_value_heads=2, vocab_size=VOCAB,
                                      max_position_embeddings=32, bos_token_id=0, eos_token_id=0)
    return transformers.LlamaForCausalLM(config).eval()


def quick_settings(gen_len: int, **overrides) -> GenerationSettings:
    options = dict(gen_len=gen_len, min_decode_tokens=1, min_duration_s=0.001, max_duration_s=30.0,
                   warmup_min_tokens=1, warmup_max_s=0.05)
    options.update(overrides)
    return GenerationSettings(**options)


def prompts(batch: int, length: int, seed: int = 1):
    return torch.randint(1, VOCAB, (batch, length), generator=torch.Generator().manual_seed(seed))


def test_greedy_tokens_are_transformers_greedy_tokens(gpt2, llama_gqa):
    """Our cached loop picks exactly the tokens model.generate picks greedily (EOS ignored)."""
    prompt = prompts(2, 5)
    for lm in (gpt2, llama_gqa):
        with torch.no_grad():
            ours = GreedyDecoder(lm).run(prompt, 4)
            theirs = lm.generate(prompt, attention_mask=torch.ones_like(prompt), max_new_tokens=4, min_new_tokens=4,
                                 do_sample=False, eos_token_id=None, pad_token_id=0)
        assert ours.tokens.shape == (2, 4)
        assert torch.equal(ours.tokens, theirs[:, 5:])


def test_every_decode_step_is_timed_once(gpt2):
    """gen_len new tokens = one prefill + gen_len - 1 timed decode steps, in every generation;
    at least MIN_REPETITIONS timed generations, after a cold one and warm-ups."""
    seen = []
    with torch.no_grad():
        run = measure_generation(GreedyDecoder(gpt2), prompts(1, 6), quick_settings(4),
                                 lambda phase, index, g: seen.append((phase, index, len(g.decode_ns), g.prefill_ns)))
    assert len(run.timed) >= 3
    assert [len(g.decode_ns) for g in run.timed] == [3] * len(run.timed)
    assert len(run.decode_ns) == 3 * len(run.timed) and len(run.prefill_ns) == len(run.timed)
    assert all(v > 0 for v in run.decode_ns + run.prefill_ns)
    phases = [p for p, *_ in seen]
    assert phases[0] == "cold" and phases.count("cold") == 1
    assert phases.index("measure") > phases.index("warmup")               # warm-up first
    assert [i for p, i, *_ in seen if p == "measure"] == list(range(len(run.timed)))
    assert all(steps == 3 for _p, _i, steps, _ in seen)
    assert run.t_start <= run.t_end and run.timed[-1].tokens.shape == (1, 4)


def test_repetitions_follow_the_token_target(gpt2):
    """The timed phase runs until the decode-token target: 12 steps at 3 per generation = 4 generations."""
    with torch.no_grad():
        run = measure_generation(GreedyDecoder(gpt2), prompts(1, 4), quick_settings(4, min_decode_tokens=12))
    assert len(run.timed) == 4 and len(run.decode_ns) == 12


def test_a_cancelled_generation_returns_nothing(gpt2):
    calls = {"n": 0}

    def cancelled() -> bool:
        calls["n"] += 1
        return calls["n"] > 3
    with torch.no_grad():
        assert measure_generation(GreedyDecoder(gpt2), prompts(1, 4), quick_settings(4), cancelled=cancelled) is None


def test_kv_cache_bytes_match_the_gqa_arithmetic(llama_gqa):
    """2 × layers × kv_heads × head_dim × tokens × batch × bytes, with 2 KV heads (not the 4 query heads)."""
    batch, prompt_len, gen_len = 2, 5, 4
    with torch.no_grad():
        g = GreedyDecoder(llama_gqa).run(prompts(batch, prompt_len), gen_len)
    config = llama_gqa.config
    head_dim = config.hidden_size // config.num_attention_heads
    tokens = prompt_len + gen_len - 1          # the last new token is never fed back
    arithmetic = 2 * config.num_hidden_layers * 2 * head_dim * tokens * batch * 4
    assert cache_bytes(g.cache) == arithmetic == expected_cache_bytes(config, batch, tokens, 4)
    assert arithmetic * 2 == 2 * config.num_hidden_layers * 4 * head_dim * tokens * batch * 4   # half of MHA's


def test_generation_result_has_the_shared_fields(llama_gqa):
    with torch.no_grad():
        run = measure_generation(GreedyDecoder(llama_gqa), prompts(1, 5), quick_settings(3))
    gen = generation_result(run, llama_gqa.config, batch=1, prompt_tokens=5, gen_len=3, element_bytes=4)
    for key in ("prompt_tokens", "new_tokens", "batch", "prefill", "decode_token", "ttft_ms", "decode_tokens_per_s",
                "e2e_tokens_per_s", "kv_cache_bytes", "peak_memory_bytes", "energy_j_per_token"):
        assert key in gen, key
    assert gen["decode_token"]["n"] == 2 * gen["repetitions"] and gen["prefill"]["n"] == gen["repetitions"]
    assert gen["ttft_ms"] == gen["prefill"]["median_ms"] > 0
    assert gen["decode_tokens_per_s"] == pytest.approx(1000 / gen["decode_token"]["median_ms"])
    assert gen["kv_cache_bytes"] == gen["kv_cache_expected_bytes"] and gen["kv_cache_tokens"] == 7
    # decode tokens/s of one generation = its decode steps over their summed time
    first = run.timed[0]
    assert gen["decode_tokens_per_s_stats"]["max"] >= 2 / (sum(first.decode_ns) / 1e9) - 1e-6
    assert gen["energy_j_per_token"] is None


def _loaded(task: str | None, fmt: str = "hf"):
    hf = None if task is None else types.SimpleNamespace(task=task, architecture=f"Some{task}", config=None)
    return types.SimpleNamespace(hf=hf, format=fmt)


def test_scenario_resolution_and_refusals():
    assert resolve_scenario("auto", _loaded("causal-lm")) == "generate"
    assert resolve_scenario("auto", _loaded("feature-extraction")) == "forward"
    assert resolve_scenario("auto", _loaded(None, "torchscript")) == "forward"
    assert resolve_scenario("forward", _loaded("causal-lm")) == "forward"
    assert resolve_scenario("generate", _loaded("causal-lm")) == "generate"
    for loaded in (_loaded("feature-extraction"), _loaded("sequence-classification"), _loaded(None, "torchscript")):
        with pytest.raises(SpecError) as caught:
            resolve_scenario("generate", loaded)
        message = str(caught.value)
        assert "\n" not in message and "--scenario generate needs" in message and "--scenario forward" in message


def test_a_chain_that_cannot_generate_is_refused_with_what_works():
    check_chain_generates("torch", ["quantize"])          # a torch model decodes: no error
    with pytest.raises(PluginError) as caught:
        check_chain_generates("onnx", ["onnx_export", "quantize"])
    message = str(caught.value)
    assert "\n" not in message and "onnx_export → quantize" in message and "--scenario forward" in message
    with pytest.raises(PluginError, match="cannot|without one inside"):
        causal_lm_of(torch.nn.Linear(2, 2))                # e.g. a traced program: no causal LM inside


def test_gen_len_zero_is_a_one_line_spec_error():
    from workbench.spec import RunSpec
    with pytest.raises(SpecError) as caught:
        RunSpec(model="demo:digits-cnn", gen_len=0).validate()
    assert "--gen-len" in str(caught.value) and "\n" not in str(caught.value)


def test_generation_event_is_declared():
    from workbench import events
    event = {"type": "generation", "t": 1.0, "phase": "measure", "repetition": 0, "prefill_ns": 5, "decode_ns": [1, 2]}
    assert events.problem(event) is None
    assert "decode_ns" in events.problem({**event, "decode_ns": [1.5]})


def test_energy_per_token_counts_only_the_decode_share():
    from workbench.results.generation import attach_energy_per_token
    result = {"generation": {"energy_j_per_token": None}, "energy": {"joules": 10.0},
              "window": {"t_start": 0.0, "t_end": 2.0, "decode_s": 1.5, "decode_tokens": 30}}
    attach_energy_per_token(result)
    assert result["generation"]["energy_j_per_token"] == pytest.approx(10.0 * 0.75 / 30)
    result = {"generation": {"energy_j_per_token": None}, "energy": None, "window": {}}
    attach_energy_per_token(result)
    assert result["generation"]["energy_j_per_token"] is None


# -- the pipeline, in process: a config + safetensors folder without a tokenizer (synthetic ids) --
@pytest.fixture(scope="module")
def lm_folder(tmp_path_factory, llama_gqa):
    folder = tmp_path_factory.mktemp("tiny-llama")
    llama_gqa.config.architectures = ["LlamaForCausalLM"]
    llama_gqa.save_pretrained(folder)
    return folder


def _run(folder, tmp_path, **options):
    from workbench.spec import PluginStep, RunSpec
    from workbench.worker.pipeline import Stage, run_job
    events = []
    options["plugins"] = [PluginStep.parse(p) for p in options.get("plugins", [])]
    spec = RunSpec(model=str(folder), prompt_len=4, gen_len=3, iters=4, duration_s=0.001, warmup_min_iters=1,
                   warmup_max_s=0.05, threads=1, **options)
    run_job({"spec": spec.to_dict(), "workdir": str(tmp_path / "work")},
            lambda kind, **payload: events.append({"type": kind, **payload}), lambda: False, Stage())
    return events


def test_pipeline_generate_run(lm_folder, tmp_path):
    """A causal LM generates by default; its latency is the per-token decode latency, the live
    events carry every step, and the baseline's LM fidelity is exactly unchanged."""
    events = _run(lm_folder, tmp_path)
    result = next(e for e in events if e["type"] == "result")["result"]
    gen = result["generation"]
    assert result["scenario"] == "generate" and gen["new_tokens"] == 3 and gen["prompt_tokens"] == 4
    measured = [e for e in events if e["type"] == "generation" and e["phase"] == "measure"]
    assert len(measured) == gen["repetitions"] >= 3 and all(len(e["decode_ns"]) == 2 for e in measured)
    streamed = [v for e in events if e["type"] == "latency_batch" and e["phase"] == "measure" for v in e["values_ns"]]
    assert streamed == [v for e in measured for v in e["decode_ns"]]
    assert result["latency"]["n"] == gen["decode_token"]["n"] == 2 * gen["repetitions"]
    assert result["window"]["iterations"] == 2 * gen["repetitions"]
    assert gen["kv_cache_bytes"] == gen["kv_cache_expected_bytes"]
    lm = result["lm_fidelity"]
    assert lm["perplexity_delta_pct"] == 0.0 and lm["next_token_agreement"] == 1.0 and lm["kl_divergence"] == 0.0
    assert lm["continuation_agreement"] == 1.0
    assert result["fidelity"]["top1_agreement"] == 1.0 and any("synthetic" in f for f in result["flags"])


def test_pipeline_refuses_generation_after_an_export_before_optimizing(lm_folder, tmp_path):
    with pytest.raises(PluginError, match="--scenario forward"):
        _run(lm_folder, tmp_path, scenario="generate", plugins=["onnx_export"])


def test_pipeline_refuses_generate_on_an_encoder(tmp_path):
    torch.manual_seed(0)
    config = transformers.BertConfig(hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32,
                                     vocab_size=VOCAB, max_position_embeddings=32)
    config.architectures = ["BertModel"]
    transformers.BertModel(config).save_pretrained(tmp_path / "bert")
    with pytest.raises(SpecError, match="feature-extraction"):
        _run(tmp_path / "bert", tmp_path, scenario="generate")


def test_cli_prints_the_generation_figures():
    from workbench.cli_output import generation_lines
    stats = {"median_ms": 4.0, "median_ci_ms": [3.9, 4.1], "p90_ms": 4.5, "p99_ms": None, "n": 93}
    result = {"generation": {
        "prompt_tokens": 32, "new_tokens": 32, "batch": 1, "repetitions": 3, "ttft_ms": 12.5, "ttft_ci_ms": [12.0, 13.0],
        "cold_ttft_ms": 20.0, "decode_token": stats, "decode_tokens_per_s": 250.0, "e2e_tokens_per_s": 240.0,
        "energy_j_per_token": None, "kv_cache_bytes": 2048, "kv_cache_expected_bytes": 2048, "kv_cache_tokens": 63,
        "peak_memory_bytes": 1 << 20, "peak_memory_kind": "process RSS"}}
    text = "\n".join(generation_lines(result))
    for expected in ("time to first token 12.50 ms", "per token p50 4.00 ms", "p90 4.50 ms", "decode 250.0",
                     "end-to-end 240.0", "2.00 KiB for 63 tokens (= the config's arithmetic)", "peak memory 1.00 MiB"):
        assert expected in text, (expected, text)
    assert generation_lines({"latency": stats}) == []
