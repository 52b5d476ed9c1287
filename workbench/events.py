"""Every event of a run, declared once: its kind, who sends it, the fields it must and may carry.

The worker writes one JSON object per line on a private channel; the parent checks every line
against these declarations (``parse``) before acting on it, so a line the model managed to write
there (or a worker bug) is counted and ignored instead of crashing the session. The parent adds
its own events (run created and finished, telemetry, log lines) and stamps ``run_id`` on all of
them; the store, the CLI's progress line and the GUI bridge consume the same dicts. Kinds not
declared here are a plugin's own events (``PluginContext.emit``): they need only the envelope
(``type``, ``t``). ``docs/architecture.md`` holds the table ``markdown_table()`` renders.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

# Field checks by name, so the declarations below read as a schema.
_CHECKS = {
    "str": lambda v: isinstance(v, str),
    "str|null": lambda v: v is None or isinstance(v, str),
    "int": lambda v: isinstance(v, int) and not isinstance(v, bool),
    "number": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
    "number|null": lambda v: v is None or (isinstance(v, (int, float)) and not isinstance(v, bool)),
    "dict": lambda v: isinstance(v, dict),
    "list": lambda v: isinstance(v, list),
    "int list": lambda v: isinstance(v, list) and all(type(x) is int for x in v),
}

WORKER, PARENT = "worker", "parent"


@dataclass(frozen=True)
class EventKind:
    name: str
    source: str                                        # WORKER or PARENT
    meaning: str
    required: dict[str, str] = field(default_factory=dict)   # field -> check name
    optional: dict[str, str] = field(default_factory=dict)


_KINDS = (
    EventKind("started", WORKER, "the worker process is up (a spare says how long it imported and waited)",
              {"pid": "int"}, {"imports_s": "number", "idle_s": "number"}),
    EventKind("phase", WORKER, "a phase begins: load, reference, optimize, save, prepare, cold, warmup, "
              "measure, fidelity", {"phase": "str"}, {"message": "str"}),
    EventKind("progress", WORKER, "progress within a phase (0..1)", {"phase": "str", "fraction": "number"},
              {"message": "str", "step": "int"}),
    EventKind("model_info", WORKER, "what the model is, before and after the plugin chain",
              {"stage": "str", "info": "dict"}),
    EventKind("plugin_report", WORKER, "what one plugin step changed", {"report": "dict"}),
    EventKind("variants_checked", WORKER, "a baseline checked the variants planned after it on the loaded model: "
              "None or the refusal, one per variant", {"refusals": "list"}),
    EventKind("artifact", WORKER, "the optimized model was saved", {"path": "str"},
              {"kind": "str", "bytes": "int", "sha256": "str", "note": "str"}),
    EventKind("latency_batch", WORKER, "timed iterations of the cold, warmup or measure phase (generate: "
              "per-token decode latencies; the cold call's prefill)",
              {"phase": "str", "values_ns": "int list"}),
    EventKind("generation", WORKER, "one greedy generation (generate scenario, cold, warmup or measure): its "
              "prefill (time to first token) and every decode step's latency",
              {"phase": "str", "repetition": "int", "prefill_ns": "int", "decode_ns": "int list"},
              {"batch": "int", "prompt_tokens": "int"}),
    EventKind("measure_window", WORKER, "the timed window on the shared monotonic clock (generate: from the "
              "first timed decode step to the last; iterations = decode steps)",
              {"t_start": "number", "t_end": "number", "iterations": "int", "batch": "int"}),
    EventKind("result", WORKER, "statistics, fidelity, reports: the run's result", {"result": "dict"}),
    EventKind("error", WORKER, "why the run failed or was cancelled", {"kind": "str", "message": "str"},
              {"traceback": "str"}),
    EventKind("train", WORKER, "a training step of a plugin (distill, fine-tune)", {},
              {"step": "int", "epoch": "int", "loss": "number", "student_accuracy": "number|null"}),
    EventKind("run_created", PARENT, "the store row exists", {"run_id": "int"}),
    EventKind("telemetry_status", PARENT, "which telemetry sources work, and why not", {"status": "dict"}),
    EventKind("telemetry", PARENT, "samples from the parent's sampler thread", {"samples": "list"}),
    EventKind("log", PARENT, "a warning about the run (e.g. malformed lines on the channel)",
              {"message": "str"}, {"level": "str"}),
    EventKind("run_finished", PARENT, "the run is stored as done, failed or cancelled",
              {"run_id": "int", "status": "str"}, {"message": "str|null"}),
)
KINDS: dict[str, EventKind] = {kind.name: kind for kind in _KINDS}
WORKER_EVENTS = frozenset(k.name for k in _KINDS if k.source == WORKER)
PARENT_EVENTS = frozenset(k.name for k in _KINDS if k.source == PARENT)


def problem(event: Any, source: str = WORKER) -> str | None:
    """Why ``event`` is not a valid event from ``source``, or None when it is."""
    if not isinstance(event, dict):
        return "not a JSON object"
    kind = event.get("type")
    if not isinstance(kind, str) or not kind:
        return "no event type"
    if not _CHECKS["number"](event.get("t")):
        return f"{kind} event without a time 't'"
    declared = KINDS.get(kind)
    if declared is None:
        return None if source == WORKER else f"undeclared {kind} event"   # a plugin's own event
    if declared.source != source:
        return f"a {source} may not send {kind} events"
    for name, check in declared.required.items():
        if name not in event:
            return f"{kind} event without '{name}'"
        if not _CHECKS[check](event[name]):
            return f"{kind} event whose '{name}' is not {check}"
    for name, check in declared.optional.items():
        if name in event and not _CHECKS[check](event[name]):
            return f"{kind} event whose '{name}' is not {check}"
    return None


def parse(line: bytes) -> tuple[dict | None, str | None]:
    """One line from the worker's channel -> (event, None) or (None, why it was refused)."""
    try:
        event = json.loads(line)
    except (ValueError, RecursionError):
        return None, "not JSON"
    why = problem(event)
    return (None, why) if why else (event, None)


def markdown_table() -> str:
    """The event table of docs/architecture.md (a test keeps the two the same)."""
    def fields(spec: dict[str, str], suffix: str = "") -> list[str]:
        return [f"`{name}`{suffix}" for name in spec]
    rows = ["| event | sent by | fields (`?` optional) | meaning |", "|---|---|---|---|"]
    for kind in _KINDS:
        listed = ", ".join(fields(kind.required) + fields(kind.optional, "?")) or "—"
        rows.append(f"| `{kind.name}` | {kind.source} | {listed} | {kind.meaning} |")
    return "\n".join(rows)
