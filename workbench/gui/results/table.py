"""The Results dock's table: every stored run with its deltas vs the baseline, sortable and
filterable, with rename (F2), tag, delete (Del) and multi-select.

The numbers and the verdict come from the core (``workbench.results.compare.comparison_row``, whose
``row["verdict"]`` is ``results.verdict``'s); nothing is measured or judged here. The speed-up and verdict
cells are coloured by the verdict's level: green a win, red a loss (slower, or outputs below the fidelity
gate however fast), grey inside the noise; their tooltip gives the full verdict, the interval and the gate.
The columns that say that (speed-up, verdict, fidelity) come first and are fitted into the table's width.
"""
from __future__ import annotations

import math
from typing import Any, Sequence

from PySide6.QtCore import (QAbstractTableModel, QEvent, QItemSelection, QItemSelectionModel, QModelIndex,
                            QObject, QSize, QSortFilterProxyModel, Qt, Signal)
from PySide6.QtGui import QAction, QColor, QFont, QKeySequence, QPalette, QPen
from PySide6.QtWidgets import (QAbstractItemView, QApplication, QHBoxLayout, QHeaderView, QInputDialog, QLabel,
                               QLineEdit, QMenu, QMessageBox, QStyle, QStyledItemDelegate, QStyleOptionViewItem,
                               QTableView, QVBoxLayout, QWidget)

from ... import format as fmt
from ...results.compare import baseline_for, comparison_row, runtime_baseline_for
from ...results.store import ResultsStore, RunRecord
from .. import plot_style as style
from ...results.verdict import LOSS, NOISE, WIN
from .columns import COLUMN_INDEX, COLUMNS, LANGUAGE_MODEL_COLUMNS, PRIORITY, Column, is_baseline, verdict_tip

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
        none = _NoFallbackStore()
        # both references of a cross-runtime chain: the original on its runtime, the fp32 model on this one
        rows = [comparison_row(run, baseline_for(none, run, runs), runtime_baseline=runtime_baseline_for(none, run, runs))  # type: ignore[arg-type]
                for run in runs]
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
        if role == Qt.ItemDataRole.FontRole and column.key == "speedup" and is_baseline(row):
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
        if key in ("speedup", "verdict"):
            tip = verdict_tip(row)
            if row["speedup"] is None and not is_baseline(row):
                tip += "\n" + NO_BASELINE_TIP
            return tip
        if key == "p50":
            ci = row["p50_ci_ms"]
            parts = [f"median {fmt.ms(row['p50_ms'])}"]
            if ci:
                parts.append(f"95 % CI {fmt.ci(ci)}")
            if row.get("n"):
                parts.append(f"{row['n']} iterations")
            return ", ".join(parts)
        if key == "chain":     # the cell may be elided: the whole chain, then any warnings
            return row["chain"] + ("\n⚠ " + "\n⚠ ".join(row["flags"]) if row["flags"] else "")
        if key == "tags" and row["tags"]:
            return ", ".join(row["tags"])
        if key in ("model",):
            return row["model"]
        return column.tip or None

    @staticmethod
    def _level(row: dict) -> str | None:
        verdict = row.get("verdict") or {}
        # a run whose outputs failed the gate is never painted as a win, whatever its level says
        if verdict.get("fidelity_ok") is False:
            return LOSS
        return verdict.get("level")

    def _background(self, row: dict, column: Column) -> QColor | None:
        if column.key not in ("speedup", "verdict"):
            return None
        level = self._level(row)
        if level == WIN:
            return style.good_background()
        if level == LOSS:
            return style.bad_background()
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
        if column.key in ("speedup", "verdict") and self._level(row) == NOISE:
            return style.neutral_foreground()
        return None


