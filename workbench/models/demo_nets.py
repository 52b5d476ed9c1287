"""Bundled demo networks (torch ``nn.Module`` definitions and factories).

Both demos classify the scikit-learn ``load_digits`` images: input ``(B, 1, 8, 8)`` float32
scaled to ``[0, 1]``, output logits ``(B, 10)``.

* :class:`DigitsCNN` -- conv + BatchNorm2d + ReLU blocks held in ``nn.Sequential`` containers
  (so conv/bn/relu are adjacent modules: good for conv-bn folding and structured channel
  pruning), one 2x2 max-pool, global average pooling and a ``Linear`` classifier.
* :class:`DigitsTransformer` -- a small transformer encoder whose attention and feed-forward
  layers are plain ``nn.Linear`` modules (q/k/v/out projections, two FFN linears), so dynamic
  int8 quantization of ``nn.Linear`` reaches every matmul-heavy layer. Attention itself uses
  ``torch.nn.functional.scaled_dot_product_attention``.

The factories take no required arguments and return a randomly initialised module in
``eval()`` mode; weights are loaded by :func:`workbench.models.demos.build_demo_module`.
Constructor arguments (width, depth...) keep defaults so a reduced copy can be built
(e.g. by a distillation plugin) with ``DigitsCNN(channels=(32, 64, 128))`` or
``DigitsTransformer(d_model=96, depth=2)``.
"""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

NUM_CLASSES = 10
IMAGE_SIZE = 8

# Default architectures of the bundled weights (assets/make_demos.py trains exactly these).
CNN_CHANNELS: tuple[int, ...] = (64, 128, 256)
TRANSFORMER_D_MODEL = 224
TRANSFORMER_DEPTH = 2
TRANSFORMER_HEADS = 4
TRANSFORMER_FF_MULT = 4
TRANSFORMER_POOL = "mean"


def conv_bn_relu(in_ch: int, out_ch: int, kernel_size: int = 3) -> nn.Sequential:
    """``Conv2d`` (no bias, 'same' padding) -> ``BatchNorm2d`` -> ``ReLU``."""
    return nn.Sequential(
        nn.Conv2d(in_ch, out_ch, kernel_size, padding=kernel_size // 2, bias=False),
        nn.BatchNorm2d(out_ch),
        nn.ReLU(),
    )


class DigitsCNN(nn.Module):
    """CNN for 8x8 digits.

    ``channels[0]`` and ``channels[1]`` run at 8x8, then a 2x2 max-pool, the remaining
    stages run at 4x4; global average pooling and ``Linear(channels[-1], num_classes)``.
    """

    def __init__(
        self,
        channels: Sequence[int] = CNN_CHANNELS,
        num_classes: int = NUM_CLASSES,
        in_channels: int = 1,
        pool_after: int = 2,
    ) -> None:
        super().__init__()
        channels = tuple(int(c) for c in channels)
        if not channels:
            raise ValueError("DigitsCNN needs at least one conv stage")
        self.channels = channels
        self.num_classes = int(num_classes)
        self.in_channels = int(in_channels)
        self.pool_after = int(pool_after)
        layers: list[nn.Module] = []
        prev = self.in_channels
        for i, ch in enumerate(channels):
            if i == self.pool_after:
                layers.append(nn.MaxPool2d(2))
            layers.append(conv_bn_relu(prev, ch))
            prev = ch
        self.features = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.flatten = nn.Flatten(1)
        self.classifier = nn.Linear(prev, self.num_classes)

    def config(self) -> dict:
        """Constructor arguments that rebuild this architecture: ``DigitsCNN(**m.config())``."""
        convs = [m for m in self.features.modules() if isinstance(m, nn.Conv2d)]
        return {  # channels read from the layers, so a pruned model reports its real widths
            "channels": [c.out_channels for c in convs],
            "num_classes": self.num_classes,
            "in_channels": self.in_channels,
            "pool_after": self.pool_after,
        }

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.flatten(self.pool(self.features(x))))


class MultiHeadSelfAttention(nn.Module):
    """Self-attention with plain ``nn.Linear`` q/k/v/out projections and SDPA."""

    def __init__(self, d_model: int, num_heads: int, dropout: float = 0.0) -> None:
        super().__init__()
        if d_model % num_heads:
            raise ValueError(f"d_model {d_model} is not divisible by num_heads {num_heads}")
        self.d_model = d_model
        self.num_heads = num_heads
        self.head_dim = d_model // num_heads
        self.dropout = dropout
        self.q_proj = nn.Linear(d_model, d_model)
        self.k_proj = nn.Linear(d_model, d_model)
        self.v_proj = nn.Linear(d_model, d_model)
        self.out_proj = nn.Linear(d_model, d_model)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, t, _ = x.shape

        def heads(y: torch.Tensor) -> torch.Tensor:
            return y.reshape(b, t, self.num_heads, self.head_dim).transpose(1, 2)

        q, k, v = heads(self.q_proj(x)), heads(self.k_proj(x)), heads(self.v_proj(x))
        attn = F.scaled_dot_product_attention(
            q, k, v, dropout_p=self.dropout if self.training else 0.0
        )
        attn = attn.transpose(1, 2).reshape(b, t, self.d_model)
        return self.out_proj(attn)


