"""The Results dock's contents: the runs table beside the charts of its selection, kept in step
(the charts follow the selection, the table follows the store)."""
from __future__ import annotations

from typing import Any

from PySide6.QtCore import Qt, QTimer
from PySide6.QtWidgets import QSplitter, QWidget

from ...results.store import ResultsStore
from .charts import ComparisonCharts
from .table import ResultsView


class ResultsPane(QSplitter):
    REFRESH_DELAY_MS = 150     # runs appearing in a burst reload the table once
    CHARTS_DELAY_MS = 60       # dragging a selection over many rows redraws the charts once

    def __init__(self, store: ResultsStore, parent: QWidget | None = None) -> None:
        super().__init__(Qt.Orientation.Horizontal, parent)
        self.setObjectName("resultsSplit")
        self.store = store
        self.table = ResultsView(store)
        self.charts = ComparisonCharts()
        self.addWidget(self.table)
        self.addWidget(self.charts)
        self.setStretchFactor(0, 3)
        self.setStretchFactor(1, 2)
        self.setChildrenCollapsible(False)
        self._refresh_timer = self._timer(self.REFRESH_DELAY_MS, self.table.refresh)
        self._charts_timer = self._timer(self.CHARTS_DELAY_MS, self._update_charts)
        self.table.selectionChanged.connect(lambda *_args: self._charts_timer.start())

    def default_sizes(self, width: int) -> list[int]:
        """[table, charts] for a pane ``width`` px wide: the table gets what its first columns
        (speed-up, verdict, fidelity) need, between a third and a half of the width."""
        wanted = self.table.priority_width() + 4
        table = max(int(width * 0.34), min(int(width * 0.5), wanted))
        return [table, width - table]

    def _timer(self, interval_ms: int, slot: Any) -> QTimer:
        timer = QTimer(self)
        timer.setSingleShot(True)
        timer.setInterval(interval_ms)
        timer.timeout.connect(slot)
        return timer

    def runs_changed(self, now: bool) -> None:
        """The stored runs changed: reload the table now, or soon (debounced)."""
        if now:
            self._refresh_timer.stop()
            self.table.refresh()
        else:
            self._refresh_timer.start()

    def select_runs(self, run_ids: list[int]) -> None:
        """Select these runs in the table and show them in the charts at once."""
        self.table.select_runs(run_ids)
        self._charts_timer.stop()
        self._update_charts()

    def _update_charts(self) -> None:
        self.charts.show_runs(self.store, self.table.selected_run_ids())

    def stop(self) -> None:
        self._refresh_timer.stop()
        self._charts_timer.stop()
