"""The Results dock's table: every stored run with its deltas vs the baseline, sortable and
filterable, with rename (F2), tag, delete (Del) and multi-select.

The numbers come from the core (``workbench.results.compare.comparison_row``); nothing is measured or
recomputed here. A speed-up is coloured green/red only when its confidence interval clears 1 and the run-to-run
noise band (``speedup_significant``); inside the noise it is grey, and the tooltip always gives the interval.
"""
from __future__ import annotations

import math
from typing import Any, Sequence

from PySide6.QtCore import (QAbstractTableModel, QItemSelection, QItemSelectionModel, QModelIndex,
                            QSortFilterProxyModel, Qt, Signal)
from PySide6.QtGui import QAction, QColor, QFont, QKeySequence
from PySide6.QtWidgets import (QAbstractItemView, QHBoxLayout, QHeaderView, QInputDialog, QLabel, QLineEdit,
                               QMenu, QMessageBox, QTableView, QVBoxLayout, QWidget)

from ... import format as fmt
from ...results.compare import baseline_for, comparison_row
from ...results.stats import NOISE_RULE
from ...results.store import ResultsStore, RunRecord
from .. import plot_style as style
from .columns import COLUMN_INDEX, COLUMNS, Column

SORT_ROLE = Qt.ItemDataRole.UserRole
RUN_ID_ROLE = Qt.ItemDataRole.UserRole + 1

NO_BASELINE_TIP = ("no baseline: there is no finished plugin-free run of the same model, runtime, device, "
                   "batch, dtype and threads to compare with")


class _NoFallbackStore:
    """``baseline_for`` with the complete run list as its selection needs no second store search."""

    @staticmethod
    def baseline_candidates(model: str, device: str | None, runtime: str | None) -> list[RunRecord]:
        return []


