"""A chain of plugin steps, checked before anything runs: formats line up (ONNX export inserted
where needed), each method can run on the device and runtime asked for, and (given the loaded
model) each step has something to change. Methods known to be slow where they run are warnings."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..errors import PluginError
from ..spec import PluginStep, device_kind
from .api import Plugin
from .registry import get_plugin_class


@dataclass
class ChainStep:
    plugin: Plugin
    auto_inserted: bool = False
    warnings: list[str] = field(default_factory=list)   # why this step may be slow here (Plugin.caveats)

    @property
    def name(self) -> str:
        return self.plugin.name


def build_chain(steps: list[PluginStep], model_format: str, device: str, runtime: str,
                batch: int | None = None, model: Any = None) -> list[ChainStep]:
    """Validate a chain before anything runs and instantiate its plugins.

    Raises PluginError naming the plugin and the fix. Where a step needs ONNX but gets a torch
    model (or the runtime is ONNX Runtime and the chain ends in torch), the ``onnx_export`` step
    is inserted automatically: that conversion is sound for a model with fixed input specs.
    ``batch`` (when known) sharpens the slow-method warnings; ``model`` (the loaded model, in the
    worker) lets each step refuse a model it would leave unchanged (``Plugin.check_model``).
    """
    kind = device_kind(device)
    fmt = model_format
    chain: list[ChainStep] = []
    export_blocker: tuple[int, str] | None = None   # (step, reason) the torch model cannot go to ONNX

    def auto_export(why: str) -> None:
        if export_blocker is not None:
            position, reason = export_blocker
            raise PluginError(f"{why}, but the model of step {position} cannot be exported to ONNX: {reason}")
        chain.append(ChainStep(get_plugin_class("onnx_export")(), auto_inserted=True))

    for position, step in enumerate(steps, 1):
        cls = get_plugin_class(step.name)
        plugin = cls(**step.params)
        if fmt not in cls.accepts:
            if fmt == "torch" and "onnx" in cls.accepts:
                auto_export(f"step {position} ({step.name}) needs an ONNX model")
                fmt = "onnx"
            else:
                raise PluginError(
                    f"step {position} ({step.name}) needs a {' or '.join(cls.accepts)} model but gets "
                    f"{fmt}; move it before the step that converts to {fmt}, or remove it")
        plugin.check(fmt, device)   # first: the plugin's own message names the specific fix
        if kind not in plugin.supported_devices():
            raise PluginError(
                f"step {position} ({step}) cannot run on {device}: it supports "
                f"{', '.join(plugin.supported_devices())}; pick another device or method")
        if model is not None and fmt == model_format:
            plugin.check_model(model, fmt)   # steps before it keep the layers it looks for
        chain.append(ChainStep(plugin))
        blocker = plugin.onnx_export_blocker(fmt)
        if blocker is not None:
            export_blocker = (position, f"{step}: {blocker}")
        fmt = plugin.output_format(fmt)
        if fmt != "torch":
            export_blocker = None
    # runtime "auto" follows whatever the chain produces.
    if runtime == "onnxruntime" and fmt == "torch":
        auto_export("the runtime is ONNX Runtime")
    elif runtime == "torch" and fmt == "onnx":
        raise PluginError("the chain produces an ONNX model: run it with --runtime onnxruntime")
    _refuse_calibration_after_cache_export(chain)
    _add_warnings(chain, model_format, device, batch)
    return chain


def _refuse_calibration_after_cache_export(chain: list[ChainStep]) -> None:
    """Static int8 on ONNX calibrates by feeding the model's declared inputs; a graph exported with its
    KV cache also takes position ids and the past tensors, which calibration batches do not carry."""
    exported = False
    for position, step in enumerate(chain, 1):
        if step.name == "onnx_export" and step.plugin.params.get("with_cache"):
            exported = True
        elif exported and step.name == "quantize" and step.plugin.params.get("method") == "static_int8":
            raise PluginError(f"step {position} (quantize:method=static_int8) cannot calibrate a model exported with "
                              "its KV cache (its inputs include position ids and past key/values); use "
                              "quantize:method=dynamic_int8 after onnx_export:with_cache=true, or export with "
                              "with_cache=false")


def _add_warnings(chain: list[ChainStep], model_format: str, device: str, batch: int | None) -> None:
    fmt = model_format
    for index, step in enumerate(chain):
        compiled_after = any(later.name == "fuse" and later.plugin.params.get("method") == "torch_compile"
                             for later in chain[index + 1:])
        step.warnings = step.plugin.caveats(fmt, device, batch, compiled_after)
        fmt = step.plugin.output_format(fmt)


def chain_warnings(steps: list[PluginStep], model_format: str, device: str, runtime: str,
                   batch: int | None = None) -> list[str]:
    """One line per step that is known to be slow where it will run ("step 1 (quantize:…): why");
    empty for a fast or an invalid chain (``chain_error`` reports the latter)."""
    try:
        chain = build_chain(steps, model_format, device, runtime, batch)
    except PluginError:
        return []
    return [f"step {i} ({step.name}{' (auto-inserted)' if step.auto_inserted else ''}): {w}"
            for i, step in enumerate(chain, 1) for w in step.warnings]


def require_some_change(reports: list[dict]) -> None:
    """Refuse a chain whose every step left the model as it was (``PluginReport.changed`` False):
    a no-op is not a variant, and timing it against the baseline would only measure noise."""
    if reports and all(r.get("changed") is False for r in reports):
        what = "; ".join(f"{r.get('plugin')}: {r.get('summary')}" for r in reports)
        raise PluginError(f"every step of the chain left the model unchanged ({what}): there is no variant "
                          "to compare; pick a method that applies to this model")


def chain_error(steps: list[PluginStep], model_format: str, device: str, runtime: str) -> str | None:
    """The validation message for a chain, or None when it is valid (for the GUI's inline marker)."""
    try:
        build_chain(steps, model_format, device, runtime)
    except PluginError as exc:
        return str(exc)
    return None
