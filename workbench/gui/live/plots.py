"""Live plots of a running measurement: latency per iteration, memory, GPU power/util/clock/
temperature, and the distillation training curve. The data and the numbers derived from it live
in ``series.py`` (no Qt); this module draws them.

Follows pyqtgraph's ``examples/scrollingPlots.py``: events only append to the series' numpy
buffers (cheap, any rate); ONE ``QTimer`` (40 ms) pushes the buffers to the curves with
``setData`` once per tick, and only for series whose data changed. Curves clip to the view and
downsample ('peak', so spikes stay visible), antialiasing is off and the finite check is skipped
(latencies are finite integers). Running p50/p99 and the histogram are computed once per tick,
never per event.
"""
from __future__ import annotations

import time
from typing import Any, Iterable

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtWidgets import (QCheckBox, QHBoxLayout, QLabel, QSizePolicy, QSplitter, QStackedWidget,
                               QVBoxLayout, QWidget)

from ... import format as fmt
from ...telemetry.nvml import GPU_FIELDS
from .. import plot_style as style
from .series import GrowingBuffer, LatencySeries
from .widgets import CurveSeries, ElidedLabel, curve, keyed_title, make_plot, set_empty_text, set_title

PLACEHOLDER_PREFIX = "No NVIDIA GPU / NVML unavailable: "
WAITING_TEXT = "GPU telemetry: waiting for the first samples…"


