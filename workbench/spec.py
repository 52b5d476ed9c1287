"""What to run: ``RunSpec`` and its parts, with JSON round-trip and validation.

A RunSpec is the single description of a run shared by the CLI, the GUI, the worker process and
the results store (stored verbatim, so any run can be reproduced exactly). No torch import here:
the GUI builds specs without loading a model.
"""
from __future__ import annotations

import dataclasses
import json
import math
import numbers
import re
from dataclasses import dataclass, field
from typing import Any

from .errors import SpecError

DTYPES = ("float32", "float16", "bfloat16", "float64", "int64", "int32", "int8", "uint8", "bool")
MODEL_DTYPES = ("float32", "float16", "bfloat16")
RUNTIMES = ("auto", "torch", "onnxruntime")
SAVE_SUFFIXES = (".pt", ".ts", ".torchscript", ".pt2", ".onnx")   # what models.save writes; no suffix = an HF folder
# What a run does with the model: one forward pass per timed iteration, or greedy generation
# (prefill + decode, KV cache on). "auto" = generate for causal language models, forward otherwise.
SCENARIOS = ("auto", "forward", "generate")
# Hugging Face tasks a folder can be opened as ("auto": read from config.json's architectures).
TASKS = ("auto", "causal-lm", "masked-lm", "sequence-classification", "token-classification",
         "feature-extraction", "image-classification")
DEFAULT_PROMPT_LEN = 32
DEFAULT_GEN_LEN = 32
_DEVICE_RE = re.compile(r"^(cpu|cuda(:\d+)?)$")

def device_kind(device: str) -> str:
    """'cuda' or 'cpu': the one place that reads a device string's kind (cuda, cuda:N)."""
    return "cuda" if device.startswith("cuda") else "cpu"


def resolve_runtime(runtime: str, model_format: str) -> str:
    """The one rule for ``--runtime auto``: ONNX models run on ONNX Runtime, torch ones on torch."""
    if runtime != "auto":
        return runtime
    return "onnxruntime" if model_format == "onnx" else "torch"


# Presets for the measurement loop. "quick" is the default: good enough to see a 10 % change on
# a quiet machine; "rigorous" is what a published number should use.
PRESETS = {
    "quick": dict(iters=100, duration_s=1.0, warmup_min_iters=10, warmup_max_s=3.0),
    "rigorous": dict(iters=1000, duration_s=10.0, warmup_min_iters=50, warmup_max_s=20.0),
}


_NO_LIMIT = float("inf")
# (field, lowest, highest) of each numeric RunSpec field; the CLI options that set them are in _OPTIONS.
INTEGER_LIMITS = (
    ("batch", 1, _NO_LIMIT), ("iters", 1, _NO_LIMIT), ("warmup_min_iters", 0, _NO_LIMIT),
    ("threads", 1, 1024),            # more would have the thread library try to start millions of threads
    ("seed", 0, 2**63 - 1),          # numpy seeds must be >= 0; torch takes up to 64 bits
    ("seq_len", 1, 1_000_000), ("prompt_len", 1, 1_000_000), ("gen_len", 1, 1_000_000),
)
SECONDS_FIELDS = ("duration_s", "warmup_max_s", "max_duration_s", "timeout_s")   # finite, > 0
OPTIONAL_NUMBERS = {"batch", "threads", "timeout_s", "seq_len", "prompt_len"}
_OPTIONS = {"batch": "--batch", "threads": "--threads", "iters": "--iters", "duration_s": "--duration",
            "seed": "--seed", "timeout_s": "--timeout", "telemetry_hz": "--telemetry-hz",
            "seq_len": "--seq-len", "prompt_len": "--prompt-len", "gen_len": "--gen-len"}


def _option(name: str) -> str:
    """How a message names a field: its CLI option where it has one, else the RunSpec field."""
    return f"{_OPTIONS[name]} ({name})" if name in _OPTIONS else name


