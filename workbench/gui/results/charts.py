"""The Results dock's comparison charts of the selected runs: bars per key metric vs the baseline,
latency CDFs, and latency vs fidelity with the Pareto front (``workbench.results.pareto``)."""
from __future__ import annotations

import textwrap
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QTabWidget, QVBoxLayout, QWidget

from ... import format as fmt
from ...results.compare import compare_runs
from ...results.distribution import latency_cdf
from ...results.pareto import pareto_fronts
from ...results.store import ResultsStore
from .. import plot_style as style
from .columns import model_name

@dataclass
class _Metric:
    key: str
    title: str
    unit: str
    scale: float
    better: str      # "lower" | "higher"
    missing: str     # placeholder text when no selected run has it


BAR_METRICS = (
    _Metric("p50_ms", "p50 latency", "ms", 1.0, "lower", "no latency (failed runs)"),
    _Metric("p99_ms", "p99 latency", "ms", 1.0, "lower", "no p99 (needs ≥ 662 iterations)"),
    _Metric("throughput", "Throughput", "samples/s", 1.0, "higher", "no throughput (failed runs)"),
    _Metric("size_bytes", "Model size", "MB", 1e-6, "lower", "no model size recorded"),
    _Metric("energy_j_per_inference", "Energy / inference", "mJ", 1e3, "lower",
            "no energy data: needs an NVIDIA GPU with NVML"),
)


