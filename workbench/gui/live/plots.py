"""Live plots of a running measurement: latency per iteration, memory, GPU power/util/clock/
temperature, and the distillation training curve.

Follows pyqtgraph's ``examples/scrollingPlots.py``: events only append to numpy buffers that
double when full (cheap, any rate); ONE ``QTimer`` (40 ms) pushes the buffers to the curves with
``setData`` once per tick, and only for series whose data changed. Curves clip to the view and
downsample ('peak', so spikes stay visible), antialiasing is off and the finite check is skipped
(latencies are finite integers). Running p50/p99 and the histogram use a recent window of the
current phase, computed once per tick, never per event.
"""
from __future__ import annotations

import math
import time
from typing import Any, Iterable

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtWidgets import (QCheckBox, QHBoxLayout, QLabel, QSizePolicy, QSplitter, QStackedWidget,
                               QVBoxLayout, QWidget)

from .. import format as fmt
from . import plot_style as style

GPU_FIELDS = ("gpu_power_w", "gpu_power_avg_w", "gpu_energy_mj", "gpu_mem_used_bytes", "gpu_mem_total_bytes",
              "gpu_proc_mem_bytes", "gpu_util_pct", "gpu_mem_util_pct", "sm_clock_mhz", "temperature_c",
              "clock_event_reasons")
PLACEHOLDER_PREFIX = "No NVIDIA GPU / NVML unavailable: "
WAITING_TEXT = "GPU telemetry: waiting for the first samples…"


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


class _Series:
    """x/y buffers behind one curve; ``dirty`` until the next timer tick draws it."""

    def __init__(self, curve: pg.PlotDataItem, capacity: int = 1024) -> None:
        self.curve = curve
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

    def draw(self) -> bool:
        if not self.dirty:
            return False
        self.curve.setData(self.x.data, self.y.data, skipFiniteCheck=True)
        self.dirty = False
        return True

    def clear(self) -> None:
        self.x.clear()
        self.y.clear()
        self.curve.setData([], [])
        self.dirty = False


def _make_plot(title: str, left: str, left_units: str | None = None, bottom: str = "time",
               bottom_units: str | None = "s", si_prefix: bool = True) -> pg.PlotItem:
    plot = pg.PlotItem()
    style.style_plot_item(plot)
    plot.setTitle(title, color=style.foreground().name(), size="9pt")
    plot.setLabel("left", left, units=left_units)
    plot.setLabel("bottom", bottom, units=bottom_units)
    if not si_prefix:
        plot.getAxis("left").enableAutoSIPrefix(False)
    plot.setClipToView(True)
    plot.setDownsampling(auto=True, mode="peak")
    plot.setMenuEnabled(True)
    return plot


def _curve(plot: pg.PlotItem, series: str, width: float = 1.0,
           style_: Qt.PenStyle = Qt.PenStyle.SolidLine, symbol: str | None = None) -> pg.PlotDataItem:
    pen = style.series_pen(series, width, style_)
    kwargs: dict[str, Any] = {}
    if symbol:
        kwargs.update(symbol=symbol, symbolSize=6, symbolBrush=style.SERIES[series], symbolPen=None)
    return plot.plot([], [], pen=pen, antialias=False, skipFiniteCheck=True, **kwargs)


def _keyed_title(title: str, entries: Iterable[tuple[str, str, bool]]) -> str:
    """A plot title followed by a colour key (legends inside the plot would hide data)."""
    keys = "".join(f"&nbsp;&nbsp;<span style='color:{style.SERIES[key]}'>{'╌' if dashed else '━'} {label}</span>"
                   for key, label, dashed in entries)
    return title + keys


def _set_title(plot: pg.PlotItem, html: str) -> None:
    if getattr(plot, "_workbench_title", None) != html:
        plot._workbench_title = html
        plot.setTitle(html, color=style.foreground().name(), size="9pt")


def _set_empty_text(plot: pg.PlotItem, text: str | None) -> None:
    """A centred grey text over an empty plot (never a bare empty axis); ``None`` removes it."""
    item = getattr(plot, "_workbench_empty_text", None)
    if text is None:
        if item is not None:
            item.hide()
        return
    if item is None:
        item = pg.TextItem(anchor=(0.5, 0.5), color=style.muted())
        plot.addItem(item, ignoreBounds=True)
        plot._workbench_empty_text = item
    item.setText(text)
    view = plot.getViewBox()
    (x0, x1), (y0, y1) = view.viewRange()
    item.setPos((x0 + x1) / 2, (y0 + y1) / 2)
    item.show()


