"""The plugin protocol: the parameter schema, the context a plugin runs in, and its report.

One neutral parameter schema (``Param``) is declared by each plugin and rendered twice: the GUI
builds a form from it (``workbench/gui/docks/param_form.py``) and the CLI parses ``key=value`` with
``Param.parse``. Plugins are discovered through the ``workbench.plugins`` entry-point group (``registry.py``).

Plugin modules must not import torch at module level: the GUI lists plugins without torch.
"""
from __future__ import annotations

import difflib
import fnmatch
import math
import numbers
import re
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, ClassVar, Iterable

from ..errors import PluginError, RunCancelled

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
    # Which values of the plugin's method choice (``Plugin.method_param``) this parameter is used
    # by; None = every method. Forms hide it for other methods and ``resolve_params`` refuses it.
    methods: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        if self.type not in ("int", "float", "bool", "str", "choice"):
            raise ValueError(f"bad Param type {self.type!r}")
        if self.type == "choice" and not self.choices:
            raise ValueError(f"choice Param {self.name!r} needs choices")
        for bound in (self.minimum, self.maximum):
            # A NaN bound would compare False both ways and silently switch the check off.
            if bound is not None and (not isinstance(bound, numbers.Real) or not math.isfinite(bound)):
                raise ValueError(f"Param {self.name!r}: bounds must be finite numbers, got {bound!r}")
        if self.methods is not None and (isinstance(self.methods, str) or not self.methods):
            raise ValueError(f"Param {self.name!r}: methods must be a non-empty tuple of method names")

    def applies_to(self, method: Any) -> bool:
        """Whether this parameter is used when the plugin's method is ``method``."""
        return self.methods is None or method in self.methods

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
        for key in ("choices", "methods"):
            if data[key] is not None:
                data[key] = list(data[key])
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
    # False: the step left the model as it was (e.g. conv_bn found no pair to fold): a no-op, not a
    # variant. None: the plugin does not say (treated as changed).
    changed: bool | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class Plugin:
    """Base class. Subclasses set the class attributes and implement ``apply``.

    ``accepts``/``produces`` are model formats ("torch", "onnx"); ``produces = None`` means the
    output format equals the input format. ``devices`` are device kinds ("cpu", "cuda").

    A plugin with several methods names its choice parameter in ``method_param``; parameters
    declare the methods they apply to (``Param.methods``) and ``method_devices`` lists the device
    kinds a method needs when they are fewer than ``devices`` (e.g. ``{"fp16": ("cuda",)}``).
    ``method_caveats`` says where a method runs but is known to be slow (``{"weight_only_int8":
    {"cpu": "why"}}``): forms show it, the chain check warns (``caveats``), nothing is refused.
    Override ``supported_devices`` / ``output_format`` / ``check`` when they depend on params, and
    ``check_model`` to refuse a model the plugin would leave unchanged.
    """

    name: ClassVar[str] = ""
    summary: ClassVar[str] = ""
    params_schema: ClassVar[tuple[Param, ...]] = ()
    accepts: ClassVar[tuple[str, ...]] = ("torch",)
    produces: ClassVar[str | None] = None
    devices: ClassVar[tuple[str, ...]] = ("cpu", "cuda")
    method_param: ClassVar[str] = "method"
    method_devices: ClassVar[dict[str, tuple[str, ...]]] = {}
    method_caveats: ClassVar[dict[str, dict[str, str]]] = {}

    def __init__(self, **params: Any) -> None:
        self.params = self.resolve_params(params)

    def __init_subclass__(cls, **kwargs: Any) -> None:
        """A declaration that names a method the plugin does not have is a bug in the plugin: it
        fails at import (the registry shows the plugin greyed out with this message)."""
        super().__init_subclass__(**kwargs)
        choice = cls.method_choice()
        methods = set(choice.choices) if choice is not None else set()
        for param in cls.params_schema:
            strays = sorted(set(param.methods or ()) - methods)
            if strays:
                raise TypeError(f"{cls.__name__}: Param {param.name!r} names method(s) {', '.join(strays)} "
                                f"that {cls.method_param!r} does not offer")
        for declared in ("method_devices", "method_caveats"):
            strays = sorted(set(getattr(cls, declared)) - methods)
            if strays:
                raise TypeError(f"{cls.__name__}: {declared} names unknown method(s) {', '.join(strays)}")

    @classmethod
    def method_choice(cls) -> Param | None:
        """The choice parameter that picks the method (None: the plugin has one way of working)."""
        for param in cls.params_schema:
            if param.name == cls.method_param and param.type == "choice":
                return param
        return None

    @classmethod
    def devices_for(cls, method: Any) -> tuple[str, ...]:
        """The device kinds ``method`` can run on."""
        return tuple(cls.method_devices.get(method, cls.devices))

    @classmethod
    def params_for(cls, method: Any) -> tuple[Param, ...]:
        """The parameters that apply to ``method`` (what a form shows for it)."""
        return tuple(p for p in cls.params_schema if p.applies_to(method))

    @classmethod
    def resolve_params(cls, given: dict[str, Any]) -> dict[str, Any]:
        """Defaults filled in, each value parsed and checked; unknown keys, and keys that the chosen
        method does not use, are an error (one line naming the parameter and the method)."""
        schema = {p.name: p for p in cls.params_schema}
        unknown = sorted(set(given) - set(schema))
        if unknown:
            known = ", ".join(schema) or "none"
            raise PluginError(f"{cls.name}: unknown parameter(s) {', '.join(unknown)} (known: {known})")
        resolved = {name: p.parse(given[name], cls.name) if name in given else p.default
                    for name, p in schema.items()}
        choice = cls.method_choice()
        if choice is not None:
            method = resolved[choice.name]
            for name in given:
                param = schema[name]
                if not param.applies_to(method):
                    which = "/".join(param.methods or ())
                    raise PluginError(f"{cls.name}:{name} applies only to {choice.name}={which}, not "
                                      f"{choice.name}={method}; remove it or change {choice.name}")
        return resolved

    def supported_devices(self) -> tuple[str, ...]:
        choice = self.method_choice()
        return self.devices_for(self.params[choice.name]) if choice is not None else self.devices

    def output_format(self, input_format: str) -> str:
        return self.produces or input_format

    def check(self, model_format: str, device: str) -> None:
        """Extra, params-dependent validation before anything runs. Raise PluginError."""

    def check_model(self, model: Any, model_format: str) -> None:
        """Refuse, before anything runs, a model this step would leave unchanged: raise PluginError
        saying what the plugin looked for (e.g. "no nn.Linear or Conv1D layer"). Called by
        ``build_chain`` when it is given the loaded model, and by plugins at the start of ``apply``."""

    def caveats(self, model_format: str, device: str, batch: int | None = None,
                compiled_after: bool = False) -> list[str]:
        """Why this step may make the model slower here (warnings, not refusals): by default the
        ``method_caveats`` entry for the chosen method and device kind. ``compiled_after``: a later
        step compiles the model (some caveats are about eager execution only)."""
        choice = self.method_choice()
        if choice is None:
            return []
        why = self.method_caveats.get(self.params[choice.name], {}).get(device.split(":", 1)[0])
        return [why] if why else []

    def onnx_export_blocker(self, input_format: str) -> str | None:
        """Why the torch model this step produces cannot be exported to ONNX (None: it can).
        ``build_chain`` refuses a chain that would auto-export such a model, before anything runs."""
        return None

    def apply(self, model: Any, context: PluginContext) -> tuple[Any, PluginReport]:
        raise NotImplementedError

    @classmethod
    def describe(cls) -> dict[str, Any]:
        choice = cls.method_choice()
        return {
            "name": cls.name, "summary": cls.summary, "accepts": list(cls.accepts),
            "produces": cls.produces, "devices": list(cls.devices),
            "params": [p.to_dict() for p in cls.params_schema],
            "method_param": choice.name if choice is not None else None,
            "method_devices": {m: list(cls.devices_for(m)) for m in (choice.choices if choice else ())},
            "method_caveats": {m: dict(c) for m, c in cls.method_caveats.items()},
        }

    def run(self, model: Any, context: PluginContext) -> tuple[Any, PluginReport]:
        """``apply`` with timing and the params recorded in the report."""
        started = time.perf_counter()
        model, report = self.apply(model, context)
        report.seconds = time.perf_counter() - started
        report.params = dict(self.params)
        return model, report


