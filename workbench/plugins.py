"""Plugin protocol, parameter schema, entry-point registry and chain validation.

One neutral parameter schema (``Param``) is declared by each plugin and rendered twice: the GUI
builds a form from it (``workbench/gui/param_form.py``) and the CLI parses ``key=value`` with
``Param.parse``. Plugins are discovered through the ``workbench.plugins`` entry-point group; the
first-party ones in ``plugins/`` are registered exactly like a third-party package's would be.

Plugin modules must not import torch at module level: the GUI lists plugins without torch.
"""
from __future__ import annotations

import math
import numbers
import time
from dataclasses import asdict, dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any, Callable, ClassVar

from .errors import PluginError, RunCancelled
from .spec import PluginStep

ENTRY_POINT_GROUP = "workbench.plugins"
FORMATS = ("torch", "onnx")
DEVICE_KINDS = ("cpu", "cuda")
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


# ---------------------------------------------------------------------------------------------
# Parameter schema
# ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Param:
    """A typed plugin parameter: enough for a GUI form and a CLI ``key=value`` parser."""

    name: str
    type: str                       # "int" | "float" | "bool" | "str" | "choice"
    default: Any
    help: str
    minimum: float | None = None
    maximum: float | None = None
    exclusive_min: bool = False     # True: value must be > minimum (e.g. a pruning amount)
    exclusive_max: bool = False     # True: value must be < maximum
    choices: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        if self.type not in ("int", "float", "bool", "str", "choice"):
            raise ValueError(f"bad Param type {self.type!r}")
        if self.type == "choice" and not self.choices:
            raise ValueError(f"choice Param {self.name!r} needs choices")
        for bound in (self.minimum, self.maximum):
            # A NaN bound would compare False both ways and silently switch the check off.
            if bound is not None and (not isinstance(bound, numbers.Real) or not math.isfinite(bound)):
                raise ValueError(f"Param {self.name!r}: bounds must be finite numbers, got {bound!r}")

    def parse(self, text: Any, plugin: str = "") -> Any:
        """Convert a CLI string (or an already-typed value) and check it against the schema."""
        where = f"{plugin}:{self.name}" if plugin else self.name
        value = text
        if isinstance(text, str):
            raw = text.strip()
            try:
                if self.type == "int":
                    value = int(raw)
                elif self.type == "float":
                    value = float(raw)
                elif self.type == "bool":
                    if raw.lower() not in _TRUE | _FALSE:
                        raise ValueError
                    value = raw.lower() in _TRUE
                else:
                    value = raw
            except ValueError:
                raise PluginError(f"{where}: {text!r} is not a valid {self.type}") from None
        return self.validate(value, plugin)

    def validate(self, value: Any, plugin: str = "") -> Any:
        """The value as its declared type, or PluginError naming the parameter and the value.

        Written as "is it inside the range", never "is it outside": ``nan < 0`` is False."""
        where = f"{plugin}:{self.name}" if plugin else self.name
        if self.type in ("int", "float"):
            if isinstance(value, bool) or not isinstance(value, numbers.Real):
                raise PluginError(f"{where}: expected {'an integer' if self.type == 'int' else 'a number'}, "
                                  f"got {value!r}")
            if not math.isfinite(value):
                raise PluginError(f"{where}: {value!r} is not a finite number")
            if self.type == "int":
                if not isinstance(value, numbers.Integral) and not float(value).is_integer():
                    raise PluginError(f"{where}: expected an integer, got {value!r}")
                value = int(value)
            else:
                value = float(value)
            above = self.minimum is None or (value > self.minimum if self.exclusive_min else value >= self.minimum)
            below = self.maximum is None or (value < self.maximum if self.exclusive_max else value <= self.maximum)
            if not (above and below):
                raise PluginError(f"{where}: {value} is outside {self.range_text()}")
        elif self.type == "bool":
            if not isinstance(value, bool):
                raise PluginError(f"{where}: expected true/false, got {value!r}")
        else:
            value = str(value)
            if self.type == "choice" and value not in self.choices:
                raise PluginError(f"{where}: {value!r} is not one of {', '.join(self.choices)}")
        return value

    def range_text(self) -> str:
        low = "(" if self.exclusive_min else "["
        high = ")" if self.exclusive_max else "]"
        lo = "-inf" if self.minimum is None else f"{self.minimum:g}"
        hi = "inf" if self.maximum is None else f"{self.maximum:g}"
        return f"{low}{lo}, {hi}{high}"

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        if self.choices is not None:
            data["choices"] = list(self.choices)
        return data


