"""Whole attention heads removed from a Hugging Face model: the layer surgery and the module
attributes that let its attention run with fewer heads of the same size. Shared by the prune plugin
(which chooses the heads) and the folder loader (which rebuilds a saved pruned model).

Llama-style configs say "fewer heads" natively (``num_attention_heads``, ``num_key_value_heads``,
``head_dim``), and so does ViT (its attention reads ``config.head_dim``). BERT, DistilBERT and GPT-2
(and the BERT copies: RoBERTa, XLM-R, ELECTRA, CamemBERT) derive the head size from
``hidden_size / num_attention_heads``, and transformers 5 dropped ``prune_heads`` /
``config.pruned_heads``, so their config.json cannot say it. For them the pruned config holds the
true ``num_attention_heads`` and ``head_dim`` plus ``CONFIG_KEY`` =
``{"num_attention_heads": kept, "head_dim": size, "original_num_attention_heads": n}``;
``model_class`` builds such a model with the original head count (the shapes transformers knows) and
then cuts every attention block to the first ``kept`` heads, before the weights are loaded into it.
Plain ``transformers.from_pretrained`` cannot reopen such a folder: it builds ``kept`` heads of size
``hidden_size / kept`` and refuses the weights (shape mismatch) or the head count (not a divisor).

Nothing heavy is imported at module level (torch is imported inside the functions).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

CONFIG_KEY = "workbench_attention_heads"
# model_type of the architectures whose attention runs with fewer heads once the attributes below are
# set (each checked against a model with the removed heads' output columns zeroed)
RESHAPED_MODEL_TYPES = ("bert", "roberta", "xlm-roberta", "camembert", "electra", "distilbert", "gpt2")
# (q, k, v, output) projection names, relative to the attention module.
SEPARATE_LAYOUTS = (("q_proj", "k_proj", "v_proj", "o_proj"), ("q_proj", "k_proj", "v_proj", "out_proj"),
                    ("q_lin", "k_lin", "v_lin", "out_lin"), ("self.query", "self.key", "self.value", "output.dense"),
                    ("attention.query", "attention.key", "attention.value", "output.dense"))
HEAD_ATTRS = ("num_heads", "num_attention_heads", "n_heads", "n_head")
KV_ATTRS = ("num_key_value_heads", "num_kv_heads")
WIDTH_ATTRS = ("all_head_size", "split_size")     # the query width (BERT: all_head_size; GPT-2: split_size)


def is_conv1d(layer: Any) -> bool:
    cls = type(layer)
    return cls.__name__ == "Conv1D" and cls.__module__.startswith("transformers")


def is_matmul(layer: Any) -> bool:
    from torch import nn
    return isinstance(layer, nn.Linear) or is_conv1d(layer)


def matrix(layer: Any) -> Any:
    """The weight as (out, in), whatever the layer stores (GPT-2's Conv1D stores (in, out))."""
    return layer.weight.t() if is_conv1d(layer) else layer.weight


def out_size(layer: Any) -> int:
    return int(matrix(layer).shape[0])


def in_size(layer: Any) -> int:
    return int(matrix(layer).shape[1])


def weight_shape(layer: Any, out: int, inp: int) -> tuple[int, int]:
    """The stored weight shape of ``layer``'s kind with ``out`` outputs and ``inp`` inputs."""
    return (inp, out) if is_conv1d(layer) else (out, inp)


def _sub(module: Any, path: str) -> Any:
    try:
        return module.get_submodule(path)
    except AttributeError:
        return None


@dataclass
class Part:
    """Rows ``offset .. offset + heads * head_dim`` of ``layer``'s outputs: the q, k or v of every head."""
    kind: str            # "q", "k" or "v"
    name: str            # the layer's full module name
    layer: Any
    offset: int
    width: int


@dataclass
class Attention:
    name: str
    holders: list                    # the modules holding head-count attributes (BERT: attention and .self)
    parts: list[Part]                # q, k, v (GPT-2: three parts of one fused c_attn)
    out: tuple[str, Any]             # the output projection: its input columns are the q heads

    def part(self, kind: str) -> Part:
        return next(p for p in self.parts if p.kind == kind)

    @property
    def layer_names(self) -> list[str]:
        return list(dict.fromkeys([p.name for p in self.parts] + [self.out[0]]))


def find_attention(pretrained: Any) -> list[Attention]:
    """Every attention block with separate q/k/v/o projections, or GPT-2's fused ``c_attn`` + ``c_proj``."""
    found = []
    for name, module in pretrained.named_modules():
        prefix = f"{name}." if name else ""
        holders = [module] + [m for m in (_sub(module, "self"), _sub(module, "attention")) if m is not None]
        for layout in SEPARATE_LAYOUTS:
            layers = [_sub(module, path) for path in layout]
            if all(is_matmul(layer) for layer in layers):
                parts = [Part(kind, prefix + path, layer, 0, out_size(layer))
                         for kind, path, layer in zip("qkv", layout, layers)]
                found.append(Attention(name, holders, parts, (prefix + layout[3], layers[3])))
                break
        else:
            fused = _fused(module, prefix)
            if fused:
                found.append(Attention(name, holders, *fused))
    return found


def _fused(module: Any, prefix: str) -> tuple[list[Part], tuple[str, Any]] | None:
    """GPT-2: ``c_attn`` holds q, k, v side by side (cross-attention: k, v, with q in ``q_attn``)."""
    c_attn, c_proj, width = _sub(module, "c_attn"), _sub(module, "c_proj"), getattr(module, "split_size", None)
    if not (is_conv1d(c_attn) and is_conv1d(c_proj) and type(width) is int and width > 0):
        return None
    q_attn = _sub(module, "q_attn") if getattr(module, "is_cross_attention", False) else None
    kinds = "kv" if q_attn is not None else "qkv"
    if out_size(c_attn) != len(kinds) * width:
        return None
    parts = [Part(kind, prefix + "c_attn", c_attn, i * width, width) for i, kind in enumerate(kinds)]
    if q_attn is not None:
        if not is_conv1d(q_attn):
            return None
        parts.insert(0, Part("q", prefix + "q_attn", q_attn, 0, out_size(q_attn)))
    return parts, (prefix + "c_proj", c_proj)


# ---------------------------------------------------------------------------------------------
# Layer surgery
# ---------------------------------------------------------------------------------------------
def keep_rows(layer: Any, keep: list[int], outputs: bool = True) -> None:
    """Keep only the outputs (or inputs) at ``keep`` of an nn.Linear or a Conv1D (any device, meta too)."""
    import torch
    from torch import nn

    size = out_size(layer) if outputs else in_size(layer)
    if list(keep) == list(range(size)):
        return
    index = torch.tensor(list(keep), dtype=torch.long, device=layer.weight.device)
    dim = (1 if outputs else 0) if is_conv1d(layer) else (0 if outputs else 1)
    with torch.no_grad():
        layer.weight = nn.Parameter(layer.weight.index_select(dim, index).clone(),
                                    requires_grad=layer.weight.requires_grad)
        if outputs and layer.bias is not None:
            layer.bias = nn.Parameter(layer.bias.index_select(0, index).clone(), requires_grad=layer.bias.requires_grad)
    if is_conv1d(layer):
        setattr(layer, "nf" if outputs else "nx", len(keep))
    else:
        setattr(layer, "out_features" if outputs else "in_features", len(keep))


def keep_heads(att: Attention, heads: list[int], kv_heads: list[int], head_dim: int) -> None:
    """Keep the query heads ``heads`` and key/value heads ``kv_heads`` (indices, ascending) of one
    attention block: q/k/v rows, output columns, and the attributes its forward reads."""
    def rows(indices: list[int], offset: int = 0) -> list[int]:
        return [offset + h * head_dim + d for h in indices for d in range(head_dim)]

    q_width, total_heads = att.part("q").width, att.part("q").width // head_dim
    total_kv = att.part("k").width // head_dim
    per_layer: dict[int, tuple[Any, list[int]]] = {}
    for part in att.parts:
        entry = per_layer.setdefault(id(part.layer), (part.layer, []))
        entry[1].extend(rows(heads if part.kind == "q" else kv_heads, part.offset))
    for layer, keep in per_layer.values():
        keep_rows(layer, keep, outputs=True)
    keep_rows(att.out[1], rows(heads), outputs=False)
    new_q, new_kv = len(heads), len(kv_heads)
    cursor: dict[int, int] = {}
    for part in att.parts:                       # the fused c_attn: each part is now narrower, and moved
        part.width = (new_q if part.kind == "q" else new_kv) * head_dim
        part.offset = cursor.get(id(part.layer), 0)
        cursor[id(part.layer)] = part.offset + part.width
    for holder in att.holders:
        for attrs, old, new in ((HEAD_ATTRS, total_heads, new_q), (KV_ATTRS, total_kv, new_kv),
                                (WIDTH_ATTRS, q_width, new_q * head_dim),
                                (("num_key_value_groups",), total_heads // max(total_kv, 1), new_q // max(new_kv, 1))):
            for attr in attrs:
                if type(getattr(holder, attr, None)) is int and getattr(holder, attr) == old:
                    setattr(holder, attr, new)


# ---------------------------------------------------------------------------------------------
# The record in config.json, and building a model from it
# ---------------------------------------------------------------------------------------------
def recorded(config: Any) -> dict | None:
    """``CONFIG_KEY`` of a config as {num_attention_heads, head_dim, original_num_attention_heads}, or None;
    ValueError when it is there but does not describe fewer heads of one size."""
    value = getattr(config, CONFIG_KEY, None)
    if value is None:
        return None
    keys = ("num_attention_heads", "head_dim", "original_num_attention_heads")
    if not isinstance(value, dict) or any(type(value.get(k)) is not int or value[k] < 1 for k in keys) \
            or value["num_attention_heads"] > value["original_num_attention_heads"]:
        raise ValueError(f"{CONFIG_KEY} must be an object with the positive integers {', '.join(keys)} "
                         f"(kept heads at most the original), not {value!r}")
    return {k: value[k] for k in keys}


def record(config: Any, heads: int, head_dim: int, original_heads: int) -> None:
    """Write fewer heads into a config that cannot say it natively (see the module docstring)."""
    setattr(config, CONFIG_KEY, {"num_attention_heads": heads, "head_dim": head_dim,
                                 "original_num_attention_heads": original_heads})
    config.num_attention_heads = heads
    config.head_dim = head_dim


def cut_to_recorded(pretrained: Any) -> None:
    """Cut every attention block of a model built with the original head count to the recorded heads
    (the first ones: the weights loaded next are the kept heads, renumbered)."""
    value = recorded(pretrained.config)
    if value is None:
        return
    head_dim, kept = value["head_dim"], value["num_attention_heads"]
    for att in find_attention(pretrained):
        if att.part("q").width != att.part("k").width:
            raise ValueError(f"{CONFIG_KEY} describes multi-head attention, but {att.name} has fewer key/value heads")
        keep_heads(att, list(range(kept)), list(range(kept)), head_dim)


class _OriginalHeads:
    """The config says the original head count while transformers builds the modules."""

    def __init__(self, config: Any):
        self.config, self.value = config, recorded(config)

    def __enter__(self) -> None:
        if self.value:
            self.config.num_attention_heads = self.value["original_num_attention_heads"]

    def __exit__(self, *exc: Any) -> None:
        if self.value:
            self.config.num_attention_heads = self.value["num_attention_heads"]


def build(cls: Any, config: Any) -> Any:
    """``cls(config)`` with the recorded heads applied (on whatever device is current: meta for shapes)."""
    with _OriginalHeads(config):
        model = cls(config)
    cut_to_recorded(model)
    return model


def model_class(auto: Any, config: Any) -> Any:
    """The class to load a folder with: ``auto`` itself, or, when the config records removed heads, a
    subclass of the architecture ``auto`` picks for it that cuts its attention right after building
    (so ``from_pretrained`` loads the pruned weights into layers of their size)."""
    if recorded(config) is None:
        return auto
    mapping = getattr(auto, "_model_mapping", None)
    if mapping is None:
        cls = auto
    else:
        from transformers.models.auto.auto_factory import _get_model_class
        cls = _get_model_class(config, mapping)

    def __init__(self: Any, config: Any, *args: Any, **kwargs: Any) -> None:
        with _OriginalHeads(config):
            cls.__init__(self, config, *args, **kwargs)
        cut_to_recorded(self)

    def from_config(subclass: Any, config: Any, trust_remote_code: bool = False, **kwargs: Any) -> Any:
        return subclass._from_config(config, **kwargs)

    return type(cls.__name__, (cls,), {"__init__": __init__, "from_config": classmethod(from_config),
                                       "__module__": cls.__module__, "__qualname__": cls.__qualname__})
