"""The Plugins dock: every discovered plugin with a checkbox, drag to reorder, a generated form
per checked plugin, and the chain's validation message inline (before anything runs)."""
from __future__ import annotations

import re
from typing import Any

from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtGui import QBrush, QColor, QPalette
from PySide6.QtWidgets import (QAbstractItemView, QGroupBox, QHBoxLayout, QLabel, QListWidget,
                               QListWidgetItem, QPushButton, QStyle, QVBoxLayout, QWidget)

from ...plugin_api import PluginInfo, chain_error, discover_plugins
from ...spec import PluginStep
from .param_form import ParamForm

NAME_ROLE = Qt.ItemDataRole.UserRole
ERROR_COLOR = "#d32f2f"
OK_COLOR = "#2e7d32"


class ChainList(QListWidget):
    """A QListWidget reordered by drag and drop (InternalMove); emits ``orderChanged``."""

    orderChanged = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setDragDropMode(QAbstractItemView.DragDropMode.InternalMove)
        self.setDefaultDropAction(Qt.DropAction.MoveAction)
        self.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.setAlternatingRowColors(True)
        self.model().rowsMoved.connect(lambda *a: self.orderChanged.emit())

    def dropEvent(self, event) -> None:  # noqa: N802 (Qt API)
        super().dropEvent(event)
        self.orderChanged.emit()


