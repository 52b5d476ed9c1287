"""The events a worker sends its parent, declared once: each kind and the fields it must carry.

The worker writes one JSON object per line on a private channel; the parent checks every line
against these declarations before acting on it, so a line the model managed to write there (or a
worker bug) is counted and ignored instead of crashing the session. Kinds not declared here are
a plugin's own events (``PluginContext.emit``): they only need the envelope (``type``, ``t``).
"""
from __future__ import annotations

import json
from typing import Any

# Field checks by name, so the declarations below read as a schema.
_CHECKS = {
    "str": lambda v: isinstance(v, str),
    "int": lambda v: isinstance(v, int) and not isinstance(v, bool),
    "number": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
    "dict": lambda v: isinstance(v, dict),
    "int list": lambda v: isinstance(v, list) and all(type(x) is int for x in v),
}

# kind -> {field: check}. Every event also carries "type" (str) and "t" (time.monotonic(), number).
WORKER_EVENTS: dict[str, dict[str, str]] = {
    "started": {"pid": "int"},
    "phase": {"phase": "str"},                          # + "message" (optional)
    "progress": {"phase": "str", "fraction": "number"},  # + "message", "step" (optional)
    "model_info": {"stage": "str", "info": "dict"},
    "plugin_report": {"report": "dict"},
    "artifact": {"path": "str"},                        # + "kind", "bytes" ... (models.save)
    "latency_batch": {"phase": "str", "values_ns": "int list"},
    "measure_window": {"t_start": "number", "t_end": "number", "iterations": "int", "batch": "int"},
    "result": {"result": "dict"},
    "error": {"kind": "str", "message": "str"},         # + "traceback" (optional)
    "train": {},                                        # a plugin's training progress: step, loss, ...
}

# Made by the parent itself (session/sampler); a worker sending one is refused.
PARENT_EVENTS = frozenset({"run_created", "run_finished", "telemetry", "telemetry_status", "log"})


def problem(event: Any) -> str | None:
    """Why ``event`` is not a valid worker event, or None when it is."""
    if not isinstance(event, dict):
        return "not a JSON object"
    kind = event.get("type")
    if not isinstance(kind, str) or not kind:
        return "no event type"
    if not _CHECKS["number"](event.get("t")):
        return f"{kind} event without a time 't'"
    if kind in PARENT_EVENTS:
        return f"a worker may not send {kind} events"
    for name, check in WORKER_EVENTS.get(kind, {}).items():
        if name not in event:
            return f"{kind} event without '{name}'"
        if not _CHECKS[check](event[name]):
            return f"{kind} event whose '{name}' is not {check}"
    return None


def parse(line: bytes) -> tuple[dict | None, str | None]:
    """One line from the channel -> (event, None) or (None, why it was refused)."""
    try:
        event = json.loads(line)
    except (ValueError, RecursionError):
        return None, "not JSON"
    why = problem(event)
    return (None, why) if why else (event, None)
