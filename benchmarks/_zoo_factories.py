"""The model zoo's architectures, built from ``transformers`` configs with random weights (the LSTM
from torch alone), in three sizes: ``smoke`` (tiny, for tests), ``quick`` (the real architecture at a
small input, transformers with fewer layers) and ``full`` (the published configurations).

Each architecture is a module with ONE tensor output and plain tensor inputs (``models.hf.HFForward``
for transformers, as Workbench loads an HF folder), so every format can hold it. A state_dict needs
a factory to load into: ``--factory _zoo_factories:quick_resnet18`` (this folder on ``PYTHONPATH``)
builds the same module; nothing here imports transformers until an architecture is built.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

SIZES = ("smoke", "quick", "full")
IMAGE = {"smoke": 32, "quick": 64, "full": 224}
SEQ = {"smoke": 16, "quick": 64, "full": 128}
VOCAB = {"smoke": 512, "quick": 8000}          # full: the model's own


@dataclass(frozen=True)
class Arch:
    name: str
    title: str
    kind: str                     # image | text | audio | sequence
    task: str | None              # the HF task its folder opens as; None: no Hugging Face folder
    no_folder: str = ""           # why there is no HF folder
    bias_free_lm: bool = False

    def inputs(self, size: str) -> list[str]:
        """The input specs a run passes (``--input``), batch 1."""
        if self.kind == "image":
            return [f"pixel_values=1x3x{IMAGE[size]}x{IMAGE[size]}:float32"]
        if self.kind == "text":
            return [f"input_ids=1x{SEQ[size]}:int64"]
        if self.kind == "audio":
            return [f"input_features=1x80x{2 * _whisper_positions(size)}:float32"]
        return [f"x=1x{SEQ[size]}x{_lstm_dims(size)[0]}:float32"]


ARCHS = {a.name: a for a in (
    Arch("resnet18", "ResNet-18", "image", "image-classification"),
    Arch("resnet50", "ResNet-50", "image", "image-classification"),
    Arch("mobilenet_v2", "MobileNetV2", "image", "image-classification"),
    Arch("vit_s16", "ViT-S/16", "image", "image-classification"),
    Arch("convnext_t", "ConvNeXt-T", "image", "image-classification"),
    Arch("bert_base", "BERT-base", "text", "sequence-classification"),
    Arch("distilbert", "DistilBERT", "text", "sequence-classification"),
    Arch("gpt2", "GPT-2", "text", "causal-lm"),
    Arch("llama_gqa", "Llama (grouped-query attention)", "text", "causal-lm"),
    Arch("whisper_tiny_encoder", "Whisper-tiny encoder", "audio", None,
         no_folder="an encoder alone is not a transformers task a folder can be opened as"),
    Arch("lstm", "LSTM", "sequence", None, no_folder="a plain torch.nn.LSTM has no transformers config"),
)}


def _whisper_positions(size: str) -> int:
    return {"smoke": 8, "quick": 100, "full": 1500}[size]


def _lstm_dims(size: str) -> tuple[int, int, int]:
    """(input features, hidden size, layers)."""
    return {"smoke": (8, 16, 1), "quick": (32, 128, 2), "full": (80, 512, 2)}[size]


# -- configs ------------------------------------------------------------------------------------
def _config(name: str, size: str) -> Any:
    import transformers as t
    small = size != "full"
    tiny = size == "smoke"
    image, vocab = IMAGE[size], VOCAB.get(size)
    if name == "resnet18":
        return t.ResNetConfig(embedding_size=8 if tiny else 64, depths=[1, 1, 1, 1] if tiny else [2, 2, 2, 2],
                              hidden_sizes=[8, 16, 32, 64] if tiny else [64, 128, 256, 512], layer_type="basic",
                              num_labels=10 if tiny else 1000)
    if name == "resnet50":
        return t.ResNetConfig(embedding_size=64, depths=[3, 4, 6, 3], hidden_sizes=[256, 512, 1024, 2048],
                              layer_type="bottleneck", num_labels=1000)
    if name == "mobilenet_v2":
        return t.MobileNetV2Config(image_size=image, depth_multiplier=0.25 if tiny else 1.0, num_labels=1000)
    if name == "vit_s16":
        return t.ViTConfig(hidden_size=32 if tiny else 384, num_hidden_layers=2 if tiny else 4 if small else 12,
                           num_attention_heads=2 if tiny else 6, intermediate_size=64 if tiny else 1536,
                           image_size=image, patch_size=16, num_labels=10 if tiny else 1000)
    if name == "convnext_t":
        return t.ConvNextConfig(depths=[1, 1, 1, 1] if tiny else [1, 1, 3, 1] if small else [3, 3, 9, 3],
                                hidden_sizes=[8, 16, 32, 64] if tiny else [96, 192, 384, 768], image_size=image,
                                num_labels=10 if tiny else 1000)
    if name == "bert_base":
        return t.BertConfig(**({} if not small else dict(
            hidden_size=32 if tiny else 256, num_hidden_layers=2 if tiny else 4, num_attention_heads=2 if tiny else 4,
            intermediate_size=64 if tiny else 1024, vocab_size=vocab, max_position_embeddings=128)), num_labels=2)
    if name == "distilbert":
        return t.DistilBertConfig(**({} if not small else dict(
            dim=32 if tiny else 256, n_layers=2 if tiny else 3, n_heads=2 if tiny else 4,
            hidden_dim=64 if tiny else 1024, vocab_size=vocab, max_position_embeddings=128)), num_labels=2)
    if name == "gpt2":
        return t.GPT2Config(**({} if not small else dict(
            n_embd=32 if tiny else 256, n_layer=2 if tiny else 4, n_head=2 if tiny else 4, vocab_size=vocab,
            n_positions=128, bos_token_id=0, eos_token_id=0)))
    if name == "llama_gqa":
        if not small:
            return t.LlamaConfig(hidden_size=1024, num_hidden_layers=8, num_attention_heads=16, num_key_value_heads=4,
                                 intermediate_size=2816, vocab_size=32000, max_position_embeddings=512)
        return t.LlamaConfig(hidden_size=32 if tiny else 256, num_hidden_layers=2 if tiny else 4,
                             num_attention_heads=4 if tiny else 8, num_key_value_heads=2,
                             intermediate_size=64 if tiny else 688, vocab_size=vocab, max_position_embeddings=128)
    if name == "whisper_tiny_encoder":
        return t.WhisperConfig(d_model=32 if tiny else 384, encoder_layers=2 if tiny else 4,
                               encoder_attention_heads=2 if tiny else 6, encoder_ffn_dim=64 if tiny else 1536,
                               decoder_layers=1, decoder_attention_heads=2 if tiny else 6, num_mel_bins=80, max_source_positions=_whisper_positions(size))
    raise KeyError(name)


_CLASSES = {"image-classification": "AutoModelForImageClassification",
            "sequence-classification": "AutoModelForSequenceClassification", "causal-lm": "AutoModelForCausalLM"}


def build(name: str, size: str) -> tuple[Any, Any]:
    """(the module every format holds, the transformers model behind it or None); seeded weights."""
    import torch
    torch.manual_seed(0)
    arch = ARCHS[name]
    if name == "lstm":
        return __getattr__("LSTMClassifier")(*_lstm_dims(size)).eval(), None
    import transformers
    from workbench.models.hf import HFForward, HFImageForward
    config = _config(name, size)
    if name == "whisper_tiny_encoder":
        from transformers.models.whisper.modeling_whisper import WhisperEncoder
        encoder = WhisperEncoder(config)
        return __getattr__("EncoderForward")(encoder).eval(), None
    model = getattr(transformers, _CLASSES[arch.task]).from_config(config).eval()
    wrapper = HFImageForward(model, arch.task) if arch.kind == "image" else HFForward(model, arch.task)
    return wrapper.eval(), model


def example_inputs(name: str, size: str) -> list:
    """Seeded tensors of the shapes ``Arch.inputs`` names (token ids within every vocabulary)."""
    import torch
    generator = torch.Generator().manual_seed(0)
    out = []
    for text in ARCHS[name].inputs(size):
        shape = [int(d) for d in text.split("=")[1].split(":")[0].split("x")]
        if text.endswith(":int64"):
            out.append(torch.randint(0, 10, shape, generator=generator))
        else:
            out.append(torch.randn(shape, generator=generator))
    return out


def _module_classes() -> tuple[type, type]:
    from torch import nn

    class _LSTMClassifier(nn.Module):
        """Two stacked LSTM layers and a linear head on the last step: ``forward(x) -> logits``."""

        def __init__(self, features: int, hidden: int, layers: int, classes: int = 10) -> None:
            super().__init__()
            self.lstm = nn.LSTM(features, hidden, num_layers=layers, batch_first=True)
            self.head = nn.Linear(hidden, classes)

        def forward(self, x):
            out, _ = self.lstm(x)
            return self.head(out[:, -1])

    class _EncoderForward(nn.Module):
        """An encoder returning its last hidden state (Whisper's takes log-mel features)."""

        def __init__(self, encoder: nn.Module) -> None:
            super().__init__()
            self.encoder = encoder

        def forward(self, input_features):
            return self.encoder(input_features=input_features).last_hidden_state

    return _LSTMClassifier, _EncoderForward


def __getattr__(attr: str) -> Any:
    """``LSTMClassifier``/``EncoderForward`` (torch imported on first use), and the factories
    ``<size>_<arch>`` (e.g. ``quick_resnet18``) that ``--factory`` calls with no arguments."""
    if attr in ("LSTMClassifier", "EncoderForward"):
        if "LSTMClassifier" not in globals():
            lstm, encoder = _module_classes()
            globals().update(LSTMClassifier=lstm, EncoderForward=encoder)
        return globals()[attr]
    size, _, name = attr.partition("_")
    if size in SIZES and name in ARCHS:
        factory: Callable[[], Any] = lambda: build(name, size)[0]   # noqa: E731
        return factory
    raise AttributeError(f"module {__name__!r} has no attribute {attr!r}")
