"""The Results' Sweep tab: a stored sweep's charts, drawn from the core's analysis
(``results.sweep_analysis.analyze_sweep``, the same figures as ``workbench show-sweep``).

Pick a sweep (the one the selected run belongs to is picked for you) and an axis: latency and
throughput along that axis with their 95 % CI bands, one curve per setting of the other axes; the
throughput-vs-latency curve with the sweet spot (the highest throughput within the latency budget)
named; and, when the sweep varies a plugin parameter, the speed-vs-fidelity frontier with its knee.
The noise rule the sweep's intervals used is said above the charts.
"""
from __future__ import annotations

import math
import time
from typing import Any

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QColor
from PySide6.QtWidgets import (QComboBox, QHBoxLayout, QLabel, QLineEdit, QPushButton, QSizePolicy, QVBoxLayout,
                               QWidget)

from ... import format as fmt
from ...errors import WorkbenchError
from ...results.store import ResultsStore
from .. import plot_style as style

SWEET_COLOR = "#D55E00"
KNEE_COLOR = "#CC79A7"
LOG_SPAN = 8.0      # numeric axes spanning this factor or more are spaced by log2


def _value_text(value: Any) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def _values_text(values: dict) -> str:
    return ", ".join(f"{k}={_value_text(v)}" for k, v in values.items())


def axis_positions(values: list) -> tuple[list[float], str]:
    """Where each axis value sits on the x axis: its number, its log2 when the numbers span
    ``LOG_SPAN`` or more, its index for text values (dtype, quantize.method). Returns the kind too."""
    numeric = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values)
    if not numeric:
        return [float(i) for i in range(len(values))], "index"
    if all(v > 0 for v in values) and max(values) / min(values) >= LOG_SPAN:
        return [math.log2(v) for v in values], "log2"
    return [float(v) for v in values], "linear"


