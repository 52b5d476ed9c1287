"""The ``workbench bench …`` command line that reproduces a stored run (for reports).

``spec_to_command(spec)`` is the inverse of ``workbench.cli.spec_from_args``: parsing the
command with ``workbench.cli.build_parser()`` gives back an equal ``RunSpec``. A few RunSpec
fields have no command-line option (the warm-up limits outside the two presets, the hard cap on
the timed phase, "no timeout", plugin values containing a comma); ``spec_to_argv`` names those in
its notes so a report can say that the RunSpec JSON, not the command, is the exact record.
"""
from __future__ import annotations

import shlex
from typing import Any

from ..spec import PRESETS, InputSpec, RunSpec

_DEFAULTS = RunSpec(model="-")


def format_param_value(value: Any) -> str:
    """A plugin parameter as the CLI's ``key=value`` parser reads it back."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return repr(value)
    return str(value)


def _number(value: Any) -> str:
    return repr(value) if isinstance(value, float) else str(value)


def spec_to_argv(spec: dict) -> tuple[list[str], list[str]]:
    """``(argv, notes)``: the command as a list, and what it cannot express (empty: exact)."""
    get = lambda key: spec.get(key, getattr(_DEFAULTS, key))  # noqa: E731 - tiny accessor
    argv = ["workbench", "bench", str(spec["model"])]
    notes: list[str] = []
    if get("factory"):
        argv += ["--factory", get("factory")]
    if get("trust_pickle"):
        argv.append("--trust-pickle")
    for step in get("plugins") or []:
        name = step["name"] if isinstance(step, dict) else step.name
        params = (step.get("params") if isinstance(step, dict) else step.params) or {}
        items = []
        for key, value in params.items():
            text = format_param_value(value)
            if "," in text or text != text.strip():
                notes.append(f"plugin {name}: the value of {key}={text!r} cannot be written on the command line "
                             "(the --plugin parser splits on commas and strips spaces); use the RunSpec JSON")
            items.append(f"{key}={text}")
        argv += ["--plugin", name + (":" + ",".join(items) if items else "")]
    for key, flag in (("runtime", "--runtime"), ("device", "--device"), ("dtype", "--dtype")):
        if get(key) != getattr(_DEFAULTS, key):
            argv += [flag, str(get(key))]
    for key, flag in (("batch", "--batch"), ("threads", "--threads")):
        if get(key) is not None:
            argv += [flag, str(get(key))]
    for item in get("inputs") or []:
        argv += ["--input", str(item if isinstance(item, InputSpec) else InputSpec(**item))]
    if get("data"):
        argv += ["--data", str(get("data"))]

    warmup = (get("warmup_min_iters"), get("warmup_max_s"))
    rigorous = PRESETS["rigorous"]
    preset = PRESETS["quick"]
    if warmup == (rigorous["warmup_min_iters"], rigorous["warmup_max_s"]) \
            and warmup != (preset["warmup_min_iters"], preset["warmup_max_s"]):
        argv.append("--rigorous")
        preset = rigorous
    elif warmup != (preset["warmup_min_iters"], preset["warmup_max_s"]):
        notes.append(f"warm-up settings warmup_min_iters={warmup[0]}, warmup_max_s={warmup[1]:g} have no "
                     "command-line option (the command uses the quick preset's); use the RunSpec JSON")
    if get("iters") != preset["iters"]:
        argv += ["--iters", _number(get("iters"))]
    if get("duration_s") != preset["duration_s"]:
        argv += ["--duration", _number(get("duration_s"))]
    if get("max_duration_s") != _DEFAULTS.max_duration_s:
        notes.append(f"max_duration_s={get('max_duration_s'):g} has no command-line option "
                     f"(the command uses {_DEFAULTS.max_duration_s:g} s); use the RunSpec JSON")
    if get("seed") != _DEFAULTS.seed:
        argv += ["--seed", str(get("seed"))]
    timeout = get("timeout_s")
    if timeout is None:
        notes.append("the run had no timeout; the command line always sets one (default "
                     f"{_DEFAULTS.timeout_s:g} s)")
    elif timeout != _DEFAULTS.timeout_s:
        argv += ["--timeout", _number(timeout)]
    if get("telemetry_hz") != _DEFAULTS.telemetry_hz:
        argv += ["--telemetry-hz", _number(get("telemetry_hz"))]
    if get("label"):
        argv += ["--label", str(get("label"))]
    if get("save_model"):
        argv += ["--save-model", str(get("save_model"))]
    return argv, notes


def spec_to_command(spec: dict) -> str:
    """The shell command (POSIX quoting) that runs ``spec`` again: ``workbench bench MODEL …``."""
    return shlex.join(spec_to_argv(spec)[0])
