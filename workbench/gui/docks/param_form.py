"""A form generated from a plugin's parameter schema (``workbench.plugins.Param``).

int -> QSpinBox, float -> QDoubleSpinBox (both with the schema's range, exclusive bounds
honoured), choice -> QComboBox, bool -> QCheckBox, str -> QLineEdit. The tooltip of every field
is the help text plus its range/choices. ``values()`` returns what ``Plugin.resolve_params``
accepts; ``set_values(values())`` round-trips exactly.

A plugin's form shows only the parameters of the chosen method (``Param.methods``) and greys out
the methods this machine cannot run (``Plugin.method_devices``). ``guard_wheel`` is the one place
that keeps a scrolling wheel from changing an input the user did not click into.
"""
from __future__ import annotations

import math
from typing import Any, Iterable

from PySide6.QtCore import QEvent, QObject, Qt, Signal
from PySide6.QtGui import QValidator
from PySide6.QtWidgets import (QAbstractScrollArea, QAbstractSlider, QAbstractSpinBox, QApplication, QCheckBox,
                               QComboBox, QDoubleSpinBox, QFileDialog, QFormLayout, QHBoxLayout, QLabel, QLineEdit,
                               QScrollBar, QSpinBox, QToolButton, QVBoxLayout, QWidget)

from ...plugin_api import Param, Plugin

INT_LIMIT = 2**31 - 1
FLOAT_LIMIT = 1e12
COMBO_MIN_CHARS = 8         # a long choice ("max-autotune-no-cudagraphs") must not widen the dock
DEVICE_NAMES = {"cpu": "a CPU", "cuda": "a CUDA GPU"}
WHEEL_GUARDED = (QAbstractSpinBox, QComboBox, QAbstractSlider)
ERROR_STYLE = "color: #d32f2f;"
NOTE_STYLE = "color: palette(placeholder-text);"


class WheelGuard(QObject):
    """Wheel events over an input that has no keyboard focus scroll the dock around it instead:
    scrolling a dock never changes a parameter that happens to be under the pointer."""

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:  # noqa: N802 (Qt API)
        if event.type() != QEvent.Type.Wheel or not isinstance(watched, QWidget) or watched.hasFocus():
            return False
        area = enclosing_scroll_area(watched)
        if area is None:
            event.ignore()          # nothing to scroll: let the parents see it
        else:
            # handed over explicitly: Qt would not pass a synthesized wheel event on to the parent
            QApplication.sendEvent(area.viewport(), event)
            event.accept()
        return True


def enclosing_scroll_area(widget: QWidget) -> QAbstractScrollArea | None:
    parent = widget.parentWidget()
    while parent is not None:
        if isinstance(parent, QAbstractScrollArea):
            return parent
        parent = parent.parentWidget()
    return None


_GUARD = WheelGuard()


def guard_wheel(root: QWidget) -> int:
    """Apply the wheel policy to every spin box, combo box and slider under ``root`` (and ``root``
    itself): a click or Tab focuses them, the wheel does not. Returns how many were guarded."""
    widgets = [w for w in [root, *root.findChildren(QWidget)]
               if isinstance(w, WHEEL_GUARDED) and not isinstance(w, QScrollBar)]   # scroll bars are for wheeling
    for widget in widgets:
        # WheelFocus would let the wheel focus the input first and then change it
        widget.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
        widget.removeEventFilter(_GUARD)
        widget.installEventFilter(_GUARD)
    return len(widgets)