class SweepTab(QWidget):
    """A stored sweep's scaling curves, sweet spot and frontier; Resume for an interrupted one."""

    MIN_CHART_HEIGHT = 460
    resumeRequested = Signal(int)       # sweep id: run what is left of it (workbench sweep --resume)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("sweepTab")
        self.store: ResultsStore | None = None
        self.analysis: dict | None = None
        self.sweeps: list = []

        self.sweep_combo = QComboBox()
        self.sweep_combo.setObjectName("sweepChoice")
        self.sweep_combo.setToolTip("Stored sweeps, newest first (workbench sweeps)")
        self.sweep_combo.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
        self.sweep_combo.setMinimumContentsLength(18)
        self.axis_combo = QComboBox()
        self.axis_combo.setObjectName("sweepAxisChoice")
        self.axis_combo.setToolTip("The axis the scaling curves run along; the other axes give one curve each")
        self.budget_edit = QLineEdit("2x")
        self.budget_edit.setObjectName("latencyBudget")
        self.budget_edit.setMaximumWidth(70)
        self.budget_edit.setToolTip("The sweet spot's latency budget: a factor of the batch-1 tail latency (2x) "
                                    "or milliseconds (5ms)")
        self.refresh_button = QPushButton("Refresh")
        self.refresh_button.setToolTip("Read the stored sweeps again")
        self.resume_button = QPushButton("Resume")
        self.resume_button.setObjectName("resumeSweep")
        self.resume_button.hide()           # shown for an interrupted sweep only
        self.resume_button.clicked.connect(self._resume_clicked)
        controls = QHBoxLayout()
        controls.setContentsMargins(0, 0, 0, 0)
        controls.addWidget(QLabel("Sweep"))
        controls.addWidget(self.sweep_combo, 1)
        controls.addWidget(QLabel("Axis"))
        controls.addWidget(self.axis_combo)
        controls.addWidget(QLabel("Budget"))
        controls.addWidget(self.budget_edit)
        controls.addWidget(self.resume_button)
        controls.addWidget(self.refresh_button)
        self.summary = QLabel()
        self.summary.setObjectName("sweepSummary")
        self.summary.setWordWrap(True)
        self.summary.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.summary.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        self.charts = pg.GraphicsLayoutWidget()
        self.charts.setObjectName("sweepCharts")
        self.charts.setMinimumHeight(self.MIN_CHART_HEIGHT)
        style.style_plot_widget(self.charts)
        self.latency_plot = self._plot(0, 0, "p50 latency (95 % CI)", "ms")
        self.throughput_plot = self._plot(0, 1, "Throughput (95 % CI)", "samples/s")
        self.tradeoff_plot = self._plot(1, 0, "Throughput vs latency", "samples/s")
        self.frontier_plot = self._plot(1, 1, "Speed vs fidelity (plugin parameters)", "fidelity")
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addLayout(controls)
        layout.addWidget(self.summary)
        layout.addWidget(self.charts, 1)

        self.sweep_combo.currentIndexChanged.connect(lambda _i: self._load())
        self.axis_combo.currentIndexChanged.connect(lambda _i: self._draw())
        self.budget_edit.editingFinished.connect(self._load)
        self.refresh_button.clicked.connect(lambda: self.refresh(self.current_sweep_id()))

    def _plot(self, row: int, col: int, title: str, y_label: str) -> pg.PlotItem:
        plot = self.charts.addPlot(row=row, col=col)
        plot.getViewBox().setDefaultPadding(0.08)      # room for the points' names
        style.style_plot_item(plot)
        for side in ("left", "bottom"):                # ticks are the values themselves (0.1, not 100 x0.001)
            plot.getAxis(side).enableAutoSIPrefix(False)
        plot.setTitle(style.title_html(title, "9pt"))
        plot.setLabel("left", y_label)
        plot.setMenuEnabled(False)
        return plot

    # -- which sweep --------------------------------------------------------------------------------
    def show_runs(self, store: ResultsStore, run_ids: list[int]) -> None:
        """The Results pane's call when the tab is shown: the sweep of the selected run, if any."""
        from ...results.sweeps import sweep_of_run
        self.store = store
        owner = next((s for s in (sweep_of_run(store, r) for r in run_ids) if s is not None), None)
        self.refresh(owner if owner is not None else self.current_sweep_id())

    def show_sweep(self, store: ResultsStore, sweep_id: int) -> None:
        self.store = store
        self.refresh(sweep_id)

    def current_sweep_id(self) -> int | None:
        return self.sweep_combo.currentData()

    def refresh(self, select: int | None = None) -> None:
        """Read the stored sweeps again and show ``select`` (default: the newest)."""
        if self.store is None:
            return
        from ...results.sweeps import list_sweeps
        try:
            self.sweeps = list_sweeps(self.store)
        except WorkbenchError as exc:
            self.sweeps = []
            self.summary.setText(f"Cannot read the sweeps: {exc}")
        self.sweep_combo.blockSignals(True)
        self.sweep_combo.clear()
        for sweep in self.sweeps:
            axes = " × ".join(a["name"] for a in sweep.plan.get("axes") or []) or "combinations"
            when = time.strftime("%m-%d %H:%M", time.localtime(sweep.created_at))
            self.sweep_combo.addItem(f"#{sweep.id} {sweep.name + ' · ' if sweep.name else ''}{sweep.model} · {axes}"
                                     f" · {sweep.status} · {when}", sweep.id)
        index = self.sweep_combo.findData(select) if select is not None else 0
        self.sweep_combo.setCurrentIndex(max(0, index) if self.sweeps else -1)
        self.sweep_combo.blockSignals(False)
        self._load()

    def _resume_clicked(self) -> None:
        sweep_id = self.current_sweep_id()
        if sweep_id is not None:
            self.resume_button.setEnabled(False)     # until the sweep is read again (it runs now)
            self.resumeRequested.emit(sweep_id)

    def _show_resume(self, sweep) -> None:
        """Resume is offered for an interrupted sweep with runs left (stopped, or its process died)."""
        left = 0 if sweep is None else sum(p.status != "done" for p in sweep.points)
        resumable = sweep is not None and sweep.status == "interrupted" and left > 0
        self.resume_button.setVisible(resumable)
        self.resume_button.setEnabled(resumable)
        if resumable:
            self.resume_button.setToolTip(f"Run the {left} run(s) of sweep #{sweep.id} that did not finish, in "
                                          f"the run queue (workbench sweep --resume {sweep.id})")

    def _load(self) -> None:
        from ...results.sweep_analysis import analyze_sweep
        from ...results.sweeps import get_sweep
        sweep_id = self.current_sweep_id()
        self.analysis = None
        self._show_resume(next((s for s in self.sweeps if s.id == sweep_id), None))
        if self.store is None or sweep_id is None:
            self._clear("No sweep stored yet: Run ▸ Sweep… (or <code>workbench sweep MODEL --grid batch=1,8,32</code>) "
                        "measures one.")
            return
        try:
            self.analysis = analyze_sweep(self.store, get_sweep(self.store, sweep_id), self.budget_edit.text() or None)
        except WorkbenchError as exc:
            self._clear(f"Cannot show sweep #{sweep_id}: {exc}")
            return
        previous = self.axis_combo.currentText()
        self.axis_combo.blockSignals(True)
        self.axis_combo.clear()
        for curve in self.analysis["curves"]:
            self.axis_combo.addItem(curve["axis"])
        self.axis_combo.setCurrentIndex(max(0, self.axis_combo.findText(previous)))
        self.axis_combo.blockSignals(False)
        self._draw()

    def _clear(self, text: str) -> None:
        self.summary.setText(text)
        self.axis_combo.clear()
        for plot in self.plots():
            plot.clear()

    def plots(self) -> list[pg.PlotItem]:
        return [self.latency_plot, self.throughput_plot, self.tradeoff_plot, self.frontier_plot]

    # -- drawing ------------------------------------------------------------------------------------
    def curve(self) -> dict | None:
        if not self.analysis:
            return None
        return next((c for c in self.analysis["curves"] if c["axis"] == self.axis_combo.currentText()), None)

    def _draw(self) -> None:
        for plot in self.plots():
            plot.clear()
            plot.showAxis("left")
            plot.showAxis("bottom")
            plot.enableAutoRange()
            if plot.legend is not None:
                plot.legend.clear()
        if not self.analysis:
            return
        self.summary.setText(summary_html(self.analysis))
        curve = self.curve()
        if curve is not None:
            self._draw_scaling(curve)
            self._draw_tradeoff(curve)
        self._draw_frontier()

    def _axis_values(self, curve: dict) -> list:
        axis = next(a for a in self.analysis["axes"] if a["name"] == curve["axis"])
        return list(axis["values"])

    def _draw_scaling(self, curve: dict) -> None:
        values = self._axis_values(curve)
        positions, kind = axis_positions(values)
        where = dict(zip(map(_value_text, values), positions))
        ticks = [[(p, _value_text(v)) for p, v in zip(positions, values)]]
        name = curve["axis"] + (" (log scale)" if kind == "log2" else "")
        for plot in (self.latency_plot, self.throughput_plot):
            plot.getAxis("bottom").setTicks(ticks)
            plot.setLabel("bottom", name)
        many = len(curve["series"]) > 1
        for i, series in enumerate(curve["series"]):
            color = style.run_color(i)
            label = _values_text(series["fixed"]) if many else None
            points = [p for p in series["points"] if p["p50_ms"] is not None]
            xs = [where[_value_text(p["x"])] for p in points]
            _line_with_band(self.latency_plot, xs, [p["p50_ms"] for p in points],
                            [p["p50_ci_ms"] for p in points], color, label)
            _line_with_band(self.throughput_plot, xs, [p["throughput"] for p in points],
                            [p["throughput_ci"] for p in points], color, label)
        if many:
            for plot in (self.latency_plot, self.throughput_plot):
                _legend(plot)

    def _draw_tradeoff(self, curve: dict) -> None:
        """Throughput vs the sweet spot's latency metric, one curve per series, each point named by
        its axis value; the sweet spot starred with its budget as a dashed line."""
        spot = self.analysis["sweet_spot"]
        metric = spot.get("metric") or "p50"
        entries = {e["index"]: e for e in self.analysis["points"]}
        plot = self.tradeoff_plot
        plot.setLabel("bottom", f"{metric} latency (ms)")
        for i, series in enumerate(curve["series"]):
            color = style.run_color(i)
            pts = [(_tail(entries[p["point"]], metric), p["throughput"], p) for p in series["points"]]
            pts = [t for t in pts if t[0] is not None and t[1] is not None]
            if not pts:
                continue
            plot.plot([t[0] for t in pts], [t[1] for t in pts], pen=pg.mkPen(color, width=2), symbol="o",
                      symbolSize=7, symbolBrush=color, symbolPen=None)
            best_point = (spot.get("best") or {}).get("point") if spot.get("found") else None
            for x, y, p in pts:
                if p["point"] != best_point:      # the sweet spot's own label names it
                    _point_label(plot, f"{curve['axis']}={_value_text(p['x'])}", x, y, [t[0] for t in pts])
        best = spot.get("best") if spot.get("found") else None
        if best is not None:
            plot.addItem(pg.InfiniteLine(pos=best["budget_ms"], angle=90, label=f"budget {fmt.ms(best['budget_ms'])}",
                                         labelOpts={"position": 0.55, "color": SWEET_COLOR, "anchors": [(0, 0.5), (0, 0.5)]},
                                         pen=pg.mkPen(SWEET_COLOR, width=1, style=Qt.PenStyle.DashLine)))
            star = pg.ScatterPlotItem([best["latency_ms"]], [best["throughput"]], symbol="star", size=20,
                                      brush=pg.mkBrush(SWEET_COLOR), pen=pg.mkPen(style.foreground()))
            plot.addItem(star)
            text = pg.TextItem(f"sweet spot: {_values_text(best['values'])}", color=SWEET_COLOR, anchor=(1.05, 1.2))
            text.setPos(best["latency_ms"], best["throughput"])
            plot.addItem(text)
        else:
            plot.setTitle(style.title_html("Throughput vs latency (no sweet spot)", "9pt"))
            return
        plot.setTitle(style.title_html("Throughput vs latency", "9pt"))

    def _draw_frontier(self) -> None:
        plot = self.frontier_plot
        fronts = self.analysis["frontier"]
        plot.setLabel("bottom", "speed-up (× the baseline)")
        kind = fronts[0]["fidelity_kind"] if fronts else None
        plot.setLabel("left", (kind or "fidelity").replace("_", " "))
        if not fronts:
            plugin_axes = [a["name"] for a in self.analysis["axes"] if a["kind"] == "plugin"]
            why = ("no point has both a speed-up and a fidelity yet" if plugin_axes
                   else "sweep a plugin parameter (e.g. prune.amount) to see speed against fidelity")
            _centered_note(plot, why)
            return
        for i, front in enumerate(fronts):
            color = style.run_color(i)
            by_index = {p["point"]: p for p in front["points"]}
            on = sorted((by_index[j] for j in front["front"]), key=lambda p: p["speedup"])
            off = [p for p in front["points"] if not p["on_front"]]
            plot.plot([p["speedup"] for p in on], [p["fidelity"] for p in on], pen=pg.mkPen(color, width=2),
                      symbol="o", symbolSize=8, symbolBrush=color, symbolPen=None,
                      name=_values_text(front["fixed"]) if len(fronts) > 1 else None)
            if off:
                plot.addItem(pg.ScatterPlotItem([p["speedup"] for p in off], [p["fidelity"] for p in off], symbol="o",
                                                size=8, brush=None, pen=pg.mkPen(color)))
            plugin_axes = {a["name"] for a in self.analysis["axes"] if a["kind"] == "plugin"}
            xs = [p["speedup"] for p in front["points"]]
            for p in front["points"]:
                _point_label(plot, _values_text({k: v for k, v in p["values"].items() if k in plugin_axes}),
                             p["speedup"], p["fidelity"], xs)
            knee = by_index.get(front["knee"]) if front["knee"] is not None else None
            if knee is not None:
                plot.addItem(pg.ScatterPlotItem([knee["speedup"]], [knee["fidelity"]], symbol="star", size=20,
                                                brush=pg.mkBrush(KNEE_COLOR), pen=pg.mkPen(style.foreground())))
                text = pg.TextItem("knee", color=KNEE_COLOR, anchor=(0.5, -0.3))
                text.setPos(knee["speedup"], knee["fidelity"])
                plot.addItem(text)
        if len(fronts) > 1:
            _legend(plot)


