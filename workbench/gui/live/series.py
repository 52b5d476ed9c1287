"""The data behind the Live dock, without Qt: growing numpy buffers, the latency series of a run
with its phases, running p50/p99, recent histogram, the min/max envelope drawn instead of millions
of points, and the y range. ``plots.py`` draws them; ``status.py`` puts them in words.

Events only append here (cheap, at any rate); the widget asks for the derived numbers once per
timer tick, never per event, and no derived number reads every point: each reads the new points
or the visible ones (through the block min/max of ``PeakPyramid``).
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

    def truncate(self, size: int) -> None:
        """Keep the first ``size`` elements (the capacity stays)."""
        self._size = max(0, min(self._size, int(size)))

    def clear(self) -> None:
        self._data = np.empty(self._initial, dtype=self._dtype)
        self._size = 0
        self.growths = 0


class PeakPyramid:
    """Min and max of every block of FACTOR, FACTOR², … values of a growing series, kept up to date
    from the new values only. An envelope over a view of millions of points then reads a few
    thousand block extremes instead of the points, and still keeps every peak: each value lies in
    exactly one block of each level."""

    FACTOR = 16
    LEVELS = 5                     # blocks of 16 .. 16**5 (~1 M) values

    def __init__(self) -> None:
        self._min = [GrowingBuffer(256) for _ in range(self.LEVELS)]
        self._max = [GrowingBuffer(256) for _ in range(self.LEVELS)]
        self._complete = [0] * self.LEVELS          # blocks per level that can no longer change

    def block_size(self, level: int) -> int:
        return self.FACTOR ** (level + 1)

    def update(self, values: np.ndarray) -> None:
        """Bring the blocks up to ``values`` (the whole series so far; only its tail is read)."""
        below_min = below_max = values
        f = self.FACTOR
        for level in range(self.LEVELS):
            done = self._complete[level]
            start = done * f
            if start >= below_min.shape[0]:
                break
            tail_min, tail_max = below_min[start:], below_max[start:]
            whole = (tail_min.shape[0] // f) * f
            lows, highs = self._min[level], self._max[level]
            lows.truncate(done)
            highs.truncate(done)
            if whole:            # (reduceat: twice as fast as a reshape's min over a short axis)
                starts = np.arange(0, whole, f)
                lows.extend(np.minimum.reduceat(tail_min[:whole], starts))
                highs.extend(np.maximum.reduceat(tail_max[:whole], starts))
            if whole < tail_min.shape[0]:           # the last block is still filling
                lows.append(float(tail_min[whole:].min()))
                highs.append(float(tail_max[whole:].max()))
            self._complete[level] = done + whole // f
            below_min, below_max = lows.data, highs.data

    def envelope(self, values: np.ndarray, first: int, last: int,
                 columns: int) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
        """``(x, low, high)``: the min and max of ``values[first:last]`` in about ``columns``
        columns (x = each column's middle index), from the coarsest level with at least two blocks
        per column. ``None`` when the points are few enough to draw as they are. Call ``update``
        first."""
        first, last = max(0, int(first)), min(values.shape[0], int(last))
        count, columns = last - first, max(1, int(columns))
        if count <= 2 * columns:
            return None
        size, lows, highs = 1, values, values
        for level in range(self.LEVELS):
            if 2 * self.block_size(level) > count / columns:
                break
            size, lows, highs = self.block_size(level), self._min[level].data, self._max[level].data
        b0, b1 = first // size, -(-last // size)
        block_min, block_max = lows[b0:b1], highs[b0:b1]
        starts = np.unique(np.linspace(0, b1 - b0, min(columns, b1 - b0) + 1)[:-1].astype(np.int64))
        ends = np.append(starts[1:], b1 - b0)
        low = np.minimum.reduceat(block_min, starts)
        high = np.maximum.reduceat(block_max, starts)
        x = np.minimum((b0 + (starts + ends) / 2) * size - 0.5, values.shape[0] - 1)
        return x, low, high

    def clear(self) -> None:
        for buffer in self._min + self._max:
            buffer.clear()
        self._complete = [0] * self.LEVELS


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

    PERCENTILE_WINDOW = 1000   # iterations behind the running p50/p99 (>= 662: the final p99's minimum)
    PERCENTILE_STRIDE = 250    # a running p50/p99 point every this many iterations ...
    MIN_PERCENTILE_STRIDE = 10  # ... or down to this many in a phase shorter than 50 strides
    MAX_PERCENTILE_POINTS = 64  # ... but at most this many per phase and update (bounded cost)
    HISTOGRAM_WINDOW = 10_000  # iterations behind the histogram
    HISTOGRAM_BINS = 60
    NO_RUNNING_PHASES = ("cold",)  # one call: a value, not a distribution (no running p50/p99)
    RANGE_MIN_PHASE = 20       # phases shorter than this (the one cold call) do not set the y range
    RANGE_SAMPLE = 20_000      # iterations read for the y range's p99
    Y_HEADROOM = 1.25          # y range top = this x the p99 of the iterations in view

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
        self._percentiles_done = 0
        self.peaks = PeakPyramid()

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
        values *= 1e-6  # ns -> ms
        self.y.extend(values)
        self.x.extend(np.arange(start, start + n, dtype=np.int64))

    def update_percentiles(self) -> bool:
        """Running p50/p99 at evenly spaced points since the last update (every PERCENTILE_STRIDE
        iterations, closer in a short phase, at most MAX_PERCENTILE_POINTS per phase and update,
        always including the newest value), each over the PERCENTILE_WINDOW iterations before it
        within its own phase.
        Returns whether points were added."""
        y, n = self.y.data, len(self.y)
        if n <= self._percentiles_done:
            return False
        window = self.PERCENTILE_WINDOW
        starts = [index for index, _ in self.phase_markers] + [n]
        xs: list[float] = []
        p50s: list[float] = []
        p99s: list[float] = []
        for (phase_start, name), phase_end in zip(self.phase_markers, starts[1:]):
            first = max(self._percentiles_done, phase_start)
            if phase_end <= first or name in self.NO_RUNNING_PHASES:
                continue
            last_x = xs[-1] if xs else (self.percentile_x.data[-1] if len(self.percentile_x) else None)
            if last_x is not None and last_x < phase_start:   # a new phase: break the line
                xs.append(float(phase_start) - 0.5)
                p50s.append(math.nan)
                p99s.append(math.nan)
            pending = phase_end - first
            # a short phase gets points closer together, or its line would be one dot
            stride = min(self.PERCENTILE_STRIDE, max(self.MIN_PERCENTILE_STRIDE, (phase_end - phase_start) // 50))
            k = max(1, min(self.MAX_PERCENTILE_POINTS, pending // stride))
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
        return True

    def window_size(self) -> int:
        """How many iterations the running p50/p99 cover now."""
        return min(self.PERCENTILE_WINDOW, len(self.y) - self.phase_start)

    def histogram(self, top: float | None = None) -> tuple[np.ndarray, np.ndarray]:
        """``(counts, edges)`` of the last HISTOGRAM_WINDOW iterations of the current phase, from
        their minimum to their 99.9th percentile (one outlier must not squash the bars), or to
        ``top`` (the plot's y range, which the histogram shares) if lower: every bin is visible."""
        n = len(self.y)
        recent = self.y.data[max(self.phase_start, n - self.HISTOGRAM_WINDOW):n]
        lo = float(recent.min())
        hi = float(np.percentile(recent, 99.9)) if recent.shape[0] > 20 else float(recent.max())
        if top is not None and lo < top < hi:
            hi = top
        if hi <= lo:
            hi = lo + max(1e-6, abs(lo) * 1e-3)
        return np.histogram(recent, bins=self.HISTOGRAM_BINS, range=(lo, hi))

    def phase_count(self, phase: str | None = None) -> int:
        """Iterations of ``phase`` so far (the current phase by default)."""
        if phase is None or phase == self.phase:
            return len(self.y) - self.phase_start if self.phase else 0
        starts = [index for index, _ in self.phase_markers] + [len(self.y)]
        return sum(end - start for (start, name), end in zip(self.phase_markers, starts[1:]) if name == phase)

    def phase_spans(self) -> list[tuple[str, int, int]]:
        """``(phase, first index, iterations)`` of every phase so far, in order."""
        starts = [index for index, _ in self.phase_markers] + [len(self.y)]
        return [(name, start, end - start) for (start, name), end in zip(self.phase_markers, starts[1:])]

    def envelope(self, x0: float, x1: float, columns: int) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
        """Min/max per column of the iterations in ``[x0, x1]`` (see ``PeakPyramid.envelope``);
        ``None`` when they are few enough to draw one by one."""
        self.peaks.update(self.y.data)
        return self.peaks.envelope(self.y.data, math.floor(x0), math.ceil(x1) + 1, columns)

    def y_top(self, x0: float, x1: float) -> float:
        """Top of the y range for the iterations in ``[x0, x1]``: Y_HEADROOM x their 99th
        percentile (from a fixed random sample of RANGE_SAMPLE of them: no scan of all points),
        or x the newest running p99 if that is higher. A robust percentile, not the max: the p99
        fits, the bulk is not squashed to the bottom by spikes or by the one cold call (phases
        shorter than RANGE_MIN_PHASE are left out while anything else is in view); higher
        values, and the p99 of a window that caught a stall, are clipped."""
        n = len(self.y)
        first, last = max(0, math.floor(x0)), min(n, math.ceil(x1) + 1)
        if last <= first:
            first, last = 0, n
        if last <= first:
            return 1.0
        if last - first <= self.RANGE_SAMPLE:
            index = np.arange(first, last)
        else:   # random, not strided: a strided sample can alias with periodic spikes (GC every N calls)
            index = np.random.default_rng(0).integers(first, last, self.RANGE_SAMPLE)
        keep = np.ones(index.shape[0], dtype=bool)
        for _, start, count in self.phase_spans():
            if count < self.RANGE_MIN_PHASE:
                keep &= (index < start) | (index >= start + count)
        sample = self.y.data[index[keep] if keep.any() else index]
        top = float(np.percentile(sample, 99))
        if self.running is not None and first <= n - 1 < last:
            top = max(top, self.running[1])
        return top * self.Y_HEADROOM
