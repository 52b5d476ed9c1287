"""Checking the variants a baseline is measured for, on the model the baseline worker has loaded.

Some refusals need the loaded model (a TorchScript file has no Python layers to prune, a Hugging
Face model has no layer a method looks for: ``Plugin.check_model``). Without this, ``bench`` would
time the plain model first and only then learn that its variant cannot run. The baseline's worker
already holds the model, so it checks every planned variant's chain right after loading: refused
variants are reported (the caller skips them) and, when every one is refused, nothing is timed.
"""
from __future__ import annotations

from typing import Any

from ..errors import PluginError, VariantsRefused
from ..spec import PluginStep


def checked_chain(steps: list[PluginStep], loaded: Any, device: str, runtime: str, batch: int, scenario: str) -> list:
    """The chain of ``steps`` built for the loaded model (``Plugin.check_model`` included) and, for a
    generate run, checked to still decode; raises PluginError with the refusal in one line."""
    from ..plugin_api import build_chain
    from .generate import check_chain_generates
    chain = build_chain(steps, loaded.kind, device, runtime, batch=batch, model=loaded.model)
    if scenario == "generate":
        output_format = loaded.kind
        for step in chain:
            output_format = step.plugin.output_format(output_format)
        check_chain_generates(output_format, chain)
    return chain


def check_variants(checks: list[dict], loaded: Any, spec: Any, batch: int, scenario: str) -> list[str | None]:
    """For each ``{"label", "plugins", "runtime"}``: None when its chain can run on ``loaded``, else
    the refusal in one line (the plugin's own message, which names the plugin and the route that works)."""
    refusals: list[str | None] = []
    for check in checks:
        steps = [PluginStep(**step) for step in check["plugins"]]
        try:
            checked_chain(steps, loaded, spec.device, check.get("runtime") or "auto", batch, scenario)
        except PluginError as exc:
            refusals.append(str(exc))
        else:
            refusals.append(None)
    return refusals


def refuse_if_needed(checks: list[dict], refusals: list[str | None]) -> None:
    """Stop the baseline before it times anything when the variant the user asked for
    (``"required"``) cannot run, or when no planned variant can."""
    for check, refusal in zip(checks, refusals):
        if refusal and check.get("required"):
            raise VariantsRefused(refusal)
    if refusals and all(refusals):
        distinct = list(dict.fromkeys(refusals))
        raise VariantsRefused(distinct[0] if len(distinct) == 1 else "no planned variant can run on this model: "
                              + "; ".join(f"{check['label']}: {r}" for check, r in zip(checks, refusals)))