class ComparisonCharts(QWidget):
    """Charts of the selected runs: bars per key metric vs the baseline, latency CDFs, and
    latency vs fidelity with the Pareto front."""

    MAX_CDF_POINTS = 2000

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        self.tabs = QTabWidget()
        layout.addWidget(self.tabs)

        self.metrics_view = pg.GraphicsLayoutWidget()
        style.style_plot_widget(self.metrics_view)
        self.bar_plots: dict[str, pg.PlotItem] = {}
        for i, metric in enumerate(BAR_METRICS):
            plot = pg.PlotItem()
            style.style_plot_item(plot, grid=False)
            plot.showGrid(y=True, alpha=0.15)
            plot.setLabel("left", metric.title, units=metric.unit)
            plot.getAxis("left").enableAutoSIPrefix(False)
            plot.setMouseEnabled(x=False, y=True)
            plot.setMenuEnabled(False)
            self.bar_plots[metric.key] = plot
            self.metrics_view.addItem(plot, row=i // 3, col=i % 3)
        self.key_label = pg.LabelItem(justify="left", color=style.foreground().name())
        style.let_label_shrink(self.key_label)
        self.metrics_view.addItem(self.key_label, row=1, col=2)
        self.tabs.addTab(self.metrics_view, "Metrics")

        self.dist_view = pg.GraphicsLayoutWidget()
        style.style_plot_widget(self.dist_view)
        self.cdf_plot = pg.PlotItem()
        style.style_plot_item(self.cdf_plot)
        self.cdf_plot.setTitle("Latency distribution (CDF, timed iterations)", color=style.foreground().name(),
                               size="9pt")
        self.cdf_plot.setLabel("bottom", "latency per iteration", units="ms")
        self.cdf_plot.getAxis("bottom").enableAutoSIPrefix(False)
        self.cdf_plot.setLabel("left", "fraction of iterations ≤ latency")
        self.scatter_plot = pg.PlotItem()
        style.style_plot_item(self.scatter_plot)
        self.scatter_plot.getAxis("bottom").enableAutoSIPrefix(False)
        self.scatter_plot.getAxis("left").enableAutoSIPrefix(False)
        self.scatter_plot.setLabel("bottom", "p50 latency", units="ms")
        self.dist_view.addItem(self.cdf_plot, row=0, col=0)
        self.dist_view.addItem(self.scatter_plot, row=0, col=1)
        self.tabs.addTab(self.dist_view, "Distribution && trade-off")

        self.rows: list[dict] = []
        self.cdf_curves: list[pg.PlotDataItem] = []
        self.bar_values: dict[str, dict[int, float]] = {}
        self.baseline_values: dict[str, float] = {}
        self.scatter_points: dict[int, tuple[float, float]] = {}
        self.scatter_metric: str | None = None
        self.pareto_ids: list[int] = []
        self.placeholders: dict[str, str] = {}
        self.show_runs(None, [])

    # -- public API ------------------------------------------------------------------------------
    def show_runs(self, store: ResultsStore | None, run_ids: Sequence[int]) -> None:
        """Draw the charts for ``run_ids`` (the table's selection); their baselines are added as
        reference bars/points when they are not selected themselves."""
        run_ids = list(dict.fromkeys(run_ids))
        rows = compare_runs(store, run_ids) if (store is not None and run_ids) else []
        selected = {r["id"] for r in rows}
        extra = [b for b in dict.fromkeys(r["baseline_id"] for r in rows
                                          if r["baseline_id"] is not None and r["status"] == "done")
                 if b not in selected]
        baselines = compare_runs(store, extra) if (store is not None and extra) else []
        for row in baselines:
            row["reference_only"] = True
        self.rows = baselines + rows
        self._colors = {row["id"]: style.run_color(i) for i, row in enumerate(self.rows)}
        self.placeholders = {}
        self._draw_bars()
        self._draw_key()
        self._draw_cdfs(store)
        self._draw_scatter()

    def clear(self) -> None:
        self.show_runs(None, [])

    # -- drawing ---------------------------------------------------------------------------------
    def _label(self, row: dict) -> str:
        return f"#{row['id']}"

    def _baseline_row(self) -> dict | None:
        ids = {r["baseline_id"] for r in self.rows if r["baseline_id"] is not None and r["status"] == "done"}
        if len(ids) != 1:
            return None
        bid = ids.pop()
        return next((r for r in self.rows if r["id"] == bid), None)

    def _draw_bars(self) -> None:
        baseline = self._baseline_row()
        self.bar_values = {}
        self.baseline_values = {}
        for metric in BAR_METRICS:
            plot = self.bar_plots[metric.key]
            plot.clear()
            # short titles: a title's width is its plot's minimum width, and three plots share a row
            # (the dashed baseline line is explained once, in the key)
            title = f"{metric.title} ({'lower' if metric.better == 'lower' else 'higher'} is better)"
            plot.setTitle(title, color=style.foreground().name(), size="9pt")
            plot.showAxis("left")
            plot.showAxis("bottom")
            present = [(i, row) for i, row in enumerate(self.rows) if row.get(metric.key) is not None]
            values = {row["id"]: row[metric.key] * metric.scale for _, row in present}
            self.bar_values[metric.key] = values
            ticks = [(i, self._label(row) + (" (failed)" if row["status"] != "done" else "")) for i, row in
                     enumerate(self.rows)]
            plot.getAxis("bottom").setTicks([ticks])
            if not present:
                text = metric.missing if self.rows else "select runs in the table"
                self._placeholder(plot, text, metric.key)
                continue
            xs = np.array([i for i, _ in present], dtype=float)
            heights = np.array([values[row["id"]] for _, row in present])
            brushes = [pg.mkBrush(self._colors[row["id"]]) for _, row in present]
            bars = pg.BarGraphItem(x=xs, height=heights, width=0.6, brushes=brushes, pen=pg.mkPen(None))
            plot.addItem(bars)
            if metric.key == "p50_ms":
                self._error_bars(plot, present)
            top = float(heights.max()) if heights.size else 1.0
            base_value = baseline.get(metric.key) if baseline is not None else None
            if base_value is not None:
                base_value *= metric.scale
                self.baseline_values[metric.key] = base_value
                line = pg.InfiniteLine(pos=base_value, angle=0, movable=False,
                                       pen=pg.mkPen(style.muted(), width=1, style=Qt.PenStyle.DashLine))
                plot.addItem(line)
            for x, (_, row) in zip(xs, present):
                value = values[row["id"]]
                text = f"{value:.3g}" if value < 1000 else f"{value:,.0f}".replace(",", " ")
                if base_value and row["id"] != (baseline or {}).get("id"):
                    text += f"\n{value / base_value:.2f}×"
                label = pg.TextItem(text, color=style.foreground(), anchor=(0.5, 1.0))
                label.setPos(x, value)
                plot.addItem(label)
            plot.setXRange(-0.6, len(self.rows) - 0.4, padding=0)
            plot.setYRange(0, top * 1.6, padding=0)   # room for the two-line value labels

    def _error_bars(self, plot: pg.PlotItem, present: list[tuple[int, dict]]) -> None:
        xs, ys, lows, highs = [], [], [], []
        for i, row in present:
            ci = row.get("p50_ci_ms")
            if not ci:
                continue
            xs.append(i)
            ys.append(row["p50_ms"])
            lows.append(max(0.0, row["p50_ms"] - ci[0]))
            highs.append(max(0.0, ci[1] - row["p50_ms"]))
        if xs:
            plot.addItem(pg.ErrorBarItem(x=np.array(xs, float), y=np.array(ys), bottom=np.array(lows),
                                         top=np.array(highs), beam=0.2, pen=pg.mkPen(style.foreground())))

    def _draw_key(self) -> None:
        if not self.rows:
            self.key_label.setText("")
            return
        lines = []
        for row in self.rows:
            color = self._colors[row["id"]].name()
            note = " — baseline (not selected)" if row.get("reference_only") else ""
            if row["status"] != "done":
                note += f" — {row['status']}"
            name = row["name"] or row["chain"]
            lines.append(f"<span style='color:{color}'>■</span> #{row['id']} {_html(name)} "
                         f"<span style='color:{style.muted().name()}'>({_html(model_name(row['model']))}, "
                         f"{_html(row['device'] or '?')}){_html(note)}</span>")
        baseline = self._baseline_row()
        if baseline is not None:
            lines.append(f"<span style='color:{style.muted().name()}'>╌ dashed line: baseline "
                         f"#{baseline['id']}</span>")
        self.key_label.setText("<br>".join(lines), size="9pt")

    def _draw_cdfs(self, store: ResultsStore | None) -> None:
        self.cdf_plot.clear()
        self.cdf_plot.showAxis("left")
        self.cdf_plot.showAxis("bottom")
        self.cdf_curves = []
        legend = self.cdf_plot.legend
        if legend is not None:
            legend.clear()
        else:
            legend = self.cdf_plot.addLegend(offset=(-10, -10), labelTextColor=style.foreground())
        lows, highs = [], []
        for row in self.rows:
            if row["status"] != "done" or store is None:
                continue
            ns = store.latencies(row["id"])
            if not ns:
                continue
            values, fractions = latency_cdf(ns, max(2, min(len(ns), self.MAX_CDF_POINTS)))
            curve = self.cdf_plot.plot(values, fractions, pen=pg.mkPen(self._colors[row["id"]], width=2),
                                       name=f"#{row['id']} {row['name'] or row['chain']}")
            self.cdf_curves.append(curve)
            lows.append(values[0])
            highs.append(values[min(len(values) - 1, int(0.995 * len(values)))])   # the far tail would squash the rest
        if not self.cdf_curves:
            self._placeholder(self.cdf_plot, "no latencies: select finished runs" if self.rows else
                              "select runs in the table", "cdf")
            return
        lo, hi = min(lows), max(highs)
        pad = (hi - lo) * 0.05 or hi * 0.05 or 1.0
        self.cdf_plot.setXRange(max(0.0, lo - pad), hi + pad, padding=0)
        self.cdf_plot.setYRange(-0.03, 1.03, padding=0)   # 0 and 1 inside, so both get a label

    def _draw_scatter(self) -> None:
        plot = self.scatter_plot
        plot.clear()
        plot.showAxis("left")
        plot.showAxis("bottom")
        self.scatter_points = {}
        self.pareto_ids = []
        done = [r for r in self.rows if r["status"] == "done" and r.get("p50_ms") is not None]
        if any(r.get("top1_agreement") is not None for r in done):
            key, label, scale, units = "top1_agreement", "top-1 agreement with the unoptimized model", 100.0, "%"
        elif any(r.get("cosine") is not None for r in done):
            key, label, scale, units = "cosine", "output cosine similarity", 1.0, None
        else:
            key = None
        self.scatter_metric = key
        if key is None:
            plot.setTitle("Latency vs fidelity (dashed: Pareto front)", color=style.foreground().name(), size="9pt")
            plot.setLabel("left", "fidelity")
            self._placeholder(plot, "no fidelity data in the selected runs" if self.rows else
                              "select runs in the table", "scatter")
            return
        plot.setLabel("left", label, units=units)
        points = [(r["p50_ms"], r[key] * scale) for r in done if r.get(key) is not None]
        rows = [r for r in done if r.get(key) is not None]
        for row, (x, y) in zip(rows, points):
            self.scatter_points[row["id"]] = (x, y)
        # one front per model: fidelity is agreement with each model's own unoptimized output
        fronts = pareto_fronts(points, [r["model"] for r in rows])
        per_model = " per model" if len(fronts) > 1 else ""
        plot.setTitle(f"Latency vs fidelity (dashed: Pareto front{per_model})", color=style.foreground().name(),
                      size="9pt")
        self.pareto_ids = [rows[i]["id"] for front in fronts.values() for i in front]
        for front in fronts.values():
            if len(front) > 1:
                fx = [points[i][0] for i in front]
                fy = [points[i][1] for i in front]
                # staircase: what is achievable at each latency
                sx = np.repeat(fx, 2)[1:]
                sy = np.repeat(fy, 2)[:-1]
                plot.plot(sx, sy, pen=pg.mkPen(style.muted(), width=1.5, style=Qt.PenStyle.DashLine))
        on_front = {i for front in fronts.values() for i in front}
        spots = [{"pos": p, "brush": pg.mkBrush(self._colors[r["id"]]), "size": 13 if i in on_front else 10,
                  "pen": pg.mkPen(style.foreground(), width=2) if i in on_front else pg.mkPen(None),
                  "data": r["id"]} for i, (r, p) in enumerate(zip(rows, points))]
        scatter = pg.ScatterPlotItem(spots=spots, hoverable=True, tip=self._spot_tip)
        plot.addItem(scatter)
        labels: dict[tuple[float, float], list[str]] = {}
        for row, (x, y) in zip(rows, points):     # coincident points share one label
            labels.setdefault((x, y), []).append(f"#{row['id']}")
        for (x, y), names in labels.items():
            text = pg.TextItem(", ".join(names), color=style.foreground(), anchor=(-0.15, 1.0))
            text.setPos(x, y)
            plot.addItem(text)
        xs = [p[0] for p in points]
        ys = [p[1] for p in points]
        xpad = (max(xs) - min(xs)) * 0.15 or max(xs) * 0.1 or 1.0
        ypad = (max(ys) - min(ys)) * 0.15 or (abs(max(ys)) * 0.01 or 1.0)
        plot.setXRange(max(0.0, min(xs) - xpad), max(xs) + xpad, padding=0)
        plot.setYRange(min(ys) - ypad, max(ys) + ypad, padding=0)

    def _spot_tip(self, x: float, y: float, data: Any) -> str:
        row = next((r for r in self.rows if r["id"] == data), None)
        name = (row["name"] or row["chain"]) if row else ""
        return f"#{data} {name}\np50 {fmt.ms(x)}\nfidelity {y:.4g}"

    def _placeholder(self, plot: pg.PlotItem, text: str, key: str) -> None:
        self.placeholders[key] = text
        plot.getAxis("bottom").setTicks(None)
        plot.hideAxis("left")
        plot.hideAxis("bottom")
        # wrapped: a small chart must not cut the reason off
        item = pg.TextItem(textwrap.fill(text, 30), color=style.muted(), anchor=(0.5, 0.5))
        plot.addItem(item)
        plot.setXRange(0, 1, padding=0)
        plot.setYRange(0, 1, padding=0)
        item.setPos(0.5, 0.5)


def _html(text: str) -> str:
    return (str(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;"))
