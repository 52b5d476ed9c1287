"""Structured pruning of Hugging Face transformers (whole heads in GQA-consistent sets, MLP channels,
config updated) and unstructured pruning of every matmul layer they have (GPT-2's Conv1D)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from workbench.errors import PluginError
from workbench.models.hf import HFForward
from workbench.plugin_api import PluginContext
from workbench_plugins._prune_transformer import head_sets
from workbench_plugins.prune import Prune

transformers = pytest.importorskip("transformers")
VOCAB, SEQ = 256, 12


pytestmark = pytest.mark.usefixtures("one_thread")     # tests/plugins/conftest.py


def build(kind: str) -> HFForward:
    torch.manual_seed(0)
    if kind == "llama":            # grouped-query attention: 4 heads share 2 key/value heads
        config = transformers.LlamaConfig(vocab_size=VOCAB, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                                          num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=32)
        return HFForward(transformers.LlamaForCausalLM(config), "causal-lm")
    if kind == "gpt2":
        config = transformers.GPT2Config(vocab_size=VOCAB, n_embd=64, n_layer=2, n_head=4, n_positions=32,
                                         bos_token_id=0, eos_token_id=0)
        return HFForward(transformers.GPT2LMHeadModel(config), "causal-lm")
    config = transformers.BertConfig(vocab_size=VOCAB, hidden_size=64, num_hidden_layers=2, num_attention_heads=4,
                                     intermediate_size=128, max_position_embeddings=32)
    return HFForward(transformers.BertModel(config), "feature-extraction")


@pytest.fixture(scope="module")
def models() -> dict:
    return {kind: build(kind) for kind in ("llama", "gpt2", "bert")}


def inputs() -> list:
    ids = torch.randint(0, VOCAB, (2, SEQ), generator=torch.Generator().manual_seed(1))
    return [ids, torch.ones_like(ids)]


def context(data=None) -> PluginContext:
    return PluginContext(device="cpu", dtype="float32", example_inputs=inputs(), data=data, seed=0, workdir=Path("."))


def reopen(wrapper: HFForward, tmp_path: Path) -> HFForward:
    """save_pretrained -> from_pretrained, as --save-model DIR and `workbench bench DIR` do."""
    wrapper.model.save_pretrained(tmp_path)
    auto = transformers.AutoModelForCausalLM if wrapper.task == "causal-lm" else transformers.AutoModel
    return HFForward(auto.from_pretrained(tmp_path), wrapper.task)


def test_head_sets_keep_gqa_groups_consistent():
    assert head_sets(8, 2, 0.3) == (2, 3)      # 8 -> 6 heads: each of the 2 KV heads keeps 3 query heads
    assert head_sets(4, 2, 0.5) == (2, 1)      # tie 2x1 / 1x2: keep more KV heads
    assert head_sets(8, 8, 0.25) == (6, 1)     # plain multi-head attention: heads one by one
    assert head_sets(4, 1, 0.5) == (1, 2)      # multi-query attention: the one KV head stays
    assert head_sets(8, 2, 0.9) == (1, 1)


def test_llama_gqa_loses_heads_and_mlp_channels_and_reopens(models, tmp_path):
    original = models["llama"]
    pruned, report = Prune(method="structured", amount=0.5, finetune="off").run(original, context())
    config = pruned.model.config
    assert (config.num_attention_heads, config.num_key_value_heads, config.head_dim) == (2, 2, 16)
    assert config.intermediate_size == 64
    for layer in pruned.model.model.layers:
        attn = layer.self_attn
        assert attn.q_proj.out_features == 2 * 16 and attn.k_proj.out_features == 2 * 16
        assert attn.o_proj.in_features == 32 and attn.num_key_value_groups == 1
        mlp = layer.mlp
        assert mlp.gate_proj.out_features == mlp.up_proj.out_features == mlp.down_proj.in_features == 64
    assert original.model.config.num_attention_heads == 4          # the input model is untouched
    assert report.extra["heads_before"] == 4 and report.extra["heads_after"] == 2
    assert report.params_after < report.params_before and report.flops_after < report.flops_before
    assert "heads 4→2" in report.summary and "MLP 128→64" in report.summary
    ids, mask = inputs()
    with torch.no_grad():
        out = pruned(ids, mask)
        assert out.shape == (2, SEQ, VOCAB)
        assert torch.allclose(reopen(pruned, tmp_path)(ids, mask), out, atol=1e-5)
        # the KV cache follows the pruned heads: cached greedy decoding runs
        assert pruned.model.generate(ids, attention_mask=mask, max_new_tokens=2, do_sample=False).shape == (2, SEQ + 2)


def test_gqa_group_shrinks_before_kv_heads_go():
    model = build("llama")
    config = model.model.config
    config.num_attention_heads, config.num_key_value_heads = 4, 1        # multi-query: 4 query heads, 1 KV head
    torch.manual_seed(0)
    model = HFForward(transformers.LlamaForCausalLM(config), "causal-lm")
    pruned, _ = Prune(method="structured", amount=0.5, finetune="off").run(model, context())
    assert (pruned.model.config.num_attention_heads, pruned.model.config.num_key_value_heads) == (2, 1)
    assert pruned.model.model.layers[0].self_attn.num_key_value_groups == 2


def test_gpt2_conv1d_mlp_and_fused_heads_pruned(models):
    pruned, report = Prune(method="structured", amount=0.5, finetune="off").run(models["gpt2"], context())
    assert pruned.model.config.n_inner == 128 and pruned.model.config.n_head == 2
    for block in pruned.model.transformer.h:
        assert block.mlp.c_fc.weight.shape == (64, 128) and block.mlp.c_proj.weight.shape == (128, 64)
        assert block.mlp.c_fc.nf == 128 and block.mlp.c_proj.nx == 128
        assert block.attn.c_attn.weight.shape == (64, 3 * 32) and block.attn.split_size == 32
    assert report.extra["heads_after"] == 2 and report.extra["heads_recorded_as"] == "workbench_attention_heads"
    ids, mask = inputs()
    with torch.no_grad():
        assert pruned(ids, mask).shape == (2, SEQ, VOCAB)


def test_bert_prunes_heads_and_mlp_without_shape_errors(models):
    original = models["bert"]
    pruned, report = Prune(method="structured", amount=0.5, finetune="off").run(original, context())
    config = pruned.model.config
    assert config.intermediate_size == 64 and (config.num_attention_heads, config.head_dim) == (2, 16)
    assert pruned.model.encoder.layer[0].intermediate.dense.out_features == 64
    assert pruned.model.encoder.layer[0].attention.self.query.out_features == 32
    ids, mask = inputs()
    with torch.no_grad():
        out = pruned(ids, mask)
        assert out.shape == original(ids, mask).shape == (2, 64)
    assert 0.0 < report.extra["output_cosine"] <= 1.0


def test_a_ruinous_prune_without_data_warns(models):
    _, report = Prune(method="structured", amount=0.9, finetune="off").run(models["llama"], context())
    agreement = report.extra["next_token_agreement"]
    assert report.extra["fidelity_warning"] == (agreement < 0.5)
    assert agreement < 0.5 and report.notes[0].startswith("warning: pruning moved the outputs far")
    assert "no fine-tune" in report.notes[0]


def test_language_model_fine_tunes_on_token_windows(models):
    stream = np.tile(np.arange(40) * 7 % VOCAB, 40)
    windows = np.stack([stream[i:i + SEQ] for i in range(0, 40 * 5, 5)]).astype(np.int64)
    data = {"x_train": windows[:32], "attention_mask_train": np.ones_like(windows[:32]),
            "x_test": windows[32:], "attention_mask_test": np.ones_like(windows[32:])}
    events: list = []
    ctx = context(data)
    ctx.emit = lambda kind, payload: events.append((kind, payload))
    _, report = Prune(method="structured", amount=0.5, finetune_epochs=2, lr=3e-3).run(models["llama"], ctx)
    curve = report.extra["finetune_loss_curve"]
    assert report.extra["finetune_epochs"] == 2 and curve[-1] < curve[0]
    assert "fine-tuned 2 epoch(s)" in report.summary
    train = [p for kind, p in events if kind == "train"]
    assert train and train[-1]["student_accuracy"] is not None        # next-token accuracy on x_test
    with pytest.raises(PluginError, match="finetune=on needs training text"):
        Prune(method="structured", amount=0.5, finetune="on").run(models["llama"], context())


def test_skip_all_attention_prunes_only_mlps_and_partial_skip_is_refused(models):
    pruned, report = Prune(method="structured", amount=0.5, finetune="off", skip="*.self_attn").run(
        models["llama"], context())
    assert pruned.model.config.num_attention_heads == 4 and pruned.model.config.intermediate_size == 64
    assert "attention blocks kept: skipped" in report.notes
    with pytest.raises(PluginError, match=r"skip leaves 1 of 2 attention blocks unpruned.*one head count"):
        Prune(method="structured", skip="model.model.layers.0.self_attn").run(models["llama"], context())
    with pytest.raises(PluginError, match=r"pattern '\*\.self_atn' matches no module; closest names: .*self_attn"):
        Prune(method="structured", skip="*.self_atn").run(models["llama"], context())
    with pytest.raises(PluginError, match="scope=global .* a Hugging Face config cannot record"):
        Prune(method="structured", scope="global").run(models["llama"], context())


def test_unstructured_prunes_every_gpt2_conv1d_and_keeps_the_tie(models):
    original = models["gpt2"]
    pruned, report = Prune(method="unstructured", amount=0.5, finetune="off").run(original, context())
    blocks = pruned.model.transformer.h
    conv1d = [m for b in blocks for m in (b.attn.c_attn, b.attn.c_proj, b.mlp.c_fc, b.mlp.c_proj)]
    for layer in conv1d:
        assert abs(float((layer.weight == 0).float().mean()) - 0.5) < 0.01
    assert report.extra["layers_pruned"] == 8 and report.extra["layers_total"] == 9
    assert "8 of 9 matmul layers pruned" in report.summary
    assert pruned.model.lm_head.weight is pruned.model.transformer.wte.weight      # still tied
    assert "weight tied" in report.extra["layers_skipped"]["model.lm_head"]
    assert report.bytes_after == report.bytes_before