class FloatSpinBox(QDoubleSpinBox):
    """A QDoubleSpinBox that shows values compactly (``%g``) and keeps full precision, so 1e-5
    and 0.5 are both edited naturally and a value set is the value read back."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setDecimals(12)          # storage precision; the text is formatted by textFromValue
        self.setKeyboardTracking(False)

    def textFromValue(self, value: float) -> str:  # noqa: N802 (Qt API)
        return f"{value:.8g}"

    def valueFromText(self, text: str) -> float:  # noqa: N802
        try:
            return float(text.strip().replace(",", "."))
        except ValueError:
            return self.value()

    def validate(self, text: str, pos: int):  # noqa: D401
        stripped = text.strip().replace(",", ".")
        if stripped in ("", "-", "+", ".", "-.", "+.") or stripped.lower().endswith(("e", "e-", "e+")):
            return QValidator.State.Intermediate, text, pos
        try:
            value = float(stripped)
        except ValueError:
            return QValidator.State.Invalid, text, pos
        if not math.isfinite(value):
            return QValidator.State.Invalid, text, pos
        if self.minimum() <= value <= self.maximum():
            return QValidator.State.Acceptable, text, pos
        return QValidator.State.Intermediate, text, pos

    def fixup(self, text: str) -> str:
        try:
            value = float(text.strip().replace(",", "."))
        except ValueError:
            return self.textFromValue(self.value())
        return self.textFromValue(min(self.maximum(), max(self.minimum(), value)))


def _float_bounds(param: Param) -> tuple[float, float]:
    low = -FLOAT_LIMIT if param.minimum is None else float(param.minimum)
    high = FLOAT_LIMIT if param.maximum is None else float(param.maximum)
    # Exclusive bounds: the smallest step the user would care about inside the range.
    span = high - low if param.minimum is not None and param.maximum is not None else abs(float(param.default or 1)) or 1.0
    eps = max(1e-9, min(1e-6, span * 1e-6))
    if param.minimum is not None and param.exclusive_min:
        low = low + eps if low != 0 else min(eps, abs(float(param.default or 1)) * 1e-3 or eps)
    if param.maximum is not None and param.exclusive_max:
        high = high - eps
    return low, high


def _float_step(param: Param) -> float:
    if param.minimum is not None and param.maximum is not None:
        span = float(param.maximum) - float(param.minimum)
        if 0 < span <= 1:
            return 0.05
        if span <= 10:
            return 0.1
    default = abs(float(param.default or 0))
    if default == 0:
        return 0.1
    return 10 ** math.floor(math.log10(default))


def make_editor(param: Param, parent: QWidget | None = None) -> QWidget:
    """The widget for one parameter, set to its default."""
    tip = param.help or param.name
    if param.type == "int":
        editor = QSpinBox(parent)
        low = -INT_LIMIT if param.minimum is None else int(math.ceil(param.minimum))
        high = INT_LIMIT if param.maximum is None else int(math.floor(param.maximum))
        if param.minimum is not None and param.exclusive_min and low == param.minimum:
            low += 1
        if param.maximum is not None and param.exclusive_max and high == param.maximum:
            high -= 1
        editor.setRange(max(-INT_LIMIT, low), min(INT_LIMIT, high))
        editor.setKeyboardTracking(False)
        editor.setValue(int(param.default))
        tip += f"\nRange {param.range_text()}; default {param.default}"
    elif param.type == "float":
        editor = FloatSpinBox(parent)
        editor.setRange(*_float_bounds(param))
        editor.setSingleStep(_float_step(param))
        editor.setValue(float(param.default))
        tip += f"\nRange {param.range_text()}; default {param.default:g}"
    elif param.type == "bool":
        editor = QCheckBox(parent)
        editor.setChecked(bool(param.default))
        tip += f"\nDefault {'on' if param.default else 'off'}"
    elif param.type == "choice":
        editor = QComboBox(parent)
        editor.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
        editor.setMinimumContentsLength(COMBO_MIN_CHARS)
        editor.addItems(list(param.choices or ()))
        editor.setCurrentText(str(param.default))
        tip += f"\nChoices: {', '.join(param.choices or ())}; default {param.default}"
    else:
        editor = QLineEdit(parent)
        editor.setText("" if param.default is None else str(param.default))
        editor.setPlaceholderText("(empty)")
        if param.default not in (None, ""):
            tip += f"\nDefault {param.default!r}"
    editor.setToolTip(tip)
    editor.setObjectName(f"param_{param.name}")
    editor.setProperty("param_name", param.name)
    return editor


def editor_value(param: Param, editor: QWidget) -> Any:
    if param.type == "int":
        return int(editor.value())
    if param.type == "float":
        return float(editor.value())
    if param.type == "bool":
        return bool(editor.isChecked())
    if param.type == "choice":
        return editor.currentText()
    return editor.text()


def set_editor_value(param: Param, editor: QWidget, value: Any) -> None:
    value = param.parse(value)          # raises PluginError for a bad value (clear message)
    if param.type in ("int", "float"):
        editor.setValue(value)
    elif param.type == "bool":
        editor.setChecked(value)
    elif param.type == "choice":
        editor.setCurrentText(value)
    else:
        editor.setText(value)


class ParamForm(QWidget):
    """A QFormLayout of editors for a tuple of ``Param``; emits ``valuesChanged`` on any edit.

    Given ``plugin`` (the class), the form knows its method choice: rows of parameters that do not
    apply to the chosen method are hidden, and ``set_available_devices`` greys out methods that need
    a device this machine lacks."""

    valuesChanged = Signal()

    def __init__(self, params: Iterable[Param], parent: QWidget | None = None,
                 plugin_name: str = "", plugin: type[Plugin] | None = None) -> None:
        super().__init__(parent)
        self.params: dict[str, Param] = {p.name: p for p in params}
        self.plugin_name = plugin_name
        self.plugin = plugin
        choice = plugin.method_choice() if plugin is not None else None
        self.method_param: str | None = choice.name if choice is not None and choice.name in self.params else None
        self.editors: dict[str, QWidget] = {}
        self.labels: dict[str, QLabel] = {}
        self._layout = layout = QFormLayout(self)
        layout.setContentsMargins(4, 2, 4, 2)
        layout.setFieldGrowthPolicy(QFormLayout.FieldGrowthPolicy.AllNonFixedFieldsGrow)
        layout.setRowWrapPolicy(QFormLayout.RowWrapPolicy.WrapLongRows)    # narrow dock: field under label
        for param in self.params.values():
            editor = make_editor(param, self)
            label = QLabel(param.name.replace("_", " "))
            label.setToolTip(editor.toolTip())
            label.setBuddy(editor)
            layout.addRow(label, editor)
            self.editors[param.name] = editor
            self.labels[param.name] = label
            self._connect(editor)
        if not self.params:
            note = QLabel("no parameters")
            note.setEnabled(False)
            layout.addRow(note)
        if self.method_param is not None:
            self.editors[self.method_param].currentTextChanged.connect(self._show_applicable)
        self._show_applicable()

    def _connect(self, editor: QWidget) -> None:
        if isinstance(editor, (QSpinBox, QDoubleSpinBox)):
            editor.valueChanged.connect(self.valuesChanged)
        elif isinstance(editor, QCheckBox):
            editor.toggled.connect(self.valuesChanged)
        elif isinstance(editor, QComboBox):
            editor.currentTextChanged.connect(self.valuesChanged)
        elif isinstance(editor, QLineEdit):
            editor.textChanged.connect(self.valuesChanged)

    # -- what applies ------------------------------------------------------------------------------
    def method(self) -> str | None:
        """The chosen method (None: the plugin has no method choice)."""
        return self.editors[self.method_param].currentText() if self.method_param else None

    def applies(self, name: str) -> bool:
        return self.method_param is None or self.params[name].applies_to(self.method())

    def shown_params(self) -> list[str]:
        return [name for name in self.params if self.applies(name)]

    def _show_applicable(self) -> None:
        for name, editor in self.editors.items():
            self._layout.setRowVisible(editor, self.applies(name))

    def set_available_devices(self, kinds: Iterable[str] | None) -> None:
        """Grey out the methods none of whose devices is here (``kinds``: "cpu", "cuda"; None =
        not known yet, offer everything). The reason is the item's tooltip."""
        if self.method_param is None or self.plugin is None:
            return
        combo: QComboBox = self.editors[self.method_param]
        available = None if kinds is None else set(kinds)
        for index in range(combo.count()):
            method = combo.itemText(index)
            needs = self.plugin.devices_for(method)
            usable = available is None or bool(available & set(needs))
            item = combo.model().item(index)
            item.setEnabled(usable)
            reason = None if usable else (f"{method} needs {' or '.join(DEVICE_NAMES.get(k, k) for k in needs)}; "
                                          "none was found on this machine")
            combo.setItemData(index, reason, Qt.ItemDataRole.ToolTipRole)

    def method_enabled(self, method: str) -> bool:
        combo: QComboBox = self.editors[self.method_param]
        index = combo.findText(method)
        return index >= 0 and combo.model().item(index).isEnabled()

    # -- values --------------------------------------------------------------------------------------
    def values(self) -> dict[str, Any]:
        """Every editor's value, hidden ones included (remembered when the method changes back)."""
        return {name: editor_value(self.params[name], editor) for name, editor in self.editors.items()}

    def changed_values(self) -> dict[str, Any]:
        """The values that differ from the defaults and apply to the chosen method (what a CLI
        command line would need; a hidden parameter would be refused)."""
        return {k: v for k, v in self.values().items() if v != self.params[k].default and self.applies(k)}

    def set_values(self, values: dict[str, Any], strict: bool = True) -> list[str]:
        """Set editors from ``values`` (typed or CLI strings). Unknown keys and bad values raise
        PluginError when ``strict``; otherwise they are skipped and their messages returned."""
        from ...errors import PluginError
        problems: list[str] = []
        self.blockSignals(True)
        try:
            for key, value in values.items():
                param = self.params.get(key)
                try:
                    if param is None:
                        raise PluginError(f"{self.plugin_name or 'plugin'}: unknown parameter {key!r}")
                    set_editor_value(param, self.editors[key], value)
                except PluginError as exc:
                    if strict:
                        raise
                    problems.append(str(exc))
        finally:
            self.blockSignals(False)
        self.valuesChanged.emit()
        return problems

    def reset(self) -> None:
        self.set_values({p.name: p.default for p in self.params.values()})


