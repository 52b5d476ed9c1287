"""onnx_export:with_cache=true: causal LMs (GPT-2's Conv1D, Llama with grouped-query attention)
exported with their KV cache as past_key_values inputs / present outputs; ONNX Runtime matches
torch for the prefill (past length 0) and every decode step, and the generate scenario runs on the
export through the worker with the same greedy tokens as torch.

Tiny configs (hidden 32-64, 2 layers, vocabulary 300), random init. The fast tests use the
TorchScript exporter (an export in well under a second; the dynamo exporter, tried first in a
run, takes ~5 s on these configs and is checked in the extended tier).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
import torch

from hf_fixtures import hf_folder  # noqa: F401  (session fixture)
from workbench.errors import PluginError
from workbench.plugin_api import PluginContext, build_chain, onnx_cache_export
from workbench.plugin_api.onnx_cache_export import layout_from_graph, positions_from_mask
from workbench.plugin_api.onnx_export import OnnxExport
from workbench.spec import PluginStep
from workbench.worker.generate import check_chain_generates

VOCAB = 300


@pytest.fixture(autouse=True)
def torchscript_exporter(monkeypatch):
    monkeypatch.setattr(onnx_cache_export, "EXPORTERS", ("torchscript",))


def _causal_lm(kind: str):
    import transformers

    from workbench.models.hf import HFForward
    torch.manual_seed(0)
    if kind == "gpt2":                 # Conv1D projections
        config = transformers.GPT2Config(n_embd=32, n_layer=2, n_head=2, n_positions=64, n_inner=64,
                                         vocab_size=VOCAB, bos_token_id=0, eos_token_id=0)
        model = transformers.GPT2LMHeadModel(config)
    else:                              # grouped-query attention: 4 query heads share 2 key/value heads
        config = transformers.LlamaConfig(hidden_size=64, num_hidden_layers=2, num_attention_heads=4,
                                          num_key_value_heads=2, intermediate_size=64, max_position_embeddings=64,
                                          vocab_size=VOCAB, bos_token_id=0, eos_token_id=0, pad_token_id=0)
        model = transformers.LlamaForCausalLM(config)
    return HFForward(model.eval(), "causal-lm")


def _export(model, tmp_path, batch: int = 2):
    example = [torch.zeros(batch, 8, dtype=torch.long), torch.ones(batch, 8, dtype=torch.long)]
    context = PluginContext(device="cpu", dtype="float32", example_inputs=example, data=None, seed=0,
                            workdir=Path(tmp_path), input_names=["input_ids", "attention_mask"])
    return OnnxExport(with_cache=True).run(model, context)


def _session(proto):
    import onnxruntime as ort
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    return ort.InferenceSession(proto.SerializeToString(), options, providers=["CPUExecutionProvider"])


@pytest.mark.parametrize("kind", ["gpt2", "llama"])
def test_export_with_cache_matches_torch_for_prefill_and_decode_steps(kind, tmp_path):
    from transformers import DynamicCache
    model = _causal_lm(kind)
    lm = model.model
    proto, report = _export(model, tmp_path)
    assert report.summary.endswith("with the KV cache (2 layers, past_key_values inputs/present outputs)")
    assert report.extra["kv_cache"] is True and "past_key_values.{0..1}.key/.value" in report.notes[0]
    assert [o.name for o in proto.graph.output] == ["logits", "present.0.key", "present.0.value", "present.1.key",
                                                    "present.1.value"]
    session = _session(proto)
    layout = layout_from_graph(session.get_inputs(), session.get_modelmeta().custom_metadata_map)
    assert layout.kv_heads == [2, 2] and layout.head_dims == [16, 16] and layout.max_positions == 64
    del proto.metadata_props[:]            # an ONNX quantizer may drop the metadata: the names still say it
    assert layout_from_graph(proto.graph.input).kv_heads == [2, 2]

    # batch 2 with a left-padded row: the mask and positions must reach the graph
    prompt = torch.randint(1, VOCAB, (2, 6), generator=torch.Generator().manual_seed(3))
    mask = torch.ones_like(prompt)
    mask[1, :2] = 0
    cache = DynamicCache(config=lm.config)
    feed_pasts = [np.zeros(layout.past_shape(i // 2, 2, 0), np.float32) for i in range(4)]
    ids, real = prompt, mask.numpy().astype(bool)
    for step in range(4):                  # the prefill (past length 0), then 3 decode steps
        positions = positions_from_mask(mask, ids.shape[1])
        with torch.no_grad():
            expected = lm(input_ids=ids, attention_mask=mask, position_ids=positions, cache=cache,
                          use_cache=True).logits.numpy()
        feed = {"input_ids": ids.numpy(), "attention_mask": mask.numpy(), "position_ids": positions.numpy(),
                **dict(zip(layout.past_names(), feed_pasts))}
        logits, *feed_pasts = session.run(None, feed)
        assert logits.shape == expected.shape
        np.testing.assert_allclose(logits[real] if step == 0 else logits, expected[real] if step == 0 else expected,
                                   atol=1e-4, rtol=1e-4)
        assert feed_pasts[0].shape == (2, 2, mask.shape[1], 16)
        ids = torch.from_numpy(expected[:, -1].argmax(-1)[:, None])
        mask = torch.cat([mask, torch.ones(2, 1, dtype=mask.dtype)], 1)
        real = np.ones((2, 1), bool)


def test_generate_on_the_cache_export_through_the_worker(hf_folder, tmp_path):  # noqa: F811
    """The generate scenario on ONNX Runtime: exactly gen_len tokens, the prefill timed apart from
    every decode step, the KV cache measured, and the same greedy tokens as torch (continuation
    agreement 1.0 against the torch original); --save-model writes the .onnx and says its layout."""
    from workbench.spec import RunSpec
    from workbench.worker.pipeline import Stage, run_job
    events = []
    saved = tmp_path / "lm.onnx"
    spec = RunSpec(model=str(hf_folder("llama", weights=None)), scenario="generate", prompt_len=4, gen_len=3,
                   iters=4, duration_s=0.001, warmup_min_iters=1, warmup_max_s=0.05, threads=1, seq_len=16,
                   plugins=[PluginStep.parse("onnx_export:with_cache=true")], save_model=str(saved))
    run_job({"spec": spec.to_dict(), "workdir": str(tmp_path / "work")},
            lambda event, **payload: events.append({"type": event, **payload}), lambda: False, Stage())
    result = next(e for e in events if e["type"] == "result")["result"]
    gen = result["generation"]
    assert result["runtime_name"] == "onnxruntime" and result["scenario"] == "generate"
    assert gen["new_tokens"] == 3 and gen["prompt_tokens"] == 4
    measured = [e for e in events if e["type"] == "generation" and e["phase"] == "measure"]
    assert len(measured) == gen["repetitions"] >= 3
    assert all(len(e["decode_ns"]) == 2 and e["prefill_ns"] > 0 for e in measured)
    assert gen["decode_token"]["n"] == 2 * gen["repetitions"] and gen["decode_tokens_per_s"] > 0
    assert gen["kv_cache_bytes"] == gen["kv_cache_expected_bytes"] == 2 * 2 * 2 * 8 * (4 + 3 - 1) * 4
    lm = result["lm_fidelity"]
    assert lm["continuation_agreement"] == 1.0 and lm["next_token_agreement"] == 1.0
    assert abs(lm["perplexity_delta_pct"]) < 1e-3
    assert result["plugin_reports"][0]["extra"]["kv_cache"] is True
    assert onnx.load(str(saved)).graph.input[3].name == "past_key_values.0.key"
    assert any(n.startswith("saved model: exported with the KV cache (2 layers") for n in result["notes"])


def test_with_cache_on_a_model_without_a_kv_cache_is_refused_in_one_line():
    from workbench.models.loaders import load_model
    loaded = load_model("demo:digits-cnn")
    with pytest.raises(PluginError) as caught:
        build_chain([PluginStep("onnx_export", {"with_cache": True})], loaded.kind, "cpu", "auto", model=loaded.model)
    message = str(caught.value)
    assert "\n" not in message and message.startswith("onnx_export with_cache=true needs a causal language model")
    assert "with_cache=false" in message


def test_generate_needs_the_cache_export():
    with_cache = build_chain([PluginStep("onnx_export", {"with_cache": True}), PluginStep("quantize",
                              {"method": "dynamic_int8"})], "torch", "cpu", "auto")
    check_chain_generates("onnx", with_cache)                 # ONNX Runtime decodes with the cache: accepted
    without = build_chain([PluginStep("onnx_export")], "torch", "cpu", "auto")
    with pytest.raises(PluginError) as caught:
        check_chain_generates("onnx", without)
    message = str(caught.value)
    assert "\n" not in message and "exported without a KV cache interface" in message
    assert "onnx_export:with_cache=true" in message and "--scenario forward" in message


@pytest.mark.extended
def test_the_dynamo_exporter_exports_the_cache_too(monkeypatch, tmp_path):
    monkeypatch.setattr(onnx_cache_export, "EXPORTERS", ("dynamo",))
    model = _causal_lm("llama")
    proto, _ = _export(model, tmp_path)
    session = _session(proto)
    layout = layout_from_graph(session.get_inputs())
    prompt = torch.randint(1, VOCAB, (1, 5), generator=torch.Generator().manual_seed(4))
    with torch.no_grad():
        expected = model.model(input_ids=prompt).logits.numpy()
    mask = np.ones((1, 5), np.int64)
    feed = {"input_ids": prompt.numpy(), "attention_mask": mask, "position_ids": positions_from_mask(mask, 5),
            **{name: np.zeros(layout.past_shape(i // 2, 1, 0), np.float32)
               for i, name in enumerate(layout.past_names())}}
    np.testing.assert_allclose(session.run(None, feed)[0], expected, atol=1e-4, rtol=1e-4)


def test_static_int8_after_a_cache_export_is_refused_up_front():
    from workbench.errors import PluginError
    from workbench.plugin_api import build_chain
    from workbench.spec import PluginStep
    steps = [PluginStep("onnx_export", {"with_cache": True}), PluginStep("quantize", {"method": "static_int8"})]
    with pytest.raises(PluginError, match="cannot calibrate a model exported with its KV cache"):
        build_chain(steps, "torch", "cpu", "auto")
    assert build_chain(steps[:1] + [PluginStep("quantize", {"method": "dynamic_int8"})], "torch", "cpu", "auto")
