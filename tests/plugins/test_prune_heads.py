"""Whole attention heads removed from BERT, DistilBERT, GPT-2 (fused c_attn) and ViT, whose configs
derive the head size from hidden_size / num_attention_heads (ViT reads config.head_dim natively):
fewer q rows, the same outputs as the original with those heads silenced, and a saved folder that
Workbench's loader reopens with identical logits."""
from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
import torch

from workbench.errors import ModelLoadError
from workbench.models.hf import HFForward, HFImageForward
from workbench.models.hf_heads import CONFIG_KEY, find_attention, is_conv1d, keep_heads
from workbench.models.hf_load import load_hf_folder
from workbench.models.hf_save import save_hf_folder
from workbench.plugin_api import PluginContext
from workbench_plugins.prune import Prune

transformers = pytest.importorskip("transformers")
VOCAB, SEQ, HIDDEN, HEADS, HEAD_DIM = 128, 10, 64, 4, 16
ARCHS = ("bert", "distilbert", "gpt2", "vit")


pytestmark = pytest.mark.usefixtures("one_thread")     # tests/plugins/conftest.py


def build(arch: str) -> HFForward:
    torch.manual_seed(0)
    t = transformers
    if arch == "bert":
        return HFForward(t.BertModel(t.BertConfig(vocab_size=VOCAB, hidden_size=HIDDEN, num_hidden_layers=2,
                                                  num_attention_heads=HEADS, intermediate_size=128,
                                                  max_position_embeddings=32)), "feature-extraction")
    if arch == "distilbert":
        return HFForward(t.DistilBertForMaskedLM(t.DistilBertConfig(vocab_size=VOCAB, dim=HIDDEN, n_layers=2, n_heads=HEADS,
                                                                    hidden_dim=128, max_position_embeddings=32)),
                         "masked-lm")
    if arch == "gpt2":
        return HFForward(t.GPT2LMHeadModel(t.GPT2Config(vocab_size=VOCAB, n_embd=HIDDEN, n_layer=2, n_head=HEADS,
                                                        n_positions=32, bos_token_id=0, eos_token_id=0)), "causal-lm")
    config = t.ViTConfig(hidden_size=HIDDEN, num_hidden_layers=2, num_attention_heads=HEADS, intermediate_size=128,
                         image_size=32, patch_size=8, num_labels=3)
    return HFImageForward(t.ViTForImageClassification(config), "image-classification")


def inputs(arch: str) -> list:
    if arch == "vit":
        return [torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(1))]
    ids = torch.randint(0, VOCAB, (2, SEQ), generator=torch.Generator().manual_seed(1))
    return [ids, torch.tensor([[1] * SEQ, [1] * (SEQ - 3) + [0] * 3])]


@pytest.fixture(scope="module")
def pruned() -> dict:
    """arch -> (original, pruned, report): 50 % structured, no fine-tune."""
    out = {}
    for arch in ARCHS:
        original = build(arch).eval()
        ctx = PluginContext(device="cpu", dtype="float32", example_inputs=inputs(arch), data=None, seed=0,
                            workdir=Path("."))
        model, report = Prune(method="structured", amount=0.5, finetune="off").run(original, ctx)
        out[arch] = (original, model.eval(), report)
    return out


@pytest.mark.parametrize("arch", ARCHS)
def test_pruned_model_has_really_fewer_heads_and_runs(pruned, arch):
    original, model, report = pruned[arch]
    config = model.model.config
    assert (config.num_attention_heads, config.head_dim) == (2, HEAD_DIM)
    assert original.model.config.num_attention_heads == HEADS          # the input model is untouched
    blocks = find_attention(model.model)
    assert len(blocks) == 2
    for att in blocks:
        assert att.part("q").width == att.part("k").width == att.part("v").width == 2 * HEAD_DIM
        q = att.part("q").layer
        q_rows = q.weight.shape[1] if is_conv1d(q) else q.weight.shape[0]
        assert q_rows == (3 if arch == "gpt2" else 1) * 2 * HEAD_DIM       # GPT-2: q, k, v side by side
    assert report.extra["heads_before"] == HEADS and report.extra["heads_after"] == 2
    assert "heads 4→2" in report.summary and report.params_after < report.params_before
    with torch.no_grad():
        out, ref = model(*inputs(arch)), original(*inputs(arch))
    assert out.shape == ref.shape and bool(torch.isfinite(out).all())
    native = arch == "vit"                          # ViTAttention reads config.head_dim
    assert (getattr(config, CONFIG_KEY, None) is None) == native
    assert any(CONFIG_KEY in note for note in report.notes) == (not native)


