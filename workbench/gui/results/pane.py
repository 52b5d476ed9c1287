"""The Results dock's contents: the runs table beside the charts of its selection, kept in step
(the charts follow the selection, the table follows the store). The charts' tabs end with Profile
and Layers, which explain the selected run from what it stored (issue 15), and Sweep, the charts of a
stored sweep (the selected run's, or the one picked there)."""
from __future__ import annotations

from typing import Any

from PySide6.QtCore import Qt, QTimer
from PySide6.QtWidgets import QFrame, QScrollArea, QSplitter, QWidget

from ...results.store import ResultsStore
from .charts import ComparisonCharts
from .layers_tab import LayersTab
from .profile_tab import ProfileTab
from .sweep_tab import SweepTab
from .table import ResultsView


class ResultsPane(QSplitter):
    REFRESH_DELAY_MS = 150     # runs appearing in a burst reload the table once
    CHARTS_DELAY_MS = 60       # dragging a selection over many rows redraws the charts once

    def __init__(self, store: ResultsStore, bridge: Any = None, parent: QWidget | None = None) -> None:
        super().__init__(Qt.Orientation.Horizontal, parent)
        self.setObjectName("resultsSplit")
        self.store = store
        self.table = ResultsView(store)
        self.charts = ComparisonCharts()
        self.profile_tab = ProfileTab()
        self.layers_tab = LayersTab(bridge)       # without a bridge: no Compare / Scan buttons
        self.sweep_tab = SweepTab()
        # in scroll areas: their tables and hints must not raise the Results dock's minimum height
        # (the window still lays out at 1280x720); a pane shorter than a tab scrolls it instead
        self._areas = {}
        for tab, title in ((self.profile_tab, "Profile"), (self.layers_tab, "Layers"), (self.sweep_tab, "Sweep")):
            area = QScrollArea()
            area.setWidgetResizable(True)
            area.setFrameShape(QFrame.Shape.NoFrame)
            area.setWidget(tab)
            self._areas[area] = tab
            self.charts.tabs.addTab(area, title)
        self._explained: tuple | None = None      # (tab, run ids) last filled
        self.charts.tabs.currentChanged.connect(lambda _i: self._explain_shown())
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
        self._explained = None
        self._explain_shown()

    def _explain_shown(self) -> None:
        """Fill the Profile or Layers tab when shown (they read the store and files: not on every
        selection while another tab is in front)."""
        ids = self.table.selected_run_ids()
        tab = self._areas.get(self.charts.tabs.currentWidget())
        if tab is not None and self._explained != (tab, ids):
            tab.show_runs(self.store, ids)
            self._explained = (tab, ids)

    def show_sweep(self, sweep_id: int) -> None:
        """Bring the Sweep tab forward with this sweep's charts."""
        area = next(a for a, tab in self._areas.items() if tab is self.sweep_tab)
        self.charts.tabs.blockSignals(True)
        self.charts.tabs.setCurrentWidget(area)
        self.charts.tabs.blockSignals(False)
        self.sweep_tab.show_sweep(self.store, sweep_id)
        self._explained = (self.sweep_tab, self.table.selected_run_ids())

    def stop(self) -> None:
        self._refresh_timer.stop()
        self._charts_timer.stop()
