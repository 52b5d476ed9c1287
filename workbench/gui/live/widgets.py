"""The building blocks of the Live dock's plots: plot items with the live settings, curves bound to
their series, titles with a colour key, the text over an empty plot, and a label that elides."""
from __future__ import annotations

from typing import Any, Iterable

import pyqtgraph as pg
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QLabel, QSizePolicy, QWidget

from .. import plot_style as style
from .series import XYSeries


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
