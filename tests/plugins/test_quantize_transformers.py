"""quantize on real transformer architectures (random init from tiny `transformers` configs): GPT-2
(Conv1D projections, lm_head tied to the embedding), a Llama with grouped-query attention, BERT, and
an HF ResNet that torch.fx cannot trace (static int8 at batch 1 through PT2E)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from workbench.errors import PluginError
from workbench.models.info import model_bytes
from workbench.plugin_api import PluginContext
from workbench_plugins.quantize import Quantize

transformers = pytest.importorskip("transformers")
SEQ, VOCAB = 12, 500


def Forward(model: nn.Module):   # noqa: N802 - reads like the class it builds
    """Every HF model reaches the plugins as an HFForward (module names prefixed ``model.``)."""
    from workbench.models.hf import HFForward
    task = "feature-extraction" if type(model).__name__ == "BertModel" else "causal-lm"
    return HFForward(model, task)


def _build(kind: str) -> nn.Module:
    torch.manual_seed(0)
    if kind == "gpt2":
        config = transformers.GPT2Config(n_embd=64, n_layer=2, n_head=4, vocab_size=VOCAB, n_positions=32,
                                         bos_token_id=0, eos_token_id=0)
        return Forward(transformers.GPT2LMHeadModel(config)).eval()
    if kind == "llama":
        config = transformers.LlamaConfig(hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                                          num_attention_heads=4, num_key_value_heads=2, vocab_size=VOCAB,
                                          max_position_embeddings=32, bos_token_id=0, eos_token_id=0)
        return Forward(transformers.LlamaForCausalLM(config)).eval()
    config = transformers.BertConfig(hidden_size=64, num_hidden_layers=2, num_attention_heads=4,
                                     intermediate_size=128, vocab_size=VOCAB, max_position_embeddings=32)
    return Forward(transformers.BertModel(config)).eval()


@pytest.fixture(scope="module")
def models():
    return {kind: _build(kind) for kind in ("gpt2", "llama", "bert")}


@pytest.fixture(scope="module")
def tokens():
    generator = torch.Generator().manual_seed(0)
    return [torch.randint(0, VOCAB, (2, SEQ), generator=generator), torch.ones(2, SEQ, dtype=torch.int64)]


def _context(tmp_path: Path, inputs: list, data: dict | None = None) -> PluginContext:
    return PluginContext(device="cpu", dtype="float32", example_inputs=inputs, data=data, seed=0,
                         workdir=tmp_path, input_names=["input_ids", "attention_mask"][:len(inputs)])


def _cosine(model, quantized, inputs) -> float:
    with torch.no_grad():
        ref, out = model(*inputs), quantized(*inputs).float()
    return torch.nn.functional.cosine_similarity(ref.flatten(1), out.flatten(1)).min().item()


def _kinds(model: nn.Module) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for name, module in model.named_modules():
        found.setdefault(type(module).__name__, []).append(name)
    return found


# ---------------------------------------------------------------------------------------------
# GPT-2: Conv1D projections, lm_head tied to the token embedding
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("method", ["dynamic_int8", "weight_only_int8"])
def test_gpt2_every_conv1d_is_quantized_and_the_tied_lm_head_is_kept(models, tokens, tmp_path, method):
    gpt2 = models["gpt2"]
    conv1d = _kinds(gpt2)["Conv1D"]
    assert len(conv1d) == 8 and gpt2.model.lm_head.weight is gpt2.model.transformer.wte.weight
    quantized, report = Quantize(method=method).run(gpt2, _context(tmp_path, tokens))

    assert report.summary.startswith(f"8 of 9 matmul layers quantized [8 Conv1D] -> int8 ({method}")
    assert (report.extra["layers_quantized"], report.extra["layers_total"]) == (8, 9)
    assert sorted(report.layers_changed) == sorted(conv1d)
    assert report.extra["layers_skipped"] == {"model.lm_head": "weight tied to model.transformer.wte.weight"}
    assert any("model.lm_head kept in float" in n and "quantize_tied=true" in n for n in report.notes)
    # the tie holds, and the model really shrinks (it grew from 497.8 to 536.4 MB when only lm_head was quantized)
    assert quantized.model.lm_head.weight is quantized.model.transformer.wte.weight
    assert report.bytes_after == model_bytes(quantized) < 0.55 * report.bytes_before, report.summary
    assert not _kinds(quantized).get("Conv1D"), "a Conv1D was left in float"
    assert _kinds(gpt2)["Conv1D"] == conv1d, "the input model was modified"
    assert _cosine(gpt2, quantized, tokens) > 0.99


def test_gpt2_quantize_tied_unties_lm_head_and_says_so(models, tokens, tmp_path):
    gpt2 = models["gpt2"]
    kept, kept_report = Quantize(method="dynamic_int8").run(gpt2, _context(tmp_path, tokens))
    untied, report = Quantize(method="dynamic_int8", quantize_tied=True).run(gpt2, _context(tmp_path, tokens))
    assert report.summary.startswith("9 of 9 matmul layers quantized [8 Conv1D, 1 Linear]")
    assert "model.lm_head" in report.layers_changed
    assert any("untied" in n and "model.transformer.wte.weight" in n for n in report.notes)
    # the embedding keeps its float copy: untying costs size
    assert report.bytes_after > kept_report.bytes_after


# ---------------------------------------------------------------------------------------------
# Llama with grouped-query attention, BERT
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("kind,total", [("llama", 15), ("bert", 13)])
@pytest.mark.parametrize("method", ["dynamic_int8", "weight_only_int8"])
def test_llama_gqa_and_bert_every_linear_quantized(models, tokens, tmp_path, kind, total, method):
    model = models[kind]
    quantized, report = Quantize(method=method).run(model, _context(tmp_path, tokens))
    assert report.summary.startswith(f"{total} of {total} matmul layers quantized [{total} Linear]")
    assert report.bytes_after < 0.6 * report.bytes_before, report.summary
    if method == "weight_only_int8":
        weights = [m.weight for m in quantized.modules() if isinstance(m, nn.Linear)]
        assert len(weights) == total and all(type(w).__module__.startswith("torchao") for w in weights)
    else:
        assert not any(type(m) is nn.Linear for m in quantized.modules())
    assert _cosine(model, quantized, tokens) > 0.99


def test_llama_gqa_keeps_its_kv_projection_shapes(models, tokens, tmp_path):
    llama = models["llama"]
    quantized, _ = Quantize(method="dynamic_int8").run(llama, _context(tmp_path, tokens))
    attention = quantized.model.model.layers[0].self_attn
    assert (attention.q_proj.weight().shape[0], attention.k_proj.weight().shape[0]) == (64, 32)   # 4 heads, 2 KV


def test_bf16_casts_every_layer_and_keeps_the_tie(models, tokens, tmp_path):
    from workbench_plugins._quant_backend import cpu_bf16_support
    if not cpu_bf16_support()[0]:
        pytest.skip("no bf16 on this CPU")
    gpt2 = models["gpt2"]
    quantized, report = Quantize(method="bf16").run(gpt2, _context(tmp_path, tokens))
    assert all(p.dtype == torch.bfloat16 for p in quantized.parameters())
    assert quantized.model.lm_head.weight is quantized.model.transformer.wte.weight
    assert report.bytes_after < 0.55 * report.bytes_before
    assert _cosine(gpt2, quantized, tokens) > 0.99


# ---------------------------------------------------------------------------------------------
# skip= patterns
# ---------------------------------------------------------------------------------------------
def test_skip_patterns_keep_the_matching_layers_in_float(models, tokens, tmp_path):
    gpt2 = models["gpt2"]
    plugin = Quantize(method="dynamic_int8", skip="model.transformer.h.0;*.mlp.c_proj")
    quantized, report = plugin.run(gpt2, _context(tmp_path, tokens))
    block0 = [f"model.transformer.h.0.{n}" for n in ("attn.c_attn", "attn.c_proj", "mlp.c_fc", "mlp.c_proj")]
    expected_skips = {*block0, "model.transformer.h.1.mlp.c_proj"}
    assert {n for n, why in report.extra["layers_skipped"].items() if why == "skip pattern"} == expected_skips
    assert report.summary.startswith("3 of 9 matmul layers quantized")
    modules = dict(quantized.named_modules())
    assert all(type(modules[n]).__name__ == "Conv1D" for n in expected_skips), "skipped layers must stay as they were"
    assert type(modules["model.transformer.h.1.attn.c_attn"]).__module__.startswith("torch.ao.nn.quantized")


def test_a_skip_pattern_that_matches_nothing_names_the_closest_modules(models):
    with pytest.raises(PluginError) as err:
        Quantize(method="dynamic_int8", skip="model.transformer.h.0.atn").check_model(models["gpt2"], "torch")
    message = str(err.value)
    assert "\n" not in message
    assert message.startswith("quantize:skip: pattern 'model.transformer.h.0.atn' matches no module; closest names:")
    assert "model.transformer.h.0.attn" in message


def test_skipping_every_layer_is_refused(models):
    with pytest.raises(PluginError, match=r"every one of the 15 matmul layers .* is skipped"):
        Quantize(method="weight_only_int8", skip="model.*").check_model(models["llama"], "torch")


# ---------------------------------------------------------------------------------------------
# static int8 at batch 1 on an HF vision model torch.fx cannot trace
# ---------------------------------------------------------------------------------------------
def test_static_int8_on_hf_resnet_at_batch_1_calibrates_with_bigger_batches(tmp_path):
    torch.manual_seed(0)
    config = transformers.ResNetConfig(num_channels=3, embedding_size=8, hidden_sizes=[8, 16], depths=[1, 1],
                                       layer_type="basic", num_labels=5)
    from workbench.models.hf import HFImageForward
    model = HFImageForward(transformers.ResNetForImageClassification(config), "image-classification").eval()
    rng = np.random.default_rng(0)
    data = {"x_train": rng.random((80, 3, 16, 16), dtype=np.float32)}
    context = _context(tmp_path, [torch.rand(1, 3, 16, 16)], data)
    context.input_names = ["pixel_values"]
    quantized, report = Quantize(method="static_int8", calibration_samples=80).run(model, context)

    assert report.extra["flow"] == "PT2E" and "PT2E flow" in report.summary
    assert any("FX could not trace" in n for n in report.notes)
    assert report.extra["calibration_samples"] == 80                      # batches of 64 and 16, not 1
    assert report.summary.startswith("7 of 7 conv/matmul layers quantized [6 Conv2d, 1 Linear]")
    assert report.bytes_after < 0.5 * report.bytes_before
    with torch.no_grad():
        for batch in (1, 3):   # the exported batch dimension stayed dynamic
            x = torch.rand(batch, 3, 16, 16)
            torch.testing.assert_close(quantized(x), model(x), atol=0.1, rtol=0.1)


# ---------------------------------------------------------------------------------------------
# CUDA: int4 weight-only (torchao tinygemm) and fp16, when this machine has a GPU
# ---------------------------------------------------------------------------------------------
def _build_wide(kind: str) -> nn.Module:
    """Layers wide enough for int4 to pay: tinygemm pads in_features to a multiple of 1024, so a
    64-wide layer stays in bf16 (test_int4_keeps_narrow_layers_in_bf16)."""
    torch.manual_seed(0)
    if kind == "gpt2":
        config = transformers.GPT2Config(n_embd=512, n_layer=2, n_head=4, vocab_size=VOCAB, n_positions=32,
                                         bos_token_id=0, eos_token_id=0)
        return Forward(transformers.GPT2LMHeadModel(config)).eval()
    config = transformers.LlamaConfig(hidden_size=512, intermediate_size=1024, num_hidden_layers=2,
                                      num_attention_heads=4, num_key_value_heads=2, vocab_size=VOCAB,
                                      max_position_embeddings=32, bos_token_id=0, eos_token_id=0)
    return Forward(transformers.LlamaForCausalLM(config)).eval()


def test_int4_keeps_narrow_layers_in_bf16():
    """tinygemm pads in_features up to a multiple of 1024: a narrow layer's int4 weight would be larger."""
    from workbench_plugins._quant_backend import int4_is_smaller
    assert not int4_is_smaller(64, 64) and not int4_is_smaller(192, 64) and not int4_is_smaller(256, 32)
    assert int4_is_smaller(512, 64) and int4_is_smaller(2048, 128) and int4_is_smaller(5632, 64)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="int4 and fp16 run on CUDA only")
