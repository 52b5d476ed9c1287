"""Tiny Hugging Face folders for tests: GPT-2, Llama with grouped-query attention, BERT (and a tiny
ViT), each with a tokenizer trained by the ``tokenizers`` library on a few sentences and saved as
tokenizer.json. Random init from small configs (hidden 32, 2 layers, vocabulary < 400): a folder
costs well under a second once transformers is imported.

Use the session fixture ``hf_folder`` (import it into a test module: ``from hf_fixtures import
hf_folder``): ``hf_folder("gpt2")`` builds once per session and returns the path; the folders are
shared, so copy one (``shutil.copytree``) before changing it. Options: ``weights`` =
"safetensors" | "sharded" | "bin" | None (config only), ``tokenizer`` = True/False,
``architecture`` = another head for the same config (e.g. "BertForMaskedLM").
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

SENTENCES = [
    "The quick brown fox jumps over the lazy dog.",
    "A benchmark measures how long a model takes to answer.",
    "Quantization stores weights in fewer bits, pruning removes whole channels.",
    "Language models predict the next token from the tokens before it.",
    "Workbench opens a folder, reads its config, and builds the model.",
    "Every bad input gets one clear line, never a traceback.",
    "Small models make fast tests; large models make slow ones.",
    "The tokenizer turns text into ids, and the ids into text again.",
]

# name -> (config class, default architecture, config options, tokenizer kind)
PRESETS = {
    "gpt2": ("GPT2Config", "GPT2LMHeadModel",
             dict(n_embd=32, n_layer=2, n_head=2, n_positions=64, n_inner=64), "bpe"),
    "llama": ("LlamaConfig", "LlamaForCausalLM",      # grouped-query attention: 4 heads share 2 KV heads
              dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                   intermediate_size=64, max_position_embeddings=64), "bpe"),
    "bert": ("BertConfig", "BertModel",
             dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
                  max_position_embeddings=64), "wordpiece"),
    "vit": ("ViTConfig", "ViTForImageClassification",
            dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64, image_size=16,
                 patch_size=8, num_labels=3), None),
}
BPE_VOCAB, WORDPIECE_VOCAB = 300, 120


def train_tokenizer(kind: str):
    """A PreTrainedTokenizerFast trained on SENTENCES: byte-level BPE (GPT-2 / Llama style, with
    <|endoftext|> as BOS/EOS/pad) or WordPiece (BERT style, [CLS] ... [SEP])."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast
    if kind == "bpe":
        tok = Tokenizer(models.BPE())
        tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
        tok.decoder = decoders.ByteLevel()
        trainer = trainers.BpeTrainer(vocab_size=BPE_VOCAB, special_tokens=["<|endoftext|>"],
                                      initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
        tok.train_from_iterator(SENTENCES, trainer)
        return PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<|endoftext|>", eos_token="<|endoftext|>",
                                       unk_token="<|endoftext|>", pad_token="<|endoftext|>")
    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    tok = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.decoder = decoders.WordPiece()
    tok.train_from_iterator(SENTENCES, trainers.WordPieceTrainer(vocab_size=WORDPIECE_VOCAB, special_tokens=specials))
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B [SEP]",
        special_tokens=[("[CLS]", tok.token_to_id("[CLS]")), ("[SEP]", tok.token_to_id("[SEP]"))])
    return PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="[UNK]", pad_token="[PAD]", cls_token="[CLS]",
                                   sep_token="[SEP]", mask_token="[MASK]")


def tiny_config(preset: str, architecture: str | None = None, tokenizer=None):
    """The preset's transformers config, its vocabulary and special ids taken from ``tokenizer``."""
    import transformers
    config_class, default_arch, options, _ = PRESETS[preset]
    options = dict(options)
    if tokenizer is not None:
        options["vocab_size"] = len(tokenizer)
        for name in ("bos_token_id", "eos_token_id", "pad_token_id"):
            value = getattr(tokenizer, name, None)
            if value is not None:
                options[name] = value
    config = getattr(transformers, config_class)(**options)
    config.architectures = [architecture or default_arch]
    return config


def write_hf_folder(folder: Path, preset: str, weights: str | None = "safetensors", tokenizer: bool = True,
                    architecture: str | None = None, seed: int = 0) -> Path:
    """Write a tiny HF folder; returns ``folder``."""
    import torch
    import transformers
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    kind = PRESETS[preset][3]
    tok = train_tokenizer(kind) if kind else None
    config = tiny_config(preset, architecture, tok)
    if weights is None:
        config.save_pretrained(folder)
    else:
        torch.manual_seed(seed)
        model = getattr(transformers, config.architectures[0])(config).eval()
        if weights == "safetensors":
            model.save_pretrained(folder)
        elif weights == "sharded":
            model.save_pretrained(folder, max_shard_size="60KB")
        elif weights == "bin":
            config.save_pretrained(folder)
            torch.save(model.state_dict(), folder / "pytorch_model.bin")
        else:
            raise ValueError(f"weights: safetensors | sharded | bin | None, not {weights!r}")
    if tokenizer and tok is not None:
        tok.save_pretrained(folder)
    return folder


def folder_config(folder: Path) -> dict:
    return json.loads((Path(folder) / "config.json").read_text())


@pytest.fixture(scope="session")
def hf_folder(tmp_path_factory):
    """``hf_folder(preset, **options) -> Path``: built once per session per (preset, options)."""
    built: dict[tuple, Path] = {}

    def make(preset: str, weights: str | None = "safetensors", tokenizer: bool = True,
             architecture: str | None = None) -> Path:
        key = (preset, weights, tokenizer, architecture)
        if key not in built:
            name = "-".join(str(part) for part in key if part not in (None, True))
            built[key] = write_hf_folder(tmp_path_factory.mktemp(name), preset, weights, tokenizer, architecture)
        return built[key]

    return make
