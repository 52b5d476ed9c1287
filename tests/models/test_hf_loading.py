"""Hugging Face folders: open through transformers (task from config.json or --task), safetensors
(sharded too), .bin only with --trust-pickle, custom code only with --trust-remote-code, config-only
= random weights (flagged), save as a folder and reopen; one clear line for every bad folder."""
from __future__ import annotations

import json
import shutil

import pytest
import torch

from hf_fixtures import folder_config, hf_folder  # noqa: F401  (hf_folder: a session fixture)
from workbench.engine.plan import check_chain, check_model_source
from workbench.errors import ModelLoadError, SpecError, WorkbenchError
from workbench.models.describe import describe_model
from workbench.models.hf import RANDOM_WEIGHTS_NOTE, HFForward
from workbench.models.loaders import TRUST_HINT, load_model
from workbench.models.save import save_model
from workbench.spec import RunSpec


def _tokens(vocab: int, batch: int = 2, seq: int = 8) -> tuple[torch.Tensor, torch.Tensor]:
    ids = torch.randint(0, vocab, (batch, seq), generator=torch.Generator().manual_seed(0))
    mask = torch.ones(batch, seq, dtype=torch.int64)
    mask[-1, seq - 3:] = 0                      # the last row is padded
    return ids, mask


def _copy(folder, tmp_path):
    return shutil.copytree(folder, tmp_path / folder.name)


@pytest.mark.parametrize("preset", ["gpt2", "llama"])
def test_causal_lms_open_as_logits_without_cache(hf_folder, preset):
    loaded = load_model(str(hf_folder(preset)))
    assert loaded.format == "hf" and loaded.kind == "torch" and loaded.default_batch == 1
    assert isinstance(loaded.model, HFForward) and not loaded.model.training
    assert loaded.hf.task == "causal-lm" and loaded.hf.tokenizer is not None and not loaded.hf.random_weights
    assert [(s.name, s.shape, s.dtype) for s in loaded.inputs] == [
        ("input_ids", [-1, 64], "int64"), ("attention_mask", [-1, 64], "int64")]   # min(128, positions)
    ids, mask = _tokens(loaded.hf.config.vocab_size)
    with torch.no_grad():
        logits = loaded.model(ids, mask)
        direct = loaded.model.model(input_ids=ids, attention_mask=mask).logits
    assert logits.shape == (2, 8, loaded.hf.config.vocab_size)
    torch.testing.assert_close(logits, direct)


def test_llama_keeps_grouped_query_attention_in_its_description(hf_folder):
    loaded = load_model(str(hf_folder("llama")))
    info = describe_model(loaded, RunSpec(model=str(hf_folder("llama")))).hf
    assert (info["heads"], info["kv_heads"], info["layers"], info["vocab_size"]) == (4, 2, 2, 300)
    assert info["architecture"] == "LlamaForCausalLM" and info["task"] == "causal-lm" and info["tokenizer"]
    assert "4 heads (2 key/value heads)" in info["summary"]


def test_sharded_safetensors_load_the_same_weights(hf_folder):
    sharded = hf_folder("llama", weights="sharded")
    assert len(json.loads((sharded / "model.safetensors.index.json").read_text())["weight_map"]) > 1
    single, split = load_model(str(hf_folder("llama"))), load_model(str(sharded))
    assert split.hf.weights.endswith("safetensors shards")
    ids, mask = _tokens(300)
    with torch.no_grad():
        torch.testing.assert_close(split.model(ids, mask), single.model(ids, mask))


def test_a_path_to_config_json_opens_its_folder(hf_folder):
    loaded = load_model(str(hf_folder("gpt2") / "config.json"))
    assert loaded.hf.folder == str(hf_folder("gpt2"))
    check_model_source(str(hf_folder("gpt2")))          # the parent side accepts the folder too


def test_encoder_pools_over_the_mask_or_takes_cls_as_the_folder_declares(hf_folder, tmp_path):
    loaded = load_model(str(hf_folder("bert")))
    assert loaded.hf.task == "feature-extraction" and loaded.model.pooling == "mean"
    ids, mask = _tokens(loaded.hf.config.vocab_size)
    with torch.no_grad():
        embedding = loaded.model(ids, mask)
        hidden = loaded.model.model(input_ids=ids, attention_mask=mask).last_hidden_state
    assert embedding.shape == (2, 32)
    torch.testing.assert_close(embedding[-1], hidden[-1, :5].mean(0))     # padding left out of the mean
    cls_folder = _copy(hf_folder("bert"), tmp_path)
    (cls_folder / "1_Pooling").mkdir()
    (cls_folder / "1_Pooling" / "config.json").write_text(json.dumps({"pooling_mode_cls_token": True}))
    cls = load_model(str(cls_folder))
    assert cls.model.pooling == "cls"
    with torch.no_grad():
        torch.testing.assert_close(cls.model(ids, mask), hidden[:, 0])