@pytest.mark.parametrize("kind,quantized", [("gpt2", "8 of 9"), ("llama", "15 of 15")])
def test_int4_and_fp16_on_cuda(tokens, tmp_path, kind, quantized):
    model = _build_wide(kind)
    inputs = [t.cuda() for t in tokens]
    for method in ("int4", "fp16"):
        context = _context(tmp_path, inputs)
        context.device = "cuda"
        out, report = Quantize(method=method).run(model, context)
        if method == "int4":
            assert report.summary.startswith(f"{quantized} matmul layers quantized"), report.summary
            assert report.bytes_after < 0.45 * report.bytes_before, report.summary
        assert next(model.parameters()).device.type == "cpu", "the input model was moved"
        with torch.no_grad():
            ref = model(*tokens)
            got = out(*inputs).float().cpu()
        cosine = torch.nn.functional.cosine_similarity(ref.flatten(1), got.flatten(1)).min().item()
        assert cosine > 0.95, (method, cosine)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="int4 runs on CUDA only")
def test_int4_on_narrow_layers_is_refused_on_cuda(models, tokens, tmp_path):
    context = _context(tmp_path, [t.cuda() for t in tokens])
    context.device = "cuda"
    with pytest.raises(PluginError, match="no layer.*int4"):
        Quantize(method="int4").run(models["llama"], context)
