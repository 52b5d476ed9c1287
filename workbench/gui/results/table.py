"""The Results dock: a table of every stored run with its deltas vs the baseline, and the
comparison charts of the selected runs.

The numbers come from the core (``workbench.results.compare.comparison_row``); nothing is measured or
recomputed here. A speed-up is coloured green/red only when its confidence interval clears 1 and the run-to-run
noise band (``speedup_significant``); inside the noise it is grey, and the tooltip always gives the interval.
"""
from __future__ import annotations

import textwrap

import math
import os
from dataclasses import dataclass
from typing import Any, Callable, Sequence

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import (QAbstractTableModel, QItemSelection, QItemSelectionModel, QModelIndex,
                            QSortFilterProxyModel, Qt, Signal)
from PySide6.QtGui import QAction, QColor, QFont, QKeySequence
from PySide6.QtWidgets import (QAbstractItemView, QHBoxLayout, QHeaderView, QInputDialog, QLabel, QLineEdit,
                               QMenu, QMessageBox, QTableView, QTabWidget, QVBoxLayout, QWidget)

from .. import format as fmt
from ..results.compare import baseline_for, compare_runs, comparison_row
from ..results.stats import NOISE_RULE
from ..results.store import ResultsStore, RunRecord
from . import plot_style as style

SORT_ROLE = Qt.ItemDataRole.UserRole
RUN_ID_ROLE = Qt.ItemDataRole.UserRole + 1

NO_BASELINE_TIP = ("no baseline: there is no finished plugin-free run of the same model, runtime, device, "
                   "batch, dtype and threads to compare with")


def _energy(joules: float | None) -> str:
    if joules is None:
        return "—"
    if joules < 1e-3:
        return f"{joules * 1e6:.3g} µJ"
    if joules < 1:
        return f"{joules * 1e3:.3g} mJ"
    return f"{joules:.3g} J"


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "—"
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, sec = divmod(int(round(seconds)), 60)
    if minutes < 60:
        return f"{minutes} min {sec:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"


def _model_name(model: str | None) -> str:
    if not model:
        return "—"
    return model if model.startswith("demo:") else os.path.basename(model.rstrip("/")) or model


def _throughput(value: float | None) -> str:
    return "—" if value is None else f"{fmt.count(value)}/s"


# -- table ------------------------------------------------------------------------------------------
@dataclass
class Column:
    key: str
    header: str
    text: Callable[[dict, RunRecord], str]
    sort: Callable[[dict, RunRecord], Any]
    numeric: bool = False
    tip: str = ""


def _c(key: str, header: str, text: Callable, sort: Callable, numeric: bool = False, tip: str = "") -> Column:
    return Column(key, header, text, sort, numeric, tip)


