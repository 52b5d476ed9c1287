"""The timing loop: cold call, warm-up until stable, then per-iteration latencies.

CPU: ``perf_counter_ns`` around each call. CUDA: a pair of CUDA events per iteration and one
synchronisation per batch of iterations, so the host never waits inside the loop. Python's GC
is off while timing. Every iteration's latency is kept and streamed out in batches.
"""
from __future__ import annotations

import gc
import statistics
import time
from dataclasses import dataclass, field
from typing import Any, Callable

from ..spec import RunSpec

_SPEC_DEFAULTS = RunSpec(model="-")
# A batch of iterations is timed between host syncs and sent to the parent as one event; aim for
# about this long so the live plot updates ~10x/s without flooding the pipe.
TARGET_BATCH_SECONDS = 0.1
MAX_BATCH_ITERS = 10_000
STABLE_WINDOW = 10          # warm-up compares the medians of two consecutive windows this long
STABLE_TOLERANCE = 0.05     # ... and calls latency stable when they differ by < 5 %


@dataclass
class MeasureSettings:
    """The loop's limits; defaults are RunSpec's (one place), ``from_spec`` takes a run's."""

    min_iters: int = _SPEC_DEFAULTS.iters
    min_duration_s: float = _SPEC_DEFAULTS.duration_s
    max_duration_s: float = _SPEC_DEFAULTS.max_duration_s
    warmup_min_iters: int = _SPEC_DEFAULTS.warmup_min_iters
    warmup_max_s: float = _SPEC_DEFAULTS.warmup_max_s

    @classmethod
    def from_spec(cls, spec: RunSpec) -> "MeasureSettings":
        return cls(min_iters=spec.iters, min_duration_s=spec.duration_s, max_duration_s=spec.max_duration_s,
                   warmup_min_iters=spec.warmup_min_iters, warmup_max_s=spec.warmup_max_s)


@dataclass
class MeasureResult:
    cold_ns: int                                  # the very first call (includes lazy init, JIT...)
    warmup_iters: int
    warmup_stable: bool
    latencies_ns: list[int]
    t_start: float                                # time.monotonic() at the start of the timed phase (synced)
    t_end: float                                  # ... and at its end (synced)
    gc_disabled: bool = True
    notes: list[str] = field(default_factory=list)

    @property
    def iterations(self) -> int:
        return len(self.latencies_ns)


class _CpuTimer:
    def __init__(self, call: Callable[[], Any]) -> None:
        self.call = call

    def run(self, count: int) -> list[int]:
        call, clock = self.call, time.perf_counter_ns
        out = []
        append = out.append
        for _ in range(count):
            t0 = clock()
            call()
            append(clock() - t0)
        return out


class _CudaTimer:
    def __init__(self, call: Callable[[], Any]) -> None:
        import torch
        self.call = call
        self.torch = torch
        self.events: list = []

    def run(self, count: int) -> list[int]:
        torch = self.torch
        while len(self.events) < count:   # reuse event objects across batches
            self.events.append((torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)))
        pairs = self.events[:count]
        call = self.call
        for start, end in pairs:
            start.record()
            call()
            end.record()
        pairs[-1][1].synchronize()
        return [int(start.elapsed_time(end) * 1e6) for start, end in pairs]


def make_timer(kind: str, call: Callable[[], Any]):
    return _CudaTimer(call) if kind == "cuda" else _CpuTimer(call)


def measure(call: Callable[[], Any], timer_kind: str, settings: MeasureSettings,
            synchronize: Callable[[], None] = lambda: None,
            on_batch: Callable[[str, list[int]], None] = lambda phase, values: None,
            cancelled: Callable[[], bool] = lambda: False) -> MeasureResult:
    """Time ``call``. ``on_batch(phase, latencies_ns)`` streams 'warmup' and 'measure' batches."""
    timer = make_timer(timer_kind, call)
    synchronize()
    t0 = time.perf_counter_ns()
    call()
    synchronize()
    cold_ns = time.perf_counter_ns() - t0
    on_batch("cold", [cold_ns])

    gc_was_enabled = gc.isenabled()
    gc.collect()
    gc.disable()
    try:
        warm, stable = _warm_up(timer, settings, on_batch, cancelled)
        batch = _batch_size(warm)
        latencies: list[int] = []
        synchronize()
        t_start = time.monotonic()
        while True:
            if cancelled():
                break
            values = timer.run(batch)
            latencies.extend(values)
            on_batch("measure", values)
            elapsed = time.monotonic() - t_start
            if (len(latencies) >= settings.min_iters and elapsed >= settings.min_duration_s) \
                    or elapsed >= settings.max_duration_s:
                break
            # Near the iteration target, shrink the batch so we do not overshoot by a lot.
            if elapsed >= settings.min_duration_s:
                batch = max(1, min(batch, settings.min_iters - len(latencies)))
        synchronize()
        t_end = time.monotonic()
    finally:
        if gc_was_enabled:
            gc.enable()
    notes = []
    if not stable:
        notes.append(f"warm-up did not stabilise within {settings.warmup_max_s:g} s "
                     f"({len(warm)} iterations); latencies may still drift")
    if t_end - t_start >= settings.max_duration_s:
        notes.append(f"stopped at the {settings.max_duration_s:g} s cap before the iteration target")
    return MeasureResult(cold_ns, len(warm), stable, latencies, t_start, t_end, True, notes)


def _warm_up(timer, settings: MeasureSettings, on_batch, cancelled) -> tuple[list[int], bool]:
    """At least ``warmup_min_iters``; then until two consecutive windows agree, or time runs out."""
    values: list[int] = []
    started = time.monotonic()
    chunk = 1
    while not cancelled():
        got = timer.run(chunk)
        values.extend(got)
        on_batch("warmup", got)
        enough = len(values) >= max(settings.warmup_min_iters, 2 * STABLE_WINDOW)
        if enough and _is_stable(values):
            return values, True
        if time.monotonic() - started >= settings.warmup_max_s:
            return values, len(values) >= 2 * STABLE_WINDOW and _is_stable(values)
        chunk = min(_batch_size(values), STABLE_WINDOW)
    return values, False


def _is_stable(values: list[int]) -> bool:
    previous = statistics.median(values[-2 * STABLE_WINDOW:-STABLE_WINDOW])
    last = statistics.median(values[-STABLE_WINDOW:])
    return previous > 0 and abs(last - previous) / previous < STABLE_TOLERANCE


def _batch_size(values: list[int]) -> int:
    if not values:
        return 1
    typical = statistics.median(values[-STABLE_WINDOW:]) or 1
    return int(max(1, min(MAX_BATCH_ITERS, TARGET_BATCH_SECONDS * 1e9 / typical)))