class RunsTableModel(QAbstractTableModel):
    """One row per stored run (newest first), columns from ``COLUMNS``."""

    def __init__(self, store: ResultsStore, parent: Any = None) -> None:
        super().__init__(parent)
        self.store = store
        self._runs: list[RunRecord] = []
        self._rows: list[dict] = []

    # -- data ------------------------------------------------------------------------------------
    def reload(self) -> None:
        runs = self.store.list_runs()
        rows = [comparison_row(run, baseline_for(_NoFallbackStore(), run, runs)) for run in runs]  # type: ignore[arg-type]
        self.beginResetModel()
        self._runs, self._rows = runs, rows
        self.endResetModel()

    def run_id(self, row: int) -> int:
        return self._rows[row]["id"]

    def row_of(self, run_id: int) -> int | None:
        for i, r in enumerate(self._rows):
            if r["id"] == run_id:
                return i
        return None

    def comparison(self, row: int) -> dict:
        return self._rows[row]

    def record(self, row: int) -> RunRecord:
        return self._runs[row]

    # -- Qt model --------------------------------------------------------------------------------
    def rowCount(self, parent: QModelIndex = QModelIndex()) -> int:  # noqa: N802
        return 0 if parent.isValid() else len(self._rows)

    def columnCount(self, parent: QModelIndex = QModelIndex()) -> int:  # noqa: N802
        return 0 if parent.isValid() else len(COLUMNS)

    def headerData(self, section: int, orientation: Qt.Orientation, role: int = Qt.ItemDataRole.DisplayRole):  # noqa: N802
        if orientation == Qt.Orientation.Horizontal and 0 <= section < len(COLUMNS):
            column = COLUMNS[section]
            if role == Qt.ItemDataRole.DisplayRole:
                return column.header
            if role == Qt.ItemDataRole.ToolTipRole and column.tip:
                return column.tip
        return None

    def flags(self, index: QModelIndex) -> Qt.ItemFlag:
        flags = super().flags(index)
        if index.isValid() and COLUMNS[index.column()].key == "name":
            flags |= Qt.ItemFlag.ItemIsEditable
        return flags

    def data(self, index: QModelIndex, role: int = Qt.ItemDataRole.DisplayRole):
        if not index.isValid():
            return None
        row, run = self._rows[index.row()], self._runs[index.row()]
        column = COLUMNS[index.column()]
        if role == Qt.ItemDataRole.DisplayRole:
            if column.key == "speedup":
                return self._speedup_text(row)
            return column.text(row, run)
        if role == Qt.ItemDataRole.EditRole:
            return row["name"] or "" if column.key == "name" else column.text(row, run)
        if role == SORT_ROLE:
            return column.sort(row, run)
        if role == RUN_ID_ROLE:
            return row["id"]
        if role == Qt.ItemDataRole.TextAlignmentRole:
            align = Qt.AlignmentFlag.AlignRight if column.numeric else Qt.AlignmentFlag.AlignLeft
            return int(align | Qt.AlignmentFlag.AlignVCenter)
        if role == Qt.ItemDataRole.ToolTipRole:
            return self._tooltip(row, run, column)
        if role == Qt.ItemDataRole.BackgroundRole:
            return self._background(row, column)
        if role == Qt.ItemDataRole.ForegroundRole:
            return self._foreground(row, column)
        if role == Qt.ItemDataRole.FontRole and column.key == "speedup" and self._is_baseline(row):
            font = QFont()
            font.setItalic(True)
            return font
        return None

    def setData(self, index: QModelIndex, value: Any, role: int = Qt.ItemDataRole.EditRole) -> bool:  # noqa: N802
        if role != Qt.ItemDataRole.EditRole or not index.isValid() or COLUMNS[index.column()].key != "name":
            return False
        run_id = self._rows[index.row()]["id"]
        name = str(value or "").strip() or None
        self.store.rename_run(run_id, name)
        self._rows[index.row()]["name"] = name
        self._runs[index.row()].name = name
        self._rows[index.row()]["label"] = self._runs[index.row()].label
        self.dataChanged.emit(index, index)
        return True

    # -- presentation ----------------------------------------------------------------------------
    @staticmethod
    def _is_baseline(row: dict) -> bool:
        return row["chain"] == "baseline" and row["status"] == "done"

    def _speedup_text(self, row: dict) -> str:
        if row["speedup"] is None:
            return "baseline" if self._is_baseline(row) else "—"
        text = fmt.ratio(row["speedup"])
        ci = row["speedup_ci"]
        if ci:
            text += f"  [{ci[0]:.2f}, {ci[1]:.2f}]"
        return text

    def _tooltip(self, row: dict, run: RunRecord, column: Column) -> str | None:
        if run.status in ("failed", "cancelled"):
            reason = run.error or "no reason recorded"
            tip = f"{run.status}: {reason}"
            if run.error_detail:
                detail = run.error_detail.strip().splitlines()
                tip += "\n\n" + "\n".join(detail[-8:])
            return tip
        if run.status == "running":
            return "still running (or interrupted: reopening the app marks stale runs as failed)"
        key = column.key
        if key == "speedup":
            if row["speedup"] is None:
                return ("plugin-free run: the baseline of runs with the same model, runtime, device and batch"
                        if self._is_baseline(row) else NO_BASELINE_TIP)
            low, high = row["speedup_ci"]
            verdict = ("outside the noise: the interval clears 1× and the run-to-run band"
                       if row["speedup_significant"] else f"inside the noise: {NOISE_RULE}")
            return (f"speed-up {row['speedup']:.3f}× vs baseline #{row['baseline_id']}\n"
                    f"95 % interval [{low:.3f}×, {high:.3f}×]\n{verdict}")
        if key == "p50":
            ci = row["p50_ci_ms"]
            parts = [f"median {fmt.ms(row['p50_ms'])}"]
            if ci:
                parts.append(f"95 % CI {fmt.ci(ci)}")
            if row.get("n"):
                parts.append(f"{row['n']} iterations")
            return ", ".join(parts)
        if key == "chain" and row["flags"]:
            return "⚠ " + "\n⚠ ".join(row["flags"])
        if key == "tags" and row["tags"]:
            return ", ".join(row["tags"])
        if key in ("model",):
            return row["model"]
        return column.tip or None

    def _background(self, row: dict, column: Column) -> QColor | None:
        if column.key == "speedup" and row["speedup_significant"]:
            return style.good_background() if row["speedup"] > 1 else style.bad_background()
        return None

    def _foreground(self, row: dict, column: Column) -> QColor | None:
        status = row["status"]
        if column.key == "status":
            if status == "failed":
                return style.failed_foreground()
            if status in ("cancelled", "running"):
                return style.neutral_foreground()
        if status in ("failed", "cancelled") and column.key != "status":
            return style.neutral_foreground()
        if column.key == "speedup" and not row["speedup_significant"]:
            return style.neutral_foreground()
        return None


