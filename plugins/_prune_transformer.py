"""Structured pruning of Hugging Face transformers: whole attention heads and MLP channels, with the
config updated so the pruned model still saves as an HF folder and reopens with ``workbench bench DIR``.

Why not torch-pruning's dependency graph here: on transformers 5 models its group search did not
finish in 90 s for a 2-layer Llama (rotary embeddings, masks and ``repeat_kv`` make the traced graph
explode), and on GPT-2 / BERT it failed (``'tuple' object has no attribute 'grad_fn'``) or broke the
attention reshapes (issue 14). A transformer's coupling is known by construction instead:
q/k/v rows and o columns of a head go together (GPT-2: three slices of the fused ``c_attn``), and an
MLP channel is a row of the up (and gate) projection and a column of the down projection. Importance
is torch-pruning's group magnitude (sum of |w|^p over every coupled weight, each layer normalised by
its mean); MLP rows and columns are removed with torch-pruning's layer pruners (GPT-2's ``Conv1D``
stores its weight as (in, out) and is sliced here).

A config has one head count and one MLP width for every layer, so every layer keeps the same
numbers. Heads: ``_prune_heads`` (GQA-consistent sets; written natively where the architecture reads
``head_dim`` (Llama, ViT, ...), else, for BERT, DistilBERT and GPT-2, recorded as
``workbench_attention_heads``, which Workbench's loader rebuilds and plain ``from_pretrained`` cannot).
Whether the config can record the result is checked before anything changes, by building the model
from the new config on the meta device and comparing weight shapes.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from workbench.plugin_api import PluginError
from workbench.plugin_api import hf_heads as H

from . import _prune_heads as HP
from ._prune_heads import config_fits as _config_fits
from ._prune_heads import with_values as _with

# (layers producing the intermediate channels, the layer consuming them), relative to the MLP module.
MLP_LAYOUTS = ((("gate_proj", "up_proj"), "down_proj"), (("c_fc",), "c_proj"), (("fc1",), "fc2"),
               (("lin1",), "lin2"), (("dense_h_to_4h",), "dense_4h_to_h"),
               (("intermediate.dense",), "output.dense"))
WIDTH_KEYS = ("intermediate_size", "n_inner", "ffn_dim", "hidden_dim", "d_ff", "ffn_hidden_size")


# ---------------------------------------------------------------------------------------------
# Finding the pieces
# ---------------------------------------------------------------------------------------------
def pretrained_of(model: Any) -> Any | None:
    """The transformers PreTrainedModel a model is (or wraps as ``HFForward.model``), else None."""
    for candidate in (model, getattr(model, "model", None)):
        if candidate is not None and hasattr(candidate, "config") and hasattr(candidate, "named_modules") \
                and callable(getattr(candidate, "save_pretrained", None)):
            return candidate
    return None


is_matmul, out_size, in_size, _is_conv1d = H.is_matmul, H.out_size, H.in_size, H.is_conv1d
head_sets = HP.head_sets
find_attention = H.find_attention


_sub = H._sub      # a submodule by dotted path, or None (one definition, in hf_heads)


@dataclass
class Mlp:
    name: str
    module: Any
    ins: list[tuple[str, Any]]       # produce the intermediate channels
    out: tuple[str, Any]             # consumes them


def find_mlps(pretrained: Any) -> list[Mlp]:
    found = []
    for name, module in pretrained.named_modules():
        for ins, out in MLP_LAYOUTS:
            layers = [_sub(module, path) for path in ins]
            last = _sub(module, out)
            if all(is_matmul(layer) for layer in layers) and is_matmul(last):
                prefix = f"{name}." if name else ""
                found.append(Mlp(name, module, [(prefix + p, layer) for p, layer in zip(ins, layers)],
                                 (prefix + out, last)))
                break
    return found


# ---------------------------------------------------------------------------------------------
# Layer surgery (nn.Linear: torch-pruning's pruners; Conv1D: weight (in, out), sliced here)
# ---------------------------------------------------------------------------------------------
_matrix = H.matrix


def keep_outputs(layer: Any, keep: list[int]) -> None:
    _keep(layer, keep, outputs=True)


def keep_inputs(layer: Any, keep: list[int]) -> None:
    _keep(layer, keep, outputs=False)


def _keep(layer: Any, keep: list[int], outputs: bool) -> None:
    import torch
    from torch import nn

    size = out_size(layer) if outputs else in_size(layer)
    drop = sorted(set(range(size)) - set(keep))
    if not drop:
        return
    if not _is_conv1d(layer):
        import torch_pruning as tp
        (tp.prune_linear_out_channels if outputs else tp.prune_linear_in_channels)(layer, drop)
        return
    index = torch.tensor(sorted(keep), device=layer.weight.device)
    with torch.no_grad():
        layer.weight = nn.Parameter(layer.weight.index_select(1 if outputs else 0, index).clone())
        if outputs and layer.bias is not None:
            layer.bias = nn.Parameter(layer.bias.index_select(0, index).clone())
    if outputs:
        layer.nf = len(keep)
    else:
        layer.nx = len(keep)


def _out_scores(layer: Any, p: int) -> Any:
    """Importance of each output channel: sum of |w|^p over its row, over the layer's mean."""
    s = _matrix(layer).detach().float().abs().pow(p).sum(1)
    if getattr(layer, "bias", None) is not None:
        s = s + layer.bias.detach().float().abs().pow(p)
    return s / s.mean().clamp(min=1e-12)


