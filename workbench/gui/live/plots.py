"""Live plots of a running measurement: latency per iteration, memory, GPU power/util/clock/
temperature, the distillation training curve and a generation's latency per token. The data and the numbers derived from it live
in ``series.py`` (no Qt), their words in ``status.py``; this module draws them.

Follows pyqtgraph's ``examples/scrollingPlots.py``: events only append to the series' numpy
buffers (cheap, any rate); ONE ``QTimer`` (40 ms) pushes the buffers to the curves with
``setData`` once per tick, and only for series whose data changed. The latency trace is the
min/max of the visible iterations per pixel column (``PeakPyramid``: every peak kept, read from
block extremes, not the points), a translucent band under the running p50/p99; zoomed in, the
points themselves. Antialiasing is off, the finite check skipped (latencies are finite). Running
p50/p99, the histogram and the y range (from the running p99 in view, not the max) are computed
once per tick, never per event.
"""
from __future__ import annotations

import math
import time
from typing import Any, Iterable

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtGui import QColor
from PySide6.QtWidgets import QCheckBox, QHBoxLayout, QSplitter, QVBoxLayout, QWidget

from ...format import ms as fmt_ms
from ...telemetry.nvml import GPU_FIELDS

MIB = float(2 ** 20)
from .. import plot_style as style
from . import status as words
from .gpu_panel import GpuPanel
from .series import GrowingBuffer, LatencySeries
from .side_views import TokenLatencyView, TrainingView
from .widgets import (CurveSeries, ElidedLabel, PhaseMarkers, curve, draw_histogram, keyed_title, make_plot,
                      set_empty_text, set_latency_unit, set_title)

NO_RUN_TEXT = "Latency per iteration appears here while a run is timed"
WAITING_TEXT = "Waiting for the first timed iterations…"


