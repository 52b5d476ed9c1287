"""The Live dock's words, without Qt: what the running figures are, how long the run has left, a
run's (possibly partial) result, why the GPU panel is empty, and where the phase labels go.

Kept apart from ``plots.py`` so each rule is one tested function, and so other faces of the GUI
(the Run panel's device note) can say the same thing the same way.
"""
from __future__ import annotations

import math
from typing import Callable

from ... import format as fmt
from ...results.stats import MIN_SAMPLES_FOR_PERCENTILE

P99_MIN_SAMPLES = MIN_SAMPLES_FOR_PERCENTILE[99]
PHASE_NAMES = {"cold": "cold call", "warmup": "warm-up", "measure": "measure"}


def count(n: int) -> str:
    """12 345 -> '12 345' (a thin space keeps long counts readable)."""
    return f"{int(n):,}".replace(",", " ")


def phase_name(phase: str | None) -> str:
    return PHASE_NAMES.get(phase or "", phase or "")


# -- running figures ---------------------------------------------------------------------------------
def running_text(p50_ms: float, p99_ms: float, window: int, phase: str | None, phase_iterations: int) -> str:
    """What the header's running numbers are: a window of the current phase (named unless it is
    the timed one), not the result; and below the final p99's minimum, that the result will not
    report a p99 yet."""
    where = f" {phase_name(phase)}" if phase and phase != "measure" else ""
    text = f"running p50 {fmt.ms(p50_ms)} · p99 {fmt.ms(p99_ms)} of the last {count(window)}{where} iterations"
    if phase_iterations < P99_MIN_SAMPLES:
        text += f" (final p99 needs ≥ {P99_MIN_SAMPLES})"
    return text


def result_text(result: dict, cancelled: bool = False) -> str:
    """The run's statistics in one line; marked 'partial' when the run stopped before its targets
    (the stored result says ``"partial": True``, or the run was cancelled)."""
    latency = result.get("latency") or {}
    if latency.get("median_ms") is None:
        return ""
    partial = bool(result.get("partial") or latency.get("partial")) or cancelled
    n = latency.get("n")
    label = "result"
    if partial:
        label = "partial result" + (f" ({count(n)} iterations before the stop)" if n is not None else "")
    text = f"{label}: p50 {fmt.ms(latency['median_ms'])}"
    ci = latency.get("median_ci_ms")
    if ci:
        text += f" {fmt.ci(ci)}"
    if latency.get("p99_ms") is not None:
        text += f", p99 {fmt.ms(latency['p99_ms'])}"
    elif n is not None and n < P99_MIN_SAMPLES:
        text += f", no p99 ({'' if partial else count(n) + ' iterations, '}needs ≥ {P99_MIN_SAMPLES})"
    return text


# -- time left -----------------------------------------------------------------------------------------
def eta_seconds(done: int, elapsed_s: float, iters: int | None, duration_s: float | None,
                max_duration_s: float | None = None) -> float | None:
    """Seconds until the timed phase ends: it stops when BOTH the iteration and the duration
    targets are met (or at the ``max_duration_s`` cap), at the rate measured so far. ``None``
    before there is a rate or without targets."""
    if done <= 0 or elapsed_s <= 0 or not (iters or duration_s):
        return None
    rate = done / elapsed_s
    left = max((max(0, iters - done) / rate) if iters else 0.0,
               (duration_s - elapsed_s) if duration_s else 0.0, 0.0)
    if max_duration_s:
        left = min(left, max(0.0, max_duration_s - elapsed_s))
    return left


def eta_text(seconds: float | None) -> str:
    """'~12 s left', '~3 min left', '~1 h 05 min left'; '' when unknown."""
    if seconds is None or not math.isfinite(seconds):
        return ""
    if seconds < 1:
        return "finishing"
    if seconds < 90:
        return f"~{max(1, round(seconds))} s left"
    minutes = round(seconds / 60)
    if minutes < 90:
        return f"~{minutes} min left"
    return f"~{minutes // 60} h {minutes % 60:02d} min left"


# -- the GPU panel ---------------------------------------------------------------------------------------
NO_GPU = "No NVIDIA GPU found"
NO_NVML = "NVML not available on this machine"
CPU_RUN = "CPU run: no GPU telemetry"
BEFORE_RUN = "GPU telemetry"
# what NVML says when there is no NVIDIA driver or no GPU at all (vs. a broken setup)
_NO_GPU_SIGNS = ("shared library not found", "driver not loaded", "no nvidia", "out of range: nvml sees 0",
                 "gpu not found", "libnvidia-ml")


def gpu_status(nvml: str | None, telemetry_seen: bool = False) -> tuple[str, str, str]:
    """``(headline, explanation, details)`` for the GPU panel from the telemetry status's ``nvml``
    entry ("ok", "disabled (…)", "not started", "unavailable: <NVML's words>"). NVML's own
    words go in ``details`` (a tooltip), never in the headline."""
    text = (nvml or "").strip()
    lower = text.lower()
    if not text:
        if telemetry_seen:
            return (NO_GPU, "The telemetry of this run carries no GPU readings; memory is still shown.",
                    "no GPU fields in the telemetry samples")
        return (BEFORE_RUN, "Power, utilization, SM clock and temperature appear here during a run on "
                "an NVIDIA GPU.", "")
    if lower.startswith("disabled"):
        return (CPU_RUN, "This run uses the CPU; GPU power, clocks and temperature are sampled only for a "
                "cuda device. Memory is shown on the left.", f"NVML: {text}")
    if lower == "ok":
        return (BEFORE_RUN, "Waiting for the first GPU samples…", "NVML: ok")
    if lower == "not started":
        return (BEFORE_RUN, "Starting GPU telemetry…", "NVML: not started yet")
    details = f"NVML: {text.split(':', 1)[1].strip() if lower.startswith('unavailable:') else text}"
    if any(sign in lower for sign in _NO_GPU_SIGNS):
        return (NO_GPU, "No NVIDIA driver or GPU was found, so there is no power, utilization or clock "
                "telemetry. Memory is still measured.", details)
    return (NO_NVML, "GPU power, utilization and clocks cannot be read (NVML could not be used). "
            "Memory is still measured.", details)


# -- phase labels ------------------------------------------------------------------------------------------
def group_labels(positions: list[float], texts: list[str], width: Callable[[str], float],
                 gap: float = 8.0, joiner: str = " · ") -> list[tuple[float, str]]:
    """Labels of vertical markers at pixel ``positions`` (ascending) that never overlap: a marker
    closer than the previous label's end + ``gap`` joins that label ('cold call · warm-up').
    Returns ``[(position of the group's first marker, text)]``."""
    groups: list[tuple[float, str]] = []
    for position, text in zip(positions, texts):
        if groups:
            start, joined = groups[-1]
            if position < start + width(joined) + gap:
                groups[-1] = (start, joined + joiner + text)
                continue
        groups.append((position, text))
    return groups