COLUMNS: list[Column] = [
    _c("id", "ID", lambda r, run: str(r["id"]), lambda r, run: r["id"], True),
    _c("name", "Name", lambda r, run: r["name"] or "", lambda r, run: (r["name"] or "").lower(),
       tip="Double-click or F2 to rename"),
    _c("model", "Model", lambda r, run: _model_name(r["model"]), lambda r, run: _model_name(r["model"]).lower()),
    _c("chain", "Chain", lambda r, run: r["chain"], lambda r, run: r["chain"]),
    _c("status", "Status", lambda r, run: r["status"], lambda r, run: r["status"]),
    _c("device", "Device", lambda r, run: r["device"] or "—", lambda r, run: r["device"] or ""),
    _c("runtime", "Runtime", lambda r, run: r["runtime"] or "—", lambda r, run: r["runtime"] or ""),
    _c("duration", "Duration",
       lambda r, run: _duration(run.finished_at - run.created_at if run.finished_at else None),
       lambda r, run: (run.finished_at - run.created_at) if run.finished_at else None, True,
       "Wall-clock time of the whole run (load, optimize, measure)"),
    _c("p50", "p50", lambda r, run: fmt.ms(r["p50_ms"]), lambda r, run: r["p50_ms"], True,
       "Median latency per iteration (one batch)"),
    _c("p99", "p99", lambda r, run: fmt.ms(r["p99_ms"]), lambda r, run: r["p99_ms"], True,
       "99th percentile latency (reported only with ≥ 662 iterations)"),
    _c("throughput", "Throughput", lambda r, run: _throughput(r["throughput"]), lambda r, run: r["throughput"], True,
       "Samples per second: batch / median latency"),
    _c("speedup", "Speed-up", lambda r, run: fmt.ratio(r["speedup"]), lambda r, run: r["speedup"], True,
       "Baseline median / this run's median, with a 95 % interval; coloured only outside the noise"),
    _c("rss", "Peak RSS", lambda r, run: fmt.nbytes(r["peak_rss_bytes"]), lambda r, run: r["peak_rss_bytes"], True,
       "Peak resident memory of the worker process"),
    _c("gpu_mem", "GPU memory", lambda r, run: fmt.nbytes(r["gpu_mem_peak_bytes"]),
       lambda r, run: r["gpu_mem_peak_bytes"], True, "Peak GPU memory of the worker (device-wide if not listed)"),
    _c("power", "Power", lambda r, run: fmt.num(r["power_w"], ".3g", " W"), lambda r, run: r["power_w"], True,
       "Mean GPU power during the timed window"),
    _c("energy", "Energy/inference", lambda r, run: _energy(r["energy_j_per_inference"]),
       lambda r, run: r["energy_j_per_inference"], True, "GPU energy per iteration (one batch)"),
    _c("size", "Size", lambda r, run: fmt.nbytes(r["size_bytes"])
       + (f" ({fmt.ratio(r['size_ratio'])})" if r.get("size_ratio") is not None and r["chain"] != "baseline" else ""),
       lambda r, run: r["size_bytes"], True, "Serialized weights (ratio vs the unoptimized model)"),
    _c("top1", "Top-1 agreement", lambda r, run: fmt.pct(r["top1_agreement"]), lambda r, run: r["top1_agreement"],
       True, "Fraction of samples whose predicted class matches the unoptimized model"),
    _c("accuracy", "Accuracy", lambda r, run: fmt.pct(r["accuracy"]), lambda r, run: r["accuracy"], True,
       "Accuracy on the labelled evaluation data, when the data has labels"),
    _c("tags", "Tags", lambda r, run: ", ".join(r["tags"] or ()), lambda r, run: ", ".join(r["tags"] or ())),
]
# What a user compares first (latency, speed-up, fidelity) comes first; context columns follow.
_ORDER = ("id", "name", "chain", "status", "p50", "p99", "throughput", "speedup", "top1", "accuracy", "size",
          "rss", "gpu_mem", "power", "energy", "model", "device", "runtime", "duration", "tags")
COLUMNS.sort(key=lambda c: _ORDER.index(c.key) if c.key in _ORDER else len(_ORDER))
COLUMN_INDEX = {c.key: i for i, c in enumerate(COLUMNS)}


class _NoFallbackStore:
    """``baseline_for`` with the complete run list as its selection needs no second store search."""

    @staticmethod
    def find_baseline(run: RunRecord) -> None:
        return None


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


# -- comparison charts ---------------------------------------------------------------------------------
def pareto_front(points: Sequence[tuple[float | None, float | None]]) -> list[int]:
    """Indices of the non-dominated points when lower x (latency) and higher y (fidelity) are
    better, sorted by x. Points with a missing or non-finite coordinate are ignored; identical
    points on the front are all kept."""
    valid = [(float(x), float(y), i) for i, (x, y) in enumerate(points)
             if x is not None and y is not None and math.isfinite(x) and math.isfinite(y)]
    valid.sort(key=lambda p: (p[0], -p[1]))
    front: list[int] = []
    best_y = -math.inf
    last: tuple[float, float] | None = None
    for x, y, i in valid:
        if y > best_y:
            front.append(i)
            best_y = y
            last = (x, y)
        elif last is not None and (x, y) == last:
            front.append(i)
    return front


@dataclass
class _Metric:
    key: str
    title: str
    unit: str
    scale: float
    better: str      # "lower" | "higher"
    missing: str     # placeholder text when no selected run has it


BAR_METRICS = (
    _Metric("p50_ms", "p50 latency", "ms", 1.0, "lower", "no latency (failed runs)"),
    _Metric("p99_ms", "p99 latency", "ms", 1.0, "lower", "no p99 (needs ≥ 662 iterations)"),
    _Metric("throughput", "Throughput", "samples/s", 1.0, "higher", "no throughput (failed runs)"),
    _Metric("size_bytes", "Model size", "MB", 1e-6, "lower", "no model size recorded"),
    _Metric("energy_j_per_inference", "Energy / inference", "mJ", 1e3, "lower",
            "no energy data: needs an NVIDIA GPU with NVML"),
)


