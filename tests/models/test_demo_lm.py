"""demo:tiny-lm: a Hugging Face folder in the catalog, loaded like any other one, with the held-out
perplexity recorded in demos.json reproduced here on the corpus split the worker uses."""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest

from workbench.errors import ModelLoadError
from workbench.models import demos
from workbench.worker import text_inputs

REPO = Path(__file__).resolve().parents[2]
ASSETS = REPO / "assets"
FOLDER_FILES = {"config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json"}


@pytest.fixture(autouse=True)
def _bundled_assets(monkeypatch):
    """Always test the assets committed in the repo, whatever the environment says."""
    monkeypatch.setenv(demos.ASSETS_ENV, str(ASSETS))


@pytest.fixture(scope="module")
def loaded():
    from workbench.models.loaders import load_model
    with pytest.MonkeyPatch.context() as patch:     # module scope: before the autouse fixture
        patch.setenv(demos.ASSETS_ENV, str(ASSETS))
        return load_model("demo:tiny-lm")


@pytest.fixture(scope="module")
def record():
    return json.loads((ASSETS / demos.METRICS_FILE).read_text(encoding="utf-8"))["demos"]["tiny-lm"]


def test_catalog_entry_is_a_hugging_face_folder():
    entry = demos.get_demo("tiny-lm")
    assert entry.kind == "hf" and entry.input_dtype == "int64" and entry.data == text_inputs.CORPUS_FILE
    assert "tiny-lm" in demos.demo_names("hf") and "tiny-lm" not in demos.demo_names("module")
    folder = demos.hf_demo_folder("tiny-lm")
    assert folder == ASSETS / "tiny-lm" and FOLDER_FILES <= {p.name for p in folder.iterdir()}
    assert (ASSETS / entry.weights).is_file()
    config = json.loads((folder / "config.json").read_text())
    assert config["architectures"] == ["LlamaForCausalLM"]
    assert config["num_key_value_heads"] < config["num_attention_heads"]      # grouped-query attention
    with pytest.raises(ValueError, match="not a Hugging Face folder"):
        demos.hf_demo_folder("digits-cnn")


def test_loads_as_a_causal_lm_with_its_tokenizer(loaded):
    assert loaded.hf is not None and loaded.hf.task == "causal-lm" and not loaded.hf.random_weights
    tokenizer, config = loaded.hf.tokenizer, loaded.hf.config
    assert tokenizer is not None and len(tokenizer) == config.vocab_size
    assert tokenizer.eos_token_id == config.eos_token_id and tokenizer.pad_token_id is None
    assert [s.name for s in loaded.inputs] == ["input_ids", "attention_mask"]
    assert not loaded.model.training


def test_held_out_perplexity_matches_the_record_and_beats_a_unigram_model(loaded, record):
    import torch

    torch.set_num_threads(2)
    tokenizer = loaded.hf.tokenizer
    heldout = text_inputs.token_stream(tokenizer, text_inputs.corpus_splits().heldout)
    ids, mask = text_inputs.windows(heldout, record["eval"]["seq_len"], text_inputs.pad_id_of(tokenizer))
    assert int(mask.sum()) == record["eval"]["tokens"]
    total, count = 0.0, 0
    with torch.inference_mode():
        for start in range(0, len(ids), 32):
            x, m = torch.from_numpy(ids[start:start + 32]), torch.from_numpy(mask[start:start + 32])
            logits = loaded.model(x, m)                 # HFForward: the logits, one tensor
            keep = (m[:, 1:] * m[:, :-1]).bool()
            nll = torch.nn.functional.cross_entropy(logits[:, :-1].transpose(1, 2), x[:, 1:], reduction="none")
            total, count = total + float(nll[keep].sum()), count + int(keep.sum())
    perplexity = float(np.exp(total / count))
    assert perplexity == pytest.approx(record["heldout_perplexity"], rel=1e-3)
    assert perplexity < record["unigram_heldout_perplexity"] / 5        # it learned far more than word counts
    # sensitive enough that an optimization shows in the perplexity
    assert record["int8_dynamic_heldout_perplexity"] != pytest.approx(record["heldout_perplexity"], rel=1e-4)


def test_record_describes_the_corpus_split_the_worker_uses(record):
    corpus = ASSETS / text_inputs.CORPUS_FILE
    split = text_inputs.corpus_splits()
    assert record["corpus"]["sha256"] == hashlib.sha256(corpus.read_bytes()).hexdigest()
    assert record["corpus"]["train_chars"] == [0, split.boundary]
    assert record["corpus"]["heldout_chars"] == [split.boundary, len(corpus.read_text(encoding="utf-8"))]
    assert record["bytes"] == (ASSETS / "tiny-lm" / "model.safetensors").stat().st_size


def test_a_missing_folder_is_one_line_naming_the_file(tmp_path, monkeypatch):
    from workbench.models.loaders import load_model
    monkeypatch.setenv(demos.ASSETS_ENV, str(tmp_path))
    with pytest.raises(ModelLoadError) as caught:
        load_model("demo:tiny-lm")
    message = str(caught.value)
    assert "\n" not in message and "config.json is missing" in message and "make_tiny_lm" in message
