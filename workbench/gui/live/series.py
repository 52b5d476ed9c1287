"""The data behind the Live dock, without Qt: growing numpy buffers, the latency series of a run
with its phases, running p50/p99 and recent histogram. ``plots.py`` draws them.

Events only append here (cheap, at any rate); the widget asks for the derived numbers once per
timer tick, never per event.
"""
from __future__ import annotations

import math
from typing import Any, Iterable

import numpy as np


class GrowingBuffer:
    """A 1-D numpy buffer that doubles its capacity when full (amortised O(1) appends).

    Past ``RESERVE_FROM`` elements it grows straight to ``RESERVE`` elements instead: numpy's
    ``empty`` only reserves address space (pages are committed as they are written), so one
    small copy replaces the 16, 32, 64 MB copies that doubling would do, each of which stalled
    the GUI thread for tens of ms at a no-op model's ~400 000 iterations/s.
    """

    RESERVE_FROM = 1 << 20        # elements
    RESERVE = 1 << 26             # elements (512 MiB of address space for float64)

    def __init__(self, capacity: int = 4096, dtype: Any = np.float64) -> None:
        self._initial = max(1, int(capacity))
        self._dtype = dtype
        self._data = np.empty(self._initial, dtype=dtype)
        self._size = 0
        self.growths = 0

    def __len__(self) -> int:
        return self._size

    @property
    def size(self) -> int:
        return self._size

    @property
    def capacity(self) -> int:
        return int(self._data.shape[0])

    @property
    def initial_capacity(self) -> int:
        return self._initial

    @property
    def data(self) -> np.ndarray:
        """A view of the filled part (valid until the next append that grows the buffer)."""
        return self._data[:self._size]

    def extend(self, values: np.ndarray | Iterable[float]) -> None:
        values = np.asarray(values, dtype=self._dtype)
        n = values.shape[0]
        if n == 0:
            return
        need = self._size + n
        if need > self._data.shape[0]:
            capacity = self._data.shape[0]
            while capacity < need:
                capacity = self.RESERVE if self.RESERVE_FROM <= capacity < self.RESERVE else capacity * 2
                self.growths += 1
            try:
                grown = np.empty(capacity, dtype=self._dtype)
            except MemoryError:           # no address space to reserve (strict overcommit): double
                capacity = max(need, 2 * self._data.shape[0])
                grown = np.empty(capacity, dtype=self._dtype)
            grown[:self._size] = self._data[:self._size]
            self._data = grown
        self._data[self._size:need] = values
        self._size = need

    def append(self, value: float) -> None:
        if self._size == self._data.shape[0]:
            self.extend((value,))
        else:
            self._data[self._size] = value
            self._size += 1

    def clear(self) -> None:
        self._data = np.empty(self._initial, dtype=self._dtype)
        self._size = 0
        self.growths = 0


class XYSeries:
    """x/y buffers of one telemetry or training curve; ``dirty`` until the next draw. Missing and
    non-finite readings are skipped (a metric the GPU does not report is None in every sample)."""

    def __init__(self, capacity: int = 1024) -> None:
        self.x = GrowingBuffer(capacity)
        self.y = GrowingBuffer(capacity)
        self.dirty = False

    def add(self, x: float, y: float | None) -> None:
        if y is None:
            return
        y = float(y)
        if not math.isfinite(y):
            return
        self.x.append(x)
        self.y.append(y)
        self.dirty = True

    def __len__(self) -> int:
        return len(self.y)

    def clear(self) -> None:
        self.x.clear()
        self.y.clear()
        self.dirty = False