def _in_scores(layer: Any, p: int) -> Any:
    s = _matrix(layer).detach().float().abs().pow(p).sum(0)
    return s / s.mean().clamp(min=1e-12)


# ---------------------------------------------------------------------------------------------
# Planning: how many heads / channels stay, and whether the config can say so
# ---------------------------------------------------------------------------------------------
def _expected(layer: Any, name: str, out: int, inp: int) -> tuple[str, tuple]:
    return f"{name}.weight", ((inp, out) if _is_conv1d(layer) else (out, inp))


@dataclass
class Plan:
    heads: HP.HeadPlan | None = None
    width: int = 0
    width_keep: int = 0
    width_key: str | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def prunes_heads(self) -> bool:
        return self.heads is not None and self.heads.kept < self.heads.heads

    @property
    def prunes_mlp(self) -> bool:
        return bool(self.width_key) and self.width_keep < self.width


def plan(pretrained: Any, attentions: list[H.Attention], mlps: list[Mlp], amount: float,
         round_to: int | None) -> Plan:
    """What ``amount`` means for this model, checked against what its config can record."""
    config = pretrained.config
    result = Plan()
    if attentions:
        result.heads, notes = HP.plan_heads(pretrained, attentions, amount)
        result.notes += notes
    if mlps:
        width = out_size(mlps[0].ins[0][1])
        if any(out_size(layer) != width for m in mlps for _, layer in m.ins):
            result.notes.append("MLP channels kept: the MLP layers differ in width")
        else:
            keep = max(1, int(round(width * (1.0 - amount))))
            if round_to and round_to > 1:
                keep = max(round_to, int(round(keep / round_to)) * round_to)
            keep = min(keep, width)
            result.width, result.width_keep = width, keep
            name, layer = mlps[0].ins[0]
            expected = dict([_expected(layer, name, keep, in_size(layer))])
            for key in WIDTH_KEYS:
                value = getattr(config, key, "absent")
                if (value == width or (value is None and key == "n_inner")) and \
                        _config_fits(pretrained, _with(config, **{key: keep}), expected):
                    result.width_key = key
                    break
            else:
                result.notes.append(f"MLP channels kept: no field of {type(config).__name__} records the MLP "
                                    "width, so a narrower MLP could not be saved and reopened")
    return result