# -- helpers -------------------------------------------------------------------------------------------
def _tail(entry: dict, metric: str) -> float | None:
    return entry.get("p50_ms") if metric == "p50" else entry.get(f"{metric}_ms")


def _line_with_band(plot: pg.PlotItem, xs: list[float], ys: list[float], cis: list, color: QColor,
                    name: str | None) -> None:
    if not xs:
        return
    if all(ci for ci in cis) and len(xs) > 1:
        low = pg.PlotCurveItem(xs, [ci[0] for ci in cis], pen=pg.mkPen(None))
        high = pg.PlotCurveItem(xs, [ci[1] for ci in cis], pen=pg.mkPen(None))
        band = QColor(color)
        band.setAlpha(60)
        plot.addItem(low)
        plot.addItem(high)
        plot.addItem(pg.FillBetweenItem(low, high, brush=pg.mkBrush(band)))
    elif all(ci for ci in cis):        # one point: its interval as an error bar (arrays: pyqtgraph computes on them)
        plot.addItem(pg.ErrorBarItem(x=np.array(xs[0:1], float), y=np.array(ys[0:1], float),
                                     top=np.array([cis[0][1] - ys[0]]), bottom=np.array([ys[0] - cis[0][0]]),
                                     beam=0.1, pen=pg.mkPen(color)))
    plot.plot(xs, ys, pen=pg.mkPen(color, width=2), symbol="o", symbolSize=7, symbolBrush=color, symbolPen=None,
              name=name)


