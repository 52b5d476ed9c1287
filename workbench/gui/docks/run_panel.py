"""The Run dock: the evaluation/calibration data and where to save the optimized model, device /
runtime / dtype / batch / threads / iterations, the run buttons, a progress bar per phase (load,
optimize, warm-up, measure), Cancel, and the queue."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from PySide6.QtCore import QSize, Qt, Signal
from PySide6.QtWidgets import (QCheckBox, QComboBox, QDoubleSpinBox, QFormLayout, QGridLayout,
                               QHBoxLayout, QLabel, QListWidget, QListWidgetItem, QMenu, QProgressBar,
                               QPushButton, QSpinBox, QVBoxLayout, QWidget)

from ... import format as fmt
from ...models import demos
from ...spec import MODEL_DTYPES, PRESETS, RUNTIMES, SAVE_SUFFIXES, RunSpec, device_kind
from .lm_options import LanguageModelOptions
from .param_form import PathField
from .queue_items import STATUS_ICON, job_text, job_tooltip

PHASES = (("load", "Load"), ("optimize", "Optimize"), ("warmup", "Warm-up"), ("measure", "Measure"))
# Which bar each worker phase drives.
PHASE_BAR = {"load": "load", "reference": "load", "optimize": "optimize", "save": "optimize",
             "prepare": "warmup", "cold": "warmup", "warmup": "warmup", "measure": "measure",
             "fidelity": "measure", "profile": "measure", "layers": "measure"}   # the last two: --profile
JOB_ROLE = Qt.ItemDataRole.UserRole
DATA_FILTER = "NumPy archives (*.npz);;All files (*)"
SAVE_FILTER = "TorchScript (*.pt);;torch.export program (*.pt2);;ONNX (*.onnx)"
NPZ_HOWTO = "write one with np.savez(path, x_test=..., y_test=..., x_train=..., y_train=...)"
NO_DATA_NOTE = "none: synthetic inputs (no accuracy)"     # the tooltip says what needs data


def data_file_problem(path: str) -> str | None:
    """What is wrong with an evaluation/calibration data file, in one line (None: it is usable).
    Reads only the archive's table of contents, never an array."""
    file = Path(path).expanduser()
    if not file.exists():
        return f"data file not found: {file}"
    if file.is_dir():
        return f"{file.name} is a folder, not an .npz file"
    try:
        with open(file, "rb") as handle:
            head = handle.read(4)
    except OSError as exc:
        return f"cannot read {file.name}: {exc.strerror or exc}"
    if not head.startswith(b"PK"):
        return f"{file.name} is not an .npz archive: {NPZ_HOWTO}"
    try:
        with np.load(file, allow_pickle=False) as archive:
            names = set(archive.files)
    except Exception as exc:
        return f"{file.name} is a damaged .npz archive: {exc}"
    if not names & {"x_test", "x", "x_train"}:
        return f"{file.name} has arrays {', '.join(sorted(names)) or 'none'}; expected x_test (or x_train)"
    return None


def save_path_problem(path: str) -> str | None:
    """What is wrong with a place to save the optimized model (None: the savers can write it)."""
    file = Path(path).expanduser()
    if file.is_dir():
        return f"{file} is a folder: give a file name ending in .pt, .pt2 or .onnx"
    if not file.name.lower().endswith(SAVE_SUFFIXES):
        return (f"save as .pt (TorchScript), .pt2 (torch.export) or .onnx, not "
                f"{file.suffix or 'a name without suffix'}")
    return None


def absolute(path: str | None) -> str | None:
    """The worker runs in another folder: hand it absolute paths."""
    return str(Path(path).expanduser().resolve()) if path else None


class QueueList(QListWidget):
    """The queue asks for little height: the dock's scroll area sizes its content from preferred
    heights, and QListWidget's default (192 px) pushed the queue out of sight at 720 px."""

    def sizeHint(self) -> QSize:  # noqa: N802 (Qt API)
        return QSize(super().sizeHint().width(), 72)