# ---------------------------------------------------------------------------------------------
# Pruning
# ---------------------------------------------------------------------------------------------
def _prune_mlp(mlp: Mlp, plan_: Plan, p: int) -> None:
    import torch

    score = _in_scores(mlp.out[1], p)
    for _, layer in mlp.ins:
        score = score + _out_scores(layer, p)
    keep = sorted(torch.topk(score, plan_.width_keep).indices.tolist())
    for _, layer in mlp.ins:
        keep_outputs(layer, keep)
    keep_inputs(mlp.out[1], keep)
    for attr in ("intermediate_size", "ffn_dim", "hidden_dim", "d_ff"):
        if type(getattr(mlp.module, attr, None)) is int and getattr(mlp.module, attr) == plan_.width:
            setattr(mlp.module, attr, plan_.width_keep)


def _update_config(config: Any, plan_: Plan) -> None:
    if plan_.prunes_heads:
        HP.update_config(config, plan_.heads)
    if plan_.prunes_mlp:
        setattr(config, plan_.width_key, plan_.width_keep)


def check_config_matches(pretrained: Any, what: str) -> None:
    """PluginError unless ``from_pretrained`` on the saved folder would build these very shapes."""
    try:
        expected = HP.shapes_from(pretrained, pretrained.config)
    except Exception as exc:
        raise PluginError(f"{what}: the updated config no longer builds a {type(pretrained).__name__} "
                          f"({type(exc).__name__}: {exc})") from exc
    actual = {k: tuple(v.shape) for k, v in pretrained.state_dict().items()}
    wrong = [f"{k} {actual.get(k)} vs {v}" for k, v in expected.items() if actual.get(k) != v]
    wrong += [f"{k} not in the config's model" for k in actual if k not in expected]
    if wrong:
        raise PluginError(f"{what}: the config no longer matches the weights ({'; '.join(wrong[:3])}), so the "
                          "model could not be saved and reopened as a Hugging Face folder")


def prepare(model: Any, amount: float, round_to: int | None = None,
            skip: set[str] | None = None) -> tuple[list[H.Attention], list[Mlp], Plan, list[str]]:
    """The blocks to prune and the plan, changing nothing; PluginError when nothing can be removed.

    ``skip``: module names (as ``model.named_modules()`` gives them) to leave as they are; a config
    holds one head count, so skipping some but not all attention blocks (or MLPs) is refused."""
    pretrained = pretrained_of(model)
    prefix = next((f"{n}." if n else "" for n, m in model.named_modules() if m is pretrained), "")
    skip = set(skip or ())
    attentions, mlps = find_attention(pretrained), find_mlps(pretrained)
    if not attentions and not mlps:
        raise PluginError(f"prune: found no attention block (q/k/v/o projections) or MLP in this "
                          f"{type(pretrained).__name__}; try method=unstructured")
    notes: list[str] = []
    if not attentions and getattr(pretrained.config, "num_attention_heads", None):
        notes.append("attention heads kept: no q/k/v/o projections in a layout this plugin knows (separate ones, or "
                     "GPT-2's fused c_attn); only the MLP channels are pruned")
    kept = []
    for kind, groups, blocks in (
            ("attention blocks", [[a.name] + a.layer_names for a in attentions], attentions),
            ("MLPs", [[m.name] + [n for n, _ in m.ins + [m.out]] for m in mlps], mlps)):
        skipped = [any(prefix + n in skip for n in group) for group in groups]
        if any(skipped) and not all(skipped):
            raise PluginError(f"prune: skip leaves {sum(skipped)} of {len(blocks)} {kind} unpruned, but a Hugging "
                              f"Face config has one {'head count' if kind == 'attention blocks' else 'MLP width'} "
                              "for every layer; skip all of them (e.g. skip=*.self_attn or skip=*.mlp) or none")
        if blocks and all(skipped):
            notes.append(f"{kind} kept: skipped")
        kept.append([] if all(skipped) else blocks)
    attentions, mlps = kept
    plan_ = plan(pretrained, attentions, mlps, amount, round_to)
    notes += plan_.notes
    if not plan_.prunes_heads and not plan_.prunes_mlp:
        raise PluginError("prune: nothing to remove in this model: " + "; ".join(notes or ["no prunable block"]))
    return attentions, mlps, plan_, notes


