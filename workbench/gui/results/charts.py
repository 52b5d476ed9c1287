"""The Results dock's comparison charts of the selected runs: one horizontal bar chart per key
metric (speed and fidelity side by side, bars in the colour of the core's verdict), latency CDFs,
and latency vs fidelity with the Pareto front (``workbench.results.pareto``).

Bar values are written beside the bars on the plot's right axis, in the table's units
(``workbench.format``), so a value never runs into a title, and charts with nothing to show are
left out (the key says why) instead of taking room from the ones that matter."""
from __future__ import annotations

import textwrap
from dataclasses import dataclass
from typing import Any, Callable, Sequence

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QEvent, QObject, Qt
from PySide6.QtGui import QColor, QFontMetrics
from PySide6.QtWidgets import QBoxLayout, QFrame, QHBoxLayout, QLabel, QScrollArea, QTabWidget, QVBoxLayout, QWidget

from ... import format as fmt
from ...results.compare import compare_runs, verdict_text
from ...results.distribution import latency_cdf
from ...results.pareto import pareto_fronts
from ...results.store import ResultsStore
from ...results.verdict import BASELINE, DEFAULT_MIN_FIDELITY, LOSS, NOISE, WIN, default_gate
from .. import plot_style as style
from .columns import energy_text, model_name

MIB = float(1 << 20)
# Verdict colours, as the reports draw them: green a win, red a loss, grey inside the noise.
VERDICT_COLORS = {WIN: "#2e8540", LOSS: "#c0392b", NOISE: "#8a949e", BASELINE: "#1f5fa8"}
FAILED_COLOR = "#8a949e"
# Run colours (CDF curves) without the greens and reds: here those mean a verdict, never a run.
RUN_PALETTE = tuple(c for c in style.RUN_COLORS if c.upper() not in ("#009E73", "#D55E00"))
FIDELITY = "fidelity"     # the fidelity chart's key: accuracy, else top-1 agreement, else cosine


@dataclass
class _Metric:
    key: str
    title: str
    scale: float                      # stored value -> bar length (the unit of ``bar_values``)
    text: Callable[[float], str]      # stored value -> the label beside its bar
    better: str                       # "lower" | "higher"
    missing: str                      # why the chart is left out when no selected run has it


BAR_METRICS = (
    _Metric("p50_ms", "p50 latency", 1.0, fmt.ms, "lower", "no latency (failed runs)"),
    _Metric(FIDELITY, "Fidelity", 100.0, fmt.pct, "higher", "no fidelity measured"),
    _Metric("size_bytes", "Model size", 1 / MIB, fmt.nbytes, "lower", "no model size recorded"),
    _Metric("throughput", "Throughput", 1.0, lambda v: f"{fmt.count(v)}/s", "higher", "no throughput (failed runs)"),
    _Metric("p99_ms", "p99 latency", 1.0, fmt.ms, "lower", "no p99 (needs ≥ 662 iterations)"),
    _Metric("energy_j_per_inference", "Energy / inference", 1e3, energy_text, "lower",
            "no energy data: needs an NVIDIA GPU with NVML"),
)
# What the fidelity chart shows, best first: accuracy needs labels, top-1 agreement classes, cosine neither.
FIDELITY_CHOICES = (("accuracy", "Accuracy", 100.0), ("top1_agreement", "Top-1 agreement", 100.0),
                    ("cosine", "Output cosine", 1.0))
ALWAYS_SHOWN = ("p50_ms", FIDELITY)    # drawn even when empty: speed and fidelity are never apart


def agreement_title(rows: list[dict]) -> str:
    """What the rows' ``top1_agreement`` is: a language model's is its next-token agreement (the
    fraction of positions where it predicts the unoptimized model's token), a classifier's the
    fraction of samples with the same class."""
    measured = [r for r in rows if r.get("top1_agreement") is not None]
    language = sum(1 for r in measured if r.get("next_token_agreement") is not None)
    if language and language == len(measured):
        return "Next-token agreement"
    return "Top-1 / next-token agreement" if language else "Top-1 agreement"