class ElidedLabel(QLabel):
    """One line of text that ends in '…' when it does not fit, with the whole text as tooltip:
    a long status never widens the dock or gets cut off mid-word without a sign."""

    def __init__(self, text: str = "", parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._full_text = ""
        self.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        self.setText(text)

    def setText(self, text: str) -> None:  # noqa: N802 - Qt naming
        self._full_text = text
        self.setToolTip(text)
        self._elide()

    def text(self) -> str:
        return self._full_text

    def resizeEvent(self, event) -> None:  # noqa: N802 - Qt naming
        super().resizeEvent(event)
        self._elide()

    def _elide(self) -> None:
        shown = self.fontMetrics().elidedText(self._full_text, Qt.TextElideMode.ElideRight, max(0, self.width()))
        super().setText(shown)


class LivePlots(QWidget):
    """The Live dock's contents. Feed it core event dicts with ``handle_event`` (GUI thread)."""

    REFRESH_MS = 40            # one redraw per tick at most
    PERCENTILE_WINDOW = 1000   # iterations behind the running p50/p99
    PERCENTILE_STRIDE = 250    # a running p50/p99 point every this many iterations ...
    MAX_PERCENTILE_POINTS = 64  # ... but at most this many per phase and tick (bounded cost)
    HISTOGRAM_WINDOW = 10_000  # iterations behind the live histogram
    HISTOGRAM_BINS = 60
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
        self.latency_plot = _make_plot("Latency per iteration", "latency", "ms", "iteration", None,
                                       si_prefix=False)
        self.latency_curve = _curve(self.latency_plot, "latency")
        # Nothing per tick may scan all the points (millions, at a no-op model's rate): no dynamic
        # range check, and the x range is set from the known count instead of auto-ranged over the
        # data (integer x: pyqtgraph skips its finite check).
        self.latency_curve.setDynamicRangeLimit(None)
        self.p50_curve = _curve(self.latency_plot, "p50", width=2)
        self.p99_curve = _curve(self.latency_plot, "p99", width=2, style_=Qt.PenStyle.DashLine)
        self.latency_plot.enableAutoRange(x=False, y=False)
        self.latency_plot.setYRange(0, 1, padding=0)
        self.latency_plot.getViewBox().sigRangeChangedManually.connect(self._user_moved_latency)
        self.hist_plot = _make_plot("Distribution", "latency", "ms", "count", None, si_prefix=False)
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
        self.memory_plot = _make_plot("Memory", "memory", "B")
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
        self.power_plot = _make_plot("GPU power", "power", "W", si_prefix=False)
        self.util_plot = _make_plot("GPU utilization", "utilization", "%", si_prefix=False)
        self.clock_plot = _make_plot("SM clock", "clock", "MHz", si_prefix=False)
        self.temp_plot = _make_plot("GPU temperature", "temperature", "°C", si_prefix=False)
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
        self.loss_plot = _make_plot("Training loss", "loss", None, "step", None, si_prefix=False)
        self.acc_plot = _make_plot("Student accuracy", "accuracy", None, "step", None, si_prefix=False)
        self.acc_plot.setXLink(self.loss_plot)
        self.train_view.addItem(self.loss_plot, row=0, col=0)
        self.train_view.addItem(self.acc_plot, row=0, col=1)
        self.train_view.setMinimumHeight(150)
        splitter.addWidget(self.train_view)
        splitter.setStretchFactor(0, 3)
        splitter.setStretchFactor(1, 2)
        splitter.setStretchFactor(2, 2)

        self._telemetry = {
            "rss": _Series(_curve(self.memory_plot, "rss")),
            "gpu_mem": _Series(_curve(self.memory_plot, "gpu_mem")),
            "gpu_proc_mem": _Series(_curve(self.memory_plot, "gpu_proc_mem")),
            "power": _Series(_curve(self.power_plot, "power")),
            "power_avg": _Series(_curve(self.power_plot, "power_avg", style_=Qt.PenStyle.DashLine)),
            "util": _Series(_curve(self.util_plot, "util")),
            "mem_util": _Series(_curve(self.util_plot, "mem_util", style_=Qt.PenStyle.DashLine)),
            "clock": _Series(_curve(self.clock_plot, "clock")),
            "temperature": _Series(_curve(self.temp_plot, "temperature")),
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
            "loss": _Series(_curve(self.loss_plot, "loss")),
            "accuracy": _Series(_curve(self.acc_plot, "accuracy", symbol="o")),
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
        self._lat_x = GrowingBuffer(4096, dtype=np.int64)
        self._lat_y = GrowingBuffer(4096)
        self._lat_dirty = False
        self._phase: str | None = None
        self._phase_label: str | None = None
        self._phase_start = 0
        self._phase_markers: list[tuple[int, str]] = []
        self._drawn_markers = 0
        for item in getattr(self, "_marker_items", []):
            self.latency_plot.removeItem(item)
        self._marker_items: list[pg.InfiniteLine] = []
        self._pct_x = GrowingBuffer(1024)
        self._p50 = GrowingBuffer(1024)
        self._p99 = GrowingBuffer(1024)
        self._running: tuple[float, float] | None = None
        self._pct_done = 0
        self._y_hi = 0.0
        self._y_follow = True
        self._x_follow = True      # whole run in view, until the user pans or zooms
        self.latency_curve.setData([], [])
        self.p50_curve.setData([], [])
        self.p99_curve.setData([], [])
        self.hist_bars.setOpts(x0=[], y0=[], width=[], height=[])
        self.latency_plot.enableAutoRange(x=False, y=False)
        self.latency_plot.setRange(xRange=(0, 10), yRange=(0, 1), padding=0)
        _set_title(self.latency_plot, _keyed_title("Latency per iteration", (
            ("latency", "latency", False), ("p50", "running p50", False), ("p99", "running p99", True))))
        for plot, (title, _) in self._telemetry_titles.items():
            _set_title(plot, title)
            if plot is not self.memory_plot:
                _set_empty_text(plot, None)
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
        _set_empty_text(self.latency_plot, "Waiting for latency data…")
        _set_empty_text(self.memory_plot, "Waiting for telemetry…")
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
        return len(self._lat_y)

    def telemetry_point_count(self) -> int:
        """Telemetry samples received since the last reset."""
        return self._telemetry_count

    def train_point_count(self) -> int:
        return len(self._train["loss"])

    @property
    def latency_buffer(self) -> GrowingBuffer:
        return self._lat_y

    def latency_values_ms(self) -> np.ndarray:
        return self._lat_y.data

    def running_percentiles(self) -> tuple[float, float] | None:
        """(p50, p99) in ms over the last ``PERCENTILE_WINDOW`` iterations of the current phase,
        as of the last tick (``None`` before any data)."""
        return self._running

    def gpu_placeholder_visible(self) -> bool:
        return self.gpu_stack.currentWidget() is self.gpu_placeholder

    def gpu_placeholder_text(self) -> str:
        return self.gpu_placeholder.text()

    def training_visible(self) -> bool:
        return not self.train_view.isHidden()

    # -- events -> buffers ---------------------------------------------------------------------------
    def _add_latencies(self, phase: str, values_ns: Any) -> None:
        values = np.asarray(values_ns, dtype=np.float64)
        n = values.shape[0]
        if n == 0:
            return
        start = len(self._lat_y)
        if phase != self._phase:
            self._phase = phase
            self._phase_start = start
            self._phase_markers.append((start, phase))
            self._y_hi = 0.0
        values *= 1e-6  # ns -> ms
        self._lat_y.extend(values)
        self._lat_x.extend(np.arange(start, start + n, dtype=np.int64))
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
        _set_empty_text(self.memory_plot, None if any(len(self._telemetry[k]) for k in
                                                      ("rss", "gpu_mem", "gpu_proc_mem"))
                        else "No memory readings in the telemetry")
        self._update_telemetry_titles()

    def _draw_train(self) -> None:
        self._train_dirty = False
        for series in self._train.values():
            series.draw()

    def _draw_latency(self) -> None:
        self._lat_dirty = False
        _set_empty_text(self.latency_plot, None)
        n = len(self._lat_y)
        y = self._lat_y.data
        self.latency_curve.setData(self._lat_x.data, y, skipFiniteCheck=True)
        self._update_running_percentiles(y, n)
        # live histogram of the recent window of the current phase
        recent = y[max(self._phase_start, n - self.HISTOGRAM_WINDOW):n]
        lo = float(recent.min())
        hi = float(np.percentile(recent, 99.9)) if recent.shape[0] > 20 else float(recent.max())
        if hi <= lo:
            hi = lo + max(1e-6, abs(lo) * 1e-3)
        counts, edges = np.histogram(recent, bins=self.HISTOGRAM_BINS, range=(lo, hi))
        self.hist_bars.setOpts(x0=np.zeros(counts.shape[0]), y0=edges[:-1], width=counts.astype(np.float64),
                               height=np.diff(edges))
        # phase markers
        while self._drawn_markers < len(self._phase_markers):
            index, phase = self._phase_markers[self._drawn_markers]
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
            self._y_hi = max(self._y_hi, *self._running)
            top = self._y_hi * self.Y_HEADROOM if self._y_hi > 0 else 1.0
            self.latency_plot.setYRange(0, top, padding=0)
        if self.follow_box.isChecked():
            self.latency_plot.setXRange(max(0, n - self.FOLLOW_ITERATIONS), max(n, 10), padding=0)
        elif self._x_follow:
            self.latency_plot.setXRange(0, max(n, 10), padding=0.02)
        self._update_status()

    def _update_running_percentiles(self, y: np.ndarray, n: int) -> None:
        """Running p50/p99 at evenly spaced points since the last tick (every PERCENTILE_STRIDE
        iterations, at most MAX_PERCENTILE_POINTS per phase and tick, always including the newest
        value), each over the PERCENTILE_WINDOW iterations before it within its own phase."""
        if n <= self._pct_done:
            return
        starts = [index for index, _ in self._phase_markers] + [n]
        xs: list[float] = []
        p50s: list[float] = []
        p99s: list[float] = []
        for phase_start, phase_end in zip(starts, starts[1:]):
            first = max(self._pct_done, phase_start)
            if phase_end <= first:
                continue
            last_x = xs[-1] if xs else (self._pct_x.data[-1] if len(self._pct_x) else None)
            if last_x is not None and last_x < phase_start:   # a new phase: break the line
                xs.append(float(phase_start) - 0.5)
                p50s.append(math.nan)
                p99s.append(math.nan)
            pending = phase_end - first
            k = max(1, min(self.MAX_PERCENTILE_POINTS, pending // self.PERCENTILE_STRIDE))
            ends = np.unique(np.linspace(first, phase_end, k + 1)[1:].round().astype(np.int64))
            full = ends - phase_start >= self.PERCENTILE_WINDOW
            if full.any():
                # all full windows at once: one vectorised percentile instead of one call per point
                windows = np.lib.stride_tricks.sliding_window_view(y[phase_start:phase_end], self.PERCENTILE_WINDOW)
                p50_full, p99_full = np.percentile(windows[ends[full] - phase_start - self.PERCENTILE_WINDOW],
                                                   (50, 99), axis=1)
            full_values = iter(zip(p50_full, p99_full)) if full.any() else iter(())
            for end, is_full in zip(ends, full):
                if is_full:
                    p50, p99 = next(full_values)
                else:   # the first window of a phase is shorter
                    p50, p99 = np.percentile(y[phase_start:end], (50, 99))
                xs.append(float(end - 1))
                p50s.append(float(p50))
                p99s.append(float(p99))
        self._pct_done = n
        if not xs:
            return
        self._pct_x.extend(xs)
        self._p50.extend(p50s)
        self._p99.extend(p99s)
        self._running = (p50s[-1], p99s[-1])
        # (NaN gaps between phases: the finite check stays on for these short series)
        self.p50_curve.setData(self._pct_x.data, self._p50.data, connect="finite", skipFiniteCheck=False)
        self.p99_curve.setData(self._pct_x.data, self._p99.data, connect="finite", skipFiniteCheck=False)

    # -- helpers --------------------------------------------------------------------------------------
    def _user_moved_latency(self, *args: Any) -> None:
        self._y_follow = False
        self._x_follow = False

    def _follow_toggled(self, on: bool) -> None:
        self._x_follow = True        # either way, the view follows the run again
        self._lat_dirty = self._lat_dirty or len(self._lat_y) > 0

    def _update_status(self) -> None:
        parts = []
        phase = self._phase_label or self._phase
        if phase:
            parts.append(f"phase: {phase}")
        n = len(self._lat_y)
        if n:
            parts.append(f"{n:,} iterations".replace(",", " "))
        if self._running is not None:
            p50, p99 = self._running
            parts.append(f"running p50 {fmt.ms(p50)}, p99 {fmt.ms(p99)} "
                         f"(last {min(self.PERCENTILE_WINDOW, n - self._phase_start)} of this phase)")
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
                _set_title(plot, title)
                _set_empty_text(plot, "not reported by this GPU" if self._gpu_seen else None)
                continue
            if plot is not self.memory_plot:
                _set_empty_text(plot, None)
            _set_title(plot, _keyed_title(title, [e for e in present if e[1]]))

    def closeEvent(self, event) -> None:  # noqa: N802 - Qt naming
        self._timer.stop()
        super().closeEvent(event)