@dataclass
class InputSpec:
    """One model input. ``-1`` in ``shape`` marks a dynamic dimension (filled from ``batch``)."""

    shape: list[int]
    dtype: str = "float32"
    name: str | None = None

    @classmethod
    def parse(cls, text: str) -> "InputSpec":
        """Parse ``[name=]1x3x224x224[:float32]`` (the CLI's ``--input`` syntax)."""
        original = text
        name = None
        if "=" in text:
            name, text = text.split("=", 1)
        dtype = "float32"
        if ":" in text:
            text, dtype = text.rsplit(":", 1)
        try:
            shape = [int(d) for d in text.lower().replace("*", "x").split("x")]
        except ValueError:
            raise SpecError(
                f"bad input spec {original!r}: expected SHAPE[:DTYPE] like 1x3x224x224:float32"
            ) from None
        spec = cls(shape=shape, dtype=dtype, name=name or None)
        spec.validate()
        return spec

    def validate(self) -> None:
        if not self.shape or any(d == 0 or d < -1 for d in self.shape):
            raise SpecError(f"bad input shape {self.shape}: dimensions must be positive (-1 = dynamic)")
        if self.dtype not in DTYPES:
            raise SpecError(f"unknown input dtype {self.dtype!r}; choose one of {', '.join(DTYPES)}")

    def concrete_shape(self, batch: int | None) -> list[int]:
        """The shape with dynamic dims filled in: the first dim by ``batch``, others by 1."""
        shape = list(self.shape)
        for i, d in enumerate(shape):
            if d == -1:
                shape[i] = (batch or 1) if i == 0 else 1
        if batch is not None and shape:
            shape[0] = batch
        return shape

    def __str__(self) -> str:
        dims = "x".join(str(d) for d in self.shape)
        return f"{self.name + '=' if self.name else ''}{dims}:{self.dtype}"


@dataclass
class PluginStep:
    """One plugin in a chain with its parameters (validated against the plugin's schema later)."""

    name: str
    params: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def parse(cls, text: str) -> "PluginStep":
        """Parse the CLI's ``--plugin name:key=value,key=value`` (values stay strings here)."""
        name, _, rest = text.partition(":")
        name = name.strip()
        if not name:
            raise SpecError(f"bad --plugin {text!r}: expected NAME[:key=value,...]")
        params: dict[str, Any] = {}
        for item in filter(None, (p.strip() for p in rest.split(","))):
            key, sep, value = item.partition("=")
            if not sep or not key.strip():
                raise SpecError(f"bad plugin parameter {item!r} in {text!r}: expected key=value")
            params[key.strip()] = value.strip()
        return cls(name=name, params=params)

    def __str__(self) -> str:
        if not self.params:
            return self.name
        # Booleans as the CLI takes them (with_cache=true), so a label can be typed back.
        return self.name + ":" + ",".join(f"{k}={str(v).lower() if isinstance(v, bool) else v}"
                                          for k, v in self.params.items())