# ---------------------------------------------------------------------------------------------
# What a plugin gets and gives back
# ---------------------------------------------------------------------------------------------
@dataclass
class PluginContext:
    """Everything ``apply`` may use besides the model. Built by the worker."""

    device: str                                    # "cpu" or "cuda:N"
    dtype: str
    example_inputs: list                           # torch tensors with the exact run shapes
    data: dict | None                              # numpy arrays: x_train, y_train, x_test, y_test (any subset)
    seed: int
    workdir: Path                                  # where artifacts of this run go
    progress: Callable[[float, str], None] = lambda fraction, message: None
    emit: Callable[[str, dict], None] = lambda kind, payload: None   # e.g. ("train", {step, loss, acc})
    cancelled: Callable[[], bool] = lambda: False
    input_names: list[str] = field(default_factory=list)

    def check_cancelled(self) -> None:
        """Call in long loops: raises RunCancelled so the worker stops cleanly."""
        if self.cancelled():
            raise RunCancelled("cancelled by the user")


@dataclass
class PluginReport:
    """What a plugin changed, in numbers. Stored with the run and shown in reports."""

    plugin: str
    summary: str                                   # one line, e.g. "24 Linear layers -> int8"
    params: dict[str, Any] = field(default_factory=dict)
    params_before: int | None = None
    params_after: int | None = None
    bytes_before: int | None = None
    bytes_after: int | None = None
    flops_before: int | None = None
    flops_after: int | None = None
    sparsity: float | None = None
    layers_changed: list[str] = field(default_factory=list)
    seconds: float | None = None
    notes: list[str] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class Plugin:
    """Base class. Subclasses set the class attributes and implement ``apply``.

    ``accepts``/``produces`` are model formats ("torch", "onnx"); ``produces = None`` means the
    output format equals the input format. ``devices`` are device kinds ("cpu", "cuda").
    Override ``supported_devices`` / ``output_format`` / ``check`` when they depend on params.
    """

    name: ClassVar[str] = ""
    summary: ClassVar[str] = ""
    params_schema: ClassVar[tuple[Param, ...]] = ()
    accepts: ClassVar[tuple[str, ...]] = ("torch",)
    produces: ClassVar[str | None] = None
    devices: ClassVar[tuple[str, ...]] = ("cpu", "cuda")

    def __init__(self, **params: Any) -> None:
        self.params = self.resolve_params(params)

    @classmethod
    def resolve_params(cls, given: dict[str, Any]) -> dict[str, Any]:
        """Defaults filled in, each value parsed and checked; unknown keys are an error."""
        schema = {p.name: p for p in cls.params_schema}
        unknown = sorted(set(given) - set(schema))
        if unknown:
            known = ", ".join(schema) or "none"
            raise PluginError(f"{cls.name}: unknown parameter(s) {', '.join(unknown)} (known: {known})")
        return {name: p.parse(given[name], cls.name) if name in given else p.default
                for name, p in schema.items()}

    def supported_devices(self) -> tuple[str, ...]:
        return self.devices

    def output_format(self, input_format: str) -> str:
        return self.produces or input_format

    def check(self, model_format: str, device: str) -> None:
        """Extra, params-dependent validation before anything runs. Raise PluginError."""

    def onnx_export_blocker(self, input_format: str) -> str | None:
        """Why the torch model this step produces cannot be exported to ONNX (None: it can).
        ``build_chain`` refuses a chain that would auto-export such a model, before anything runs."""
        return None

    def apply(self, model: Any, context: PluginContext) -> tuple[Any, PluginReport]:
        raise NotImplementedError

    @classmethod
    def describe(cls) -> dict[str, Any]:
        return {
            "name": cls.name, "summary": cls.summary, "accepts": list(cls.accepts),
            "produces": cls.produces, "devices": list(cls.devices),
            "params": [p.to_dict() for p in cls.params_schema],
        }

    def run(self, model: Any, context: PluginContext) -> tuple[Any, PluginReport]:
        """``apply`` with timing and the params recorded in the report."""
        started = time.perf_counter()
        model, report = self.apply(model, context)
        report.seconds = time.perf_counter() - started
        report.params = dict(self.params)
        return model, report