def prune_transformer(model: Any, amount: float, *, p: int = 1, round_to: int | None = None,
                      skip: set[str] | None = None) -> tuple[list[str], list[str], dict]:
    """Remove ``amount`` of the attention heads and MLP channels of every layer, in place (see
    ``prepare``). Returns (layers changed, notes, figures for the report)."""
    pretrained = pretrained_of(model)
    attentions, mlps, plan_, notes = prepare(model, amount, round_to, skip)
    changed: list[str] = []
    was_training = pretrained.training
    heads = int(getattr(pretrained.config, "num_attention_heads", 0) or 0) if attentions else 0
    kv = int(getattr(pretrained.config, "num_key_value_heads", None) or heads)
    heads_after, kv_after = heads, kv
    if plan_.prunes_heads:
        hp = plan_.heads
        for att in attentions:
            HP.prune_heads(att, hp, p)
        heads_after, kv_after = hp.kept, hp.kv_keep
        changed.append(f"{len(attentions)} attention blocks: {hp.heads}→{hp.kept} heads, "
                       f"{hp.kv}→{hp.kv_keep} key/value heads (head size {hp.head_dim})")
    if plan_.prunes_mlp:
        for mlp in mlps:
            _prune_mlp(mlp, plan_, p)
        changed.append(f"{len(mlps)} MLPs: {plan_.width}→{plan_.width_keep} channels")
    _update_config(pretrained.config, plan_)
    pretrained.train(was_training)
    check_config_matches(pretrained, "prune")
    figures = {"heads_before": heads or None, "heads_after": heads_after or None,
               "kv_heads_before": kv or None, "kv_heads_after": kv_after or None,
               "mlp_width_before": plan_.width or None,
               "mlp_width_after": plan_.width_keep if plan_.prunes_mlp else plan_.width or None,
               "attention_blocks": len(attentions), "mlps": len(mlps),
               "heads_recorded_as": H.CONFIG_KEY if plan_.prunes_heads and plan_.heads.recorded else None}
    return changed, notes, figures


# ---------------------------------------------------------------------------------------------
# Depth: a student with fewer layers (distill)
# ---------------------------------------------------------------------------------------------
def layer_stack(pretrained: Any) -> tuple[str, Any]:
    """The ModuleList of the model's ``num_hidden_layers`` blocks: (name, list)."""
    from torch import nn

    count = getattr(pretrained.config, "num_hidden_layers", None)
    stacks = [(n, m) for n, m in pretrained.named_modules() if isinstance(m, nn.ModuleList) and len(m) == count]
    if not count or len(stacks) != 1:
        raise PluginError(f"distill: cannot find the one stack of {count} layers in this "
                          f"{type(pretrained).__name__}; use student=width or student=factory")
    return stacks[0]


def keep_layers(pretrained: Any, keep: list[int]) -> str:
    """Keep only the layers at ``keep`` (in order), renumber their cache indices, update the config."""
    from torch import nn

    name, stack = layer_stack(pretrained)
    total = len(stack)
    parent_name, _, attr = name.rpartition(".")
    parent = pretrained.get_submodule(parent_name) if parent_name else pretrained
    setattr(parent, attr, nn.ModuleList([stack[i] for i in keep]))
    for new_index, layer in enumerate(getattr(parent, attr)):
        for module in layer.modules():
            if type(getattr(module, "layer_idx", None)) is int:
                module.layer_idx = new_index        # the KV cache is indexed by it
    config = pretrained.config
    layer_types = getattr(config, "layer_types", None)
    if isinstance(layer_types, list) and len(layer_types) == total:
        config.layer_types = [layer_types[i] for i in keep]
    config.num_hidden_layers = len(keep)
    check_config_matches(pretrained, "distill")
    return f"{name}: {total}→{len(keep)} layers (kept {', '.join(str(i) for i in keep)})"


def spread(total: int, count: int) -> list[int]:
    """``count`` layer indices spread over ``total`` (every other layer for count = ceil(total / 2))."""
    if count >= total:
        return list(range(total))
    return sorted({int(i * total / count) for i in range(count)})
