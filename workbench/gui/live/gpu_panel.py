"""The Live dock's GPU panel: power, utilization, SM clock and temperature plots, or, when there is
nothing to plot, one friendly line saying why (NVML's own words only in the tooltip)."""
from __future__ import annotations

import html

import pyqtgraph as pg
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QLabel, QSizePolicy, QStackedWidget, QVBoxLayout, QWidget

from .. import plot_style as style
from .widgets import make_plot


class GpuPanel(QStackedWidget):
    """Page 0: the reason there are no GPU plots; page 1: the four GPU plots and any warnings."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.placeholder = QLabel()
        self.placeholder.setObjectName("gpuPlaceholder")
        self.placeholder.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.placeholder.setWordWrap(True)
        self.placeholder.setTextFormat(Qt.TextFormat.RichText)
        self.placeholder.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Expanding)
        self.placeholder.setStyleSheet(f"color: {style.muted().name()}; padding: 12px;")
        self.addWidget(self.placeholder)
        self._headline = ""
        self._explanation = ""

        page = QWidget()
        layout = QVBoxLayout(page)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(2)
        self.view = pg.GraphicsLayoutWidget()
        style.style_plot_widget(self.view)
        self.power_plot = make_plot("GPU power", "power", "W", si_prefix=False)
        self.util_plot = make_plot("GPU utilization", "utilization", "%", si_prefix=False)
        self.clock_plot = make_plot("SM clock", "clock", "MHz", si_prefix=False)
        self.temp_plot = make_plot("GPU temperature", "temperature", "°C", si_prefix=False)
        self.view.addItem(self.power_plot, row=0, col=0)
        self.view.addItem(self.util_plot, row=0, col=1)
        self.view.addItem(self.clock_plot, row=1, col=0)
        self.view.addItem(self.temp_plot, row=1, col=1)
        self.warnings = QLabel()
        self.warnings.setWordWrap(True)
        self.warnings.setStyleSheet("color: #c77c00;")
        self.warnings.hide()
        layout.addWidget(self.view, 1)
        layout.addWidget(self.warnings)
        self.addWidget(page)

    def plots(self) -> tuple[pg.PlotItem, ...]:
        return self.power_plot, self.util_plot, self.clock_plot, self.temp_plot

    def show_reason(self, headline: str, explanation: str, details: str) -> None:
        """Page 0 with a headline and a sentence; ``details`` (NVML's words) as the tooltip."""
        self._headline, self._explanation = headline, explanation
        self.placeholder.setText(f"<div style='font-size:12pt'>{html.escape(headline)}</div>"
                                 f"<div style='font-size:9pt'>{html.escape(explanation)}</div>")
        self.placeholder.setToolTip(details)
        self.setCurrentIndex(0)

    def show_plots(self) -> None:
        self.setCurrentIndex(1)

    def reason_visible(self) -> bool:
        return self.currentIndex() == 0

    def reason_text(self) -> str:
        """The placeholder as plain text: headline, then the explanation."""
        return f"{self._headline}\n{self._explanation}".strip()

    def set_warnings(self, warnings: list[str]) -> None:
        self.warnings.setText("\n".join(f"⚠ {w}" for w in warnings))
        self.warnings.setVisible(bool(warnings))
