"""The Model dock: pick a file or a demo, describe it (in a worker process), edit its inputs."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (QCheckBox, QComboBox, QFormLayout, QHBoxLayout, QHeaderView, QLabel,
                               QLineEdit, QProgressBar, QPushButton, QSizePolicy, QTabWidget,
                               QTreeWidget, QTreeWidgetItem, QVBoxLayout, QWidget)

from ... import format as fmt
from ...errors import SpecError
from ...spec import InputSpec, RunSpec
from ...models import demos
from ...models.formats import MODEL_SUFFIXES, STATE_DICT_SUFFIXES
from ...models.loaders import FACTORY_HINT, TRUST_HINT


def file_filter() -> str:
    """The File ▸ Open filter: every model suffix, then one entry per family (``models.formats``)."""
    families: dict[str, list[str]] = {}
    for suffix, family in MODEL_SUFFIXES.items():
        families.setdefault(family, []).append(f"*{suffix}")
    every = " ".join(p for patterns in families.values() for p in patterns)
    return ";;".join([f"Models ({every})"] + [f"{family} ({' '.join(patterns)})" for family, patterns in
                                               families.items()] + ["All files (*)"])


def demo_choices() -> list[tuple[str, str]]:
    """``[(name, description)]`` of the bundled demos, from their catalog (which imports no torch)."""
    return [(entry.name, f"{entry.summary} (good for {entry.good_for})" if entry.good_for else entry.summary)
            for entry in demos.DEMOS.values()]


def parse_inputs(text: str) -> list[InputSpec]:
    """``x=1x3x224x224:float32, mask=1x128:int64`` (comma, semicolon or newline separated)."""
    items = [t.strip() for t in text.replace(";", ",").replace("\n", ",").split(",")]
    items = [t for t in items if t]
    if not items:
        raise SpecError("no input given: enter a shape such as 1x3x224x224:float32")
    return [InputSpec.parse(t) for t in items]


LAYER_COLUMNS = ["Layer", "Type", "Output shape", "Params", "FLOPs"]
LAYER_COLUMN_TIPS = [
    "The layer's name in the model (a torch module path, or an ONNX node name)",
    "The layer's class (torch) or operator (ONNX)",
    "The shape of what the layer returns for the example input (one forward pass on zeros in the "
    "worker, or ONNX shape inference); — when it could not be found",
    "Parameters the layer holds itself",
    "Floating-point operations of this layer for the example input (2 per multiply-add); — where "
    "not counted",
]


def shape_text(shapes: list | None) -> str:
    """``[[1, 64, 8, 8]]`` -> '1×64×8×8'; several outputs comma-separated; '—' when unknown."""
    if not shapes:
        return "—"
    return ", ".join("×".join(str(d) for d in shape) if shape else "scalar" for shape in shapes)


def flops_text(info: dict) -> tuple[str, str]:
    """The FLOPs line and its tooltip: the count, the batch it assumes, and whether it is partial."""
    flops, batch = info.get("flops"), info.get("flops_batch")
    if flops is None:
        if info.get("format") == "onnx" and info.get("flops_uncounted"):
            return "— (not counted: the input shape is open)", "Enter a full input shape to count them"
        return "— (not counted)", "FLOPs need an input shape the model can run (enter it under Inputs)"
    text = f"{fmt.count(flops)} per forward" + (f" at batch {batch}" if batch else "")
    tip = ("Floating-point operations of one forward pass on the example input (2 per multiply-add; "
           "element-wise ops count 0, as torch.utils.flop_counter counts them)")
    if batch and batch > 1:
        text += f" ({fmt.count(flops / batch)} per sample)"
    if info.get("flops_partial"):
        uncounted = ", ".join(info.get("flops_uncounted") or []) or "some ops"
        text = f"≥ {text} (partial: {uncounted} not counted)"
        tip += f". Partial: no FLOP count is known for {uncounted}, so the total is a lower bound."
    return text, tip


def inputs_text(inputs: list[dict] | list[InputSpec]) -> str:
    specs = [i if isinstance(i, InputSpec) else InputSpec(**i) for i in inputs]
    return ", ".join(str(s) for s in specs)


class LayerTable(QTreeWidget):
    """The per-layer table. The layer name keeps at least NAME_MIN pixels; a narrow dock drops
    the FLOPs column first, then narrows (elides) the type, instead of scrolling sideways. Each
    row's tooltip always has every number."""

    NAME_MIN = 85          # px the (elided) layer name keeps
    TYPE_MIN = 80          # "BatchNorm2d" still fits

    def resizeEvent(self, event) -> None:  # noqa: N802 - Qt naming
        super().resizeEvent(event)
        self.fit_columns()

    def fit_columns(self) -> None:
        header = self.header()
        header.setStretchLastSection(False)
        widths = [max(self.sizeHintForColumn(c), header.sectionSizeHint(c)) for c in range(len(LAYER_COLUMNS))]
        available = self.viewport().width()
        flops = len(LAYER_COLUMNS) - 1
        hide_flops = available < self.NAME_MIN + sum(widths[1:])
        self.setColumnHidden(flops, hide_flops)
        shown = widths[1:flops] + ([] if hide_flops else [widths[flops]])
        excess = self.NAME_MIN + sum(shown) - available
        if excess > 0:
            widths[1] = max(self.TYPE_MIN, widths[1] - excess)
        header.setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)
        for column in range(1, len(LAYER_COLUMNS)):
            header.setSectionResizeMode(column, QHeaderView.ResizeMode.Fixed)
            header.resizeSection(column, widths[column])