def verdict_color(row: dict) -> str:
    """The bar colour of a run: its verdict's; a run below the fidelity gate is never green."""
    verdict = row.get("verdict") or {}
    level = LOSS if verdict.get("fidelity_ok") is False else verdict.get("level")
    return VERDICT_COLORS.get(level, FAILED_COLOR)


class ComparisonCharts(QWidget):
    """Charts of the selected runs: bars per key metric vs the baseline, latency CDFs, and
    latency vs fidelity with the Pareto front."""

    MAX_CDF_POINTS = 2000
    MIN_BAR_WIDTH = 70      # px a bar chart keeps for its bars beside its labels
    KEY_BESIDE_FROM = 640   # px of charts area from which the key sits beside the charts, not below
    KEY_WIDTH = 260

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        self.tabs = QTabWidget()
        layout.addWidget(self.tabs)

        metrics_tab = QWidget()
        metrics_layout = QHBoxLayout(metrics_tab)
        metrics_layout.setContentsMargins(0, 0, 0, 0)
        metrics_layout.setSpacing(0)
        self.metrics_view = pg.GraphicsLayoutWidget()
        style.style_plot_widget(self.metrics_view)
        self.bar_plots: dict[str, pg.PlotItem] = {}
        for metric in BAR_METRICS:
            plot = pg.PlotItem()
            style.style_plot_item(plot, grid=False)
            plot.setMouseEnabled(x=False, y=False)
            plot.setMenuEnabled(False)
            plot.hideButtons()
            for side in ("left", "right"):
                axis = plot.getAxis(side)
                axis.setPen(pg.mkPen(None))            # labels only: the bars carry the scale
                axis.setStyle(tickLength=0, tickTextOffset=4)
            # the title spans the axes too: above the view box alone it was cut to a few letters
            plot.layout.removeItem(plot.titleLabel)
            plot.layout.addItem(plot.titleLabel, 0, 0, 1, 3)
            self.bar_plots[metric.key] = plot
        self._bar_layout: list[str] = []
        self._bar_columns = 0
        self._label_widths: dict[str, int] = {}    # px of a chart's left + right labels
        # The key: a wrapping rich-text label beside the charts (a chart cell would clip long verdicts),
        # below them where the pane is narrow (the fidelity chart stays beside the latency one).
        self.key_label = QLabel()
        self.key_label.setObjectName("chartsKey")
        self.key_label.setWordWrap(True)
        self.key_label.setTextFormat(Qt.TextFormat.RichText)
        self.key_label.setAlignment(Qt.AlignmentFlag.AlignTop | Qt.AlignmentFlag.AlignLeft)
        self.key_label.setContentsMargins(6, 4, 6, 4)
        # too short a pane scrolls the charts instead of piling their labels on top of each other
        self.metrics_scroll = QScrollArea()
        self.metrics_scroll.setWidgetResizable(True)
        self.metrics_scroll.setFrameShape(QFrame.Shape.NoFrame)
        self.metrics_scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        content = QWidget()
        self.metrics_box = QBoxLayout(QBoxLayout.Direction.LeftToRight, content)
        self.metrics_box.setContentsMargins(0, 0, 0, 0)
        self.metrics_box.setSpacing(0)
        self.metrics_box.addWidget(self.metrics_view, 1)
        # beside the charts the key scrolls on its own (a long key must not stretch the charts)
        self.key_scroll = QScrollArea()
        self.key_scroll.setWidgetResizable(True)
        self.key_scroll.setFrameShape(QFrame.Shape.NoFrame)
        self.key_scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.key_scroll.setWidget(self.key_label)
        self.metrics_box.addWidget(self.key_scroll)
        self.metrics_scroll.setWidget(content)
        self.metrics_scroll.viewport().installEventFilter(self)
        metrics_layout.addWidget(self.metrics_scroll)
        self.tabs.addTab(metrics_tab, "Metrics")

        self.dist_view = pg.GraphicsLayoutWidget()
        style.style_plot_widget(self.dist_view)
        self.cdf_plot = pg.PlotItem()
        style.style_plot_item(self.cdf_plot)
        self.cdf_plot.setTitle("Latency CDF", color=style.foreground().name(), size="9pt")
        self.cdf_plot.getAxis("bottom").enableAutoSIPrefix(False)
        self.cdf_plot.setLabel("left", "fraction ≤ latency")
        self.scatter_plot = pg.PlotItem()
        style.style_plot_item(self.scatter_plot)
        self.scatter_plot.getAxis("bottom").enableAutoSIPrefix(False)
        self.scatter_plot.getAxis("left").enableAutoSIPrefix(False)
        self.dist_view.addItem(self.cdf_plot, row=0, col=0)
        self.dist_view.addItem(self.scatter_plot, row=0, col=1)
        for column, plot in enumerate((self.cdf_plot, self.scatter_plot)):
            # equal halves: a long title's preferred width must not squeeze the other chart
            self.dist_view.ci.layout.setColumnStretchFactor(column, 1)
            plot.setPreferredWidth(1)
        self.tabs.addTab(self.dist_view, "Distribution && trade-off")

        self.rows: list[dict] = []
        self.cdf_curves: list[pg.PlotDataItem] = []
        self.cdf_unit = "ms"
        self.bar_values: dict[str, dict[int, float]] = {}
        self.bar_labels: dict[str, dict[int, str]] = {}
        self.baseline_values: dict[str, float] = {}
        self.fidelity_metric: str | None = None
        self.scatter_points: dict[int, tuple[float, float]] = {}   # run id -> (p50 in ms, fidelity)
        self.scatter_metric: str | None = None
        self.scatter_unit = "ms"
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
        self._colors = {row["id"]: QColor(RUN_PALETTE[i % len(RUN_PALETTE)]) for i, row in enumerate(self.rows)}
        self.placeholders = {}
        self._draw_bars()
        self._draw_key()
        self._draw_cdfs(store)
        self._draw_scatter()

    def clear(self) -> None:
        self.show_runs(None, [])

    def shown_bar_charts(self) -> list[str]:
        """The keys of the bar charts in the Metrics tab, in their order."""
        return list(self._bar_layout)

    # -- drawing ---------------------------------------------------------------------------------
    def _label(self, row: dict) -> str:
        return f"#{row['id']}"

    def _gate(self) -> float:
        """The default gate for these rows' gated figure (next-token agreement reads it lower)."""
        return min((default_gate(r) for r in self.rows), default=DEFAULT_MIN_FIDELITY)

    def _baseline_row(self) -> dict | None:
        ids = {r["baseline_id"] for r in self.rows if r["baseline_id"] is not None and r["status"] == "done"}
        if len(ids) != 1:
            return None
        bid = ids.pop()
        return next((r for r in self.rows if r["id"] == bid), None)

    def _fidelity_choice(self) -> tuple[str, str, float] | None:
        done = [r for r in self.rows if r["status"] == "done"]
        for key, title, scale in FIDELITY_CHOICES:
            if any(r.get(key) is not None for r in done):
                return key, agreement_title(done) if key == "top1_agreement" else title, scale
        return None

    def _draw_bars(self) -> None:
        baseline = self._baseline_row()
        self.bar_values, self.bar_labels, self.baseline_values = {}, {}, {}
        choice = self._fidelity_choice()
        self.fidelity_metric = choice[0] if choice else None
        shown = []
        for metric in BAR_METRICS:
            key, title, scale = metric.key, metric.title, metric.scale
            if key == FIDELITY and choice is not None:
                key, title, scale = choice
            plot = self.bar_plots[metric.key]
            plot.clear()
            # short titles (a title's width is its plot's minimum width); the unit is in each value
            arrow = "↓" if metric.better == "lower" else "↑"      # the key says: lower / higher is better
            plot.setTitle(f"{title} {arrow}", color=style.foreground().name(), size="9pt")
            present = [(i, row) for i, row in enumerate(self.rows) if row.get(key) is not None]
            self.bar_values[metric.key] = {}
            if not present:
                self.placeholders[metric.key] = metric.missing if self.rows else "select runs in the table"
                if metric.key in ALWAYS_SHOWN:
                    self._placeholder(plot, self.placeholders[metric.key], metric.key)
                    shown.append(metric.key)
                continue
            shown.append(metric.key)
            self._draw_bar_chart(plot, metric, key, scale, present, baseline)
        self._arrange_bars(shown)

    def _draw_bar_chart(self, plot: pg.PlotItem, metric: _Metric, key: str, scale: float,
                        present: list[tuple[int, dict]], baseline: dict | None) -> None:
        for side in ("left", "right"):
            plot.showAxis(side)
        plot.hideAxis("bottom")
        n = len(self.rows)
        ys = {row["id"]: float(n - 1 - i) for i, row in enumerate(self.rows)}     # first row on top
        values = {row["id"]: row[key] * scale for _, row in present}
        self.bar_values[metric.key] = values
        base_raw = baseline.get(key) if baseline is not None else None
        base_value = base_raw * scale if base_raw is not None else None
        if base_value is not None:
            self.baseline_values[metric.key] = base_value
        labels = {}
        for row in self.rows:
            if row["id"] not in values:
                labels[row["id"]] = "failed" if row["status"] != "done" else "—"
                continue
            labels[row["id"]] = self._value_text(metric, key, row, values)
        self.bar_labels[metric.key] = labels
        ids = [row["id"] for _, row in present]
        bars = pg.BarGraphItem(x0=np.zeros(len(ids)), y=np.array([ys[i] for i in ids]),
                               width=np.array([values[i] for i in ids]), height=0.62,
                               brushes=[pg.mkBrush(verdict_color(row)) for _, row in present], pen=pg.mkPen(None))
        plot.addItem(bars)
        high = max(values.values())
        if metric.key == "p50_ms":
            high = max(high, self._error_bars(plot, present, ys))
        reference = (self._gate() * scale if metric.key == FIDELITY and key != "accuracy"
                     else base_value)
        if reference is not None:
            plot.addItem(pg.InfiniteLine(pos=reference, angle=90, movable=False,
                                         pen=pg.mkPen(style.foreground(), width=1, style=Qt.PenStyle.DashLine)))
        self._label_widths[metric.key] = 0
        for side, texts in (("left", {r["id"]: self._label(r) for r in self.rows}), ("right", labels)):
            axis = plot.getAxis(side)
            axis.setTicks([[(ys[run_id], text) for run_id, text in texts.items()]])
            # as wide as its longest label now (pyqtgraph would widen it only after a first, clipped paint)
            metrics = QFontMetrics(axis.style["tickFont"] or axis.font())
            width = max(metrics.horizontalAdvance(t) for t in texts.values()) + axis.style["tickTextOffset"][0] + 4
            axis.setWidth(width)
            self._label_widths[metric.key] += width
        if metric.key == FIDELITY:
            # the whole scale, so a collapse looks like one
            low = min(0.0, min(values.values()))
            plot.setXRange(low, scale, padding=0)
        else:
            plot.setXRange(0, high * 1.04 or 1.0, padding=0)
        plot.setYRange(-0.5, n - 0.5, padding=0)

    @staticmethod
    def _value_text(metric: _Metric, key: str, row: dict, values: dict[int, float]) -> str:
        """The label beside a bar: the value in the table's units, then against the run's own
        baseline (a ratio; points of accuracy) when that baseline is charted too."""
        if metric.key == FIDELITY:
            text = fmt.num(row[key], ".4f") if key == "cosine" else fmt.pct(row[key])
        else:
            text = metric.text(row[key])
        base = values.get(row["baseline_id"]) if row.get("baseline_id") is not None else None
        if not base:
            return text
        if metric.key == FIDELITY:
            if key == "accuracy":
                text += f" · {values[row['id']] - base:+.1f} pts".replace("-", "−")
            return text
        if metric.key.endswith("_ms"):
            return text      # a latency ratio (0.65×) beside the verdict's speed-up (1.53×) only confuses
        return text + f" · {values[row['id']] / base:.2f}×"

    def _arrange_bars(self, shown: list[str]) -> None:
        """Put the shown charts in a grid: two columns up to four charts, else three, and fewer
        where a chart would not keep room for its bars beside its labels; redone only on change."""
        width = self.metrics_scroll.viewport().width()
        key_beside = width >= self.KEY_BESIDE_FROM
        self.metrics_box.setDirection(QBoxLayout.Direction.LeftToRight if key_beside
                                      else QBoxLayout.Direction.TopToBottom)
        key_width = min(self.KEY_WIDTH, width // 4) if key_beside else width
        self.key_scroll.setFixedWidth(max(1, key_width))
        self._fit_key()
        widest = max([self._label_widths.get(key, 0) for key in shown] or [0]) + self.MIN_BAR_WIDTH
        room = max(1, (width - (key_width if key_beside else 0)) // max(1, widest))
        columns = max(1, min(2 if len(shown) <= 4 else 3, room))
        # each bar's row at least a line of text tall, plus the title: below that, scroll
        line = QFontMetrics(self.metrics_view.font()).height() + 4
        per_chart = 2 * line + 12 + max(1, len(self.rows)) * line
        self.metrics_view.setMinimumHeight(-(-len(shown) // columns) * per_chart)
        if shown == self._bar_layout and columns == self._bar_columns:
            return
        grid = self.metrics_view.ci
        for key in self._bar_layout:
            grid.removeItem(self.bar_plots[key])
        for n, key in enumerate(shown):
            grid.addItem(self.bar_plots[key], row=n // columns, col=n % columns)
        self._bar_layout, self._bar_columns = list(shown), columns

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:  # noqa: N802 (Qt API)
        if watched is self.metrics_scroll.viewport() and event.type() == QEvent.Type.Resize:
            self._arrange_bars(self._bar_layout)       # as many columns as now fit
        return super().eventFilter(watched, event)

    def _error_bars(self, plot: pg.PlotItem, present: list[tuple[int, dict]], ys: dict[int, float]) -> float:
        """The median's 95 % interval as whiskers; returns the rightmost whisker end."""
        xs, yv, lows, highs = [], [], [], []
        for _i, row in present:
            ci = row.get("p50_ci_ms")
            if not ci:
                continue
            xs.append(row["p50_ms"])
            yv.append(ys[row["id"]])
            lows.append(max(0.0, row["p50_ms"] - ci[0]))
            highs.append(max(0.0, ci[1] - row["p50_ms"]))
        if not xs:
            return 0.0
        plot.addItem(pg.ErrorBarItem(x=np.array(xs, float), y=np.array(yv), left=np.array(lows),
                                     right=np.array(highs), beam=0.2, pen=pg.mkPen(style.foreground())))
        return float(max(x + h for x, h in zip(xs, highs)))

    def _fit_key(self) -> None:
        """Below the charts the key is as tall as its text (the page scrolls); beside them it takes
        the charts' height and scrolls itself."""
        if self.metrics_box.direction() == QBoxLayout.Direction.TopToBottom:
            width = max(1, self.key_scroll.width())
            self.key_scroll.setFixedHeight(self.key_label.heightForWidth(width) + 2)
        else:
            self.key_scroll.setMinimumHeight(0)
            self.key_scroll.setMaximumHeight(16777215)

    def _draw_key(self) -> None:
        self._write_key()
        self._fit_key()

    def _write_key(self) -> None:
        if not self.rows:
            self.key_label.setText(f"<span style='color:{style.muted().name()}'>Select runs in the table to "
                                   "compare them: speed and fidelity side by side, bars in the colour of "
                                   "each run's verdict.</span>")
            return
        muted = style.muted().name()
        lines = [f"<span style='color:{muted}'>Bar colours: the verdict — "
                 + ", ".join(f"<span style='color:{VERDICT_COLORS[level]}'>{word}</span>" for level, word in
                             ((WIN, "win"), (LOSS, "loss"), (NOISE, "noise"), (BASELINE, "baseline")))
                 + "; ↓ lower is better, ↑ higher is better</span>"]
        several_models = len({r["model"] for r in self.rows}) > 1
        several_devices = len({r["device"] for r in self.rows}) > 1
        for row in self.rows:
            # where it ran only when the runs differ in it: the key stays short
            where = [model_name(row["model"])] if several_models else []
            where += [row["device"] or "?"] if several_devices else []
            where += ["baseline, not selected"] if row.get("reference_only") else []
            context = f" <span style='color:{muted}'>({_html(', '.join(where))})</span>" if where else ""
            name = row["name"] or row["chain"]
            verdict = verdict_text(row) if row["status"] == "done" else f"✗ {row['status']}: {row['error'] or ''}"
            lines.append(f"<span style='color:{verdict_color(row)}'>■</span> <b>#{row['id']}</b> {_html(name)}"
                         f"{context}<br>&nbsp;&nbsp;&nbsp;<span style='color:{verdict_color(row)}'>"
                         f"{_html(verdict)}</span>")
        baseline = self._baseline_row()
        dashed = [f"baseline #{baseline['id']}"] if baseline is not None else []
        if self.fidelity_metric in ("top1_agreement", "cosine"):
            dashed.append(f"on fidelity, the {100 * self._gate():g} % gate")
        if dashed:
            lines.append(f"<span style='color:{muted}'>╌ dashed line: {'; '.join(dashed)}</span>")
        left_out = [f"{metric.title} ({self.placeholders[metric.key]})" for metric in BAR_METRICS
                    if metric.key not in self._bar_layout and metric.key in self.placeholders]
        if left_out:
            lines.append(f"<span style='color:{muted}'>Not shown: {_html('; '.join(left_out))}</span>")
        self.key_label.setText("<br>".join(lines))

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
        cdfs = []
        for row in self.rows:
            if row["status"] != "done" or store is None:
                continue
            ns = store.latencies(row["id"])
            if ns:
                cdfs.append((row, *latency_cdf(ns, max(2, min(len(ns), self.MAX_CDF_POINTS)))))
        if not cdfs:
            self._placeholder(self.cdf_plot, "no latencies: select finished runs" if self.rows else
                              "select runs in the table", "cdf")
            return
        # the far tail would squash the rest
        tails = [values[min(len(values) - 1, int(0.995 * len(values)))] for _row, values, _f in cdfs]
        # the unit the table prints these runs' medians in
        factor, self.cdf_unit = fmt.latency_axis_unit([values[len(values) // 2] for _row, values, _f in cdfs])
        self.cdf_plot.setLabel("bottom", "latency per iteration", units=self.cdf_unit)
        for row, values, fractions in cdfs:
            curve = self.cdf_plot.plot(values * factor, fractions, pen=pg.mkPen(self._colors[row["id"]], width=2),
                                       name=_short(f"#{row['id']} {row['name'] or row['chain']}"))
            self.cdf_curves.append(curve)
        lo, hi = min(values[0] for _r, values, _f in cdfs) * factor, max(tails) * factor
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
            key, label, scale, units = "top1_agreement", agreement_title(done).lower(), 100.0, "%"
        elif any(r.get("cosine") is not None for r in done):
            key, label, scale, units = "cosine", "output cosine", 1.0, None
        else:
            key = None
        self.scatter_metric = key
        if key is None:
            plot.setTitle("Latency vs fidelity (╌ Pareto)", color=style.foreground().name(), size="9pt")
            plot.setLabel("left", "fidelity")
            self._placeholder(plot, "no fidelity data in the selected runs" if self.rows else
                              "select runs in the table", "scatter")
            return
        plot.setLabel("left", label, units=units)
        rows = [r for r in done if r.get(key) is not None]
        for row in rows:
            self.scatter_points[row["id"]] = (row["p50_ms"], row[key] * scale)
        factor, self.scatter_unit = fmt.latency_axis_unit([r["p50_ms"] for r in rows])
        plot.setLabel("bottom", "p50 latency", units=self.scatter_unit)
        points = [(r["p50_ms"] * factor, r[key] * scale) for r in rows]
        # one front per model: fidelity is agreement with each model's own unoptimized output
        fronts = pareto_fronts(points, [r["model"] for r in rows])
        per_model = ", per model" if len(fronts) > 1 else ""
        plot.setTitle(f"Latency vs fidelity (╌ Pareto{per_model})", color=style.foreground().name(),
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
        # points in their verdict's colour: the trade-off is what the verdict judges
        spots = [{"pos": p, "brush": pg.mkBrush(verdict_color(r)), "size": 13 if i in on_front else 10,
                  "pen": pg.mkPen(style.foreground(), width=2) if i in on_front else pg.mkPen(None),
                  "data": r["id"]} for i, (r, p) in enumerate(zip(rows, points))]
        scatter = pg.ScatterPlotItem(spots=spots, hoverable=True, tip=self._spot_tip)
        plot.addItem(scatter)
        labels: dict[tuple[float, float], list[str]] = {}
        for row, (x, y) in zip(rows, points):     # coincident points share one label
            labels.setdefault((x, y), []).append(f"#{row['id']}")
        for (x, y), names in labels.items():
            # right of the point, centred on it: a label above the top point was cut off
            text = pg.TextItem(", ".join(names), color=style.foreground(), anchor=(-0.2, 0.5))
            text.setPos(x, y)
            plot.addItem(text)
        xs = [p[0] for p in points]
        ys = [p[1] for p in points]
        xpad = (max(xs) - min(xs)) * 0.15 or max(xs) * 0.1 or 1.0
        ypad = (max(ys) - min(ys)) * 0.15 or (abs(max(ys)) * 0.01 or 1.0)
        plot.setXRange(max(0.0, min(xs) - xpad), max(xs) + 2 * xpad, padding=0)   # room for the labels
        plot.setYRange(min(ys) - ypad, max(ys) + ypad, padding=0)

    def _spot_tip(self, x: float, y: float, data: Any) -> str:
        row = next((r for r in self.rows if r["id"] == data), None)
        name = (row["name"] or row["chain"]) if row else ""
        p50, fidelity = self.scatter_points.get(data, (None, y))
        verdict = f"\n{verdict_text(row)}" if row and row.get("verdict") else ""
        return f"#{data} {name}\np50 {fmt.ms(p50)}\nfidelity {fidelity:.4g}{verdict}"

    def _placeholder(self, plot: pg.PlotItem, text: str, key: str) -> None:
        self.placeholders[key] = text
        for side in ("left", "bottom", "right"):
            plot.getAxis(side).setTicks(None)
            plot.hideAxis(side)
        # wrapped: a small chart must not cut the reason off
        item = pg.TextItem(textwrap.fill(text, 30), color=style.muted(), anchor=(0.5, 0.5))
        plot.addItem(item)
        plot.setXRange(0, 1, padding=0)
        plot.setYRange(0, 1, padding=0)
        item.setPos(0.5, 0.5)


def _short(text: str, width: int = 22) -> str:
    """A legend entry cut to ``width`` characters (the table has the whole chain)."""
    return text if len(text) <= width else text[:width - 1] + "…"


def _html(text: str) -> str:
    return (str(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;"))
