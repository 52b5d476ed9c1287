"""Which attention heads a structured prune removes, and how the config records it.

Importance of a head: torch-pruning's group magnitude (sum of |w|^p over its q, k, v rows and its
output-projection columns, each part normalised by its mean). Heads go in sets that keep grouped-query
attention consistent: every kept key/value head keeps the same number of query heads, and every layer
keeps the same numbers (a config has one head count). The layer surgery and the module attributes are
``workbench.models.hf_heads`` (shared with the folder loader, which rebuilds a saved pruned model).

How the config says it, checked before anything changes by building the model from the new config on
the meta device and comparing weight shapes:
* natively where the architecture reads it: ``num_attention_heads`` (+ ``num_key_value_heads``) and
  ``head_dim`` (Llama, Mistral, Qwen, ViT, ...): plain ``from_pretrained`` reopens the folder;
* BERT, DistilBERT, GPT-2 (and RoBERTa, XLM-R, ELECTRA, CamemBERT) derive the head size from
  ``hidden_size / num_attention_heads``: the config gets ``workbench_attention_heads`` besides the true
  ``num_attention_heads`` and ``head_dim``; Workbench reopens the folder, plain ``from_pretrained`` cannot.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

from workbench.plugin_api import hf_heads as H


@dataclass
class HeadPlan:
    heads: int            # query heads per layer, before
    kv: int               # key/value heads per layer, before
    head_dim: int
    kv_keep: int          # key/value heads kept
    rep_keep: int         # query heads kept per key/value head
    recorded: bool        # written as hf_heads.CONFIG_KEY (the architecture cannot say it natively)
    original: int         # the head count the architecture is built with (recorded configs)

    @property
    def kept(self) -> int:
        return self.kv_keep * self.rep_keep


def head_sets(heads: int, kv: int, amount: float) -> tuple[int, int]:
    """(key/value heads kept, query heads kept per key/value head) closest to removing ``amount`` of
    the heads; on a tie the one keeping more key/value heads (fidelity before cache size)."""
    rep = heads // kv
    target = heads * (1.0 - amount)
    options = [(a, b) for a in range(1, kv + 1) for b in range(1, rep + 1)]
    return min(options, key=lambda ab: (abs(ab[0] * ab[1] - target), -ab[0], -ab[1]))


def shapes_from(pretrained: Any, config: Any) -> dict[str, tuple]:
    """Every weight shape of the model ``config`` describes (built on the meta device: no memory),
    with the heads a config records as ``workbench_attention_heads`` cut as the loader cuts them."""
    import torch
    with torch.device("meta"):
        fresh = H.build(type(pretrained), config)
    return {k: tuple(v.shape) for k, v in fresh.state_dict().items()}


def config_fits(pretrained: Any, config: Any, expected: dict[str, tuple]) -> bool:
    try:
        shapes = shapes_from(pretrained, config)
    except Exception:
        return False
    return all(shapes.get(k) == v for k, v in expected.items())


def with_values(config: Any, **values: Any) -> Any:
    new = copy.deepcopy(config)
    for key, value in values.items():
        setattr(new, key, value)
    return new


def expected_shapes(att: H.Attention, q_heads: int, kv_heads: int, head_dim: int) -> dict[str, tuple]:
    """The weight shapes of one attention block after the prune."""
    outs: dict[str, list] = {}
    for part in att.parts:
        entry = outs.setdefault(part.name, [part.layer, 0])
        entry[1] += (q_heads if part.kind == "q" else kv_heads) * head_dim
    shapes = {f"{name}.weight": H.weight_shape(layer, out, H.in_size(layer)) for name, (layer, out) in outs.items()}
    name, o = att.out
    shapes[f"{name}.weight"] = H.weight_shape(o, H.out_size(o), q_heads * head_dim)
    return shapes


def plan_heads(pretrained: Any, attentions: list[H.Attention], amount: float) -> tuple[HeadPlan | None, list[str]]:
    """The heads ``amount`` removes and how the config records them; None (and why) when they stay."""
    config = pretrained.config
    arch, conf = type(pretrained).__name__, type(config).__name__
    heads = int(getattr(config, "num_attention_heads", 0) or 0)
    kv = int(getattr(config, "num_key_value_heads", None) or heads)
    q_width, k_width = attentions[0].part("q").width, attentions[0].part("k").width
    uniform = all(a.part("q").width == q_width and a.part("k").width == k_width for a in attentions)
    if not heads or q_width % heads or not uniform or kv < 1 or heads % kv or k_width != kv * (q_width // heads):
        return None, [f"attention heads kept: the {arch} attention layers do not match the config's head counts "
                      "in a layout this plugin knows"]
    head_dim = q_width // heads
    kv_keep, rep_keep = head_sets(heads, kv, amount)
    if kv_keep * rep_keep == heads:
        return None, [f"attention heads kept: removing {amount:.0%} of {heads} heads in sets of {kv} key/value "
                      "groups rounds to none"]
    kept = kv_keep * rep_keep
    expected: dict[str, tuple] = {}
    for att in attentions:
        expected.update(expected_shapes(att, kept, kv_keep, head_dim))
    native = {"num_attention_heads": kept, "head_dim": head_dim}
    if hasattr(config, "num_key_value_heads"):
        native["num_key_value_heads"] = kv_keep
    if H.recorded(config) is None and config_fits(pretrained, with_values(config, **native), expected):
        return HeadPlan(heads, kv, head_dim, kv_keep, rep_keep, False, heads), []
    previous = H.recorded(config)
    original = previous["original_num_attention_heads"] if previous else heads
    if getattr(config, "model_type", None) in H.RESHAPED_MODEL_TYPES and kv == heads:
        candidate = copy.deepcopy(config)
        H.record(candidate, kept, head_dim, original)
        if config_fits(pretrained, candidate, expected):
            return HeadPlan(heads, kv, head_dim, kv_keep, rep_keep, True, original), [
                f"attention heads recorded in config.json as {H.CONFIG_KEY} ({conf} derives the head size from "
                "hidden_size / num_attention_heads): `workbench bench DIR` reopens a folder saved with "
                "--save-model DIR, plain transformers.from_pretrained cannot"]
    return None, [f"attention heads kept: {conf} derives the head size from hidden_size / num_attention_heads, so a "
                  "model with fewer heads could not be saved and reopened as a Hugging Face folder; only the MLP "
                  "channels are pruned"]


def _scores(layer: Any, rows: slice | None, p: int, outputs: bool) -> Any:
    """Importance of output rows (or input columns) of a layer: sum of |w|^p, over their mean."""
    weight = H.matrix(layer).detach().float().abs().pow(p)
    s = weight.sum(1) if outputs else weight.sum(0)
    if outputs and getattr(layer, "bias", None) is not None:
        s = s + layer.bias.detach().float().abs().pow(p)
    if rows is not None:
        s = s[rows]
    return s / s.mean().clamp(min=1e-12)


def prune_heads(att: H.Attention, plan: HeadPlan, p: int) -> None:
    """Remove the least important heads of one attention block, in GQA-consistent sets."""
    import torch

    hd, heads, kv = plan.head_dim, plan.heads, plan.kv
    rep = heads // kv

    def part_score(kind: str) -> Any:
        part = att.part(kind)
        return _scores(part.layer, slice(part.offset, part.offset + part.width), p, outputs=True)

    q_score = part_score("q").view(heads, hd).sum(1) + _scores(att.out[1], None, p, outputs=False).view(heads, hd).sum(1)
    kv_score = (part_score("k") + part_score("v")).view(kv, hd).sum(1) + q_score.view(kv, rep).sum(1)
    groups = sorted(torch.topk(kv_score, plan.kv_keep).indices.tolist())
    kept_heads = []
    for g in groups:
        local = torch.topk(q_score[g * rep:(g + 1) * rep], plan.rep_keep).indices.tolist()
        kept_heads += sorted(g * rep + i for i in local)
    H.keep_heads(att, kept_heads, groups, hd)


def update_config(config: Any, plan: HeadPlan) -> None:
    if plan.recorded:
        H.record(config, plan.kept, plan.head_dim, plan.original)
        return
    config.num_attention_heads = plan.kept
    if hasattr(config, "num_key_value_heads"):
        config.num_key_value_heads = plan.kv_keep
    config.head_dim = plan.head_dim
