"""Pieces the Results dock's Profile and Layers tabs share: which run of the selection they explain
(and its baseline), read-only tables that sort by value, the hint shown when a run stored nothing
to explain, and a copyable command line."""
from __future__ import annotations

import shlex
from dataclasses import dataclass
from typing import Any, Sequence

from PySide6.QtCore import Qt
from PySide6.QtGui import QColor, QGuiApplication
from PySide6.QtWidgets import (QAbstractItemView, QHBoxLayout, QHeaderView, QLabel, QLineEdit, QPushButton,
                               QTableWidget, QTableWidgetItem, QVBoxLayout, QWidget)

from ...results.compare import baseline_for
from ...results.store import ResultsStore, RunRecord

SORT_ROLE = Qt.ItemDataRole.UserRole + 1
MIN_ROWS_SHOWN = 5


@dataclass
class Selected:
    """The run a tab explains and the run it is compared with (None: a baseline, or none stored)."""
    run: RunRecord
    baseline: RunRecord | None


def pick_run(store: ResultsStore | None, run_ids: Sequence[int]) -> Selected | None:
    """The run to explain among the selected ones: the last selected variant (a run with plugins),
    else the first selected run; its baseline is taken from the selection first, like the charts."""
    if store is None or not run_ids:
        return None
    runs = []
    for run_id in run_ids:
        try:
            runs.append(store.get_run(run_id))
        except Exception:   # noqa: BLE001 - deleted meanwhile: nothing to explain for it
            continue
    if not runs:
        return None
    variants = [r for r in runs if r.spec.get("plugins")]
    run = variants[-1] if variants else runs[0]
    try:
        baseline = baseline_for(store, run, [r for r in runs if r is not run])
    except Exception:   # noqa: BLE001 - an odd stored spec: explain the run alone
        baseline = None
    return Selected(run, baseline)


def command_for(spec: dict, *extra: str) -> str:
    """The ``workbench bench`` command that repeats ``spec`` (with ``extra`` flags added)."""
    from ...report.command import spec_to_argv
    argv, _ = spec_to_argv(spec)
    return shlex.join(argv + [e for e in extra if e not in argv])


def run_title(run: RunRecord) -> str:
    return f"#{run.id} {run.chain}"


class Cell:
    """One table cell: its text, the value it sorts by, a tooltip and an optional colour."""

    def __init__(self, text: str, sort: Any = None, tip: str = "", color: str | None = None,
                 align_right: bool = False) -> None:
        self.text, self.sort, self.tip, self.color, self.align_right = text, sort, tip, color, align_right


class _SortedItem(QTableWidgetItem):
    def __lt__(self, other: QTableWidgetItem) -> bool:  # noqa: D105 - Qt's sort
        mine, theirs = self.data(SORT_ROLE), other.data(SORT_ROLE)
        if mine is None or theirs is None:          # cells without a value sort after the others
            return theirs is None and (mine is not None or self.text() < other.text())
        try:
            return mine < theirs
        except TypeError:
            return str(mine) < str(theirs)