class LivePlots(QWidget):
    """The Live dock's contents. Feed it core event dicts with ``handle_event`` (GUI thread)."""

    REFRESH_MS = 40            # one redraw per tick at most
    FOLLOW_ITERATIONS = 5000   # x range while "follow latest" is on
    BUSY_FACTOR = 4.0          # after a redraw of d s, wait >= 4 d before the next (<= 20 % busy)
    Y_HEADROOM = 1.3           # y range = headroom x the highest running p99 of the phase

    redrawn = Signal()         # after a tick that changed something (benchmarks, tests)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("LivePlots")
        pg.setConfigOptions(antialias=False)
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
        layout.setSpacing(4)
        header = QHBoxLayout()
        self.title_label = ElidedLabel()
        self.title_label.setTextFormat(Qt.TextFormat.PlainText)
        font = self.title_label.font()
        font.setBold(True)
        self.title_label.setFont(font)
        self.status_label = ElidedLabel()
        self.follow_box = QCheckBox(f"Follow latest {self.FOLLOW_ITERATIONS:,} iterations".replace(",", " "))
        self.follow_box.setToolTip("Scroll the latency plot with the newest iterations instead of showing the whole run")
        self.follow_box.toggled.connect(self._follow_toggled)
        header.addWidget(self.title_label, 1)
        header.addWidget(self.follow_box)
        layout.addLayout(header)
        # its own full-width row: the status (phase, count, running p50/p99, result) is long
        layout.addWidget(self.status_label)

        splitter = QSplitter(Qt.Orientation.Vertical)
        splitter.setChildrenCollapsible(False)
        layout.addWidget(splitter, 1)

        # latency per iteration + histogram sharing its y axis
        self.latency_view = pg.GraphicsLayoutWidget()
        style.style_plot_widget(self.latency_view)
        self.latency_plot = make_plot("Latency per iteration", "latency", "ms", "iteration", None,
                                       si_prefix=False)
        self.latency_curve = curve(self.latency_plot, "latency")
        # Nothing per tick may scan all the points (millions, at a no-op model's rate): no dynamic
        # range check, and the x range is set from the known count instead of auto-ranged over the
        # data (integer x: pyqtgraph skips its finite check).
        self.latency_curve.setDynamicRangeLimit(None)
        self.p50_curve = curve(self.latency_plot, "p50", width=2)
        self.p99_curve = curve(self.latency_plot, "p99", width=2, style_=Qt.PenStyle.DashLine)
        self.latency_plot.enableAutoRange(x=False, y=False)
        self.latency_plot.setYRange(0, 1, padding=0)
        self.latency_plot.getViewBox().sigRangeChangedManually.connect(self._user_moved_latency)
        self.hist_plot = make_plot("Distribution", "latency", "ms", "count", None, si_prefix=False)
        self.hist_plot.hideAxis("left")
        self.hist_plot.setYLink(self.latency_plot)
        self.hist_plot.setDownsampling(auto=False)
        self.hist_bars = pg.BarGraphItem(x0=[], y0=[], width=[], height=[], pen=None,
                                         brush=pg.mkBrush(style.SERIES["histogram"]))
        self.hist_plot.addItem(self.hist_bars)
        self.latency_view.addItem(self.latency_plot, row=0, col=0)
        self.latency_view.addItem(self.hist_plot, row=0, col=1)
        self.latency_view.ci.layout.setColumnStretchFactor(0, 4)
        self.latency_view.ci.layout.setColumnStretchFactor(1, 1)
        self.latency_view.setMinimumHeight(170)
        splitter.addWidget(self.latency_view)

        # memory | GPU (power, utilization, clock, temperature) or its placeholder
        telemetry_row = QSplitter(Qt.Orientation.Horizontal)
        telemetry_row.setChildrenCollapsible(False)
        self.memory_view = pg.GraphicsLayoutWidget()
        style.style_plot_widget(self.memory_view)
        self.memory_plot = make_plot("Memory", "memory", "B")
        self.memory_view.addItem(self.memory_plot)
        telemetry_row.addWidget(self.memory_view)

        self.gpu_stack = QStackedWidget()
        self.gpu_placeholder = QLabel()
        self.gpu_placeholder.setObjectName("gpuPlaceholder")
        self.gpu_placeholder.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.gpu_placeholder.setWordWrap(True)
        self.gpu_placeholder.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
        self.gpu_placeholder.setStyleSheet(f"color: {style.muted().name()}; font-size: 11pt; padding: 12px;")
        self.gpu_stack.addWidget(self.gpu_placeholder)
        gpu_page = QWidget()
        gpu_layout = QVBoxLayout(gpu_page)
        gpu_layout.setContentsMargins(0, 0, 0, 0)
        gpu_layout.setSpacing(2)
        self.gpu_view = pg.GraphicsLayoutWidget()
        style.style_plot_widget(self.gpu_view)
        self.power_plot = make_plot("GPU power", "power", "W", si_prefix=False)
        self.util_plot = make_plot("GPU utilization", "utilization", "%", si_prefix=False)
        self.clock_plot = make_plot("SM clock", "clock", "MHz", si_prefix=False)
        self.temp_plot = make_plot("GPU temperature", "temperature", "°C", si_prefix=False)
        self.gpu_view.addItem(self.power_plot, row=0, col=0)
        self.gpu_view.addItem(self.util_plot, row=0, col=1)
        self.gpu_view.addItem(self.clock_plot, row=1, col=0)
        self.gpu_view.addItem(self.temp_plot, row=1, col=1)
        for plot in (self.power_plot, self.util_plot, self.clock_plot, self.temp_plot):
            plot.setXLink(self.memory_plot)
        self.gpu_warnings = QLabel()
        self.gpu_warnings.setWordWrap(True)
        self.gpu_warnings.setStyleSheet("color: #c77c00;")
        self.gpu_warnings.hide()
        gpu_layout.addWidget(self.gpu_view, 1)
        gpu_layout.addWidget(self.gpu_warnings)
        self.gpu_stack.addWidget(gpu_page)
        telemetry_row.addWidget(self.gpu_stack)
        telemetry_row.setStretchFactor(0, 1)
        telemetry_row.setStretchFactor(1, 2)
        telemetry_row.setMinimumHeight(150)
        splitter.addWidget(telemetry_row)

        # training (distillation / fine-tuning): shown only when train events arrive
        self.train_view = pg.GraphicsLayoutWidget()
        style.style_plot_widget(self.train_view)
        self.loss_plot = make_plot("Training loss", "loss", None, "step", None, si_prefix=False)
        self.acc_plot = make_plot("Student accuracy", "accuracy", None, "step", None, si_prefix=False)
        self.acc_plot.setXLink(self.loss_plot)
        self.train_view.addItem(self.loss_plot, row=0, col=0)
        self.train_view.addItem(self.acc_plot, row=0, col=1)
        self.train_view.setMinimumHeight(150)
        splitter.addWidget(self.train_view)
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
        self._train = {
            "loss": CurveSeries(curve(self.loss_plot, "loss")),
            "accuracy": CurveSeries(curve(self.acc_plot, "accuracy", symbol="o")),
        }
        self.util_plot.setYRange(0, 100, padding=0.02)
        # A steady reading (clock pinned, temperature flat) must not zoom into its noise.
        for plot, span in ((self.memory_plot, 64e6), (self.power_plot, 20.0), (self.clock_plot, 200.0),
                           (self.temp_plot, 10.0)):
            plot.getViewBox().setLimits(minYRange=span)
        self.acc_plot.setYRange(0, 1, padding=0.02)

    # -- public API --------------------------------------------------------------------------------
    def reset(self, title: str) -> None:
        """Forget the previous run's data; ``title`` names the run now being shown."""
        self.title_label.setText(title or "")
        self.title_label.setVisible(bool(title))
        self._latency = LatencySeries()
        self._lat_dirty = False
        self._phase_label: str | None = None
        self._drawn_markers = 0
        for item in getattr(self, "_marker_items", []):
            self.latency_plot.removeItem(item)
        self._marker_items: list[pg.InfiniteLine] = []
        self._y_follow = True
        self._x_follow = True      # whole run in view, until the user pans or zooms
        self.latency_curve.setData([], [])
        self.p50_curve.setData([], [])
        self.p99_curve.setData([], [])
        self.hist_bars.setOpts(x0=[], y0=[], width=[], height=[])
        self.latency_plot.enableAutoRange(x=False, y=False)
        self.latency_plot.setRange(xRange=(0, 10), yRange=(0, 1), padding=0)
        set_title(self.latency_plot, keyed_title("Latency per iteration", (
            ("latency", "latency", False), ("p50", "running p50", False), ("p99", "running p99", True))))
        for plot, (title, _) in self._telemetry_titles.items():
            set_title(plot, title)
            if plot is not self.memory_plot:
                set_empty_text(plot, None)
        for series in list(self._telemetry.values()) + list(self._train.values()):
            series.clear()
        self._t0: float | None = None
        self._telemetry_count = 0
        self._telemetry_dirty = False
        self._gpu_seen = False
        self._nvml_status: str | None = None
        self._telemetry_warnings: list[str] = []
        self._train_dirty = False
        self.train_view.hide()
        self.memory_plot.enableAutoRange()
        self._result_text = ""
        self._finished_text = ""
        set_empty_text(self.latency_plot, "Waiting for latency data…")
        set_empty_text(self.memory_plot, "Waiting for telemetry…")
        self._update_gpu_panel()
        self._update_status()

    def handle_event(self, event: dict) -> None:
        """Take one core event dict (GUI thread). Only appends to buffers; drawing is on the timer."""
        kind = event.get("type")
        if kind == "latency_batch":
            values = event.get("values_ns")
            self._add_latencies(event.get("phase") or "measure", () if values is None else values)
        elif kind == "telemetry":
            self._add_samples(event.get("samples") or ())
        elif kind == "train":
            self._add_train(event)
        elif kind == "phase":
            self._phase_label = event.get("phase")
            self._update_status()
        elif kind == "result":
            self._add_result(event.get("result") or {})
        elif kind == "run_finished":
            status = event.get("status") or "done"
            message = event.get("message")
            self._finished_text = status + (f": {message}" if message else "")
            self._update_status()

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
        return len(self._train["loss"])

    @property
    def latency_buffer(self) -> GrowingBuffer:
        return self._latency.y

    def latency_values_ms(self):
        return self._latency.y.data

    def running_percentiles(self) -> tuple[float, float] | None:
        """(p50, p99) in ms over the last ``LatencySeries.PERCENTILE_WINDOW`` iterations of the
        current phase, as of the last tick (``None`` before any data)."""
        return self._latency.running

    def gpu_placeholder_visible(self) -> bool:
        return self.gpu_stack.currentWidget() is self.gpu_placeholder

    def gpu_placeholder_text(self) -> str:
        return self.gpu_placeholder.text()

    def training_visible(self) -> bool:
        return not self.train_view.isHidden()

    # -- events -> buffers ---------------------------------------------------------------------------
    def _add_latencies(self, phase: str, values_ns: Any) -> None:
        if len(values_ns):
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
                self._telemetry[key].add(x, sample.get(field))
            if not self._gpu_seen and any(sample.get(f) is not None for f in GPU_FIELDS):
                self._gpu_seen = True
            self._telemetry_count += 1
            self._telemetry_dirty = True
        self._update_gpu_panel()

    def _add_train(self, event: dict) -> None:
        step = event.get("step")
        if step is None:
            step = len(self._train["loss"]) + 1
        self._train["loss"].add(float(step), event.get("loss"))
        self._train["accuracy"].add(float(step), event.get("student_accuracy"))
        self._train_dirty = True
        if self.train_view.isHidden():
            self.train_view.show()

    def _add_result(self, result: dict) -> None:
        latency = result.get("latency") or {}
        if latency.get("median_ms") is not None:
            ci = latency.get("median_ci_ms")
            self._result_text = (f"result: p50 {fmt.ms(latency['median_ms'])}"
                                 + (f" {fmt.ci(ci)}" if ci else "")
                                 + f", p99 {fmt.ms(latency.get('p99_ms'))}")
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
                 ("train", self._train_dirty, self._draw_train))
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

    def _draw_train(self) -> None:
        self._train_dirty = False
        for series in self._train.values():
            series.draw()

    def _draw_latency(self) -> None:
        self._lat_dirty = False
        set_empty_text(self.latency_plot, None)
        series = self._latency
        n = len(series)
        self.latency_curve.setData(series.x.data, series.y.data, skipFiniteCheck=True)
        if series.update_percentiles():
            # (NaN gaps between phases: the finite check stays on for these short series)
            self.p50_curve.setData(series.percentile_x.data, series.p50.data, connect="finite", skipFiniteCheck=False)
            self.p99_curve.setData(series.percentile_x.data, series.p99.data, connect="finite", skipFiniteCheck=False)
        counts, edges = series.histogram()
        self.hist_bars.setOpts(x0=np.zeros(counts.shape[0]), y0=edges[:-1], width=counts.astype(np.float64),
                               height=np.diff(edges))
        while self._drawn_markers < len(series.phase_markers):
            index, phase = series.phase_markers[self._drawn_markers]
            self._drawn_markers += 1
            line = pg.InfiniteLine(pos=index, angle=90, movable=False,
                                   pen=pg.mkPen(style.muted(), style=Qt.PenStyle.DotLine),
                                   label=phase,
                                   # stagger the labels: cold/warm-up/measure markers sit close together;
                                   # near the bottom, below the data (y starts at 0, latencies sit near
                                   # p50) and clear of the cold call's spike at the top
                                   labelOpts={"position": 0.06 + 0.08 * ((self._drawn_markers - 1) % 3),
                                              "color": style.muted()})
            self.latency_plot.addItem(line, ignoreBounds=True)
            self._marker_items.append(line)
        # y range: headroom above the highest running p99 of this phase (spikes beyond are clipped,
        # the cold first call does not squash the plot); the user's own zoom wins.
        if self._y_follow:
            top = series.phase_high * self.Y_HEADROOM if series.phase_high > 0 else 1.0
            self.latency_plot.setYRange(0, top, padding=0)
        if self.follow_box.isChecked():
            self.latency_plot.setXRange(max(0, n - self.FOLLOW_ITERATIONS), max(n, 10), padding=0)
        elif self._x_follow:
            self.latency_plot.setXRange(0, max(n, 10), padding=0.02)
        self._update_status()

    # -- helpers --------------------------------------------------------------------------------------
    def _user_moved_latency(self, *args: Any) -> None:
        self._y_follow = False
        self._x_follow = False

    def _follow_toggled(self, on: bool) -> None:
        self._x_follow = True        # either way, the view follows the run again
        self._lat_dirty = self._lat_dirty or len(self._latency) > 0

    def _update_status(self) -> None:
        parts = []
        phase = self._phase_label or self._latency.phase
        if phase:
            parts.append(f"phase: {phase}")
        n = len(self._latency)
        if n:
            parts.append(f"{n:,} iterations".replace(",", " "))
        if self._latency.running is not None:
            p50, p99 = self._latency.running
            parts.append(f"running p50 {fmt.ms(p50)}, p99 {fmt.ms(p99)} "
                         f"(last {self._latency.window_size()} of this phase)")
        if self._result_text:
            parts.append(self._result_text)
        if self._finished_text:
            parts.append(self._finished_text)
        self.status_label.setText(" · ".join(parts))

    def _placeholder_reason(self) -> str:
        nvml = self._nvml_status
        if nvml and nvml != "ok":
            reason = nvml
            if reason.lower().startswith("unavailable:"):
                reason = reason.split(":", 1)[1].strip()
            return reason
        return "the telemetry carries no GPU readings (a CPU run, or NVML could not be opened)"

    def _update_gpu_panel(self) -> None:
        if self._gpu_seen:
            self.gpu_stack.setCurrentIndex(1)
        else:
            nvml = self._nvml_status
            if (nvml and nvml != "ok") or self._telemetry_count > 0:
                text = PLACEHOLDER_PREFIX + self._placeholder_reason()
            else:
                text = WAITING_TEXT
            self.gpu_placeholder.setText(text)
            self.gpu_stack.setCurrentIndex(0)
        warnings = self._telemetry_warnings
        self.gpu_warnings.setText("\n".join(f"⚠ {w}" for w in warnings))
        self.gpu_warnings.setVisible(bool(warnings))

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