class LivePlots(QWidget):
    """The Live dock's contents. Feed it core event dicts with ``handle_event`` (GUI thread)."""

    REFRESH_MS = 40            # one redraw per tick at most
    FOLLOW_ITERATIONS = 5000   # x range while "follow latest" is on
    BUSY_FACTOR = 4.0          # after a redraw of d s, wait >= 4 d before the next (<= 20 % busy)
    ETA_AFTER_S = 2.0          # a time estimate once the timed phase has run this long ...
    ETA_FROM_S = 3.0           # ... and only while at least this much is left (long runs)

    redrawn = Signal()         # after a tick that changed something (benchmarks, tests)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("LivePlots")
        pg.setConfigOptions(antialias=False)
        self.clock = time.monotonic          # the ETA's clock (tests replace it)
        self._latency = LatencySeries()
        self._drawing = False
        self._build()
        self._timer = QTimer(self)
        self._timer.setInterval(self.REFRESH_MS)
        self._timer.timeout.connect(self._on_timer)
        self._next_redraw_at = 0.0
        self._last_drawn_view: str | None = None
        self._timer.start()
        self.last_redraw_s = 0.0
        self.reset("")

    # -- construction ------------------------------------------------------------------------------
    def _build(self) -> None:
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.setSpacing(2)
        header = QHBoxLayout()
        self.title_label = ElidedLabel()
        self.title_label.setTextFormat(Qt.TextFormat.PlainText)
        font = self.title_label.font()
        font.setBold(True)
        self.title_label.setFont(font)
        self.follow_box = QCheckBox(f"Follow latest {words.count(self.FOLLOW_ITERATIONS)} iterations")
        self.follow_box.setToolTip("Scroll the latency plot with the newest iterations instead of showing the whole run")
        self.follow_box.toggled.connect(self._follow_toggled)
        header.addWidget(self.title_label, 1)
        header.addWidget(self.follow_box)
        layout.addLayout(header)
        # two full-width lines: where the run is (phase, count, time left, how it ended), and
        # what its numbers are (the running window's p50/p99, then the result)
        self.status_label = ElidedLabel()
        self.figures_label = ElidedLabel()
        self.figures_label.setObjectName("liveFigures")
        layout.addWidget(self.status_label)
        layout.addWidget(self.figures_label)

        splitter = QSplitter(Qt.Orientation.Vertical)
        splitter.setChildrenCollapsible(False)
        layout.addWidget(splitter, 1)

        # latency per iteration + histogram sharing its y axis
        self.latency_view = pg.GraphicsLayoutWidget()
        style.style_plot_widget(self.latency_view)
        self.latency_plot = make_plot("Latency per iteration", "latency", "ms", "iteration", None,
                                       si_prefix=False)
        # the trace: a min/max band when dense, the points themselves when zoomed in
        color = QColor(style.SERIES["latency"])
        edge, fill = QColor(color), QColor(color)
        edge.setAlpha(150)
        fill.setAlpha(70)
        self.latency_band = pg.PlotCurveItem(pen=pg.mkPen(edge, width=1), brush=pg.mkBrush(fill),
                                             fillLevel="enclosed", antialias=False, skipFiniteCheck=True)
        self.latency_plot.addItem(self.latency_band)
        self.latency_curve = curve(self.latency_plot, "latency")
        # Nothing per tick may scan all the points (millions, at a no-op model's rate): no dynamic
        # range check, no auto range; the curves get the visible envelope only.
        self.latency_curve.setDynamicRangeLimit(None)
        self.latency_curve.setDownsampling(auto=False)
        self.p50_curve = curve(self.latency_plot, "p50", width=2)
        self.p99_curve = curve(self.latency_plot, "p99", width=2, style_=Qt.PenStyle.DashLine)
        self.latency_plot.enableAutoRange(x=False, y=False)
        self.latency_plot.setYRange(0, 1, padding=0)
        view_box = self.latency_plot.getViewBox()
        view_box.sigRangeChangedManually.connect(self._user_moved_latency)
        view_box.sigRangeChanged.connect(self._latency_view_changed)
        view_box.sigResized.connect(self._latency_view_changed)
        self._phases = PhaseMarkers(self.latency_plot)
        self.hist_plot = make_plot("Distribution", "latency", "ms", "count", None, si_prefix=False)
        self.hist_plot.hideAxis("left")
        self.hist_plot.setYLink(self.latency_plot)
        self.hist_plot.setDownsampling(auto=False)
        self.hist_plot.enableAutoRange(x=False)
        self.hist_bars = pg.BarGraphItem(x0=[], y0=[], width=[], height=[], pen=None,
                                         brush=pg.mkBrush(style.SERIES["histogram"]))
        self.hist_plot.addItem(self.hist_bars)
        self.latency_view.addItem(self.latency_plot, row=0, col=0)
        self.latency_view.addItem(self.hist_plot, row=0, col=1)
        self.latency_view.ci.layout.setColumnStretchFactor(0, 4)
        self.latency_view.ci.layout.setColumnStretchFactor(1, 1)
        self.latency_view.setMinimumHeight(170)
        splitter.addWidget(self.latency_view)

        # memory | GPU (power, utilization, clock, temperature) or why there is none
        telemetry_row = QSplitter(Qt.Orientation.Horizontal)
        telemetry_row.setChildrenCollapsible(False)
        self.memory_view = pg.GraphicsLayoutWidget()
        style.style_plot_widget(self.memory_view)
        self.memory_plot = make_plot("Memory", "memory", "MiB", si_prefix=False)   # binary, like every face
        self.memory_view.addItem(self.memory_plot)
        telemetry_row.addWidget(self.memory_view)
        self.gpu_stack = GpuPanel()
        self.gpu_placeholder, self.gpu_warnings = self.gpu_stack.placeholder, self.gpu_stack.warnings
        self.power_plot, self.util_plot, self.clock_plot, self.temp_plot = self.gpu_stack.plots()
        for plot in self.gpu_stack.plots():
            plot.setXLink(self.memory_plot)
        telemetry_row.addWidget(self.gpu_stack)
        telemetry_row.setStretchFactor(0, 1)
        telemetry_row.setStretchFactor(1, 2)
        telemetry_row.setMinimumHeight(150)
        splitter.addWidget(telemetry_row)

        # shown only when their events arrive: training (distillation / fine-tuning), tokens (generate)
        self.train_view = TrainingView()
        self.loss_plot, self.acc_plot = self.train_view.loss_plot, self.train_view.acc_plot
        splitter.addWidget(self.train_view)
        self.token_view = TokenLatencyView()
        splitter.addWidget(self.token_view)
        splitter.setStretchFactor(0, 3)
        splitter.setStretchFactor(1, 2)
        splitter.setStretchFactor(2, 2)

        self._telemetry = {
            "rss": CurveSeries(curve(self.memory_plot, "rss")),
            "gpu_mem": CurveSeries(curve(self.memory_plot, "gpu_mem")),
            "gpu_proc_mem": CurveSeries(curve(self.memory_plot, "gpu_proc_mem")),
            "power": CurveSeries(curve(self.power_plot, "power")),
            "power_avg": CurveSeries(curve(self.power_plot, "power_avg", style_=Qt.PenStyle.DashLine)),
            "util": CurveSeries(curve(self.util_plot, "util")),
            "mem_util": CurveSeries(curve(self.util_plot, "mem_util", style_=Qt.PenStyle.DashLine)),
            "clock": CurveSeries(curve(self.clock_plot, "clock")),
            "temperature": CurveSeries(curve(self.temp_plot, "temperature")),
        }
        self._telemetry_fields = {
            "rss": "rss_bytes", "gpu_mem": "gpu_mem_used_bytes", "gpu_proc_mem": "gpu_proc_mem_bytes",
            "power": "gpu_power_w", "power_avg": "gpu_power_avg_w", "util": "gpu_util_pct",
            "mem_util": "gpu_mem_util_pct", "clock": "sm_clock_mhz", "temperature": "temperature_c",
        }
        # plot -> (title, [(series, key label or "" for a single-series plot, dashed)])
        self._telemetry_titles = {
            self.memory_plot: ("Memory", [("rss", "RSS", False), ("gpu_mem", "GPU device", False),
                                          ("gpu_proc_mem", "GPU worker", False)]),
            self.power_plot: ("GPU power", [("power", "instant", False), ("power_avg", "average", True)]),
            self.util_plot: ("GPU utilization", [("util", "SM", False), ("mem_util", "memory", True)]),
            self.clock_plot: ("SM clock", [("clock", "", False)]),
            self.temp_plot: ("GPU temperature", [("temperature", "", False)]),
        }
        self.util_plot.setYRange(0, 100, padding=0.02)
        # A steady reading (clock pinned, temperature flat) must not zoom into its noise.
        for plot, span in ((self.memory_plot, 64.0), (self.power_plot, 20.0), (self.clock_plot, 200.0),
                           (self.temp_plot, 10.0)):
            plot.getViewBox().setLimits(minYRange=span)

    # -- public API --------------------------------------------------------------------------------
    def reset(self, title: str, spec: Any = None) -> None:
        """Forget the previous run's data; ``title`` names the run now being shown, ``spec`` (its
        RunSpec, optional) gives the timed phase's targets for the time estimate."""
        self.title_label.setText(title or "")
        self.title_label.setVisible(bool(title))
        self._latency = LatencySeries()
        self._lat_dirty = False
        self._drawing = False
        self._drawn_view: tuple[float, float, float] | None = None
        self._phase_label: str | None = None
        self._drawn_markers = 0
        self._phases.clear()
        self._y_follow = True
        self._x_follow = True      # whole run in view, until the user pans or zooms
        self.latency_curve.setData([], [])
        self.latency_band.setData([], [])
        self.p50_curve.setData([], [])
        self.p99_curve.setData([], [])
        self.hist_bars.setOpts(x0=[], y0=[], width=[], height=[])
        self.latency_plot.enableAutoRange(x=False, y=False)
        self.latency_plot.setRange(xRange=(0, 10), yRange=(0, 1), padding=0)
        set_title(self.latency_plot, keyed_title("Latency per iteration", (
            ("latency", "min–max", False), ("p50", "running p50", False), ("p99", "p99", True))))
        for plot, (plot_title, _) in self._telemetry_titles.items():
            set_title(plot, plot_title)
            if plot is not self.memory_plot:
                set_empty_text(plot, None)
        for series in self._telemetry.values():
            series.clear()
        self._t0: float | None = None
        self._telemetry_count = 0
        self._telemetry_dirty = False
        self._gpu_seen = False
        self._nvml_status: str | None = None
        self._telemetry_warnings: list[str] = []
        self.train_view.reset()
        self.token_view.reset()
        self.memory_plot.enableAutoRange()
        self._result: dict = {}
        self._finished_status: str | None = None
        self._finished_text = ""
        self._measure_started_at: float | None = None
        self.set_measure_targets(getattr(spec, "iters", None), getattr(spec, "duration_s", None),
                                 getattr(spec, "max_duration_s", None))
        set_empty_text(self.latency_plot, WAITING_TEXT if title else NO_RUN_TEXT)
        set_empty_text(self.hist_plot, "")
        set_empty_text(self.memory_plot, "Waiting for telemetry…" if title else "Memory appears here during a run")
        self._update_gpu_panel()
        self._update_status()

    def set_measure_targets(self, iters: int | None, duration_s: float | None,
                            max_duration_s: float | None = None) -> None:
        """The timed phase's targets (it ends when both are met, or at the cap): the time estimate."""
        self._targets = (iters, duration_s, max_duration_s)

    def handle_event(self, event: dict) -> None:
        """Take one core event dict (GUI thread). Only appends to buffers; drawing is on the timer."""
        kind = event.get("type")
        if kind == "latency_batch":
            values = event.get("values_ns")
            self._add_latencies(event.get("phase") or "measure", () if values is None else values)
        elif kind == "telemetry":
            self._add_samples(event.get("samples") or ())
        elif kind == "telemetry_status":
            self.set_telemetry_status(event.get("status"))
        elif kind == "train":
            self.train_view.add(event)
        elif kind == "generation":
            self.token_view.add(event)
        elif kind == "phase":
            self._phase_label = event.get("phase")
            self._update_status()
        elif kind == "result":
            self._add_result(event.get("result") or {})
        elif kind == "error" and not self._finished_status:
            # the worker stopped (cancelled or failed); run_finished follows with the stored status
            self._finished_status = "cancelled" if event.get("kind") == "cancelled" else "failed"
            message = event.get("message")
            self._finished_text = self._finished_status + (f": {message}" if message else "")
            self._update_status()
        elif kind == "run_finished":
            self._finished_status = status = event.get("status") or "done"
            message = event.get("message")
            self._finished_text = status + (f": {message}" if message else "")
            if isinstance(event.get("result"), dict):
                self._add_result(event["result"])
            self._update_status()

    def show_result(self, result: dict | None) -> None:
        """A run's stored result (e.g. the partial statistics of a cancelled run, which no event
        carries): its numbers replace the running figures, marked partial when they are."""
        self._add_result(result or {})

    def set_telemetry_status(self, status: dict | None) -> None:
        """The telemetry sampler's ``status`` dict (``{"nvml": "ok" | "unavailable: ..." | ...,
        "warnings": [...]}``); tells the GPU panel why it has nothing to show."""
        status = status or {}
        nvml = status.get("nvml")
        self._nvml_status = str(nvml) if nvml is not None else None
        self._telemetry_warnings = [str(w) for w in status.get("warnings") or ()]
        self._update_gpu_panel()

    def latency_point_count(self) -> int:
        return len(self._latency)

    def telemetry_point_count(self) -> int:
        """Telemetry samples received since the last reset."""
        return self._telemetry_count

    def train_point_count(self) -> int:
        return self.train_view.point_count()

    @property
    def latency_buffer(self) -> GrowingBuffer:
        return self._latency.y

    @property
    def latency_series(self) -> LatencySeries:
        return self._latency

    def running_percentiles(self) -> tuple[float, float] | None:
        """(p50, p99) in ms over the last ``LatencySeries.PERCENTILE_WINDOW`` iterations of the
        current phase, as of the last tick (``None`` before any data)."""
        return self._latency.running

    def phase_label_texts(self) -> list[str]:
        """The phase labels shown over the latency plot, left to right."""
        return self._phases.texts()

    def gpu_placeholder_visible(self) -> bool:
        return self.gpu_stack.reason_visible()

    def gpu_placeholder_text(self) -> str:
        return self.gpu_stack.reason_text()

    def training_visible(self) -> bool:
        return not self.train_view.isHidden()

    # -- events -> buffers ---------------------------------------------------------------------------
    def _add_latencies(self, phase: str, values_ns: Any) -> None:
        if len(values_ns):
            if phase == "measure" and self._measure_started_at is None:
                # the batch arrives when it is done: the timed phase began about its sum earlier
                self._measure_started_at = self.clock() - float(np.sum(values_ns)) / 1e9
            self._latency.add(phase, values_ns)
            self._lat_dirty = True

    def _add_samples(self, samples: Iterable[dict]) -> None:
        for sample in samples:
            t = sample.get("t")
            if t is None:
                continue
            if self._t0 is None:
                self._t0 = float(t)
            x = float(t) - self._t0
            for key, field in self._telemetry_fields.items():
                value = sample.get(field)
                if value is not None and field.endswith("_bytes"):
                    value = value / MIB
                self._telemetry[key].add(x, value)
            if not self._gpu_seen and any(sample.get(f) is not None for f in GPU_FIELDS):
                self._gpu_seen = True
            self._telemetry_count += 1
            self._telemetry_dirty = True
        self._update_gpu_panel()

    def _add_result(self, result: dict) -> None:
        if (result.get("latency") or {}).get("median_ms") is not None:
            self._result = result
        if result.get("telemetry_status"):
            self.set_telemetry_status(result["telemetry_status"])
        self._update_status()

    # -- the timer tick -------------------------------------------------------------------------------
    def _on_timer(self) -> None:
        # Adaptive: a redraw that took d seconds is followed by at least BUSY_FACTOR * d of idle
        # event loop, so even a huge run (1 M points) keeps the window responsive.
        now = time.perf_counter()
        if now < self._next_redraw_at:
            return
        if self.flush(one_view=True):
            self._next_redraw_at = now + self.BUSY_FACTOR * self.last_redraw_s

    def flush(self, one_view: bool = False) -> bool:
        """Push changed buffers to the curves (the timer calls this every ``REFRESH_MS``).
        ``one_view``: redraw at most one changed view (latency, telemetry, training) per call,
        taking turns, so one tick's repaint (and the event-loop stall it causes) covers one view,
        not all of them. Returns whether anything was redrawn."""
        started = time.perf_counter()
        views = (("latency", self._lat_dirty, self._draw_latency),
                 ("telemetry", self._telemetry_dirty, self._draw_telemetry),
                 ("train", self.train_view.dirty, self.train_view.draw),
                 ("tokens", self.token_view.dirty, self.token_view.draw))
        dirty = [(name, draw) for name, is_dirty, draw in views if is_dirty]
        if not dirty:
            return False
        if one_view:
            # the first dirty view after the one drawn last time (round robin)
            names = [view[0] for view in views]
            after = names.index(self._last_drawn_view) + 1 if self._last_drawn_view in names else 0
            dirty.sort(key=lambda item: (names.index(item[0]) - after) % len(names))
            dirty = dirty[:1]
        for name, draw in dirty:
            draw()
            self._last_drawn_view = name
        self.last_redraw_s = time.perf_counter() - started
        self.redrawn.emit()
        return True

    def _draw_telemetry(self) -> None:
        self._telemetry_dirty = False
        for series in self._telemetry.values():
            series.draw()
        set_empty_text(self.memory_plot, None if any(len(self._telemetry[k]) for k in
                                                      ("rss", "gpu_mem", "gpu_proc_mem"))
                        else "No memory readings in the telemetry")
        self._update_telemetry_titles()

    def _draw_latency(self) -> None:
        self._lat_dirty = False
        series = self._latency
        n = len(series)
        if n == 0:
            return
        set_empty_text(self.latency_plot, None)
        set_empty_text(self.hist_plot, None)
        self._drawing = True       # our own range changes are not the user's
        try:
            if self.follow_box.isChecked():
                self.latency_plot.setXRange(max(0, n - self.FOLLOW_ITERATIONS), max(n, 10), padding=0)
            elif self._x_follow:
                self.latency_plot.setXRange(0, max(n, 10), padding=0.02)
            (x0, x1), _ = self.latency_plot.getViewBox().viewRange()
            if series.update_percentiles():
                # (NaN gaps between phases: the finite check stays on for these short series)
                self.p50_curve.setData(series.percentile_x.data, series.p50.data, connect="finite",
                                       skipFiniteCheck=False)
                self.p99_curve.setData(series.percentile_x.data, series.p99.data, connect="finite",
                                       skipFiniteCheck=False)
            self._draw_trace(x0, x1)
            # y range: the running p99 in view plus headroom (rarer spikes are clipped, the cold
            # first call does not squash the plot); the user's own zoom wins.
            if self._y_follow:
                self.latency_plot.setYRange(0, series.y_top(x0, x1), padding=0)
            top = self.latency_plot.getViewBox().viewRange()[1][1]
            set_latency_unit(self.latency_plot, top)
            draw_histogram(self.hist_plot, self.hist_bars, *series.histogram(top=top))
            self._draw_phase_markers()
        finally:
            self._drawing = False
        self._update_status()

    def _columns(self) -> int:
        width = self.latency_plot.getViewBox().width()
        return int(width) if width >= 10 else 1000

    def _draw_trace(self, x0: float, x1: float) -> None:
        """The visible iterations: a min/max band per pixel column, or the points when few."""
        series = self._latency
        columns = self._columns()
        self._drawn_view = (x0, x1, columns)
        envelope = series.envelope(x0, x1, columns)
        if envelope is None:
            first, last = max(0, math.floor(x0) - 1), min(len(series), math.ceil(x1) + 2)
            self.latency_curve.setData(series.x.data[first:last], series.y.data[first:last], skipFiniteCheck=True)
            self.latency_band.setData([], [])
            return
        x, low, high = envelope
        self.latency_curve.setData([], [])
        # one closed polygon: the maxima left to right, the minima back
        self.latency_band.setData(np.concatenate((x, x[::-1])), np.concatenate((high, low[::-1])),
                                  skipFiniteCheck=True)

    def _draw_phase_markers(self) -> None:
        series = self._latency
        while self._drawn_markers < len(series.phase_markers):
            index, _ = series.phase_markers[self._drawn_markers]
            self._drawn_markers += 1
            self._phases.add_line(index - 0.5 if index else 0)
        self._layout_phase_labels()

    def _layout_phase_labels(self) -> None:
        (x0, x1), _ = self.latency_plot.getViewBox().viewRange()
        spans = self._latency.phase_spans()
        shown = [(start, self._phase_text(name, start, count)) for name, start, count in spans
                 if x0 <= start <= x1]
        before = [(name, start, count) for name, start, count in spans if start < x0]
        if before and (not shown or shown[0][0] > x0):
            name, start, count = before[-1]        # the phase in view at the left edge
            shown.insert(0, (x0, self._phase_text(name, start, count)))
        self._phases.layout(shown)

    def _phase_text(self, phase: str, start: int, count: int) -> str:
        text = words.phase_name(phase)
        if count == 1:              # the cold call: its one value (often far above the y range)
            text += f" {fmt_ms(float(self._latency.y.data[start]))}"
        return text

    # -- helpers --------------------------------------------------------------------------------------
    def _user_moved_latency(self, *args: Any) -> None:
        self._y_follow = False
        self._x_follow = False

    def _latency_view_changed(self, *args: Any) -> None:
        """A pan, zoom or resize: the envelope and labels are for another range or width now."""
        if self._drawing or not len(self._latency):
            return
        (x0, x1), _ = self.latency_plot.getViewBox().viewRange()
        drawn = self._drawn_view
        if drawn is None or abs(drawn[0] - x0) > 1e-9 or abs(drawn[1] - x1) > 1e-9 or drawn[2] != self._columns():
            self._lat_dirty = True
        else:
            self._layout_phase_labels()    # y moved: the labels stay at the top

    def _follow_toggled(self, on: bool) -> None:
        self._x_follow = True        # either way, the view follows the run again
        self._lat_dirty = self._lat_dirty or len(self._latency) > 0

    def _eta_text(self) -> str:
        series = self._latency
        if (series.phase != "measure" or self._measure_started_at is None or self._finished_status
                or self._result):
            return ""
        elapsed = self.clock() - self._measure_started_at
        if elapsed < self.ETA_AFTER_S:
            return ""
        left = words.eta_seconds(series.phase_count("measure"), elapsed, *self._targets)
        return words.eta_text(left) if left is not None and left >= self.ETA_FROM_S else ""

    def _update_status(self) -> None:
        parts = []
        phase = self._phase_label or self._latency.phase
        if phase and not self._finished_status and not self._result:     # (a result: nothing runs now)
            parts.append(f"phase: {phase}")
        n = len(self._latency)
        if n:
            measured = self._latency.phase_count("measure")
            parts.append(f"{words.count(n)} iterations"
                         + (f" ({words.count(measured)} timed)" if measured and measured != n else ""))
        eta = self._eta_text()
        if eta:
            parts.append(eta)
        if self._finished_text:
            parts.append(self._finished_text)
        self.status_label.setText(" · ".join(parts))
        figures = []
        if self._latency.running is not None and not self._result:
            p50, p99 = self._latency.running
            figures.append(words.running_text(p50, p99, self._latency.window_size(), self._latency.phase,
                                              self._latency.phase_count()))
        if self._result:
            figures.append(words.result_text(self._result, cancelled=self._finished_status == "cancelled"))
        self.figures_label.setText(" · ".join(f for f in figures if f))

    def _update_gpu_panel(self) -> None:
        if self._gpu_seen:
            self.gpu_stack.show_plots()
        else:
            self.gpu_stack.show_reason(*words.gpu_status(self._nvml_status, self._telemetry_count > 0))
        self.gpu_stack.set_warnings(self._telemetry_warnings)

    def _update_telemetry_titles(self) -> None:
        """Titles with a colour key of the series that have data; a GPU plot whose metric the
        GPU does not report says so instead of showing a bare axis."""
        for plot, (title, entries) in self._telemetry_titles.items():
            present = [(key, label, dashed) for key, label, dashed in entries if len(self._telemetry[key])]
            if plot is not self.memory_plot and not present:
                set_title(plot, title)
                set_empty_text(plot, "not reported by this GPU" if self._gpu_seen else None)
                continue
            if plot is not self.memory_plot:
                set_empty_text(plot, None)
            set_title(plot, keyed_title(title, [e for e in present if e[1]]))

    def closeEvent(self, event) -> None:  # noqa: N802 - Qt naming
        self._timer.stop()
        super().closeEvent(event)