def test_task_option_overrides_the_architecture(hf_folder):
    loaded = load_model(str(hf_folder("bert")), task="masked-lm")
    assert loaded.hf.task == "masked-lm" and loaded.hf.architecture == "BertForMaskedLM"
    assert any(note.startswith("not in the weights, randomly initialized: cls.predictions") for note in loaded.notes)
    ids, mask = _tokens(loaded.hf.config.vocab_size)
    with torch.no_grad():
        assert loaded.model(ids, mask).shape == (2, 8, loaded.hf.config.vocab_size)


def test_config_only_folder_builds_random_weights_flagged_everywhere(hf_folder):
    folder = hf_folder("gpt2", weights=None)
    loaded = load_model(str(folder))
    assert loaded.hf.random_weights and RANDOM_WEIGHTS_NOTE in loaded.notes
    info = describe_model(loaded, RunSpec(model=str(folder)))
    assert info.hf["random_weights"] and RANDOM_WEIGHTS_NOTE in info.hf["summary"]
    assert RANDOM_WEIGHTS_NOTE in info.notes and info.flops > 0 and info.parameters > 0


def test_image_model_declares_pixel_values_from_its_config(hf_folder):
    loaded = load_model(str(hf_folder("vit")))
    assert loaded.hf.task == "image-classification" and loaded.input_fixed_by_model
    assert [(s.name, s.shape) for s in loaded.inputs] == [("pixel_values", [-1, 3, 16, 16])]
    with torch.no_grad():
        assert loaded.model(torch.zeros(2, 3, 16, 16)).shape == (2, 3)


def test_hf_forward_exports_with_torch_export(hf_folder):
    loaded = load_model(str(hf_folder("llama")))
    ids, mask = _tokens(300)
    program = torch.export.export(loaded.model, (ids, mask))
    with torch.no_grad():
        torch.testing.assert_close(program.module()(ids, mask), loaded.model(ids, mask))


# -- trust: pickles and custom code ----------------------------------------------------------------
def test_bin_weights_need_trust_pickle(hf_folder):
    folder = hf_folder("bert", weights="bin")
    with pytest.raises(ModelLoadError, match=r"pytorch_model.bin are a Python pickle") as refused:
        load_model(str(folder))
    assert TRUST_HINT in str(refused.value) and "\n" not in str(refused.value)
    trusted = load_model(str(folder), trust_pickle=True)
    reference = load_model(str(hf_folder("bert")))        # same seed, safetensors
    ids, mask = _tokens(trusted.hf.config.vocab_size)
    with torch.no_grad():
        torch.testing.assert_close(trusted.model(ids, mask), reference.model(ids, mask))


def test_custom_code_needs_trust_remote_code(hf_folder, tmp_path):
    folder = _copy(hf_folder("gpt2"), tmp_path)
    config = folder_config(folder)
    config["auto_map"] = {"AutoModelForCausalLM": "modeling_evil.EvilModel"}
    (folder / "config.json").write_text(json.dumps(config))
    with pytest.raises(ModelLoadError, match=r"asks to run the folder's own Python code \(auto_map: "
                                             r"AutoModelForCausalLM\); re-run with --trust-remote-code"):
        load_model(str(folder))


# -- bad folders: one line each ----------------------------------------------------------------------
def test_folder_without_config_json_names_what_is_there(tmp_path):
    (tmp_path / "weights.safetensors").write_bytes(b"x")
    (tmp_path / "notes.txt").write_text("hi")
    with pytest.raises(ModelLoadError, match=r"without config.json.*it holds: notes.txt, weights.safetensors"):
        load_model(str(tmp_path))
    with pytest.raises(SpecError, match=r"is a folder, not a model file .*it holds: notes.txt, weights.safetensors"):
        check_model_source(str(tmp_path))


@pytest.mark.parametrize("change, message", [
    ({"model_type": "wizard"}, r"names model_type 'wizard', which transformers \S+ does not know"),
    ({"architectures": ["GPT2ForTimeTravelLMHeadModel"]},
     r"names the architecture GPT2ForTimeTravelLMHeadModel, which transformers \S+ does not have"),
    ({"architectures": ["GPT2DoubleDecker"]}, r"maps to no task Workbench opens: pass --task"),
])
def test_config_naming_unknown_types_is_refused(hf_folder, tmp_path, change, message):
    folder = _copy(hf_folder("gpt2", weights=None), tmp_path)
    (folder / "config.json").write_text(json.dumps({**folder_config(folder), **change}))
    with pytest.raises(ModelLoadError, match=message):
        load_model(str(folder))


def test_weights_that_do_not_fit_the_config_name_the_keys(hf_folder, tmp_path):
    folder = _copy(hf_folder("gpt2"), tmp_path)
    (folder / "config.json").write_text(json.dumps({**folder_config(folder), "n_layer": 3}))
    with pytest.raises(ModelLoadError, match=r"do not fit config.json: missing transformer.h.2.attn.c_attn.bias, "
                                             r"transformer.h.2.attn.c_attn.weight, transformer.h.2.attn.c_proj.bias "
                                             r"and \d+ more$"):
        load_model(str(folder))
    (folder / "config.json").write_text(json.dumps({**folder_config(folder), "n_layer": 1}))
    with pytest.raises(ModelLoadError, match=r"unexpected transformer.h.1.attn.c_attn.weight, "):
        load_model(str(folder))
    (folder / "config.json").write_text(json.dumps({**folder_config(folder), "n_layer": 2, "n_embd": 64}))
    with pytest.raises(ModelLoadError, match=r"do not fit config.json: shapes differ for transformer.h.0.attn.c_attn.bias "
                                             r"\(weights \[96\], config \[192\]\), "):
        load_model(str(folder))