class RunPanel(QWidget):
    runRequested = Signal(str)          # "run" | "pair" | "all" | "sweep" (opens the Sweep dialog)
    cancelRequested = Signal()
    settingsChanged = Signal()
    removeJobRequested = Signal(int)
    clearFinishedRequested = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.device_combo = QComboBox()
        self.device_combo.setObjectName("deviceCombo")
        self.device_combo.addItem("CPU", "cpu")
        self.device_combo.setToolTip("Where the model runs. GPUs are found through NVML (the GUI does "
                                     "not load CUDA itself).")
        self.device_note = QLabel()
        self.device_note.setWordWrap(True)
        self.device_note.setEnabled(False)
        self.device_note.hide()
        self.runtime_combo = QComboBox()
        for runtime in RUNTIMES:
            self.runtime_combo.addItem(runtime, runtime)
        self.runtime_combo.setToolTip("auto: PyTorch for torch models, ONNX Runtime for ONNX models and "
                                      "chains that end in ONNX")
        self.dtype_combo = QComboBox()
        for dtype in MODEL_DTYPES:
            self.dtype_combo.addItem(dtype, dtype)
        self.dtype_combo.setToolTip("Compute dtype of the model (PyTorch runtime)")
        self.batch_spin = QSpinBox()
        self.batch_spin.setRange(0, 65536)
        self.batch_spin.setSpecialValueText("model default")
        self.batch_spin.setToolTip("Batch size (replaces the first dimension of every input); "
                                   "0 = the model's default")
        self.threads_spin = QSpinBox()
        self.threads_spin.setRange(0, 1024)
        self.threads_spin.setSpecialValueText("library default")
        self.threads_spin.setToolTip("Intra-op CPU threads; 0 = the library default (recorded with the run)")
        self.iters_spin = QSpinBox()
        self.iters_spin.setRange(1, 10_000_000)
        self.iters_spin.setValue(PRESETS["quick"]["iters"])
        self.iters_spin.setToolTip("Minimum number of timed iterations")
        self.duration_spin = QDoubleSpinBox()
        self.duration_spin.setRange(0.0, 3600.0)
        self.duration_spin.setDecimals(2)
        self.duration_spin.setSingleStep(0.5)
        self.duration_spin.setSuffix(" s")
        self.duration_spin.setValue(PRESETS["quick"]["duration_s"])
        self.duration_spin.setToolTip("Minimum timed duration: the run stops when both minimums are met")
        self.rigorous_check = QCheckBox("Rigorous")
        self.rigorous_check.setToolTip("≥ 1000 iterations, ≥ 10 s timed, longer warm-up: the preset for "
                                       "numbers you will publish")
        self.rigorous_check.toggled.connect(self._rigorous_toggled)
        self.profile_check = QCheckBox("Profile")
        self.profile_check.setToolTip("After timing (never timed): a per-op profile and, for a chain, each layer vs "
                                      "the unoptimized model; the Results' Profile and Layers tabs show them")
        self.profile_check.toggled.connect(lambda _on: self.settingsChanged.emit())
        self.data_field = PathField("evaluation / calibration data (.npz)", DATA_FILTER, data_file_problem)
        self.data_field.setObjectName("dataField")
        self.data_field.edit.setObjectName("dataPath")
        self.data_field.setToolTip("An .npz with x_test[, y_test, x_train, y_train] (the CLI's --data): accuracy "
                                   "and fidelity use x_test/y_test; static int8 calibration, pruning fine-tune "
                                   "and distillation train on x_train/y_train")
        self.data_field.set_empty_note(NO_DATA_NOTE)
        self.save_field = PathField("save optimized model to… (.pt, .pt2, .onnx)", SAVE_FILTER,
                                    save_path_problem, save=True)
        self.save_field.setObjectName("saveModelField")
        self.save_field.edit.setObjectName("saveModelPath")
        self.save_field.setToolTip("Where each run saves its optimized model (the CLI's --save-model): .pt "
                                   "TorchScript, .pt2 torch.export, .onnx for chains that end in ONNX. Not "
                                   "remembered between sessions, so a later run never overwrites it by accident")
        self.data_field.changed.connect(self.settingsChanged)
        self.save_field.changed.connect(self.settingsChanged)

        form = QFormLayout()
        form.setFieldGrowthPolicy(QFormLayout.FieldGrowthPolicy.AllNonFixedFieldsGrow)
        form.setRowWrapPolicy(QFormLayout.RowWrapPolicy.WrapLongRows)
        form.addRow("Data", self.data_field)
        form.addRow("Save to", self.save_field)
        form.addRow("Device", self.device_combo)
        form.addRow("", self.device_note)
        form.addRow("Runtime", self.runtime_combo)
        form.addRow("Dtype", self.dtype_combo)
        form.addRow("Batch", self.batch_spin)
        form.addRow("Threads", self.threads_spin)
        form.addRow("Iterations", self.iters_spin)
        duration_row = QHBoxLayout()          # one row for both: the Run column is short at 720 px
        duration_row.setContentsMargins(0, 0, 0, 0)
        duration_row.addWidget(self.duration_spin, 1)
        duration_row.addWidget(self.rigorous_check)
        duration_row.addWidget(self.profile_check)
        form.addRow("Duration", duration_row)
        self.lm_options = LanguageModelOptions()      # shown for models that take token ids
        self.lm_options.changed.connect(self.settingsChanged)

        self.run_button = QPushButton("Run")
        self.run_button.setObjectName("runButton")
        self.run_button.setToolTip("Measure the model with the checked plugins (Ctrl+R)")
        self.pair_button = QPushButton("Run baseline + variant")
        self.pair_button.setObjectName("pairButton")
        self.pair_button.setToolTip("Measure the plain model and the optimized one, so a comparison exists "
                                    "(Ctrl+Shift+R)")
        self.all_button = QPushButton("Run all combinations")
        self.all_button.setObjectName("allButton")
        self.all_button.setToolTip("Queue the baseline, each checked plugin alone, and the full chain")
        self.sweep_button = QPushButton("Sweep…")
        self.sweep_button.setObjectName("sweepButton")
        self.sweep_button.setToolTip("Run a grid over settings and plugin parameters (batch, prune.amount, …)")
        self.sweep_button.clicked.connect(lambda: self.runRequested.emit("sweep"))
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setObjectName("cancelButton")
        self.cancel_button.setToolTip("Stop the running job and clear the queue (Esc or Ctrl+.)")
        self.cancel_button.setEnabled(False)
        self.run_button.clicked.connect(lambda: self.runRequested.emit("run"))
        self.pair_button.clicked.connect(lambda: self.runRequested.emit("pair"))
        self.all_button.clicked.connect(lambda: self.runRequested.emit("all"))
        self.cancel_button.clicked.connect(self.cancelRequested)
        self.run_button.setDefault(True)
        buttons = QGridLayout()
        buttons.addWidget(self.run_button, 0, 0)
        buttons.addWidget(self.cancel_button, 0, 1)
        buttons.addWidget(self.pair_button, 1, 0, 1, 2)
        buttons.addWidget(self.all_button, 2, 0)
        buttons.addWidget(self.sweep_button, 2, 1)

        self.problem_label = QLabel()
        self.problem_label.setObjectName("runProblem")
        self.problem_label.setWordWrap(True)
        self.problem_label.setStyleSheet("color: #d32f2f;")
        self.problem_label.hide()

        self.bars: dict[str, QProgressBar] = {}
        self.bar_labels: dict[str, QLabel] = {}
        grid = QGridLayout()
        grid.setColumnStretch(1, 1)
        for row, (key, title) in enumerate(PHASES):
            label = QLabel(title)
            bar = QProgressBar()
            bar.setObjectName(f"phase_{key}")
            bar.setRange(0, 1000)
            bar.setValue(0)
            bar.setFormat("")
            bar.setMaximumHeight(16)
            grid.addWidget(label, row, 0)
            grid.addWidget(bar, row, 1)
            self.bars[key] = bar
            self.bar_labels[key] = label
        self.status_label = QLabel("Idle")
        self.status_label.setObjectName("runStatus")
        self.status_label.setWordWrap(True)

        self.queue_list = QueueList()
        self.queue_list.setObjectName("queueList")
        self.queue_list.setMinimumHeight(56)
        self.queue_list.setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)
        self.queue_list.customContextMenuRequested.connect(self._queue_menu)
        self.queue_list.setToolTip("Runs in order; right-click a queued run to remove it")
        self.remove_button = QPushButton("Remove")
        self.remove_button.setToolTip("Take the selected queued run off the queue")
        self.remove_button.clicked.connect(self._remove_selected)
        self.clear_button = QPushButton("Clear")
        self.clear_button.setToolTip("Remove finished runs from this list (they stay in the Results)")
        self.clear_button.clicked.connect(self.clearFinishedRequested)
        queue_buttons = QHBoxLayout()
        queue_buttons.addWidget(QLabel("Queue"))
        queue_buttons.addStretch(1)
        queue_buttons.addWidget(self.remove_button)
        queue_buttons.addWidget(self.clear_button)

        layout = QVBoxLayout(self)
        layout.setContentsMargins(6, 6, 6, 6)
        layout.addLayout(form)
        layout.addWidget(self.lm_options)
        layout.addLayout(buttons)
        layout.addWidget(self.problem_label)
        layout.addLayout(grid)
        layout.addWidget(self.status_label)
        layout.addLayout(queue_buttons)
        layout.addWidget(self.queue_list, 1)

        for widget in (self.device_combo, self.runtime_combo, self.dtype_combo):
            widget.currentIndexChanged.connect(lambda _i: self.settingsChanged.emit())
        for widget in (self.batch_spin, self.threads_spin, self.iters_spin, self.duration_spin):
            widget.valueChanged.connect(lambda _v: self.settingsChanged.emit())

        self._job = None
        self.stopped = False
        self._measure_ns = 0
        self._measure_n = 0
        self._optimize_steps = 1

    # -- settings ----------------------------------------------------------------------------------
    def set_devices(self, devices: list[tuple[str, str]], note: str | None = None) -> None:
        """``[(label, device)]``; CPU is always first."""
        current = self.device()
        self.device_combo.blockSignals(True)
        self.device_combo.clear()
        self.device_combo.addItem("CPU", "cpu")
        for label, device in devices:
            self.device_combo.addItem(label, device)
        index = self.device_combo.findData(current)
        self.device_combo.setCurrentIndex(max(0, index))
        self.device_combo.blockSignals(False)
        # the headline only ("No NVIDIA GPU"): NVML's own words are in the tooltip, not in three lines
        self.device_note.setText((note or "").split(":")[0])
        self.device_note.setToolTip(note or "")
        self.device_combo.setToolTip(self.device_combo.toolTip().split("\n")[0] + (f"\n{note}" if note else ""))
        self.device_note.setVisible(bool(note))
        if index < 0:
            self.settingsChanged.emit()

    def device(self) -> str:
        return self.device_combo.currentData() or "cpu"

    def device_kinds(self) -> list[str]:
        """The device kinds in the device list ("cpu", and "cuda" when the probe found a GPU)."""
        kinds = [device_kind(self.device_combo.itemData(i) or "cpu") for i in range(self.device_combo.count())]
        return list(dict.fromkeys(kinds))

    def set_model_source(self, source: str | None) -> None:
        """What an empty data field means for this model: a demo brings its own data."""
        entry = demos.DEMOS.get(source[5:]) if source and source.startswith("demo:") else None
        self.data_field.set_empty_note(f"none: the demo's own data ({entry.data}) is used" if entry else NO_DATA_NOTE)

    def files_problem(self) -> str | None:
        """Why the data or save-model field stops a run (None: neither does). Checks the files again."""
        data = self.data_field.recheck()
        if data:
            return data if data.startswith("data file") else f"data file: {data}"
        save = self.save_field.recheck()
        return f"save optimized model: {save}" if save else self.lm_options.problem()

    def set_device(self, device: str) -> bool:
        index = self.device_combo.findData(device)
        if index >= 0:
            self.device_combo.setCurrentIndex(index)
        return index >= 0

    def runtime(self) -> str:
        return self.runtime_combo.currentData() or "auto"

    def fill(self, spec: RunSpec) -> RunSpec:
        """Copy this panel's settings into ``spec`` (returned)."""
        spec.device = self.device()
        spec.runtime = self.runtime()
        spec.dtype = self.dtype_combo.currentData()
        spec.batch = self.batch_spin.value() or None
        spec.threads = self.threads_spin.value() or None
        spec.data = absolute(self.data_field.path())
        spec.save_model = absolute(self.save_field.path())
        spec.profile = self.profile_check.isChecked()
        self.lm_options.fill(spec)
        if self.rigorous_check.isChecked():
            spec.apply_preset("rigorous")
        else:
            spec.iters = self.iters_spin.value()
            spec.duration_s = float(self.duration_spin.value())
        return spec

    def _rigorous_toggled(self, on: bool) -> None:
        self.iters_spin.setEnabled(not on)
        self.duration_spin.setEnabled(not on)
        self.settingsChanged.emit()

    def state(self) -> dict[str, Any]:
        return {"device": self.device(), "runtime": self.runtime(), "dtype": self.dtype_combo.currentData(),
                "batch": self.batch_spin.value(), "threads": self.threads_spin.value(),
                "iters": self.iters_spin.value(), "duration": self.duration_spin.value(),
                "rigorous": self.rigorous_check.isChecked(), "data": self.data_field.path(),
                "profile": self.profile_check.isChecked(),
                "lm": self.lm_options.state()}

    def restore_state(self, state: dict[str, Any]) -> None:
        def pick(combo: QComboBox, value: Any) -> None:
            index = combo.findData(value)
            if index >= 0:
                combo.setCurrentIndex(index)
        self._wanted_device = state.get("device")
        pick(self.device_combo, state.get("device"))
        pick(self.runtime_combo, state.get("runtime"))
        pick(self.dtype_combo, state.get("dtype"))
        for spin, key in ((self.batch_spin, "batch"), (self.threads_spin, "threads"),
                          (self.iters_spin, "iters")):
            try:
                spin.setValue(int(state[key]))
            except (KeyError, TypeError, ValueError):
                pass
        try:
            self.duration_spin.setValue(float(state["duration"]))
        except (KeyError, TypeError, ValueError):
            pass
        self.rigorous_check.setChecked(str(state.get("rigorous")).lower() in ("true", "1"))
        self.profile_check.setChecked(str(state.get("profile")).lower() in ("true", "1"))
        if isinstance(state.get("data"), str):
            self.data_field.set_path(state["data"])
        if isinstance(state.get("lm"), dict):
            self.lm_options.restore_state(state["lm"])

    # -- enabling ----------------------------------------------------------------------------------
    def set_problem(self, problem: str | None, chain_len: int, chain_ok: bool) -> None:
        """``problem``: why no run can start (None = it can)."""
        ok = problem is None
        self.run_button.setEnabled(ok)
        self.pair_button.setEnabled(ok and chain_len > 0)
        self.all_button.setEnabled(ok and chain_len > 0)
        self.sweep_button.setEnabled(ok)
        reason = problem or ""
        for button in (self.run_button, self.pair_button, self.all_button, self.sweep_button):
            button.setStatusTip(reason)
        if ok and chain_len == 0:
            tip = "check at least one plugin to compare a variant with the baseline"
            self.pair_button.setStatusTip(tip)
            self.all_button.setStatusTip(tip)
        self.problem_label.setText(f"Cannot run: {problem}" if problem else "")
        self.problem_label.setVisible(bool(problem))

    def set_busy(self, busy: bool) -> None:
        self.cancel_button.setEnabled(busy)

    # -- progress ----------------------------------------------------------------------------------
    def cancelling(self) -> None:
        """Feedback at once when the user cancels (the worker answers within a batch)."""
        if self._job is not None and not self.stopped:
            self._set_status(f"■ {self._job_label()}: cancelling…")
        self.cancel_button.setEnabled(False)

    def job_started(self, job) -> None:
        self.stopped = False
        self._job = job
        self._measure_ns = 0
        self._measure_n = 0
        self._optimize_steps = max(1, len(job.spec.plugins))
        for key, bar in self.bars.items():
            bar.setRange(0, 1000)
            bar.setValue(0)
            bar.setFormat("")
        if not job.spec.plugins:
            self.bars["optimize"].setFormat("no plugins")
        self._set_status(f"Running {job.label}…")

    def _busy_bar(self, key: str, text: str = "") -> None:
        bar = self.bars[key]
        bar.setRange(0, 0)          # indeterminate
        bar.setFormat(text)

    def _finish_bar(self, key: str, text: str = "done") -> None:
        bar = self.bars[key]
        bar.setRange(0, 1000)
        bar.setValue(1000)
        bar.setFormat(text)

    def _set_fraction(self, key: str, fraction: float, text: str = "%p%") -> None:
        bar = self.bars[key]
        bar.setRange(0, 1000)
        bar.setValue(int(1000 * max(0.0, min(1.0, fraction))))
        bar.setFormat(text)

    def handle_event(self, event: dict) -> None:
        """Drive the phase bars from the running job's events."""
        kind = event.get("type")
        if kind == "error" and event.get("kind") == "cancelled":
            # the worker has stopped measuring; the process itself may take a moment to exit
            self.stopped = True
            for bar in self.bars.values():
                if bar.maximum() == 0 or 0 < bar.value() < 1000:
                    bar.setRange(0, 1000)
                    bar.setFormat("cancelled")
            self._set_status(f"■ {self._job_label()}: cancelled — the worker process is exiting…")
            return
        if kind == "phase":
            phase = event.get("phase")
            key = PHASE_BAR.get(phase)
            if key is None:
                return
            order = [k for k, _ in PHASES]
            for earlier in order[: order.index(key)]:
                if self.bars[earlier].maximum() == 0 or self.bars[earlier].value() < 1000:
                    self._finish_bar(earlier, "skipped" if earlier == "optimize" and self._job is not None
                                     and not self._job.spec.plugins else "done")
            if key == "measure" and phase != "measure":        # after timing: fidelity, then --profile's phases
                self._finish_bar("measure", f"{self._measure_n} iterations")
                self._set_status(f"{self._job_label()}: " + ("checking fidelity against the unoptimized model…"
                                                             if phase == "fidelity" else event.get("message") or phase))
            elif key == "measure":
                self._set_fraction("measure", 0.0)
                self._set_status(f"{self._job_label()}: measuring…")
            else:
                self._busy_bar(key, phase)
                message = event.get("message") or phase
                self._set_status(f"{self._job_label()}: {message}")
        elif kind == "progress" and event.get("phase") == "optimize":
            step = int(event.get("step") or 0)
            fraction = (step + float(event.get("fraction") or 0.0)) / self._optimize_steps
            self._set_fraction("optimize", fraction, event.get("message") or "%p%")
        elif kind == "train":
            epoch = event.get("epoch")
            loss = event.get("loss")
            if loss is not None:
                self._set_status(f"{self._job_label()}: training student, epoch {epoch}, loss {loss:.4f}")
        elif kind == "latency_batch" and event.get("phase") == "measure":
            values = event.get("values_ns") or []
            self._measure_n += len(values)
            self._measure_ns += sum(values)
            self._set_fraction("measure", self._measure_fraction(), f"{self._measure_n} it · %p%")

    def _measure_fraction(self) -> float:
        spec = self._job.spec if self._job is not None else None
        if spec is None:
            return 0.0
        by_count = self._measure_n / max(1, spec.iters)
        by_time = (self._measure_ns / 1e9) / spec.duration_s if spec.duration_s > 0 else 1.0
        return min(1.0, by_count, by_time)   # the loop stops when both minimums are met

    def showing(self, job) -> bool:
        """Whether the progress shown is ``job``'s."""
        return job is self._job

    def job_finished(self, job, summary: str = "") -> None:
        if job is not self._job:
            return
        if job.status == "done":
            for key in self.bars:
                if self.bars[key].maximum() == 0 or self.bars[key].value() < 1000:
                    self._finish_bar(key, "skipped" if key == "optimize" and not job.spec.plugins else "done")
            self._set_status(f"✓ {job.label}: done{' — ' + summary if summary else ''}")
        else:
            for key, bar in self.bars.items():
                if bar.maximum() == 0:
                    bar.setRange(0, 1000)
                    bar.setValue(0)
                    bar.setFormat(job.status)
            reason = f": {job.message}" if job.message else ""
            self._set_status(f"{STATUS_ICON.get(job.status, '')} {job.label}: {job.status}{reason}")
        self._job = None

    def _job_label(self) -> str:
        return self._job.label if self._job is not None else "run"

    def _set_status(self, text: str) -> None:
        first = text.splitlines()[0] if text else ""
        self.status_label.setText(first if len(first) < 240 else first[:239] + "…")
        self.status_label.setToolTip(text)

    # -- queue ---------------------------------------------------------------------------------------
    def update_queue(self, jobs: list) -> None:
        selected = self.selected_job_id()
        self.queue_list.clear()
        for job in jobs[-100:]:
            item = QListWidgetItem(job_text(job))
            item.setData(JOB_ROLE, job.id)
            item.setToolTip(job_tooltip(job))
            self.queue_list.addItem(item)
            if job.id == selected:
                self.queue_list.setCurrentItem(item)
        self.queue_list.scrollToBottom()

    def selected_job_id(self) -> int | None:
        item = self.queue_list.currentItem()
        return item.data(JOB_ROLE) if item is not None else None

    def _remove_selected(self) -> None:
        job_id = self.selected_job_id()
        if job_id is not None:
            self.removeJobRequested.emit(job_id)

    def _queue_menu(self, pos) -> None:
        item = self.queue_list.itemAt(pos)
        menu = QMenu(self)
        if item is not None:
            job_id = item.data(JOB_ROLE)
            menu.addAction("Remove from queue", lambda: self.removeJobRequested.emit(job_id))
        menu.addAction("Clear finished", self.clearFinishedRequested.emit)
        menu.addAction("Cancel all", self.cancelRequested.emit)
        menu.popup(self.queue_list.viewport().mapToGlobal(pos))


def summarize_record(record) -> str:
    latency = (record.result or {}).get("latency") or {}
    if not latency:
        return ""
    return f"p50 {fmt.ms(latency.get('median_ms'))}, p99 {fmt.ms(latency.get('p99_ms'))}"

