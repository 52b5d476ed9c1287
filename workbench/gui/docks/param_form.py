"""A form generated from a plugin's parameter schema (``workbench.plugins.Param``).

int -> QSpinBox, float -> QDoubleSpinBox (both with the schema's range, exclusive bounds
honoured), choice -> QComboBox, bool -> QCheckBox, str -> QLineEdit. The tooltip of every field
is the help text plus its range/choices. ``values()`` returns what ``Plugin.resolve_params``
accepts; ``set_values(values())`` round-trips exactly.
"""
from __future__ import annotations

import math
from typing import Any, Iterable

from PySide6.QtCore import Signal
from PySide6.QtGui import QValidator
from PySide6.QtWidgets import (QCheckBox, QComboBox, QDoubleSpinBox, QFormLayout, QLabel, QLineEdit,
                               QSpinBox, QWidget)

from ...plugin_api import Param

INT_LIMIT = 2**31 - 1
FLOAT_LIMIT = 1e12


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
    """A QFormLayout of editors for a tuple of ``Param``; emits ``valuesChanged`` on any edit."""

    valuesChanged = Signal()

    def __init__(self, params: Iterable[Param], parent: QWidget | None = None,
                 plugin_name: str = "") -> None:
        super().__init__(parent)
        self.params: dict[str, Param] = {p.name: p for p in params}
        self.plugin_name = plugin_name
        self.editors: dict[str, QWidget] = {}
        layout = QFormLayout(self)
        layout.setContentsMargins(4, 2, 4, 2)
        layout.setFieldGrowthPolicy(QFormLayout.FieldGrowthPolicy.AllNonFixedFieldsGrow)
        for param in self.params.values():
            editor = make_editor(param, self)
            label = QLabel(param.name.replace("_", " "))
            label.setToolTip(editor.toolTip())
            label.setBuddy(editor)
            layout.addRow(label, editor)
            self.editors[param.name] = editor
            self._connect(editor)
        if not self.params:
            note = QLabel("no parameters")
            note.setEnabled(False)
            layout.addRow(note)

    def _connect(self, editor: QWidget) -> None:
        if isinstance(editor, (QSpinBox, QDoubleSpinBox)):
            editor.valueChanged.connect(self.valuesChanged)
        elif isinstance(editor, QCheckBox):
            editor.toggled.connect(self.valuesChanged)
        elif isinstance(editor, QComboBox):
            editor.currentTextChanged.connect(self.valuesChanged)
        elif isinstance(editor, QLineEdit):
            editor.textChanged.connect(self.valuesChanged)

    def values(self) -> dict[str, Any]:
        return {name: editor_value(self.params[name], editor) for name, editor in self.editors.items()}

    def changed_values(self) -> dict[str, Any]:
        """Only the values that differ from the defaults (what a CLI command line would need)."""
        return {k: v for k, v in self.values().items() if v != self.params[k].default}

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