def _activation(name: str) -> nn.Module:
    if name == "relu":
        return nn.ReLU()
    if name == "gelu":
        return nn.GELU()
    if name == "gelu_tanh":
        return nn.GELU(approximate="tanh")
    raise ValueError(f"unknown activation {name!r} (use 'relu', 'gelu' or 'gelu_tanh')")


class FeedForward(nn.Module):
    """``Linear(d, ff) -> activation -> Linear(ff, d)`` (ReLU by default: cheap on CPU)."""

    def __init__(
        self, d_model: int, d_ff: int, dropout: float = 0.0, activation: str = "relu"
    ) -> None:
        super().__init__()
        self.fc1 = nn.Linear(d_model, d_ff)
        self.act = _activation(activation)
        self.fc2 = nn.Linear(d_ff, d_model)
        self.drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.drop(self.fc2(self.act(self.fc1(x))))


class EncoderBlock(nn.Module):
    """Pre-LayerNorm transformer encoder block."""

    def __init__(
        self,
        d_model: int,
        num_heads: int,
        d_ff: int,
        dropout: float = 0.0,
        activation: str = "relu",
    ) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(d_model)
        self.attn = MultiHeadSelfAttention(d_model, num_heads, dropout)
        self.norm2 = nn.LayerNorm(d_model)
        self.ff = FeedForward(d_model, d_ff, dropout, activation)
        self.drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.drop(self.attn(self.norm1(x)))
        return x + self.ff(self.norm2(x))


class DigitsTransformer(nn.Module):
    """Transformer encoder classifier: each of the 8 image rows is a token of 8 pixels.

    ``Linear(8, d_model)`` row embedding + learned positional embedding, a learned CLS
    token, ``depth`` pre-LN encoder blocks, final ``LayerNorm`` and ``Linear`` head on CLS.
    """

    def __init__(
        self,
        d_model: int = TRANSFORMER_D_MODEL,
        depth: int = TRANSFORMER_DEPTH,
        num_heads: int = TRANSFORMER_HEADS,
        ff_mult: int = TRANSFORMER_FF_MULT,
        num_classes: int = NUM_CLASSES,
        image_size: int = IMAGE_SIZE,
        dropout: float = 0.0,
        activation: str = "relu",
        pool: str = TRANSFORMER_POOL,
    ) -> None:
        super().__init__()
        if pool not in ("mean", "cls"):
            raise ValueError(f"unknown pool {pool!r} (use 'mean' or 'cls')")
        self.pool = pool
        self.d_model = int(d_model)
        self.depth = int(depth)
        self.num_heads = int(num_heads)
        self.ff_mult = int(ff_mult)
        self.num_classes = int(num_classes)
        self.image_size = int(image_size)
        self.dropout = float(dropout)
        self.activation = activation
        self.embed = nn.Linear(self.image_size, self.d_model)
        n_tokens = self.image_size + (1 if pool == "cls" else 0)
        if pool == "cls":
            self.cls_token = nn.Parameter(torch.zeros(1, 1, self.d_model))
        else:
            self.register_parameter("cls_token", None)
        self.pos_embed = nn.Parameter(torch.zeros(1, n_tokens, self.d_model))
        self.blocks = nn.ModuleList(
            EncoderBlock(
                self.d_model, self.num_heads, self.d_model * self.ff_mult, dropout, activation
            )
            for _ in range(self.depth)
        )
        self.norm = nn.LayerNorm(self.d_model)
        self.head = nn.Linear(self.d_model, self.num_classes)
        nn.init.trunc_normal_(self.pos_embed, std=0.02)
        if self.cls_token is not None:
            nn.init.trunc_normal_(self.cls_token, std=0.02)

    def config(self) -> dict:
        """Constructor arguments that rebuild this architecture: ``DigitsTransformer(**m.config())``."""
        return {
            "d_model": self.d_model,
            "depth": self.depth,
            "num_heads": self.num_heads,
            "ff_mult": self.ff_mult,
            "num_classes": self.num_classes,
            "image_size": self.image_size,
            "activation": self.activation,
            "pool": self.pool,
        }

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b = x.shape[0]
        tokens = self.embed(x.reshape(b, self.image_size, self.image_size))  # rows -> tokens
        if self.cls_token is not None:
            tokens = torch.cat([self.cls_token.expand(b, -1, -1), tokens], dim=1)
        h = tokens + self.pos_embed
        for block in self.blocks:
            h = block(h)
        pooled = h[:, 0] if self.cls_token is not None else h.mean(dim=1)
        return self.head(self.norm(pooled))


def digits_cnn(**kwargs) -> DigitsCNN:
    """The bundled CNN demo (random weights, eval mode)."""
    return DigitsCNN(**kwargs).eval()


def digits_transformer(**kwargs) -> DigitsTransformer:
    """The bundled transformer demo (random weights, eval mode)."""
    return DigitsTransformer(**kwargs).eval()