class PathField(QWidget):
    """A file path: a text field, Browse… and Clear, and one line under it that says what is wrong
    with the path (red) or what an empty field means (grey). ``check`` returns the problem with a
    path (None: fine); ``changed`` fires on every edit after the check."""

    changed = Signal()

    def __init__(self, placeholder: str, file_filter: str, check, save: bool = False,
                 parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._check, self._filter, self._save = check, file_filter, save
        self._problem: str | None = None
        self._empty_note = ""
        self.edit = QLineEdit()
        self.edit.setPlaceholderText(placeholder)
        self.edit.setClearButtonEnabled(False)
        self.edit.setAcceptDrops(False)          # a file dropped on the window opens a model
        self.edit.textChanged.connect(self._edited)
        self.browse_button = QToolButton()
        self.browse_button.setText("Browse…")
        self.browse_button.clicked.connect(self.browse)
        self.clear_button = QToolButton()
        self.clear_button.setText("✕")
        self.clear_button.setToolTip("Clear")
        self.clear_button.clicked.connect(self.edit.clear)
        self.note = QLabel()
        self.note.setWordWrap(True)
        self.note.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        row = QHBoxLayout()
        row.setContentsMargins(0, 0, 0, 0)
        row.setSpacing(2)
        row.addWidget(self.edit, 1)
        row.addWidget(self.browse_button)
        row.addWidget(self.clear_button)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(1)
        layout.addLayout(row)
        layout.addWidget(self.note)
        self._edited()

    def path(self) -> str | None:
        text = self.edit.text().strip()
        return text or None

    def set_path(self, path: str | None) -> None:
        self.edit.setText(path or "")

    def problem(self) -> str | None:
        return self._problem

    def recheck(self) -> str | None:
        """Check again, quietly (the file may have gone since it was typed)."""
        path = self.path()
        self._problem = self._check(path) if path else None
        self._show()
        return self._problem

    def set_empty_note(self, text: str) -> None:
        """What an empty field means (e.g. a demo's own data is used)."""
        self._empty_note = text
        self._show()

    def browse(self) -> None:
        start = self.path() or ""
        if self._save:
            chosen, _ = QFileDialog.getSaveFileName(self, self.edit.placeholderText(), start, self._filter)
        else:
            chosen, _ = QFileDialog.getOpenFileName(self, self.edit.placeholderText(), start, self._filter)
        if chosen:
            self.edit.setText(chosen)

    def _edited(self, _text: str = "") -> None:
        self.recheck()
        self.changed.emit()

    def _show(self) -> None:
        self.clear_button.setEnabled(bool(self.path()))
        text = self._problem or ("" if self.path() else self._empty_note)
        self.note.setText(text)
        self.note.setStyleSheet(ERROR_STYLE if self._problem else NOTE_STYLE)
        self.note.setVisible(bool(text))
        self.edit.setToolTip(self.path() or "")