class RunsSortProxy(QSortFilterProxyModel):
    """Sorts on raw values (``SORT_ROLE``), missing values last in either order; filters on any
    column's text."""

    def __init__(self, parent: Any = None) -> None:
        super().__init__(parent)
        self.setSortRole(SORT_ROLE)
        self.setFilterKeyColumn(-1)
        self.setFilterCaseSensitivity(Qt.CaseSensitivity.CaseInsensitive)

    def lessThan(self, left: QModelIndex, right: QModelIndex) -> bool:  # noqa: N802
        a = self.sourceModel().data(left, SORT_ROLE)
        b = self.sourceModel().data(right, SORT_ROLE)
        a_missing = a is None or (isinstance(a, float) and math.isnan(a))
        b_missing = b is None or (isinstance(b, float) and math.isnan(b))
        if a_missing or b_missing:
            ascending = self.sortOrder() == Qt.SortOrder.AscendingOrder
            if a_missing and b_missing:
                return False
            return b_missing if ascending else a_missing
        try:
            return a < b
        except TypeError:
            return str(a) < str(b)


class ResultsView(QWidget):
    """Every run in the store, sortable, with rename (F2), tag, delete (Del) and multi-select;
    ``selectionChanged(list[int])`` carries the selected run ids (in table order)."""

    selectionChanged = Signal(list)

    def __init__(self, store: ResultsStore, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.store = store
        self.model = RunsTableModel(store, self)
        self.proxy = RunsSortProxy(self)
        self.proxy.setSourceModel(self.model)

        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        top = QHBoxLayout()
        self.filter_edit = QLineEdit()
        self.filter_edit.setPlaceholderText("Filter runs (name, model, chain, tags, status…)")
        self.filter_edit.setClearButtonEnabled(True)
        self.filter_edit.textChanged.connect(self.proxy.setFilterFixedString)
        self.count_label = QLabel()
        top.addWidget(self.filter_edit, 1)
        top.addWidget(self.count_label)
        layout.addLayout(top)

        self.table = QTableView()
        self.table.setObjectName("resultsTable")
        self.table.setModel(self.proxy)
        self.table.setSortingEnabled(True)
        self.table.sortByColumn(COLUMN_INDEX["id"], Qt.SortOrder.DescendingOrder)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.ExtendedSelection)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.DoubleClicked
                                   | QAbstractItemView.EditTrigger.EditKeyPressed)
        self.table.setAlternatingRowColors(True)
        self.table.setWordWrap(False)
        self.table.verticalHeader().hide()
        self.table.verticalHeader().setDefaultSectionSize(self.table.fontMetrics().height() + 8)
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(QHeaderView.ResizeMode.Interactive)
        header.setStretchLastSection(True)
        header.setHighlightSections(False)
        header.setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)
        header.customContextMenuRequested.connect(self._header_menu)
        self.table.setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)
        self.table.customContextMenuRequested.connect(self._context_menu)
        layout.addWidget(self.table, 1)

        self.rename_action = QAction("Rename…", self)
        self.rename_action.setShortcut(QKeySequence(Qt.Key.Key_F2))
        self.rename_action.triggered.connect(self.start_rename)
        self.tag_action = QAction("Tag…", self)
        self.tag_action.setShortcut(QKeySequence("Ctrl+T"))
        self.tag_action.triggered.connect(self.tag_selected)
        self.delete_action = QAction("Delete…", self)
        self.delete_action.setShortcut(QKeySequence(QKeySequence.StandardKey.Delete))
        self.delete_action.triggered.connect(self.delete_selected)
        self.refresh_action = QAction("Refresh", self)
        self.refresh_action.setShortcut(QKeySequence(QKeySequence.StandardKey.Refresh))
        self.refresh_action.triggered.connect(self.refresh)
        for action in (self.rename_action, self.tag_action, self.delete_action, self.refresh_action):
            action.setShortcutContext(Qt.ShortcutContext.WidgetWithChildrenShortcut)
            self.table.addAction(action)

        self._last_selection: list[int] = []
        self.table.selectionModel().selectionChanged.connect(self._selection_changed)
        self.refresh()

    # -- public API ------------------------------------------------------------------------------
    def refresh(self) -> None:
        """Reload every run from the store, keeping the selection and the sort."""
        keep = self.selected_run_ids()
        blocker = self.table.selectionModel().blockSignals(True)
        try:
            self.model.reload()
            if keep:
                self.select_runs(keep, emit=False)
        finally:
            self.table.selectionModel().blockSignals(blocker)
        self._update_count()
        self._update_actions()
        self._emit_if_changed()
        if self.model.rowCount() and not getattr(self, "_sized", False):
            self._sized = True
            self.table.resizeColumnsToContents()
            for i, column in enumerate(COLUMNS):
                if column.key in ("chain", "name", "model"):
                    self.table.setColumnWidth(i, min(self.table.columnWidth(i), 260))
        elif self.model.rowCount() <= 500:
            # Numbers arrive after the first sizing (a run finishing): widen, never shrink the user's widths.
            for i, column in enumerate(COLUMNS):
                if column.key not in ("chain", "name", "model", "tags"):
                    wanted = self.table.sizeHintForColumn(i)
                    if wanted > self.table.columnWidth(i):
                        self.table.setColumnWidth(i, wanted)

    def selected_run_ids(self) -> list[int]:
        rows = sorted({index.row() for index in self.table.selectionModel().selectedRows()})
        return [self.proxy.index(r, 0).data(RUN_ID_ROLE) for r in rows]

    def select_runs(self, run_ids: Sequence[int], emit: bool = True) -> None:
        selection = QItemSelection()
        first = None
        for run_id in run_ids:
            row = self.model.row_of(run_id)
            if row is None:
                continue
            index = self.proxy.mapFromSource(self.model.index(row, 0))
            if index.isValid():
                selection.select(index, index.siblingAtColumn(len(COLUMNS) - 1))
                first = index if first is None else first
        model = self.table.selectionModel()
        if first is not None:
            model.setCurrentIndex(first, QItemSelectionModel.SelectionFlag.NoUpdate)
        model.select(selection, QItemSelectionModel.SelectionFlag.ClearAndSelect | QItemSelectionModel.SelectionFlag.Rows)
        if emit:
            self._emit_if_changed()

    def row_count(self) -> int:
        return self.model.rowCount()

    def rename_run(self, run_id: int, name: str | None) -> None:
        self.store.rename_run(run_id, name)
        self.refresh()

    def set_tags(self, run_ids: Sequence[int], tags: Sequence[str]) -> None:
        for run_id in run_ids:
            self.store.set_tags(run_id, list(tags))
        self.refresh()

    def delete_runs(self, run_ids: Sequence[int]) -> list[int]:
        """Delete the given runs (no question asked); running ones are kept. Returns the deleted ids."""
        deleted = []
        for run_id in run_ids:
            row = self.model.row_of(run_id)
            if row is not None and self.model.record(row).status == "running":
                continue
            self.store.delete_run(run_id)
            deleted.append(run_id)
        self.refresh()
        return deleted

    # -- actions ---------------------------------------------------------------------------------
    def start_rename(self) -> None:
        current = self.table.currentIndex()
        if not current.isValid():
            rows = self.table.selectionModel().selectedRows()
            if not rows:
                return
            current = rows[0]
        index = current.siblingAtColumn(COLUMN_INDEX["name"])
        self.table.setCurrentIndex(index)
        self.table.edit(index)

    def tag_selected(self) -> None:
        ids = self.selected_run_ids()
        if not ids:
            return
        tag_sets = [set(self.model.record(self.model.row_of(i)).tags) for i in ids]
        common = sorted(set.intersection(*tag_sets)) if tag_sets else []
        what = f"run #{ids[0]}" if len(ids) == 1 else f"{len(ids)} runs"
        text, ok = QInputDialog.getText(self, "Tag runs", f"Tags for {what} (comma-separated):",
                                        QLineEdit.EchoMode.Normal, ", ".join(common))
        if not ok:
            return
        tags = [t.strip() for t in str(text).split(",") if t.strip()]
        for run_id, old in zip(ids, tag_sets):
            # Tags shared by all selected runs are replaced; a run's own extra tags are kept.
            self.store.set_tags(run_id, sorted((old - set(common)) | set(tags)))
        self.refresh()

    def delete_selected(self) -> None:
        ids = self.selected_run_ids()
        if not ids:
            return
        running = [i for i in ids if self.model.record(self.model.row_of(i)).status == "running"]
        ids = [i for i in ids if i not in running]
        if not ids:
            QMessageBox.information(self, "Delete runs", "A running run cannot be deleted; cancel it first.")
            return
        names = ", ".join(f"#{i}" for i in ids[:8]) + (" …" if len(ids) > 8 else "")
        extra = f"\n({len(running)} running run(s) will be kept.)" if running else ""
        answer = QMessageBox.question(
            self, "Delete runs", f"Delete {len(ids)} run(s) ({names}) with their latencies and telemetry?\n"
            f"This cannot be undone.{extra}",
            QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No, QMessageBox.StandardButton.No)
        if answer != QMessageBox.StandardButton.Yes:
            return
        self.delete_runs(ids)

    # -- internals -------------------------------------------------------------------------------
    def _context_menu(self, pos) -> None:
        index = self.table.indexAt(pos)
        if index.isValid() and not self.table.selectionModel().isRowSelected(index.row(), QModelIndex()):
            self.table.selectRow(index.row())
        menu = QMenu(self)
        for action in (self.rename_action, self.tag_action):
            menu.addAction(action)
        menu.addSeparator()
        menu.addAction(self.delete_action)
        menu.addSeparator()
        menu.addAction(self.refresh_action)
        menu.exec(self.table.viewport().mapToGlobal(pos))

    def _header_menu(self, pos) -> None:
        menu = QMenu(self)
        for i, column in enumerate(COLUMNS):
            if column.key == "id":
                continue
            action = menu.addAction(column.header)
            action.setCheckable(True)
            action.setChecked(not self.table.isColumnHidden(i))
            action.toggled.connect(lambda on, col=i: self.table.setColumnHidden(col, not on))
        menu.exec(self.table.horizontalHeader().mapToGlobal(pos))

    def _selection_changed(self, *args: Any) -> None:
        self._update_actions()
        self._emit_if_changed()

    def _emit_if_changed(self) -> None:
        ids = self.selected_run_ids()
        if ids != self._last_selection:
            self._last_selection = ids
            self.selectionChanged.emit(ids)

    def _update_actions(self) -> None:
        has = bool(self.table.selectionModel().selectedRows())
        for action in (self.rename_action, self.tag_action, self.delete_action):
            action.setEnabled(has)

    def _update_count(self) -> None:
        n = self.model.rowCount()
        self.count_label.setText(f"{n} run{'s' if n != 1 else ''}")