class ComparisonCharts(QWidget):
    """Charts of the selected runs: bars per key metric vs the baseline, latency CDFs, and
    latency vs fidelity with the Pareto front."""

    MAX_CDF_POINTS = 2000

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        self.tabs = QTabWidget()
        layout.addWidget(self.tabs)

        self.metrics_view = pg.GraphicsLayoutWidget()
        style.style_plot_widget(self.metrics_view)
        self.bar_plots: dict[str, pg.PlotItem] = {}
        for i, metric in enumerate(BAR_METRICS):
            plot = pg.PlotItem()
            style.style_plot_item(plot, grid=False)
            plot.showGrid(y=True, alpha=0.15)
            plot.setLabel("left", metric.title, units=metric.unit)
            plot.getAxis("left").enableAutoSIPrefix(False)
            plot.setMouseEnabled(x=False, y=True)
            plot.setMenuEnabled(False)
            self.bar_plots[metric.key] = plot
            self.metrics_view.addItem(plot, row=i // 3, col=i % 3)
        self.key_label = pg.LabelItem(justify="left", color=style.foreground().name())
        style.let_label_shrink(self.key_label)
        self.metrics_view.addItem(self.key_label, row=1, col=2)
        self.tabs.addTab(self.metrics_view, "Metrics")

        self.dist_view = pg.GraphicsLayoutWidget()
        style.style_plot_widget(self.dist_view)
        self.cdf_plot = pg.PlotItem()
        style.style_plot_item(self.cdf_plot)
        self.cdf_plot.setTitle("Latency distribution (CDF, timed iterations)", color=style.foreground().name(),
                               size="9pt")
        self.cdf_plot.setLabel("bottom", "latency per iteration", units="ms")
        self.cdf_plot.getAxis("bottom").enableAutoSIPrefix(False)
        self.cdf_plot.setLabel("left", "fraction of iterations ≤ latency")
        self.scatter_plot = pg.PlotItem()
        style.style_plot_item(self.scatter_plot)
        self.scatter_plot.getAxis("bottom").enableAutoSIPrefix(False)
        self.scatter_plot.getAxis("left").enableAutoSIPrefix(False)
        self.scatter_plot.setLabel("bottom", "p50 latency", units="ms")
        self.dist_view.addItem(self.cdf_plot, row=0, col=0)
        self.dist_view.addItem(self.scatter_plot, row=0, col=1)
        self.tabs.addTab(self.dist_view, "Distribution && trade-off")

        self.rows: list[dict] = []
        self.cdf_curves: list[pg.PlotDataItem] = []
        self.bar_values: dict[str, dict[int, float]] = {}
        self.baseline_values: dict[str, float] = {}
        self.scatter_points: dict[int, tuple[float, float]] = {}
        self.scatter_metric: str | None = None
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
        self._colors = {row["id"]: style.run_color(i) for i, row in enumerate(self.rows)}
        self.placeholders = {}
        self._draw_bars()
        self._draw_key()
        self._draw_cdfs(store)
        self._draw_scatter()

    def clear(self) -> None:
        self.show_runs(None, [])

    # -- drawing ---------------------------------------------------------------------------------
    def _label(self, row: dict) -> str:
        return f"#{row['id']}"

    def _baseline_row(self) -> dict | None:
        ids = {r["baseline_id"] for r in self.rows if r["baseline_id"] is not None and r["status"] == "done"}
        if len(ids) != 1:
            return None
        bid = ids.pop()
        return next((r for r in self.rows if r["id"] == bid), None)

    def _draw_bars(self) -> None:
        baseline = self._baseline_row()
        self.bar_values = {}
        self.baseline_values = {}
        for metric in BAR_METRICS:
            plot = self.bar_plots[metric.key]
            plot.clear()
            # short titles: a title's width is its plot's minimum width, and three plots share a row
            # (the dashed baseline line is explained once, in the key)
            title = f"{metric.title} ({'lower' if metric.better == 'lower' else 'higher'} is better)"
            plot.setTitle(title, color=style.foreground().name(), size="9pt")
            plot.showAxis("left")
            plot.showAxis("bottom")
            present = [(i, row) for i, row in enumerate(self.rows) if row.get(metric.key) is not None]
            values = {row["id"]: row[metric.key] * metric.scale for _, row in present}
            self.bar_values[metric.key] = values
            ticks = [(i, self._label(row) + (" (failed)" if row["status"] != "done" else "")) for i, row in
                     enumerate(self.rows)]
            plot.getAxis("bottom").setTicks([ticks])
            if not present:
                text = metric.missing if self.rows else "select runs in the table"
                self._placeholder(plot, text, metric.key)
                continue
            xs = np.array([i for i, _ in present], dtype=float)
            heights = np.array([values[row["id"]] for _, row in present])
            brushes = [pg.mkBrush(self._colors[row["id"]]) for _, row in present]
            bars = pg.BarGraphItem(x=xs, height=heights, width=0.6, brushes=brushes, pen=pg.mkPen(None))
            plot.addItem(bars)
            if metric.key == "p50_ms":
                self._error_bars(plot, present)
            top = float(heights.max()) if heights.size else 1.0
            base_value = baseline.get(metric.key) if baseline is not None else None
            if base_value is not None:
                base_value *= metric.scale
                self.baseline_values[metric.key] = base_value
                line = pg.InfiniteLine(pos=base_value, angle=0, movable=False,
                                       pen=pg.mkPen(style.muted(), width=1, style=Qt.PenStyle.DashLine))
                plot.addItem(line)
            for x, (_, row) in zip(xs, present):
                value = values[row["id"]]
                text = f"{value:.3g}" if value < 1000 else f"{value:,.0f}".replace(",", " ")
                if base_value and row["id"] != (baseline or {}).get("id"):
                    text += f"\n{value / base_value:.2f}×"
                label = pg.TextItem(text, color=style.foreground(), anchor=(0.5, 1.0))
                label.setPos(x, value)
                plot.addItem(label)
            plot.setXRange(-0.6, len(self.rows) - 0.4, padding=0)
            plot.setYRange(0, top * 1.6, padding=0)   # room for the two-line value labels

    def _error_bars(self, plot: pg.PlotItem, present: list[tuple[int, dict]]) -> None:
        xs, ys, lows, highs = [], [], [], []
        for i, row in present:
            ci = row.get("p50_ci_ms")
            if not ci:
                continue
            xs.append(i)
            ys.append(row["p50_ms"])
            lows.append(max(0.0, row["p50_ms"] - ci[0]))
            highs.append(max(0.0, ci[1] - row["p50_ms"]))
        if xs:
            plot.addItem(pg.ErrorBarItem(x=np.array(xs, float), y=np.array(ys), bottom=np.array(lows),
                                         top=np.array(highs), beam=0.2, pen=pg.mkPen(style.foreground())))

    def _draw_key(self) -> None:
        if not self.rows:
            self.key_label.setText("")
            return
        lines = []
        for row in self.rows:
            color = self._colors[row["id"]].name()
            note = " — baseline (not selected)" if row.get("reference_only") else ""
            if row["status"] != "done":
                note += f" — {row['status']}"
            name = row["name"] or row["chain"]
            lines.append(f"<span style='color:{color}'>■</span> #{row['id']} {_html(name)} "
                         f"<span style='color:{style.muted().name()}'>({_html(_model_name(row['model']))}, "
                         f"{_html(row['device'] or '?')}){_html(note)}</span>")
        baseline = self._baseline_row()
        if baseline is not None:
            lines.append(f"<span style='color:{style.muted().name()}'>╌ dashed line: baseline "
                         f"#{baseline['id']}</span>")
        self.key_label.setText("<br>".join(lines), size="9pt")

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
        lows, highs = [], []
        for row in self.rows:
            if row["status"] != "done" or store is None:
                continue
            ns = store.latencies(row["id"])
            if not ns:
                continue
            values = np.sort(np.asarray(ns, dtype=np.float64)) / 1e6
            n = values.shape[0]
            idx = np.unique(np.linspace(0, n - 1, min(n, self.MAX_CDF_POINTS)).round().astype(np.int64))
            curve = self.cdf_plot.plot(values[idx], (idx + 1) / n, pen=pg.mkPen(self._colors[row["id"]], width=2),
                                       name=f"#{row['id']} {row['name'] or row['chain']}")
            self.cdf_curves.append(curve)
            lows.append(values[0])
            highs.append(values[min(n - 1, int(0.995 * n))])
        if not self.cdf_curves:
            self._placeholder(self.cdf_plot, "no latencies: select finished runs" if self.rows else
                              "select runs in the table", "cdf")
            return
        lo, hi = min(lows), max(highs)
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
            key, label, scale, units = "top1_agreement", "top-1 agreement with the unoptimized model", 100.0, "%"
        elif any(r.get("cosine") is not None for r in done):
            key, label, scale, units = "cosine", "output cosine similarity", 1.0, None
        else:
            key = None
        self.scatter_metric = key
        plot.setTitle("Latency vs fidelity (dashed: Pareto front)", color=style.foreground().name(), size="9pt")
        if key is None:
            plot.setLabel("left", "fidelity")
            self._placeholder(plot, "no fidelity data in the selected runs" if self.rows else
                              "select runs in the table", "scatter")
            return
        plot.setLabel("left", label, units=units)
        points = [(r["p50_ms"], r[key] * scale) for r in done if r.get(key) is not None]
        rows = [r for r in done if r.get(key) is not None]
        for row, (x, y) in zip(rows, points):
            self.scatter_points[row["id"]] = (x, y)
        front = pareto_front(points)
        self.pareto_ids = [rows[i]["id"] for i in front]
        if len(front) > 1:
            fx = [points[i][0] for i in front]
            fy = [points[i][1] for i in front]
            # staircase: what is achievable at each latency
            sx = np.repeat(fx, 2)[1:]
            sy = np.repeat(fy, 2)[:-1]
            plot.plot(sx, sy, pen=pg.mkPen(style.muted(), width=1.5, style=Qt.PenStyle.DashLine))
        on_front = set(front)
        spots = [{"pos": p, "brush": pg.mkBrush(self._colors[r["id"]]), "size": 13 if i in on_front else 10,
                  "pen": pg.mkPen(style.foreground(), width=2) if i in on_front else pg.mkPen(None),
                  "data": r["id"]} for i, (r, p) in enumerate(zip(rows, points))]
        scatter = pg.ScatterPlotItem(spots=spots, hoverable=True, tip=self._spot_tip)
        plot.addItem(scatter)
        labels: dict[tuple[float, float], list[str]] = {}
        for row, (x, y) in zip(rows, points):     # coincident points share one label
            labels.setdefault((x, y), []).append(f"#{row['id']}")
        for (x, y), names in labels.items():
            text = pg.TextItem(", ".join(names), color=style.foreground(), anchor=(-0.15, 1.0))
            text.setPos(x, y)
            plot.addItem(text)
        xs = [p[0] for p in points]
        ys = [p[1] for p in points]
        xpad = (max(xs) - min(xs)) * 0.15 or max(xs) * 0.1 or 1.0
        ypad = (max(ys) - min(ys)) * 0.15 or (abs(max(ys)) * 0.01 or 1.0)
        plot.setXRange(max(0.0, min(xs) - xpad), max(xs) + xpad, padding=0)
        plot.setYRange(min(ys) - ypad, max(ys) + ypad, padding=0)

    def _spot_tip(self, x: float, y: float, data: Any) -> str:
        row = next((r for r in self.rows if r["id"] == data), None)
        name = (row["name"] or row["chain"]) if row else ""
        return f"#{data} {name}\np50 {fmt.ms(x)}\nfidelity {y:.4g}"

    def _placeholder(self, plot: pg.PlotItem, text: str, key: str) -> None:
        self.placeholders[key] = text
        plot.getAxis("bottom").setTicks(None)
        plot.hideAxis("left")
        plot.hideAxis("bottom")
        # wrapped: a small chart must not cut the reason off
        item = pg.TextItem(textwrap.fill(text, 30), color=style.muted(), anchor=(0.5, 0.5))
        plot.addItem(item)
        plot.setXRange(0, 1, padding=0)
        plot.setYRange(0, 1, padding=0)
        item.setPos(0.5, 0.5)


def _html(text: str) -> str:
    return (str(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;"))
