"""The building blocks of the Live dock's plots: plot items with the live settings, curves bound to
their series, titles with a colour key, the text over an empty plot, phase markers whose labels
never overlap, and a label that elides."""
from __future__ import annotations

import math
from typing import Any, Iterable

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QPointF, Qt
from PySide6.QtGui import QFontMetricsF
from PySide6.QtWidgets import QApplication, QLabel, QSizePolicy, QWidget

from ...format import latency_unit
from .. import plot_style as style
from .series import XYSeries
from .status import group_labels


class CurveSeries(XYSeries):
    """An ``XYSeries`` and the curve that shows it."""

    def __init__(self, curve: pg.PlotDataItem, capacity: int = 1024) -> None:
        super().__init__(capacity)
        self.curve = curve

    def draw(self) -> bool:
        if not self.dirty:
            return False
        self.curve.setData(self.x.data, self.y.data, skipFiniteCheck=True)
        self.dirty = False
        return True

    def clear(self) -> None:
        super().clear()
        self.curve.setData([], [])


def make_plot(title: str, left: str, left_units: str | None = None, bottom: str = "time",
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


def curve(plot: pg.PlotItem, series: str, width: float = 1.0,
          style_: Qt.PenStyle = Qt.PenStyle.SolidLine, symbol: str | None = None) -> pg.PlotDataItem:
    pen = style.series_pen(series, width, style_)
    kwargs: dict[str, Any] = {}
    if symbol:
        kwargs.update(symbol=symbol, symbolSize=6, symbolBrush=style.SERIES[series], symbolPen=None)
    return plot.plot([], [], pen=pen, antialias=False, skipFiniteCheck=True, **kwargs)


def keyed_title(title: str, entries: Iterable[tuple[str, str, bool]]) -> str:
    """A plot title followed by a colour key (legends inside the plot would hide data)."""
    keys = "".join(f"&nbsp;&nbsp;<span style='color:{style.SERIES[key]}'>{'╌' if dashed else '━'} {label}</span>"
                   for key, label, dashed in entries)
    return title + keys


def set_title(plot: pg.PlotItem, html: str) -> None:
    if getattr(plot, "_workbench_title", None) != html:
        plot._workbench_title = html
        plot.setTitle(html, color=style.foreground().name(), size="9pt")


def set_empty_text(plot: pg.PlotItem, text: str | None) -> None:
    """An empty plot shows a centred grey text and no axes or grid (a bare 0..1 axis with
    crowded ticks reads as data); ``None`` brings the axes back and removes the text. ``""``
    hides the axes without a text."""
    item = getattr(plot, "_workbench_empty_text", None)
    hidden = getattr(plot, "_workbench_hidden_axes", None)
    if text is None:
        if item is not None:
            item.hide()
        if hidden is not None:
            for name in hidden:
                plot.showAxis(name)
            plot.showGrid(x=True, y=True, alpha=0.15)
            plot._workbench_hidden_axes = None
        return
    if hidden is None:
        plot._workbench_hidden_axes = [name for name in ("left", "bottom") if plot.getAxis(name).isVisible()]
        for name in plot._workbench_hidden_axes:
            plot.hideAxis(name)
        plot.showGrid(x=False, y=False)
    if item is None:
        item = pg.TextItem(anchor=(0.5, 0.5), color=style.muted())
        plot.addItem(item, ignoreBounds=True)
        plot._workbench_empty_text = item
        plot.getViewBox().sigResized.connect(lambda *_: _place_empty_text(plot))
    item.setText(text)
    item.setVisible(bool(text))
    _place_empty_text(plot)


def _place_empty_text(plot: pg.PlotItem) -> None:
    """Centred, and wrapped to the plot's width (a narrow plot must not cut the text off)."""
    item = plot._workbench_empty_text
    if not item.isVisible():
        return
    view = plot.getViewBox()
    width = view.width()
    item.textItem.setTextWidth(-1)
    natural = item.textItem.boundingRect().width()
    if width > 40 and natural > width - 12:
        item.textItem.setTextWidth(width - 12)
        option = item.textItem.document().defaultTextOption()
        option.setAlignment(Qt.AlignmentFlag.AlignHCenter)
        item.textItem.document().setDefaultTextOption(option)
    (x0, x1), (y0, y1) = view.viewRange()
    item.setPos((x0 + x1) / 2, (y0 + y1) / 2)


def set_latency_unit(plot: pg.PlotItem, top_ms: float) -> None:
    """µs, ms or s on a latency axis whose values are in ms, as ``format.ms`` writes its top."""
    factor, unit = latency_unit(top_ms)
    if getattr(plot, "_workbench_unit", None) != unit:
        plot._workbench_unit = unit
        plot.getAxis("left").setScale(factor)
        plot.setLabel("left", "latency", units=unit)


def draw_histogram(plot: pg.PlotItem, bars: pg.BarGraphItem, counts: np.ndarray, edges: np.ndarray) -> None:
    """Horizontal bars (the plot shares the latency plot's y axis) and two count ticks, 0 and a
    round number below the tallest bar: a narrow column has no room for more."""
    bars.setOpts(x0=np.zeros(counts.shape[0]), y0=edges[:-1], width=counts.astype(np.float64),
                 height=np.diff(edges))
    tallest = float(counts.max()) if counts.shape[0] else 0.0
    plot.setXRange(0, max(tallest, 1.0) * 1.08, padding=0)
    ticks = [(0, "0")]
    if tallest >= 1:
        step = 10.0 ** math.floor(math.log10(tallest))
        tick = math.floor(tallest / step) * step
        ticks.append((tick, f"{tick / 1000:g}k" if tick >= 1000 else f"{tick:g}"))
    plot.getAxis("bottom").setTicks([ticks, []])


class PhaseMarkers:
    """A dotted line where each phase begins and its name along the top of the plot. Names of
    lines closer than a label's width join into one label ('cold call · warm-up'), so they never
    overlap, whatever the zoom."""

    def __init__(self, plot: pg.PlotItem) -> None:
        self.plot = plot
        self.lines: list[pg.InfiniteLine] = []
        self.labels: list[pg.TextItem] = []

    def clear(self) -> None:
        for item in self.lines + self.labels:
            self.plot.removeItem(item)
        self.lines, self.labels = [], []

    def add_line(self, x: float) -> None:
        line = pg.InfiniteLine(pos=x, angle=90, movable=False, pen=pg.mkPen(style.muted(), style=Qt.PenStyle.DotLine))
        self.plot.addItem(line, ignoreBounds=True)
        self.lines.append(line)

    def layout(self, phases: list[tuple[float, str]]) -> None:
        """``phases``: ``(x where it begins, name)`` in order, those in view (x within the range)."""
        view = self.plot.getViewBox()
        _, (_, top) = view.viewRange()
        font = QApplication.font()
        metrics = QFontMetricsF(font)
        pixels = [view.mapViewToScene(QPointF(x, 0)).x() for x, _ in phases]
        groups = group_labels(pixels, [text for _, text in phases],
                              lambda text: metrics.horizontalAdvance(text) + 10)
        while len(self.labels) < len(groups):
            item = pg.TextItem(anchor=(0, 0), color=style.muted(), fill=pg.mkBrush(style.background()))
            self.plot.addItem(item, ignoreBounds=True)
            self.labels.append(item)
        x_at = dict(zip(pixels, (x for x, _ in phases)))
        for item, (pixel, text) in zip(self.labels, groups):
            item.setText(text)
            item.setPos(x_at[pixel], top)
            item.show()
        for item in self.labels[len(groups):]:
            item.hide()

    def texts(self) -> list[str]:
        return [item.textItem.toPlainText() for item in self.labels if item.isVisible()]


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