def test_a_shard_index_naming_a_missing_file_names_it(hf_folder, tmp_path):
    folder = _copy(hf_folder("llama", weights="sharded"), tmp_path)
    (folder / "model-00002-of-00003.safetensors").unlink()
    with pytest.raises(ModelLoadError, match=r"model.safetensors.index.json names the weights file "
                                             r"model-00002-of-00003.safetensors, which is not in "):
        load_model(str(folder))


# -- saving as a folder ------------------------------------------------------------------------------
def test_save_as_folder_reopens_with_the_same_outputs(hf_folder, tmp_path):
    loaded = load_model(str(hf_folder("llama")))
    with torch.no_grad():      # a changed model (as a plugin would change it) saves its own weights
        loaded.model.model.lm_head.weight.mul_(0.5)
    artifact = save_model(loaded.model, "torch", str(tmp_path / "llama-half"), [])
    assert artifact["kind"] == "hf" and artifact["bytes"] > 0
    saved = tmp_path / "llama-half"
    assert {"config.json", "model.safetensors", "tokenizer.json"} <= {p.name for p in saved.iterdir()}
    reopened = load_model(str(saved))
    assert reopened.hf.tokenizer is not None and reopened.hf.config.num_key_value_heads == 2
    ids, mask = _tokens(300)
    with torch.no_grad():
        torch.testing.assert_close(reopened.model(ids, mask), loaded.model(ids, mask))


@pytest.mark.filterwarnings("ignore::DeprecationWarning", "ignore::UserWarning")     # torch.ao's own deprecation
def test_save_as_folder_refuses_what_safetensors_cannot_hold(hf_folder, tmp_path):
    from torchao.quantization import Int8WeightOnlyConfig, quantize_
    loaded = load_model(str(hf_folder("llama")))
    quantize_(loaded.model.model, Int8WeightOnlyConfig())          # torchao: tensor subclasses
    with pytest.raises(WorkbenchError, match=r"holds Int8Tensor tensors \(model.layers.0.self_attn.q_proj.weight\), "
                                             r"which safetensors cannot store.*save it as .pt2 or .onnx instead$"):
        save_model(loaded.model, "torch", str(tmp_path / "out"), [])
    assert not (tmp_path / "out").exists()
    loaded = load_model(str(hf_folder("llama")))                   # torch.ao dynamic int8: packed parameters
    loaded.model.model = torch.ao.quantization.quantize_dynamic(loaded.model.model, {torch.nn.Linear})
    with pytest.raises(WorkbenchError, match=r"holds packed quantized parameters \(model.layers.0.self_attn.q_proj\)"):
        save_model(loaded.model, "torch", str(tmp_path / "out"), [])


def test_save_as_folder_refuses_a_model_that_is_not_hugging_face(tmp_path):
    with pytest.raises(WorkbenchError, match=r"writes a Hugging Face folder, but the optimized model is a Linear"):
        save_model(torch.nn.Linear(2, 2), "torch", str(tmp_path / "out"), [])
    onnx_file = tmp_path / "m.onnx"
    onnx_file.write_bytes(b"x")
    with pytest.raises(SpecError, match=r"m.onnx is not a Hugging Face model: save it as .pt"):
        check_chain(RunSpec(model=str(onnx_file), save_model=str(tmp_path / "out")))
    with pytest.raises(SpecError, match=r"demo:digits-cnn is not a Hugging Face model"):
        check_chain(RunSpec(model="demo:digits-cnn", save_model=str(tmp_path / "out/")))
    check_chain(RunSpec(model=str(onnx_file), save_model=str(tmp_path / "out.onnx")))     # files still save


def test_workbench_bench_reopens_a_saved_folder_and_saves_it_again(hf_folder, tmp_path):
    """`workbench bench DIR` on a folder written by --save-model DIR, itself saved again (one worker run)."""
    import subprocess
    import sys
    first = tmp_path / "saved"
    save_model(load_model(str(hf_folder("gpt2"))).model, "torch", str(first), [])
    second, out = tmp_path / "saved-again", tmp_path / "run.json"
    proc = subprocess.run([sys.executable, "-m", "workbench.cli", "--db", str(tmp_path / "db.sqlite"), "bench",
                           str(first), "--scenario", "forward", "--iters", "5", "--duration", "0.05", "--threads", "1",
                           "--save-model", str(second), "--json", str(out)], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    record = json.loads(out.read_text())
    assert record["status"] == "done" and record["result"]["latency"]["median_ms"] > 0
    reopened = load_model(str(second))
    assert reopened.hf.task == "causal-lm" and reopened.hf.tokenizer is not None