class ModelPanel(QWidget):
    """Signals: ``sourceChanged(str)`` when another model is picked, ``modelChanged()`` on any
    change that affects a run (source, factory, trust, inputs, info), ``errorOccurred(msg, details)``
    for the main window's error dialog, ``busyChanged(bool)`` while inspecting."""

    sourceChanged = Signal(str)
    modelChanged = Signal()
    errorOccurred = Signal(str, str)
    busyChanged = Signal(bool)
    openRequested = Signal()

    def __init__(self, bridge, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.bridge = bridge
        self._source: str | None = None
        self._info: dict | None = None
        self._load_error: str | None = None
        self._token: int | None = None
        self._inputs_error: str | None = None

        self.source_edit = QLineEdit()
        self.source_edit.setReadOnly(True)
        self.source_edit.setPlaceholderText("no model: File ▸ Open, drop a file here, or pick a demo")
        self.source_edit.setObjectName("modelSource")
        self.open_button = QPushButton("Open…")
        self.open_button.setToolTip("Open a model file (Ctrl+O)")
        self.open_button.clicked.connect(self.openRequested)
        self.demo_combo = QComboBox()
        self.demo_combo.setObjectName("demoCombo")
        self.demo_combo.setToolTip("Bundled demo models (trained on scikit-learn's digits)")
        self.demo_combo.activated.connect(self._demo_picked)
        self.set_demos(demo_choices())

        self.factory_edit = QLineEdit()
        self.factory_edit.setPlaceholderText("package.module:callable (builds the module for a state_dict)")
        self.factory_edit.setToolTip("For a state_dict file: the function that builds the nn.Module the "
                                     "weights belong to, e.g. torchvision.models:resnet18")
        self.factory_edit.editingFinished.connect(self._factory_edited)
        self.factory_edit.setAcceptDrops(False)      # a dropped file opens the model (main window)
        self.trust_check = QCheckBox("Trust this file (runs code from it)")
        self.trust_check.setToolTip("A fully pickled model executes code from the file when loaded. "
                                    "Only tick this for files you trust.")
        self.trust_check.toggled.connect(lambda _on: self.reinspect())
        self.factory_label = QLabel("Factory")

        self.busy_bar = QProgressBar()
        self.busy_bar.setRange(0, 0)
        self.busy_bar.setTextVisible(False)
        self.busy_bar.setMaximumHeight(10)
        self.busy_label = QLabel("Inspecting the model in a worker process…")
        self.reload_button = QPushButton("Reload")
        self.reload_button.setToolTip("Describe the model again (after changing the factory or the file)")
        self.reload_button.clicked.connect(self.reinspect)
        self.reload_button.setEnabled(False)

        self.error_label = QLabel()
        self.error_label.setObjectName("modelError")
        self.error_label.setWordWrap(True)
        self.error_label.setStyleSheet("color: #d32f2f;")
        self.error_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.error_label.hide()

        self.format_value = QLabel("—")
        self.params_value = QLabel("—")
        self.size_value = QLabel("—")
        self.flops_value = QLabel("—")
        for label in (self.format_value, self.params_value, self.size_value, self.flops_value):
            label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.inputs_edit = QLineEdit()
        self.inputs_edit.setObjectName("inputsEdit")
        self.inputs_edit.setPlaceholderText("e.g. 1x3x224x224:float32 (comma-separate several inputs)")
        self.inputs_edit.setToolTip("Input spec: [name=]SHAPE[:DTYPE], -1 = dynamic dimension (the batch "
                                    "comes from the Run panel). Editable when the model does not fix it.")
        self.inputs_edit.textChanged.connect(self._inputs_edited)
        self.inputs_edit.editingFinished.connect(self._describe_at_inputs)
        self._layers_token: int | None = None      # a describe at the entered inputs (layers only)
        self._layers_inputs: str | None = None
        self.inputs_edit.setAcceptDrops(False)
        self.inputs_hint = QLabel()
        self.inputs_hint.setObjectName("inputsHint")
        self.inputs_hint.setWordWrap(True)
        self.inputs_hint.hide()
        self.notes_label = QLabel()
        self.notes_label.setWordWrap(True)
        self.notes_label.hide()

        self.layers_tree = QTreeWidget()
        self.layers_tree.setHeaderLabels(["Layer type", "Count"])
        self.layers_tree.setRootIsDecorated(False)
        self.layers_tree.header().setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)
        self.layers_tree.header().setSectionResizeMode(1, QHeaderView.ResizeMode.ResizeToContents)
        # per layer, like Netron's properties but with numbers from running the model
        self.layers_list = LayerTable()
        self.layers_list.setObjectName("layersTable")
        self.layers_list.setHeaderLabels(LAYER_COLUMNS)
        self.layers_list.setRootIsDecorated(False)
        self.layers_list.setUniformRowHeights(True)
        self.layers_list.setAlternatingRowColors(True)
        self.layers_list.setTextElideMode(Qt.TextElideMode.ElideMiddle)   # keep both ends of a.b.c.d
        self.layers_list.setMinimumWidth(330)       # name, type, shape and parameters side by side
        self.layers_list.fit_columns()
        for column, tip in enumerate(LAYER_COLUMN_TIPS):
            self.layers_list.headerItem().setToolTip(column, tip)
        self.layers_caption = QLabel()
        self.layers_caption.setObjectName("layersCaption")
        self.layers_caption.setWordWrap(True)
        self.layers_caption.setStyleSheet("color: palette(placeholder-text);")
        layers_page = QWidget()
        layers_layout = QVBoxLayout(layers_page)
        layers_layout.setContentsMargins(0, 2, 0, 0)
        layers_layout.setSpacing(2)
        layers_layout.addWidget(self.layers_list, 1)
        layers_layout.addWidget(self.layers_caption)
        self.layer_tabs = QTabWidget()
        self.layer_tabs.addTab(layers_page, "Layers")
        self.layer_tabs.addTab(self.layers_tree, "Layer types")
        self.layer_tabs.setMinimumHeight(180)
        self.layer_tabs.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)

        top = QHBoxLayout()
        top.addWidget(self.source_edit, 1)
        top.addWidget(self.open_button)
        demo_row = QHBoxLayout()
        demo_row.addWidget(QLabel("Demo"))
        demo_row.addWidget(self.demo_combo, 1)
        factory_row = QHBoxLayout()
        factory_row.addWidget(self.factory_label)
        factory_row.addWidget(self.factory_edit, 1)
        busy_row = QHBoxLayout()
        busy_row.addWidget(self.busy_label)
        busy_row.addWidget(self.busy_bar, 1)
        busy_row.addWidget(self.reload_button)

        info = QFormLayout()
        info.setFieldGrowthPolicy(QFormLayout.FieldGrowthPolicy.AllNonFixedFieldsGrow)
        info.addRow("Format", self.format_value)
        info.addRow("Parameters", self.params_value)
        info.addRow("Size", self.size_value)
        info.addRow("FLOPs", self.flops_value)
        info.addRow("Inputs", self.inputs_edit)
        info.addRow("", self.inputs_hint)

        layout = QVBoxLayout(self)
        layout.setContentsMargins(6, 6, 6, 6)
        layout.addLayout(top)
        layout.addLayout(demo_row)
        layout.addLayout(factory_row)
        layout.addWidget(self.trust_check)
        layout.addLayout(busy_row)
        layout.addWidget(self.error_label)
        layout.addLayout(info)
        layout.addWidget(self.notes_label)
        layout.addWidget(self.layer_tabs, 1)

        self._set_busy(False)
        self._show_factory(False)
        self._clear_info()

        bridge.inspectFinished.connect(self._inspect_finished)
        bridge.inspectFailed.connect(self._inspect_failed)
        bridge.inspectFinished.connect(self._layers_described)
        bridge.inspectFailed.connect(self._layers_failed)

    # -- demos -----------------------------------------------------------------------------------
    def set_demos(self, demos: list[tuple[str, str]]) -> None:
        current = self.demo_combo.currentData()
        self.demo_combo.blockSignals(True)
        self.demo_combo.clear()
        self.demo_combo.addItem("Pick a demo model…", None)
        for name, description in demos:
            self.demo_combo.addItem(name, name)
            self.demo_combo.setItemData(self.demo_combo.count() - 1, description or name,
                                        Qt.ItemDataRole.ToolTipRole)
        index = self.demo_combo.findData(current) if current else 0
        self.demo_combo.setCurrentIndex(max(0, index))
        self.demo_combo.blockSignals(False)
        self.demos = list(demos)

    def _demo_picked(self, index: int) -> None:
        name = self.demo_combo.itemData(index)
        if name:
            self.open_source(f"demo:{name}")

    # -- state -----------------------------------------------------------------------------------
    def source(self) -> str | None:
        return self._source

    def info(self) -> dict | None:
        return self._info

    def load_error(self) -> str | None:
        return self._load_error

    def is_busy(self) -> bool:
        return self._token is not None

    def factory(self) -> str | None:
        return self.factory_edit.text().strip() or None

    def trust(self) -> bool:
        return self.trust_check.isChecked()

    def trust_remote_code(self) -> bool:
        """For a Hugging Face folder the one trust box also lets the folder's own code run (auto_map)."""
        return self.trust() and bool(self._source) and Path(self._source).is_dir()

    def model_format(self) -> str:
        if self._source and self._source.lower().endswith(".onnx"):
            return "onnx"
        return "torch"

    def inputs_error(self) -> str | None:
        return self._inputs_error

    def inputs(self) -> list[InputSpec]:
        """The input specs to put in a RunSpec: [] when the model fixes them. Raises SpecError."""
        if self._info is not None and self._info.get("input_fixed_by_model"):
            return []
        text = self.inputs_edit.text().strip()
        if not text:
            if self._info is None or self._info.get("inputs"):
                # still being described, or declared by the model (dynamic dims filled by the batch)
                return []
            raise SpecError("this model does not declare its inputs: enter them in the Model panel, "
                            "e.g. 1x3x224x224:float32")
        specs = parse_inputs(text)
        declared = [InputSpec(**i) for i in (self._info or {}).get("inputs", [])]
        if declared and [str(s) for s in specs] == [str(s) for s in declared]:
            return []
        return specs

    def problem(self) -> str | None:
        """Why a run cannot start from this panel (None when it can)."""
        if not self._source:
            return "open a model first (File ▸ Open, drop a file, or pick a demo)"
        if self._load_error:
            return f"the model could not be loaded: {self._load_error}"
        if self._inputs_error:
            return self._inputs_error
        return None

    # -- opening -------------------------------------------------------------------------------
    def open_source(self, source: str) -> None:
        """Open a file path or demo:NAME and describe it in the background."""
        source = str(source)
        if not source.startswith("demo:"):
            source = str(Path(source).expanduser())
        self._source = source
        self.source_edit.setText(source)
        self.source_edit.setToolTip(source)
        self.source_edit.setCursorPosition(0)
        if source.startswith("demo:"):
            index = self.demo_combo.findData(source[5:])
            self.demo_combo.setCurrentIndex(max(0, index))
        else:
            self.demo_combo.setCurrentIndex(0)
        suffix = Path(source).suffix.lower()
        self._show_factory(not source.startswith("demo:") and suffix in STATE_DICT_SUFFIXES)
        self.factory_edit.blockSignals(True)
        self.factory_edit.clear()
        self.factory_edit.blockSignals(False)
        self.trust_check.blockSignals(True)
        self.trust_check.setChecked(False)
        self.trust_check.blockSignals(False)
        self.sourceChanged.emit(source)
        self.reinspect()

    def reinspect(self) -> None:
        if not self._source:
            return
        self._clear_info()
        self._load_error = None
        self.error_label.hide()
        try:
            spec = RunSpec(model=self._source, factory=self.factory(), trust_pickle=self.trust(),
                           trust_remote_code=self.trust_remote_code())
            spec.validate()
        except SpecError as exc:
            self._fail(str(exc), "")
            return
        self._token = self.bridge.inspect(spec)
        self._set_busy(True)
        self.modelChanged.emit()

    def _factory_edited(self) -> None:
        if self._source and (self.factory() or "") != (getattr(self, "_last_factory", None) or ""):
            self._last_factory = self.factory()
            self.reinspect()

    # -- inspect answers ---------------------------------------------------------------------------
    def _inspect_finished(self, token: int, info: dict) -> None:
        if token != self._token:
            return
        self._token = None
        self._set_busy(False)
        self._info = info
        self._show_info(info)
        self.modelChanged.emit()

    def _inspect_failed(self, token: int, message: str, details: str) -> None:
        if token != self._token:
            return
        self._token = None
        self._set_busy(False)
        self._fail(message, details)

    def _describe_at_inputs(self) -> None:
        """Inputs entered for a model that leaves them open: describe its layers again at them
        (output shapes and FLOPs need a shape to run). Only the layers and FLOPs change; the
        inputs the model declares, and so what a run sends, stay as they are."""
        text = self.inputs_edit.text().strip()
        if (self._info is None or self.inputs_edit.isReadOnly() or self._inputs_error or not text
                or self.is_busy() or text == self._layers_inputs):
            return
        try:
            spec = RunSpec(model=self._source or "", factory=self.factory(), trust_pickle=self.trust(),
                           inputs=parse_inputs(text))
            spec.validate()
        except SpecError:
            return
        self._layers_inputs = text
        self._layers_token = self.bridge.inspect(spec)
        self.layers_caption.setText(f"describing the layers at {text}…")
        self.layers_caption.show()

    def _layers_described(self, token: int, info: dict) -> None:
        if token != self._layers_token or self._info is None:
            return
        self._layers_token = None
        keys = ("flops", "flops_batch", "flops_partial", "flops_uncounted", "layers", "layers_total",
                "shapes_from", "layer_counts")
        self._info = dict(self._info, **{key: info.get(key) for key in keys})
        self._info["notes"] = [n for n in self._info.get("notes") or [] if not _shape_reason([n])] + \
            [n for n in info.get("notes") or [] if _shape_reason([n])]
        self.flops_value.setText(flops_text(self._info)[0])
        self.flops_value.setToolTip(flops_text(self._info)[1])
        self._show_layers(self._info)

    def _layers_failed(self, token: int, message: str, details: str) -> None:
        if token != self._layers_token:
            return
        self._layers_token = None
        self.layers_caption.setText(f"could not describe the layers at {self._layers_inputs}: {message}")
        self.layers_caption.show()

    def _fail(self, message: str, details: str) -> None:
        self._load_error = message
        self.error_label.setText(f"Could not load the model: {message}")
        self.error_label.show()
        # Offer the factory / trust widgets only when the loader asked for one of them, never
        # for a file it did not identify as weights or as a pickle of code.
        if FACTORY_HINT in message or TRUST_HINT in message or "factory" in message.lower() \
                or "--trust-remote-code" in message:
            self._show_factory(True)
        self.modelChanged.emit()
        self.errorOccurred.emit(f"Could not load {Path(self._source or '').name or 'the model'}: {message}",
                                details)

    # -- display -----------------------------------------------------------------------------------
    def _set_busy(self, busy: bool) -> None:
        self.busy_bar.setVisible(busy)
        self.busy_label.setVisible(busy)
        self.reload_button.setEnabled(not busy and bool(self._source))
        self.busyChanged.emit(busy)

    def _show_factory(self, shown: bool) -> None:
        for widget in (self.factory_label, self.factory_edit, self.trust_check):
            widget.setVisible(shown)

    def _clear_info(self) -> None:
        self._info = None
        self._layers_token = self._layers_inputs = None
        for label in (self.format_value, self.params_value, self.size_value, self.flops_value):
            label.setText("—")
        self.inputs_edit.blockSignals(True)
        self.inputs_edit.clear()
        self.inputs_edit.blockSignals(False)
        self.inputs_edit.setReadOnly(True)
        self.inputs_hint.hide()
        self.notes_label.hide()
        self.layers_tree.clear()
        self.layers_list.clear()
        self.layers_caption.hide()
        self.flops_value.setToolTip("")
        self._inputs_error = None

    def _show_info(self, info: dict) -> None:
        kind = "onnx" if info.get("format") == "onnx" else "torch"
        self.format_value.setText(f"{info.get('format', '?')} ({kind})")
        self.params_value.setText(f"{fmt.count(info.get('parameters'))} ({info.get('parameters', 0):,})")
        self.size_value.setText(fmt.nbytes(info.get("bytes")))
        flops_line, flops_tip = flops_text(info)
        self.flops_value.setText(flops_line)
        self.flops_value.setToolTip(flops_tip)
        fixed = bool(info.get("input_fixed_by_model"))
        declared = info.get("inputs") or []
        self.inputs_edit.blockSignals(True)
        self.inputs_edit.setText(inputs_text(declared))
        self.inputs_edit.blockSignals(False)
        self.inputs_edit.setReadOnly(fixed)
        self.inputs_edit.setCursorPosition(0)
        if fixed:
            self._hint("fixed by the model; -1 = the batch dimension (set in the Run panel)", error=False)
        elif not declared:
            self._hint("the model does not declare its inputs: enter them, e.g. 1x3x224x224:float32", error=True)
            self._inputs_error = "enter the model's input shape in the Model panel (e.g. 1x3x224x224:float32)"
        else:
            self._hint("editable: the model leaves some dimensions open", error=False)
        notes = [n for n in info.get("notes") or [] if not _shape_reason([n])]   # (said under the layers)
        self.notes_label.setText("\n".join(f"• {n}" for n in notes))
        self.notes_label.setVisible(bool(notes))
        self.layers_tree.clear()
        for name, n in sorted((info.get("layer_counts") or {}).items(), key=lambda kv: (-kv[1], kv[0])):
            item = QTreeWidgetItem([name, str(n)])
            item.setTextAlignment(1, Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
            self.layers_tree.addTopLevelItem(item)
        self._show_layers(info)

    def _show_layers(self, info: dict) -> None:
        self.layers_list.clear()
        items = []
        for row in info.get("layers") or []:
            flops = row.get("flops")
            shape = shape_text(row.get("output_shapes"))
            item = QTreeWidgetItem([str(row.get("name")), str(row.get("type")), shape,
                                    fmt.count(row.get("params")), fmt.count(flops) if flops else "—"])
            tip = (f"{row.get('name')} ({row.get('type')}): output {shape}, {fmt.count(row.get('params'))} "
                   f"parameters" + (f", {fmt.count(flops)} FLOPs" if flops else ""))
            for column in range(len(LAYER_COLUMNS)):
                item.setToolTip(column, tip)
            for column in (3, 4):
                item.setTextAlignment(column, Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
            items.append(item)
        self.layers_list.addTopLevelItems(items)
        self.layers_list.fit_columns()
        rows, total = len(items), int(info.get("layers_total") or len(items))
        parts = []
        if total > rows:
            parts.append(f"first {rows} of {total} layers")
        batch = info.get("flops_batch")
        if info.get("shapes_from"):
            parts.append(f"shapes and FLOPs at batch {batch}, from {info['shapes_from']}" if batch else
                         f"shapes from {info['shapes_from']}")
        elif items:
            parts.append("output shapes unknown: " + (_shape_reason(info.get("notes") or [])
                                                      or "the model has no input shape to run"))
        self.layers_caption.setText("; ".join(parts))
        self.layers_caption.setVisible(bool(parts))

    def _hint(self, text: str, error: bool) -> None:
        self.inputs_hint.setText(text)
        self.inputs_hint.setStyleSheet("color: #d32f2f;" if error else "color: palette(placeholder-text);")
        self.inputs_hint.show()

    def _inputs_edited(self, text: str) -> None:
        if self.inputs_edit.isReadOnly():
            return
        try:
            parse_inputs(text)
        except SpecError as exc:
            self._inputs_error = f"bad input spec: {exc}"
            self._hint(str(exc), error=True)
        else:
            self._inputs_error = None
            self._hint("ok", error=False)
        self.modelChanged.emit()

    # -- settings --------------------------------------------------------------------------------
    def state(self) -> dict[str, Any]:
        return {"source": self._source, "factory": self.factory(), "trust": False,
                "inputs": None if self.inputs_edit.isReadOnly() else self.inputs_edit.text()}


def _shape_reason(notes: list[str]) -> str:
    """The describer's note on why there are no layer shapes (e.g. TorchScript), if any."""
    prefix = "layer output shapes: "
    return next((note[len(prefix):] for note in notes if note.startswith(prefix)), "")
