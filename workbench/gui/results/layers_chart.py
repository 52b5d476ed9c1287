"""The Layers tab's bar chart: one horizontal bar per layer, in the order the model runs them, of
the measure picked above it: output drift, weight error, or parameters / FLOPs before and after.
Bars are coloured by what happened to the layer's weights (quantized, pruned, ...), so where the
drift starts is visible at a glance."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt
from PySide6.QtGui import QColor
from PySide6.QtWidgets import QComboBox, QFrame, QHBoxLayout, QLabel, QScrollArea, QVBoxLayout, QWidget

from ... import format as fmt
from .. import plot_style as style

KIND_COLORS = {"quantized": "#0072B2", "pruned": "#E69F00", "channels removed": "#D55E00",
               "changed": "#CC79A7", None: "#9a9a9a"}
KIND_NAMES = {"quantized": "quantized", "pruned": "pruned", "channels removed": "channels removed",
              "changed": "changed otherwise", None: "weights unchanged / none"}
BEFORE_COLOR = "#b8c2cc"
ROW_PX = 20          # height per layer: the names on the axis stay apart however many layers


@dataclass
class Measure:
    key: str
    title: str                                            # the picker's text
    tip: str
    value: Callable[[dict], float | None]                 # a row -> its bar (after, for pairs)
    before: Callable[[dict], float | None] | None         # a row -> the "before" bar (pairs only)
    text: Callable[[float], str]


def _drift(row: dict) -> float | None:
    return (row.get("drift") or {}).get("relative_error")


def _weight(row: dict) -> float | None:
    return (row.get("weight") or {}).get("relative")


MEASURES = (
    Measure("drift", "Output drift", "‖o − r‖/‖r‖: each layer's output against the unoptimized layer's, "
            "on the run's own inputs (drift adds up along the model)", _drift, None, lambda v: f"{v:.2e}"),
    Measure("weight", "Weight error ‖Δw‖/‖w‖", "quantized layers: ‖w − q(w)‖/‖w‖; pruned layers: "
            "‖Δw‖/‖w‖ (layers whose weights did not change are left out)", _weight, None, lambda v: f"{100 * v:.2f}%"),
    Measure("params", "Parameters", "each layer's own parameters, before (grey) and after",
            lambda r: r.get("params_after"), lambda r: r.get("params_before"), fmt.count),
    Measure("flops", "FLOPs", "each layer's FLOPs per call, before (grey) and after",
            lambda r: r.get("flops_after"), lambda r: r.get("flops_before"), fmt.count),
)


class LayerBars(QWidget):
    """A measure picker above a scrolling horizontal bar chart of the layers."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.measure_combo = QComboBox()
        self.measure_combo.setObjectName("layersMeasure")
        for index, measure in enumerate(MEASURES):
            self.measure_combo.addItem(measure.title, measure.key)
            self.measure_combo.setItemData(index, measure.tip, Qt.ItemDataRole.ToolTipRole)
        self.measure_combo.currentIndexChanged.connect(lambda _i: self._draw())
        self.view = pg.GraphicsLayoutWidget()
        style.style_plot_widget(self.view)
        self.plot = self.view.addPlot()
        style.style_plot_item(self.plot, grid=False)
        self.plot.showGrid(x=True, y=False, alpha=0.15)
        self.plot.setMouseEnabled(x=False, y=False)
        self.plot.setMenuEnabled(False)
        self.plot.hideButtons()
        self.plot.invertY(True)
        self.plot.getAxis("bottom").enableAutoSIPrefix(False)
        self.plot.showAxis("right")
        for side in ("left", "right"):
            self.plot.getAxis(side).setStyle(tickLength=0)
            self.plot.getAxis(side).setPen(pg.mkPen(None))       # labels only
        self.scroll = QScrollArea()
        self.scroll.setWidgetResizable(True)
        self.scroll.setFrameShape(QFrame.Shape.NoFrame)
        self.scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAsNeeded)
        self.scroll.setWidget(self.view)
        self.scroll.setMinimumHeight(6 * ROW_PX)
        self.key = QLabel()
        self.key.setObjectName("layersChartKey")
        self.key.setTextFormat(Qt.TextFormat.RichText)
        self.key.setWordWrap(True)
        top = QHBoxLayout()
        top.setContentsMargins(4, 2, 4, 2)
        top.addWidget(QLabel("Bars:"))
        top.addWidget(self.measure_combo, 1)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(2)
        layout.addLayout(top)
        layout.addWidget(self.scroll, 1)
        layout.addWidget(self.key)
        self.rows: list[dict] = []
        self.shown: list[str] = []          # layer names drawn, top to bottom
        self.values: list[float] = []

    def set_rows(self, rows: list[dict]) -> None:
        self.rows = list(rows)
        self._draw()

    def set_measure(self, key: str) -> None:
        self.measure_combo.setCurrentIndex(max(0, self.measure_combo.findData(key)))

    def measure(self) -> Measure:
        return MEASURES[max(0, self.measure_combo.currentIndex())]

    def _draw(self) -> None:
        measure = self.measure()
        self.measure_combo.setToolTip(measure.tip)
        self.plot.clear()
        rows = [r for r in self.rows if measure.value(r) is not None
                or (measure.before is not None and measure.before(r) is not None)]
        self.shown = [r["name"] for r in rows]
        self.values = [float(measure.value(r) or 0.0) for r in rows]
        self.view.setMinimumHeight(max(120, ROW_PX * len(rows) + 50))
        if not rows:
            for side in ("left", "right"):
                self.plot.getAxis(side).setTicks([[]])
            self.key.setText("no layer has this measure (e.g. no weight was changed)")
            return
        ys = np.arange(len(rows), dtype=float)
        colors = [KIND_COLORS.get((r.get("weight") or {}).get("kind"), KIND_COLORS[None]) for r in rows]
        after = np.array(self.values)
        high = float(after.max()) if len(after) else 0.0
        if measure.before is None:
            self.plot.addItem(pg.BarGraphItem(x0=np.zeros(len(rows)), y=ys, width=after, height=0.66,
                                              brushes=[pg.mkBrush(c) for c in colors], pen=pg.mkPen(None)))
        else:
            before = np.array([float(measure.before(r) or 0.0) for r in rows])
            high = max(high, float(before.max()))
            self.plot.addItem(pg.BarGraphItem(x0=np.zeros(len(rows)), y=ys - 0.19, width=before, height=0.36,
                                              brush=pg.mkBrush(BEFORE_COLOR), pen=pg.mkPen(None)))
            self.plot.addItem(pg.BarGraphItem(x0=np.zeros(len(rows)), y=ys + 0.19, width=after, height=0.36,
                                              brushes=[pg.mkBrush(c) for c in colors], pen=pg.mkPen(None)))
        # values on the right axis, level with their bars: an axis takes the width its labels need, so
        # a value is never cut at the plot's edge however narrow the pane
        offset = 0.19 if measure.before is not None else 0.0
        self.plot.getAxis("right").setTicks([[(float(y + offset), measure.text(v)) for y, v in zip(ys, self.values)]])
        self.plot.getAxis("left").setTicks([[(float(y), r["name"]) for y, r in zip(ys, rows)]])
        self.plot.setXRange(0, (high or 1.0) * 1.02, padding=0)
        self.plot.setYRange(-0.6, len(rows) - 0.4, padding=0)
        kinds = list(dict.fromkeys((r.get("weight") or {}).get("kind") for r in rows))
        swatches = [f"<span style='color:{KIND_COLORS.get(k, KIND_COLORS[None])}'>■</span> {KIND_NAMES.get(k, k)}"
                    for k in kinds]
        if measure.before is not None:
            swatches.insert(0, f"<span style='color:{BEFORE_COLOR}'>■</span> before")
        self.key.setText("&nbsp;&nbsp;".join(swatches))

    def bar_color(self, name: str) -> QColor:
        """The colour of ``name``'s bar (tests)."""
        row = next(r for r in self.rows if r["name"] == name)
        return QColor(KIND_COLORS.get((row.get("weight") or {}).get("kind"), KIND_COLORS[None]))