class ReadOnlyTable(QTableWidget):
    """A table of ``Cell`` rows: read-only, sortable by value, rows selectable, compact."""

    def __init__(self, headers: Sequence[str], tips: Sequence[str] = (), parent: QWidget | None = None) -> None:
        super().__init__(0, len(headers), parent)
        self.setHorizontalHeaderLabels(list(headers))
        for column, tip in enumerate(tips):
            if tip:
                self.horizontalHeaderItem(column).setToolTip(tip)
        self.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.setAlternatingRowColors(True)
        self.setWordWrap(False)
        self.verticalHeader().hide()
        row = self.fontMetrics().height() + 6
        self.verticalHeader().setDefaultSectionSize(row)
        # a few rows always show: a short Results dock scrolls the whole tab rather than hide the table
        self.setMinimumHeight(MIN_ROWS_SHOWN * row + self.horizontalHeader().sizeHint().height() + 4)
        header = self.horizontalHeader()
        header.setSectionResizeMode(QHeaderView.ResizeMode.Interactive)
        header.setStretchLastSection(True)
        header.setHighlightSections(False)

    def set_rows(self, rows: Sequence[Sequence[Cell]]) -> None:
        self.setSortingEnabled(False)
        self.clearContents()
        self.setRowCount(len(rows))
        for r, row in enumerate(rows):
            for c, cell in enumerate(row):
                item = _SortedItem(cell.text)
                item.setData(SORT_ROLE, cell.sort if cell.sort is not None else (cell.text or None))
                if cell.tip:
                    item.setToolTip(cell.tip)
                if cell.color:
                    item.setForeground(QColor(cell.color))
                if cell.align_right:
                    item.setTextAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
                self.setItem(r, c, item)
        self.resizeColumnsToContents()
        for column in range(self.columnCount() - 1):      # a long cell never hides the columns after it
            self.setColumnWidth(column, min(self.columnWidth(column), 320))
        self.horizontalHeader().setSortIndicator(-1, Qt.SortOrder.AscendingOrder)   # keep the given order
        self.setSortingEnabled(True)

    def column_texts(self, column: int) -> list[str]:
        return [self.item(r, column).text() for r in range(self.rowCount())]


class TabLayout(QVBoxLayout):
    """A tab's outer layout. Its wrapping labels give it a height-for-width, which makes a scroll
    area (the Results dock holds the tabs in one) ask for the tab's whole preferred height and
    scroll long before it must; without it the scroll area fills its height and scrolls only below
    the tab's minimum. The labels still wrap: the layout inside still lays them out for the width."""

    def hasHeightForWidth(self) -> bool:  # noqa: N802 (Qt API)
        return False


class WrapLabel(QLabel):
    """A word-wrapped label that asks for the height its text needs at its width, also inside a tab
    or a stacked page (which do not pass a height-for-width on, so a long line was cut off)."""

    def resizeEvent(self, event) -> None:  # noqa: N802 (Qt API)
        super().resizeEvent(event)
        wanted = self.heightForWidth(self.width())
        if wanted > 0 and wanted != self.minimumHeight():
            self.setMinimumHeight(wanted)

    def setText(self, text: str) -> None:  # noqa: N802 (Qt API)
        super().setText(text)
        wanted = self.heightForWidth(self.width()) if self.width() > 0 else -1
        if wanted > 0:
            self.setMinimumHeight(wanted)


def hint_label(object_name: str) -> QLabel:
    """A wrapping, selectable rich-text label for what a tab cannot show and how to record it."""
    label = WrapLabel()
    label.setObjectName(object_name)
    label.setWordWrap(True)
    label.setTextFormat(Qt.TextFormat.RichText)
    label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
    label.setAlignment(Qt.AlignmentFlag.AlignTop | Qt.AlignmentFlag.AlignLeft)
    label.setContentsMargins(8, 6, 8, 6)
    return label


class CommandLine(QWidget):
    """A command in a read-only field with a Copy button (to paste into a terminal)."""

    def __init__(self, object_name: str, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName(object_name)
        self.edit = QLineEdit()
        self.edit.setReadOnly(True)
        self.edit.setObjectName(f"{object_name}Text")
        self.copy_button = QPushButton("Copy")
        self.copy_button.setObjectName(f"{object_name}Copy")
        self.copy_button.setToolTip("Copy the command to the clipboard")
        self.copy_button.clicked.connect(self.copy)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.edit, 1)
        layout.addWidget(self.copy_button)

    def set_command(self, command: str | None) -> None:
        self.edit.setText(command or "")
        self.edit.setCursorPosition(0)
        self.edit.setToolTip(command or "")
        self.setVisible(bool(command))

    def command(self) -> str:
        return self.edit.text()

    def copy(self) -> None:
        QGuiApplication.clipboard().setText(self.edit.text())


def escape(text: Any) -> str:
    return str(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
