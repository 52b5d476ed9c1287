"""Colours and pens shared by the live plots, the results table and the comparison charts.

Everything follows the application palette, so the plots match a light or a dark system theme
(the palette is read when a widget is built; ``is_dark()`` can be asked again after a theme
change). Run colours come from the Okabe–Ito palette (distinguishable with colour-blindness).
"""
from __future__ import annotations

import pyqtgraph as pg
from PySide6.QtCore import Qt
from PySide6.QtGui import QColor, QPalette
from PySide6.QtWidgets import QApplication, QGraphicsItem

# Okabe–Ito, reordered so the first colours are the most distinct from each other.
RUN_COLORS = ("#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#F0E442", "#999999")

# Series colours of the live plots.
SERIES = {
    "latency": "#4C8BF5",
    "p50": "#E69F00",
    "p99": "#D55E00",
    "rss": "#009E73",
    "gpu_mem": "#CC79A7",
    "gpu_proc_mem": "#0072B2",
    "power": "#D55E00",
    "power_avg": "#E69F00",
    "util": "#009E73",
    "mem_util": "#56B4E9",
    "clock": "#0072B2",
    "temperature": "#CC79A7",
    "loss": "#D55E00",
    "accuracy": "#009E73",
    "histogram": "#4C8BF5",
}


def palette() -> QPalette:
    app = QApplication.instance()
    return app.palette() if app is not None else QPalette()


def is_dark() -> bool:
    """True when the application's window colour is dark (dark system theme)."""
    return palette().color(QPalette.ColorRole.Window).lightness() < 128


def background() -> QColor:
    return palette().color(QPalette.ColorRole.Base)


def foreground() -> QColor:
    return palette().color(QPalette.ColorRole.Text)


def muted() -> QColor:
    """Secondary text (placeholders, values inside the noise)."""
    return QColor("#9a9a9a") if is_dark() else QColor("#7a7a7a")


def run_color(index: int) -> QColor:
    return QColor(RUN_COLORS[index % len(RUN_COLORS)])


def series_pen(name: str, width: float = 1.0, style: Qt.PenStyle = Qt.PenStyle.SolidLine):
    return pg.mkPen(SERIES[name], width=width, style=style)


# -- table colours: deltas vs the baseline --------------------------------------------------------
def good_background() -> QColor:
    return QColor("#1f5130") if is_dark() else QColor("#cdeed6")


def bad_background() -> QColor:
    return QColor("#5c2323") if is_dark() else QColor("#f6d0d0")


def neutral_foreground() -> QColor:
    return muted()


def failed_foreground() -> QColor:
    return QColor("#ff8080") if is_dark() else QColor("#b00020")


# -- pyqtgraph widgets ------------------------------------------------------------------------------
def style_plot_widget(widget: pg.GraphicsView) -> None:
    """Background of a PlotWidget / GraphicsLayoutWidget from the palette."""
    widget.setBackground(background())


def style_plot_item(plot: pg.PlotItem, grid: bool = True) -> None:
    """Axis pens/text in the palette's text colour, a light grid, antialiasing off (speed)."""
    fg = foreground()
    for name in ("left", "bottom", "right", "top"):
        axis = plot.getAxis(name)
        axis.setPen(pg.mkPen(fg))
        axis.setTextPen(pg.mkPen(fg))
        # Major and minor ticks only: the sub-minor grid lines are all but invisible at this alpha,
        # yet stroking them across the plot doubled the cost of every live-plot repaint.
        axis.setStyle(maxTickLevel=1)
    if grid:
        plot.showGrid(x=True, y=True, alpha=0.15)
    plot.titleLabel.setAttr("color", fg.name())
    let_label_shrink(plot.titleLabel)


def let_label_shrink(label: pg.LabelItem) -> None:
    """A pyqtgraph label's minimum width is its text's width, so a long title or key makes the
    whole GraphicsLayoutWidget wider than a narrow dock and the plots get cut off at the edge.
    Keep the height minimum, drop the width one: a label that does not fit is clipped at its right
    end instead (its start stays readable), never drawn over its neighbours."""
    update_min = label.updateMin
    label.setFlag(QGraphicsItem.GraphicsItemFlag.ItemClipsChildrenToShape, True)

    def height_only() -> None:   # LabelItem calls this after every setText and resize
        update_min()
        label.setMinimumWidth(0)
        label._sizeHint[Qt.SizeHint.MinimumSize] = (0, label.minimumHeight())
        if label.item.pos().x() < 0:           # centred text wider than the label: show its start
            label.item.setPos(0, label.item.pos().y())
        label.updateGeometry()

    label.updateMin = height_only
    height_only()


def title_html(text: str, size: str = "10pt") -> str:
    return f"<span style='font-size:{size}'>{text}</span>"