class LatencySeries:
    """Per-iteration latencies (ms) of one run in arrival order, split into phases (cold, warm-up,
    measure), with the running p50/p99 and the histogram of the recent iterations of the current
    phase. A phase's numbers never mix with another's: the cold call or a slow warm-up must not
    drag the measure phase's percentiles."""

    PERCENTILE_WINDOW = 1000   # iterations behind the running p50/p99
    PERCENTILE_STRIDE = 250    # a running p50/p99 point every this many iterations ...
    MAX_PERCENTILE_POINTS = 64  # ... but at most this many per phase and update (bounded cost)
    HISTOGRAM_WINDOW = 10_000  # iterations behind the histogram
    HISTOGRAM_BINS = 60

    def __init__(self) -> None:
        self.x = GrowingBuffer(4096, dtype=np.int64)       # iteration index
        self.y = GrowingBuffer(4096)                       # latency, ms
        self.phase: str | None = None
        self.phase_start = 0                               # index of the current phase's first iteration
        self.phase_markers: list[tuple[int, str]] = []     # (first index, phase) of every phase so far
        self.percentile_x = GrowingBuffer(1024)
        self.p50 = GrowingBuffer(1024)                     # NaN between phases: the line breaks there
        self.p99 = GrowingBuffer(1024)
        self.running: tuple[float, float] | None = None    # the newest (p50, p99)
        self.phase_high = 0.0                              # highest newest p50/p99 seen in this phase
        self._percentiles_done = 0

    def __len__(self) -> int:
        return len(self.y)

    def add(self, phase: str, values_ns: Any) -> None:
        values = np.asarray(values_ns, dtype=np.float64)
        n = values.shape[0]
        if n == 0:
            return
        start = len(self.y)
        if phase != self.phase:
            self.phase = phase
            self.phase_start = start
            self.phase_markers.append((start, phase))
            self.phase_high = 0.0
        values *= 1e-6  # ns -> ms
        self.y.extend(values)
        self.x.extend(np.arange(start, start + n, dtype=np.int64))

    def update_percentiles(self) -> bool:
        """Running p50/p99 at evenly spaced points since the last update (every PERCENTILE_STRIDE
        iterations, at most MAX_PERCENTILE_POINTS per phase and update, always including the newest
        value), each over the PERCENTILE_WINDOW iterations before it within its own phase.
        Returns whether points were added."""
        y, n = self.y.data, len(self.y)
        if n <= self._percentiles_done:
            return False
        window = self.PERCENTILE_WINDOW
        starts = [index for index, _ in self.phase_markers] + [n]
        xs: list[float] = []
        p50s: list[float] = []
        p99s: list[float] = []
        for phase_start, phase_end in zip(starts, starts[1:]):
            first = max(self._percentiles_done, phase_start)
            if phase_end <= first:
                continue
            last_x = xs[-1] if xs else (self.percentile_x.data[-1] if len(self.percentile_x) else None)
            if last_x is not None and last_x < phase_start:   # a new phase: break the line
                xs.append(float(phase_start) - 0.5)
                p50s.append(math.nan)
                p99s.append(math.nan)
            pending = phase_end - first
            k = max(1, min(self.MAX_PERCENTILE_POINTS, pending // self.PERCENTILE_STRIDE))
            ends = np.unique(np.linspace(first, phase_end, k + 1)[1:].round().astype(np.int64))
            full = ends - phase_start >= window
            if full.any():
                # all full windows at once: one vectorised percentile instead of one call per point
                windows = np.lib.stride_tricks.sliding_window_view(y[phase_start:phase_end], window)
                p50_full, p99_full = np.percentile(windows[ends[full] - phase_start - window], (50, 99), axis=1)
            full_values = iter(zip(p50_full, p99_full)) if full.any() else iter(())
            for end, is_full in zip(ends, full):
                if is_full:
                    p50, p99 = next(full_values)
                else:   # the first window of a phase is shorter
                    p50, p99 = np.percentile(y[phase_start:end], (50, 99))
                xs.append(float(end - 1))
                p50s.append(float(p50))
                p99s.append(float(p99))
        self._percentiles_done = n
        if not xs:
            return False
        self.percentile_x.extend(xs)
        self.p50.extend(p50s)
        self.p99.extend(p99s)
        self.running = (p50s[-1], p99s[-1])
        self.phase_high = max(self.phase_high, *self.running)
        return True

    def window_size(self) -> int:
        """How many iterations the running p50/p99 cover now."""
        return min(self.PERCENTILE_WINDOW, len(self.y) - self.phase_start)

    def histogram(self) -> tuple[np.ndarray, np.ndarray]:
        """``(counts, edges)`` of the last HISTOGRAM_WINDOW iterations of the current phase, from
        their minimum to their 99.9th percentile (one outlier must not squash the bars)."""
        n = len(self.y)
        recent = self.y.data[max(self.phase_start, n - self.HISTOGRAM_WINDOW):n]
        lo = float(recent.min())
        hi = float(np.percentile(recent, 99.9)) if recent.shape[0] > 20 else float(recent.max())
        if hi <= lo:
            hi = lo + max(1e-6, abs(lo) * 1e-3)
        return np.histogram(recent, bins=self.HISTOGRAM_BINS, range=(lo, hi))