# ---------------------------------------------------------------------------------------------
# Registry (entry points)
# ---------------------------------------------------------------------------------------------
@dataclass
class PluginInfo:
    """A discovered plugin, or the error that stopped it from loading (shown greyed out)."""

    name: str
    cls: type[Plugin] | None
    source: str                                    # distribution name or "builtin"
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.cls is not None


_registry: dict[str, PluginInfo] | None = None


def discover_plugins(refresh: bool = False) -> dict[str, PluginInfo]:
    """Load every ``workbench.plugins`` entry point on its own; a broken one is recorded, not fatal."""
    global _registry
    if _registry is not None and not refresh:
        return _registry
    found: dict[str, PluginInfo] = {}
    for ep in metadata.entry_points(group=ENTRY_POINT_GROUP):
        source = ep.dist.name if getattr(ep, "dist", None) else "unknown"
        try:
            cls = ep.load()
            if not (isinstance(cls, type) and issubclass(cls, Plugin)):
                raise TypeError(f"{ep.value} is not a workbench.plugins.Plugin subclass")
            if cls.name != ep.name:
                raise TypeError(f"entry point {ep.name!r} points at plugin named {cls.name!r}")
            found[ep.name] = PluginInfo(ep.name, cls, source)
        except Exception as exc:  # a third-party plugin must never take the app down
            found[ep.name] = PluginInfo(ep.name, None, source, f"{type(exc).__name__}: {exc}")
    for cls in _builtin_plugins():
        found.setdefault(cls.name, PluginInfo(cls.name, cls, "builtin"))
    _registry = dict(sorted(found.items()))
    return _registry


def _builtin_plugins() -> list[type[Plugin]]:
    # The torch -> ONNX export step is part of the core because chain validation inserts it.
    from .onnx_export import OnnxExport
    return [OnnxExport]


def get_plugin_class(name: str) -> type[Plugin]:
    registry = discover_plugins()
    info = registry.get(name)
    if info is None:
        available = ", ".join(n for n, i in registry.items() if i.ok) or "none installed"
        raise PluginError(f"unknown plugin {name!r}; available: {available}")
    if info.cls is None:
        raise PluginError(f"plugin {name!r} failed to load: {info.error}")
    return info.cls


# ---------------------------------------------------------------------------------------------
# Chain validation
# ---------------------------------------------------------------------------------------------
@dataclass
class ChainStep:
    plugin: Plugin
    auto_inserted: bool = False

    @property
    def name(self) -> str:
        return self.plugin.name


def device_kind(device: str) -> str:
    return "cuda" if device.startswith("cuda") else "cpu"


def build_chain(steps: list[PluginStep], model_format: str, device: str, runtime: str) -> list[ChainStep]:
    """Validate a chain before anything runs and instantiate its plugins.

    Raises PluginError naming the plugin and the fix. Where a step needs ONNX but gets a torch
    model (or the runtime is ONNX Runtime and the chain ends in torch), the ``onnx_export`` step
    is inserted automatically: that conversion is sound for a model with fixed input specs.
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
    return chain


def chain_error(steps: list[PluginStep], model_format: str, device: str, runtime: str) -> str | None:
    """The validation message for a chain, or None when it is valid (for the GUI's inline marker)."""
    try:
        build_chain(steps, model_format, device, runtime)
    except PluginError as exc:
        return str(exc)
    return None