def _point_label(plot: pg.PlotItem, text: str, x: float, y: float, all_x: list[float]) -> None:
    """A point's name beside it, on the side facing the middle of the plot (never cut at an edge)."""
    middle = (min(all_x) + max(all_x)) / 2
    item = pg.TextItem(text, color=style.muted(), anchor=(1.05, 1.0) if x > middle else (-0.05, 1.0))
    item.setPos(x, y)
    plot.addItem(item)


def _legend(plot: pg.PlotItem) -> None:
    if plot.legend is None:
        plot.addLegend(offset=(-10, 10), labelTextColor=style.foreground())
    for item in plot.listDataItems():
        if item.name():
            plot.legend.addItem(item, item.name())


def _centered_note(plot: pg.PlotItem, text: str) -> None:
    import textwrap
    plot.hideAxis("left")
    plot.hideAxis("bottom")
    plot.setXRange(0, 1)
    plot.setYRange(0, 1)
    item = pg.TextItem(textwrap.fill(text, 32), color=style.muted(), anchor=(0.5, 0.5))
    item.setPos(0.5, 0.5)
    plot.addItem(item)


def summary_html(analysis: dict) -> str:
    """What the charts rest on, in sentences: status and points, the noise rule, the sweet spot, the
    knee, failures."""
    counts = analysis["counts"]
    total = sum(counts.values())
    axes = " × ".join(f"{a['name']} [{', '.join(map(_value_text, a['values']))}]" for a in analysis["axes"])
    lines = [f"<b>{analysis['label']}</b> · {analysis['model']} · {axes or 'combinations'} · {analysis['status']}, "
             f"{counts['done']}/{total} run(s) done" + (f", {counts['failed']} failed" if counts["failed"] else "")
             + (f" · <i>{analysis['error']}</i>" if analysis.get("error") and analysis["status"] != "done" else "")]
    lines.append(f"Noise: {analysis['noise']['why']}.")
    spot = analysis["sweet_spot"]
    if spot.get("found"):
        best = spot["best"]
        lines.append(f"<span style='color:{SWEET_COLOR}'>★ Sweet spot: <b>{_values_text(best['values'])}</b></span> — "
                     f"{fmt.count(best['throughput'])}/s at {spot['metric']} {fmt.ms(best['latency_ms'])} "
                     f"(budget {best['rule']}: {fmt.ms(best['budget_ms'])})" + (f"; {spot['note']}" if spot.get("note")
                                                                                else ""))
    else:
        lines.append(f"No sweet spot: {spot.get('reason', 'no point within the budget')}.")
    for front in analysis["frontier"]:
        where = f" ({_values_text(front['fixed'])})" if front["fixed"] else ""
        if front["knee"] is not None:
            knee = next(p for p in front["points"] if p["point"] == front["knee"])
            lines.append(f"<span style='color:{KNEE_COLOR}'>Knee{where}: <b>{_values_text(knee['values'])}</b></span> — "
                         f"{knee['speedup']:.2f}× at {front['fidelity_kind'] or 'fidelity'} {fmt.pct(knee['fidelity'])}")
        else:
            lines.append(f"No knee{where}: {front['knee_reason']}.")
    failed = [p for p in analysis["points"] if p["status"] in ("failed", "cancelled") and p["failures"]]
    for p in failed[:3]:
        lines.append(f"Point {_values_text(p['values']) or p['index']}: {p['status']} — {p['failures'][-1]['error']}")
    return "<br>".join(lines)