class VerdictDelegate(QStyledItemDelegate):
    """Keeps a verdict's colour visible in selected rows (the selection highlight would paint over
    it, and comparing means selecting): the cell keeps its colour, the selection shows as lines
    along the row's top and bottom."""

    def paint(self, painter, option, index) -> None:  # noqa: D102 (Qt API)
        selected = bool(option.state & QStyle.StateFlag.State_Selected)
        if not selected or index.data(Qt.ItemDataRole.BackgroundRole) is None:
            super().paint(painter, option, index)
            return
        unselected = QStyleOptionViewItem(option)
        unselected.state &= ~QStyle.StateFlag.State_Selected
        super().paint(painter, unselected, index)
        painter.save()
        painter.setPen(QPen(option.palette.color(QPalette.ColorRole.Highlight), 2))
        rect = option.rect.adjusted(0, 1, 0, -1)
        painter.drawLine(rect.topLeft(), rect.topRight())
        painter.drawLine(rect.bottomLeft(), rect.bottomRight())
        painter.restore()


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
    # Elided, in this order, when the first columns do not fit: (column, narrowest width in px).
    SQUEEZE = (("chain", 100), ("verdict", 130), ("chain", 70), ("verdict", 70), ("chain", 50))
    MAX_MIN_WIDTH = 460     # the table's minimum width never exceeds this (small screens)

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
        self.verdict_delegate = VerdictDelegate(self.table)
        for key in ("speedup", "verdict"):
            self.table.setItemDelegateForColumn(COLUMN_INDEX[key], self.verdict_delegate)
        self.table.setWordWrap(False)
        self.table.verticalHeader().hide()
        self.table.verticalHeader().setDefaultSectionSize(self.table.fontMetrics().height() + 8)
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(QHeaderView.ResizeMode.Interactive)
        header.setStretchLastSection(True)
        header.setHighlightSections(False)
        header.setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)
        header.customContextMenuRequested.connect(self._header_menu)
        header.sectionResized.connect(self._section_resized)
        self._sized = False
        self._fitting = False
        self._auto_widths = True
        self.table.setTextElideMode(Qt.TextElideMode.ElideRight)
        self.table.viewport().installEventFilter(self)
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
        self._user_columns: set[str] = set()
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
        self._show_language_model_columns()
        self._update_count()
        self._update_actions()
        self._emit_if_changed()
        if self.model.rowCount() and (self._auto_widths or not self._sized):
            self._sized = True
            self.fit_columns()
        elif self.model.rowCount() <= 500:
            # The user has set widths: numbers arriving later (a run finishing) widen, never shrink, them.
            for i, column in enumerate(COLUMNS):
                if column.max_width is None:
                    wanted = self.table.sizeHintForColumn(i)
                    if wanted > self.table.columnWidth(i):
                        self.table.setColumnWidth(i, wanted)

    def fit_columns(self) -> None:
        """Columns to their contents, long text capped, then the first columns (speed-up, verdict,
        fidelity) squeezed into the visible width: the verdict and the chain are elided before any
        of them scrolls out of sight. Stops once the user drags a column edge."""
        if not self.model.rowCount() or self.model.rowCount() > 500:
            return
        self._fitting = True
        try:
            for i in range(len(COLUMNS)):
                self.table.setColumnWidth(i, self.natural_width(i))
            shown = self._shown_priority()
            excess = sum(self.table.columnWidth(i) for i in shown) - self.table.viewport().width()
            for key, narrowest in self.SQUEEZE:
                i = COLUMN_INDEX[key]
                if excess <= 0:
                    break
                if i in shown:
                    cut = min(excess, max(0, self.table.columnWidth(i) - narrowest))
                    self.table.setColumnWidth(i, self.table.columnWidth(i) - cut)
                    excess -= cut
        finally:
            self._fitting = False
        self.updateGeometry()     # the splitter reads the new minimum width

    def natural_width(self, column: int) -> int:
        """Contents and header text, capped at the column's ``max_width``. The sort arrow's room is
        kept only where the arrow is (Qt reserves it in every header, which cost ~20 px a column)."""
        header = self.table.horizontalHeader()
        margin = 2 * self.style().pixelMetric(QStyle.PixelMetric.PM_HeaderMargin) + 10
        text = header.fontMetrics().horizontalAdvance(COLUMNS[column].header) + margin
        if header.sortIndicatorSection() == column:
            text += header.fontMetrics().height()
        width = max(self.table.sizeHintForColumn(column), text)
        cap = COLUMNS[column].max_width
        return min(width, cap) if cap is not None else width

    def priority_width(self, squeezed: bool = False) -> int:
        """Pixels the first columns need (with verdict and chain at their first squeeze limits if
        ``squeezed``), plus the frame and a vertical scroll bar."""
        limits = {key: narrowest for key, narrowest in reversed(self.SQUEEZE[:2])} if squeezed else {}
        total = 0
        for i in self._shown_priority():
            natural = self.natural_width(i) if self.model.rowCount() else self.table.columnWidth(i)
            total += min(natural, limits.get(COLUMNS[i].key, natural))
        return total + self.table.verticalScrollBar().sizeHint().width() + 2 * self.table.frameWidth()

    def minimumSizeHint(self) -> QSize:  # noqa: N802 (Qt API)
        # never so narrow that the speed-up, the verdict and the fidelity leave the screen
        hint = super().minimumSizeHint()
        return QSize(max(hint.width(), min(self.MAX_MIN_WIDTH, self.priority_width(squeezed=True))), hint.height())

    def _shown_priority(self) -> list[int]:
        return [COLUMN_INDEX[k] for k in PRIORITY if not self.table.isColumnHidden(COLUMN_INDEX[k])]

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:  # noqa: N802 (Qt API)
        if watched is self.table.viewport() and event.type() == QEvent.Type.Resize and self._auto_widths:
            old, new = event.oldSize().width(), event.size().width()
            if old != new:
                self.fit_columns()
        return super().eventFilter(watched, event)

    def _section_resized(self, *_args: Any) -> None:
        # only a drag with the mouse is the user's choice (the stretched last column resizes itself)
        if not self._fitting and QApplication.mouseButtons() & Qt.MouseButton.LeftButton:
            self._auto_widths = False      # the user dragged a column edge: their widths stay

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
            action.toggled.connect(lambda on, col=i: self._show_column(col, on))
        menu.exec(self.table.horizontalHeader().mapToGlobal(pos))

    def _show_language_model_columns(self) -> None:
        """The generation and perplexity columns appear once a stored run has those figures."""
        rows = [self.model.comparison(i) for i in range(self.model.rowCount())]
        for key, field in LANGUAGE_MODEL_COLUMNS.items():
            column = COLUMN_INDEX[key]
            has = any(row.get(field) is not None for row in rows)
            if has != (not self.table.isColumnHidden(column)) and key not in self._user_columns:
                self.table.setColumnHidden(column, not has)

    def _show_column(self, column: int, shown: bool) -> None:
        self._user_columns.add(COLUMNS[column].key)     # the user's choice outlasts the automatic one
        self.table.setColumnHidden(column, not shown)
        if self._auto_widths:
            self.fit_columns()

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