@dataclass
class RunSpec:
    """Everything that defines a run. Stored as JSON with the run."""

    model: str                                    # file path or "demo:NAME"
    factory: str | None = None                    # "package.module:callable" for a state_dict
    trust_pickle: bool = False                    # explicit opt-in to unpickling arbitrary code
    plugins: list[PluginStep] = field(default_factory=list)
    runtime: str = "auto"                         # auto | torch | onnxruntime
    device: str = "cpu"                           # cpu | cuda | cuda:N
    dtype: str = "float32"                        # model compute dtype (torch runtime)
    batch: int | None = None                      # overrides the first (batch) dim of every input
    threads: int | None = None                    # intra-op threads; None = the library default, recorded
    inputs: list[InputSpec] = field(default_factory=list)
    data: str | None = None                       # .npz with x_test[/y_test/x_train/y_train]
    iters: int = PRESETS["quick"]["iters"]        # minimum timed iterations
    duration_s: float = PRESETS["quick"]["duration_s"]  # minimum timed duration
    warmup_min_iters: int = PRESETS["quick"]["warmup_min_iters"]
    warmup_max_s: float = PRESETS["quick"]["warmup_max_s"]
    max_duration_s: float = 600.0                 # hard cap on the timed phase
    seed: int = 0
    timeout_s: float | None = 1800.0              # whole-run wall clock limit (the parent kills the worker)
    telemetry_hz: float = 10.0
    label: str | None = None
    save_model: str | None = None                 # where to save the optimized model artifact
    # -- Hugging Face folders and language models ------------------------------------------------
    trust_remote_code: bool = False               # explicit opt-in to running a folder's own Python code
    task: str = "auto"                            # TASKS: how an HF folder is opened
    scenario: str = "auto"                        # SCENARIOS
    text: str | None = None                       # UTF-8 text file: token inputs, calibration, LM fidelity
    prompt: str | None = None                     # a prompt given inline (generate; overrides text's first one)
    seq_len: int | None = None                    # tokens per sequence (forward runs of token models)
    prompt_len: int | None = None                 # generate: prompt tokens (default DEFAULT_PROMPT_LEN)
    gen_len: int = DEFAULT_GEN_LEN                # generate: new tokens, exactly (EOS ignored)
    # -- explain ----------------------------------------------------------------------------------
    profile: bool = False                         # a per-op profile phase after timing (never timed)

    # -- JSON -------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "RunSpec":
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise SpecError(f"unknown RunSpec field(s): {', '.join(sorted(unknown))}")
        data = dict(data)
        data["plugins"] = [p if isinstance(p, PluginStep) else PluginStep(**p) for p in data.get("plugins", [])]
        data["inputs"] = [i if isinstance(i, InputSpec) else InputSpec(**i) for i in data.get("inputs", [])]
        spec = cls(**data)
        spec.validate()
        return spec

    @classmethod
    def from_json(cls, text: str) -> "RunSpec":
        return cls.from_dict(json.loads(text))

    def apply_preset(self, name: str) -> "RunSpec":
        if name not in PRESETS:
            raise SpecError(f"unknown preset {name!r}; choose one of {', '.join(PRESETS)}")
        for key, value in PRESETS[name].items():
            setattr(self, key, value)
        return self

    # -- checks ------------------------------------------------------------------------------
    @property
    def is_demo(self) -> bool:
        return self.model.startswith("demo:")

    @property
    def model_format(self) -> str:
        """'onnx' or 'torch', judged from the name (the loader checks the content)."""
        return "onnx" if self.model.lower().endswith(".onnx") else "torch"

    @property
    def save_model_is_folder(self) -> bool:
        """--save-model DIR (no suffix, or a trailing slash): a Hugging Face folder."""
        if self.save_model is None:
            return False
        text = self.save_model.rstrip()
        return text.endswith(("/", "\\")) or "." not in text.replace("\\", "/").rsplit("/", 1)[-1]

    def resolved_runtime(self) -> str:
        """The runtime as requested for the model file (a chain that ends in ONNX runs on
        ONNX Runtime; the worker resolves that with the chain's output format)."""
        return resolve_runtime(self.runtime, self.model_format)

    def validate(self) -> None:
        for name in ("model", "runtime", "device", "dtype"):
            if not isinstance(getattr(self, name), str):
                raise SpecError(f"{name} must be text, got {getattr(self, name)!r}")
        if not self.model:
            raise SpecError("no model given: pass a file path or demo:NAME")
        if self.runtime not in RUNTIMES:
            raise SpecError(f"unknown runtime {self.runtime!r}; choose one of {', '.join(RUNTIMES)}")
        if not _DEVICE_RE.match(self.device):
            raise SpecError(f"bad device {self.device!r}: use cpu, cuda or cuda:N")
        if self.scenario not in SCENARIOS:
            raise SpecError(f"unknown scenario {self.scenario!r}; choose one of {', '.join(SCENARIOS)}")
        if self.task not in TASKS:
            raise SpecError(f"unknown task {self.task!r}; choose one of {', '.join(TASKS)}")
        if self.prompt is not None and not self.prompt.strip():
            raise SpecError("--prompt is empty: give some text, or leave it out to use the bundled corpus")
        if self.dtype not in MODEL_DTYPES:
            raise SpecError(f"unknown dtype {self.dtype!r}; choose one of {', '.join(MODEL_DTYPES)}")
        if self.model_format == "onnx" and self.runtime == "torch":
            raise SpecError("an ONNX model runs on the onnxruntime runtime, not torch")
        self._validate_numbers()
        if self.save_model is not None and not self.save_model.lower().endswith(SAVE_SUFFIXES) \
                and not self.save_model_is_folder:
            raise SpecError(f"cannot save the optimized model as {self.save_model!r}: use one of "
                            f"{', '.join(SAVE_SUFFIXES)} (TorchScript, torch.export, ONNX), or a folder "
                            "name without a suffix (a Hugging Face folder)")
        if self.factory is not None and ":" not in self.factory:
            raise SpecError(f"bad factory {self.factory!r}: expected package.module:callable")
        for inp in self.inputs:
            inp.validate()

    def _validate_numbers(self) -> None:
        """Every numeric option: the right kind of number, finite, in range. ``nan < 0`` is False, so
        each check is written as "is it inside", never as "is it outside"."""
        for name, low, high in INTEGER_LIMITS:
            value = getattr(self, name)
            if value is None and name in OPTIONAL_NUMBERS:
                continue
            if isinstance(value, bool) or not isinstance(value, numbers.Integral) or not low <= value <= high:
                bounds = f">= {low}" if high == _NO_LIMIT else f"from {low} to {high}"
                raise SpecError(f"{_option(name)} must be an integer {bounds}, got {value!r}")
        for name in SECONDS_FIELDS:
            value = getattr(self, name)
            if value is None and name in OPTIONAL_NUMBERS:
                continue
            if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value) \
                    or not value > 0:
                raise SpecError(f"{_option(name)} must be a finite number of seconds > 0, got {value!r}")
        hz = self.telemetry_hz
        if isinstance(hz, bool) or not isinstance(hz, numbers.Real) or not 0.5 <= hz <= 100:
            raise SpecError(f"{_option('telemetry_hz')} must be a number from 0.5 to 100 (Hz), got {hz!r}")

    def describe_chain(self) -> str:
        return " → ".join(str(p) for p in self.plugins) if self.plugins else "baseline"