@pytest.mark.parametrize("arch", ARCHS)
def test_removed_heads_equal_the_original_with_those_heads_silenced(arch):
    """Keeping heads 0 and 2 gives exactly the original model whose heads 1 and 3 add nothing
    (their output-projection columns zeroed): the attributes the forward reads are all right."""
    model = build(arch).eval()
    silenced = copy.deepcopy(model)
    for att, ref in zip(find_attention(model.model), find_attention(silenced.model)):
        keep_heads(att, [0, 2], [0, 2], HEAD_DIM)
        weight = ref.out[1].weight
        with torch.no_grad():
            for head in (1, 3):
                cols = slice(head * HEAD_DIM, (head + 1) * HEAD_DIM)
                (weight[cols] if is_conv1d(ref.out[1]) else weight[:, cols]).zero_()
    with torch.no_grad():
        assert torch.allclose(model(*inputs(arch)), silenced(*inputs(arch)), atol=1e-5)


@pytest.mark.parametrize("arch", ARCHS)
def test_saved_folder_reopens_in_workbench_with_identical_logits(pruned, arch, tmp_path):
    _, model, _ = pruned[arch]
    artifact = save_hf_folder(model, "torch", str(tmp_path))
    saved = json.loads((tmp_path / "config.json").read_text())
    native = arch == "vit"
    if native:
        assert CONFIG_KEY not in saved and "note" not in artifact
    else:
        assert saved[CONFIG_KEY] == {"num_attention_heads": 2, "head_dim": HEAD_DIM, "original_num_attention_heads": 4}
        assert "plain transformers.from_pretrained cannot" in artifact["note"]
    loaded = load_hf_folder(tmp_path)
    with torch.no_grad():
        assert torch.equal(loaded.model(*inputs(arch)), model(*inputs(arch)))
    assert loaded.model.model.config.num_attention_heads == 2 and type(loaded.model.model).__name__ == \
        type(model.model).__name__
    auto = transformers.AutoModelForImageClassification if native else transformers.AutoModel
    if native:                                      # the native config: plain transformers reopens it too
        auto.from_pretrained(tmp_path)
    else:
        with pytest.raises(Exception):
            auto.from_pretrained(tmp_path)


def test_pruned_gpt2_generates_with_its_kv_cache(pruned):
    _, model, _ = pruned["gpt2"]
    ids, mask = inputs("gpt2")
    with torch.no_grad():
        assert model.model.generate(ids, attention_mask=mask, max_new_tokens=2, do_sample=False).shape == (2, SEQ + 2)


def test_a_config_only_folder_builds_the_recorded_heads_and_a_bad_record_is_refused(pruned, tmp_path):
    _, model, _ = pruned["bert"]
    model.model.config.save_pretrained(tmp_path)
    loaded = load_hf_folder(tmp_path, task="feature-extraction")      # random weights, the pruned shapes
    assert loaded.model.model.encoder.layer[0].attention.self.query.weight.shape == (2 * HEAD_DIM, HIDDEN)
    saved = json.loads((tmp_path / "config.json").read_text())
    saved[CONFIG_KEY] = {"num_attention_heads": 8, "head_dim": HEAD_DIM, "original_num_attention_heads": 4}
    (tmp_path / "config.json").write_text(json.dumps(saved))
    with pytest.raises(ModelLoadError, match=f"{CONFIG_KEY} cannot be applied: .*kept heads at most the original"):
        load_hf_folder(tmp_path, task="feature-extraction")
