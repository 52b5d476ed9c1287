"""Why torch.onnx failed, in one line: the exporters' messages without colour codes, cut to the
stage, the root exception and the model's line that raised it (the full text rides along as the
cause, for the log and --debug)."""
from __future__ import annotations

import re

from ..errors import PluginError

# Terminal colour codes (torch.onnx colours its messages): never shown to the user or stored.
_ANSI = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]")
_STEPS = {"1/3": "torch.export could not capture the model", "2/3": "the graph could not be decomposed for ONNX",
          "3/3": "the exported program could not be translated to ONNX"}
class ExportFailure(Exception):
    """The exporters' full messages (colour codes stripped): the cause behind the one-line PluginError,
    shown with the traceback in the log and under --debug."""


def strip_ansi(text: str) -> str:
    return _ANSI.sub("", text)


def exporter_reason(exc: BaseException) -> str:
    """One line saying why torch.onnx / torch.export failed: the stage, the root exception and the
    line of the model that raised it (torch.onnx's own message starts with generic advice)."""
    text = strip_ansi(str(exc)).strip()
    step = re.search(r"This is step (\d/3)", text)
    stage = _STEPS.get(step.group(1)) if step else None
    summary = re.search(r"## Exception summary\s*\n+(.*?)(?:\n\s*\n|⬆️|\Z)", text, re.S)
    head = summary.group(1).strip() if summary else next((line for line in text.splitlines() if line.strip()), "")
    root = re.match(r"<class '(?:[\w.]*\.)?(\w+)'>:\s*(.*)", head, re.S)
    head = f"{root.group(1)}: {root.group(2)}" if root else (f"{type(exc).__name__}: {head}" if head else
                                                             type(exc).__name__)
    head = " ".join(head.split())
    where = re.search(r'The following call raised this error:\s*\n\s*File "([^"]+)", line (\d+), in (\S+)\n\s*(.+)',
                      text)
    location = ""
    if where:
        path, line, function, code = where.groups()
        location = f" (at {path.rsplit('/', 1)[-1]}:{line} in {function}: `{code.strip()[:120]}`)"
    reason = (f"{stage}: " if stage else "") + (head[:300] + ("…" if len(head) > 300 else "")) + location
    return reason


def export_failure(failures: list[tuple[str, BaseException]], what: str) -> PluginError:
    """One line with each exporter's reason; the full messages ride along as the cause."""
    reasons = "; ".join(f"{label}: {exporter_reason(exc)}" for label, exc in failures)
    full = "\n\n".join(f"=== {label}: {type(exc).__name__} ===\n{strip_ansi(str(exc))}" for label, exc in failures)
    error = PluginError(f"{what}: {reasons}")
    error.__cause__ = ExportFailure(full).with_traceback(failures[0][1].__traceback__)
    return error