class PluginPanel(QWidget):
    """``chainChanged`` fires on check/uncheck, reorder and any parameter edit."""

    chainChanged = Signal()

    def __init__(self, registry: dict[str, PluginInfo] | None = None, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.registry = registry if registry is not None else discover_plugins()
        self.forms: dict[str, ParamForm] = {}
        self.boxes: dict[str, QGroupBox] = {}
        self._context = ("torch", "cpu", "auto")
        self._error: str | None = None
        self._syncing = False

        hint = QLabel("Tick the optimizations to apply; drag (or ▲/▼) to set their order.")
        hint.setWordWrap(True)
        self.list = ChainList()
        self.list.setObjectName("pluginList")
        self.list.itemChanged.connect(self._item_changed)
        self.list.orderChanged.connect(self._order_changed)
        self.list.currentRowChanged.connect(lambda _r: self._update_buttons())

        self.up_button = QPushButton("▲")
        self.up_button.setToolTip("Move the selected plugin earlier in the chain")
        self.down_button = QPushButton("▼")
        self.down_button.setToolTip("Move the selected plugin later in the chain")
        for b in (self.up_button, self.down_button):
            b.setFixedWidth(36)
        self.up_button.clicked.connect(lambda: self.move_selected(-1))
        self.down_button.clicked.connect(lambda: self.move_selected(+1))
        buttons = QVBoxLayout()
        buttons.addWidget(self.up_button)
        buttons.addWidget(self.down_button)
        buttons.addStretch(1)
        row = QHBoxLayout()
        row.addWidget(self.list, 1)
        row.addLayout(buttons)

        self.chain_label = QLabel()
        self.chain_label.setObjectName("chainStatus")
        self.chain_label.setWordWrap(True)
        self.chain_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)

        self.forms_box = QWidget()
        self.forms_layout = QVBoxLayout(self.forms_box)
        self.forms_layout.setContentsMargins(0, 0, 0, 0)

        layout = QVBoxLayout(self)
        layout.setContentsMargins(6, 6, 6, 6)
        layout.addWidget(hint)
        layout.addLayout(row)
        layout.addWidget(self.chain_label)
        layout.addWidget(self.forms_box)
        layout.addStretch(1)

        self._populate()
        self._revalidate_timer = QTimer(self)
        self._revalidate_timer.setSingleShot(True)
        self._revalidate_timer.setInterval(0)
        self._revalidate_timer.timeout.connect(self._sync)
        self._sync()

    # -- building ------------------------------------------------------------------------------------
    def _populate(self) -> None:
        self.list.blockSignals(True)
        for name, info in self.registry.items():
            item = QListWidgetItem()
            item.setData(NAME_ROLE, name)
            if info.ok:
                item.setText(name)
                item.setToolTip(f"{name}: {info.cls.summary}\nformats {', '.join(info.cls.accepts)} → "
                                f"{info.cls.produces or 'same'}; devices {', '.join(info.cls.devices)}; "
                                f"from {info.source}")
                item.setFlags(Qt.ItemFlag.ItemIsEnabled | Qt.ItemFlag.ItemIsSelectable
                              | Qt.ItemFlag.ItemIsUserCheckable | Qt.ItemFlag.ItemIsDragEnabled)
                item.setCheckState(Qt.CheckState.Unchecked)
                item.setStatusTip(info.cls.summary)
                form = ParamForm(info.cls.params_schema, plugin_name=name, plugin=info.cls)
                form.valuesChanged.connect(self._schedule)
                box = QGroupBox()
                box.setObjectName(f"pluginForm_{name}")
                box_layout = QVBoxLayout(box)
                box_layout.setContentsMargins(4, 4, 4, 4)
                summary = QLabel(info.cls.summary)
                summary.setWordWrap(True)
                summary.setObjectName("pluginSummary")
                summary_font = summary.font()
                summary_font.setItalic(True)
                summary.setFont(summary_font)
                box_layout.addWidget(summary)
                box_layout.addWidget(form)
                box.hide()
                self.forms[name] = form
                self.boxes[name] = box
                self.forms_layout.addWidget(box)
            else:
                item.setText(f"{name} — failed to load")
                item.setToolTip(f"{name} could not be loaded from {info.source}:\n{info.error}")
                # Greyed out: visible with its error, but neither checkable nor movable.
                item.setFlags(Qt.ItemFlag.ItemIsSelectable)
                item.setData(Qt.ItemDataRole.ForegroundRole,
                             QBrush(self.palette().color(QPalette.ColorGroup.Disabled, QPalette.ColorRole.Text)))
                item.setIcon(self.style().standardIcon(QStyle.StandardPixmap.SP_MessageBoxWarning))
            self.list.addItem(item)
        self.list.blockSignals(False)
        rows = max(3, min(8, self.list.count()))
        self.list.setMinimumHeight(rows * self.list.sizeHintForRow(0) + 6 if self.list.count() else 60)

    # -- public API ----------------------------------------------------------------------------------
    def order(self) -> list[str]:
        return [self.list.item(i).data(NAME_ROLE) for i in range(self.list.count())]

    def item(self, name: str) -> QListWidgetItem | None:
        for i in range(self.list.count()):
            if self.list.item(i).data(NAME_ROLE) == name:
                return self.list.item(i)
        return None

    def checked(self) -> list[str]:
        out = []
        for i in range(self.list.count()):
            item = self.list.item(i)
            if item.flags() & Qt.ItemFlag.ItemIsUserCheckable and item.checkState() == Qt.CheckState.Checked:
                out.append(item.data(NAME_ROLE))
        return out

    def set_checked(self, name: str, on: bool = True) -> None:
        item = self.item(name)
        if item is None:
            raise KeyError(f"no plugin named {name!r}")
        if not item.flags() & Qt.ItemFlag.ItemIsUserCheckable:
            raise ValueError(f"plugin {name!r} failed to load and cannot be used")
        item.setCheckState(Qt.CheckState.Checked if on else Qt.CheckState.Unchecked)

    def form(self, name: str) -> ParamForm:
        return self.forms[name]

    def steps(self) -> list[PluginStep]:
        """The checked plugins in chain order, with the parameters that differ from the defaults."""
        return [PluginStep(name, self.forms[name].changed_values()) for name in self.checked()]

    def step(self, name: str) -> PluginStep:
        return PluginStep(name, self.forms[name].changed_values())

    def move(self, name: str, row: int) -> None:
        """Put plugin ``name`` at ``row`` (what a drag does)."""
        current = self.order().index(name)
        row = max(0, min(self.list.count() - 1, row))
        if row == current:
            return
        self.list.blockSignals(True)
        item = self.list.takeItem(current)
        self.list.insertItem(row, item)
        self.list.setCurrentRow(row)
        self.list.blockSignals(False)
        self._order_changed()

    def move_selected(self, delta: int) -> None:
        row = self.list.currentRow()
        if row < 0:
            return
        self.move(self.list.item(row).data(NAME_ROLE), row + delta)

    def set_context(self, model_format: str, device: str, runtime: str) -> None:
        """What the chain is validated against (the model's format and the Run panel's choices)."""
        context = (model_format, device, runtime)
        if context != self._context:
            self._context = context
            self._schedule()

    def set_available_devices(self, kinds: list[str] | None) -> None:
        """The device kinds this machine offers (the Run dock's device list): each form greys out
        the methods that need another one (e.g. quantize fp16 without a CUDA GPU)."""
        for form in self.forms.values():
            form.set_available_devices(kinds)

    def error(self) -> str | None:
        return self._error

    def validate_now(self) -> str | None:
        self._sync()
        return self._error

    def single_error(self, name: str) -> str | None:
        return chain_error([self.step(name)], *self._context)

    # -- reacting ------------------------------------------------------------------------------------
    def _item_changed(self, item: QListWidgetItem) -> None:
        self._schedule()

    def _order_changed(self) -> None:
        self._schedule()

    def _schedule(self) -> None:
        if hasattr(self, "_revalidate_timer"):
            self._revalidate_timer.start()

    def _sync(self) -> None:
        """Show the forms of checked plugins in chain order, and validate the chain."""
        if self._syncing:
            return
        self._syncing = True
        try:
            checked = self.checked()
            for name, box in self.boxes.items():
                box.setVisible(name in checked)
            for position, name in enumerate(checked, 1):
                box = self.boxes[name]
                self.forms_layout.removeWidget(box)
                self.forms_layout.insertWidget(position - 1, box)
                box.setTitle(f"{position}. {name}")
            steps = self.steps()
            self._error = chain_error(steps, *self._context) if steps else None
            self._mark(checked)
            self._update_buttons()
        finally:
            self._syncing = False
        self.chainChanged.emit()

    def _mark(self, checked: list[str]) -> None:
        bad_step = None
        if self._error:
            match = re.match(r"step (\d+) ", self._error)
            if match:
                bad_step = int(match.group(1))
        self.list.blockSignals(True)
        for i in range(self.list.count()):
            item = self.list.item(i)
            name = item.data(NAME_ROLE)
            if not item.flags() & Qt.ItemFlag.ItemIsUserCheckable:
                continue
            position = checked.index(name) + 1 if name in checked else None
            bad = bool(self._error) and position is not None and (bad_step is None or bad_step == position)
            item.setText(f"{name}  ({position})" if position else name)
            item.setIcon(self.style().standardIcon(QStyle.StandardPixmap.SP_MessageBoxWarning) if bad else
                         self._blank_icon())
            item.setData(Qt.ItemDataRole.ForegroundRole, QBrush(QColor(ERROR_COLOR)) if bad else None)
        self.list.blockSignals(False)
        if not checked:
            self.chain_label.setText("No optimization selected: a run measures the model as it is (baseline).")
            self.chain_label.setStyleSheet("")
        elif self._error:
            self.chain_label.setText(f"⚠ Invalid chain: {self._error}")
            self.chain_label.setStyleSheet(f"color: {ERROR_COLOR}; font-weight: bold;")
        else:
            self.chain_label.setText("✓ Chain: " + " → ".join(checked))
            self.chain_label.setStyleSheet(f"color: {OK_COLOR};")
        self.chain_label.setToolTip(self._error or "")

    def _blank_icon(self):
        from PySide6.QtGui import QIcon
        return QIcon()

    def _update_buttons(self) -> None:
        row = self.list.currentRow()
        self.up_button.setEnabled(row > 0)
        self.down_button.setEnabled(0 <= row < self.list.count() - 1)

    # -- settings ------------------------------------------------------------------------------------
    def state(self) -> dict[str, Any]:
        return {"order": self.order(), "checked": self.checked(),
                "params": {name: form.values() for name, form in self.forms.items()}}

    def restore_state(self, state: dict[str, Any]) -> None:
        order = [n for n in state.get("order", []) if self.item(n) is not None]
        for row, name in enumerate(order):
            current = self.order().index(name)
            if current != row:
                self.list.blockSignals(True)
                self.list.insertItem(row, self.list.takeItem(current))
                self.list.blockSignals(False)
        for name, values in (state.get("params") or {}).items():
            if name in self.forms and isinstance(values, dict):
                self.forms[name].set_values(values, strict=False)
        for name in state.get("checked", []):
            item = self.item(name)
            if item is not None and item.flags() & Qt.ItemFlag.ItemIsUserCheckable:
                item.setCheckState(Qt.CheckState.Checked)
        self._sync()