# ---------------------------------------------------------------------------------------------
# Layers chosen by module-name pattern (a ``skip`` parameter: quantize, prune)
# ---------------------------------------------------------------------------------------------
def split_patterns(text: str | None) -> list[str]:
    """``"a.b;c.*"`` -> ``["a.b", "c.*"]``. Patterns are separated by ``;``, ``|`` or spaces: a comma
    already separates plugin parameters on the command line (``-p quantize:method=…,skip=…``)."""
    return [p for p in re.split(r"[;|\s]+", text or "") if p]


def match_patterns(names: Iterable[str], patterns: list[str], where: str) -> set[str]:
    """The names a pattern (``fnmatch``) selects, with everything under a selected name (``model.h.0``
    selects ``model.h.0.attn.c_attn``). A pattern that matches no name is a PluginError naming the
    closest names, so a typo never silently leaves the model as it was."""
    names = [n for n in names if n]
    chosen: set[str] = set()
    for pattern in patterns:
        hits = {n for n in names if fnmatch.fnmatchcase(n, pattern)}
        if not hits:
            close = difflib.get_close_matches(pattern, names, n=3, cutoff=0.4) or names[:3]
            raise PluginError(f"{where}: pattern {pattern!r} matches no module; closest names: "
                              f"{', '.join(close) or 'none (the model has no named modules)'}")
        chosen |= hits
    return {n for n in names if n in chosen or any(n.startswith(c + ".") for c in chosen)}
