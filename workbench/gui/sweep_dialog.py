"""Run ▸ Sweep…: a grid over run settings and the checked plugins' parameters, planned by the core.

Axes are rows (an axis picked from the run settings and ``plugin.param`` of the checked plugins,
its values a comma list). Each edit is checked by the core's own planner (``engine.sweep.plan_sweep``
through the bridge, as ``workbench sweep`` plans): the dialog shows the number of points and runs,
an estimate of the time, and every invalid point before anything runs; Start is enabled only for a
valid plan, which the dialog hands back (``plan``) for the run queue.
"""
from __future__ import annotations

import math
from typing import Any

from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtWidgets import (QComboBox, QDialog, QDialogButtonBox, QFormLayout, QHBoxLayout, QLabel, QLineEdit,
                               QPushButton, QSpinBox, QToolButton, QVBoxLayout, QWidget)

from ..engine.sweep import SETTING_AXES
from ..errors import WorkbenchError
from ..plugin_api import discover_plugins
from ..results.repeat_stats import MIN_PROCESSES
from ..results.stats import RUN_TO_RUN_NOISE
from ..spec import RunSpec

# What a run costs besides its timed phase when this model was never run here (worker start, model
# load, warm-up, fidelity check) and a timed iteration's guess: stated as a rough guess in the dialog.
ROUGH_OVERHEAD_S = 5.0
ROUGH_ITERATION_MS = 1.0
REFERENCE_RUNS_SEARCHED = 300
SETTING_HELP = {"batch": "batch size", "threads": "intra-op CPU threads", "seq_len": "tokens per sequence",
                "prompt_len": "prompt tokens (generate)", "gen_len": "new tokens (generate)",
                "dtype": "compute dtype", "runtime": "torch / onnxruntime / auto", "device": "cpu / cuda",
                "scenario": "forward / generate"}
SUGGESTED = {"batch": "1, 8, 32, 64", "threads": "1, 2, 4", "seq_len": "16, 64, 256", "prompt_len": "32, 128, 512",
             "gen_len": "16, 64", "dtype": "float32, bfloat16", "runtime": "torch, onnxruntime",
             "scenario": "forward, generate"}


# -- what can be swept ----------------------------------------------------------------------------------
def axis_choices(spec: RunSpec) -> list[tuple[str, str, str]]:
    """``(axis, help, suggested values)``: the run settings, then each checked plugin's parameters
    that its chosen method uses (``plugin.param``)."""
    out = [(name, SETTING_HELP.get(name, name), SUGGESTED.get(name, "")) for name in SETTING_AXES]
    plugins = discover_plugins()
    for step in spec.plugins:
        info = plugins.get(step.name)
        if info is None or info.cls is None:
            continue
        cls = info.cls
        choice = cls.method_choice()
        method = step.params.get(choice.name, choice.default) if choice is not None else None
        for param in cls.params_for(method) if choice is not None else cls.params_schema:
            out.append((f"{step.name}.{param.name}", param.help, _suggest(param)))
    return out


def default_axis(choices: list[tuple[str, str, str]]) -> str:
    """The first row's axis: a checked plugin's numeric parameter (the frontier's kind), else batch."""
    plugin_axes = [(name, suggested) for name, _help, suggested in choices if "." in name]
    numeric = [name for name, suggested in plugin_axes if suggested and suggested[0].isdigit()]
    return (numeric or [name for name, _s in plugin_axes] or ["batch"])[0]


def _suggest(param: Any) -> str:
    if param.type == "choice":
        return ", ".join(param.choices or ())
    if param.type == "bool":
        return "false, true"
    if param.type == "float" and param.minimum is not None and param.maximum is not None:
        low, high = float(param.minimum), float(param.maximum)
        return ", ".join(f"{low + (high - low) * f:g}" for f in (0.1, 0.3, 0.5, 0.7))
    return ""


# -- the time estimate ------------------------------------------------------------------------------------
def reference_run(store: Any, model: str) -> Any:
    """The newest finished run of ``model`` with a latency (what the estimate scales), or None."""
    for record in store.list_runs(limit=REFERENCE_RUNS_SEARCHED, status="done"):
        if record.model == model and record.finished_at and (record.result or {}).get("latency"):
            return record
    return None


def estimate_seconds(plan: dict, reference: Any = None) -> tuple[float, str]:
    """Seconds the plan's runs take, and what the figure rests on. From ``reference`` (a stored run of
    the model): its time outside the timed phase per run, plus each point's timed phase from the
    spec's iterations and minimum duration at the reference's time per iteration, scaled with the
    batch (so it errs long for large batches). Without one: a stated rough guess."""
    if reference is not None:
        latency = reference.result["latency"]
        per_iteration_ms = float(latency["median_ms"])
        ref_batch = int(latency.get("batch") or 1)
        timed = latency.get("n", 0) * per_iteration_ms / 1e3
        overhead = max(0.5, (reference.finished_at - reference.created_at) - timed)
        basis = (f"from run #{reference.id} of this model: {overhead:.0f} s per run to start, load and check, "
                 f"{per_iteration_ms:.3g} ms per iteration at batch {ref_batch} (scaled with the batch)")
    else:
        per_iteration_ms, ref_batch, overhead = ROUGH_ITERATION_MS, 1, ROUGH_OVERHEAD_S
        basis = (f"a rough guess (no stored run of this model yet): ~{ROUGH_OVERHEAD_S:g} s per run to start a "
                 f"worker and load the model, ~{ROUGH_ITERATION_MS:g} ms per iteration")
    total = 0.0
    for point in plan["points"]:
        spec = point["spec"]
        batch = spec.get("batch") or ref_batch
        iteration_s = per_iteration_ms * max(1, batch) / max(1, ref_batch) / 1e3
        timed = min(max(spec["iters"] * iteration_s, spec["duration_s"]), spec.get("max_duration_s") or math.inf)
        total += overhead + timed
    return total * plan["repeat"], basis


def duration_text(seconds: float) -> str:
    if seconds < 90:
        return f"about {max(1, round(seconds))} s"
    if seconds < 5400:
        return f"about {seconds / 60:.0f} min"
    return f"about {seconds / 3600:.1f} h"


def grid_count(grid: list[str]) -> tuple[int, str]:
    """Points of a grid from its comma lists alone (shown even while the grid is invalid)."""
    sizes = [len([v for v in text.partition("=")[2].split(",") if v.strip()]) for text in grid]
    return (math.prod(sizes) if sizes else 0), " × ".join(str(n) for n in sizes)


# -- the dialog ---------------------------------------------------------------------------------------------
class AxisRow(QWidget):
    changed = Signal()
    removeRequested = Signal(object)

    def __init__(self, choices: list[tuple[str, str, str]], parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.axis_combo = QComboBox()
        self.axis_combo.setObjectName("sweepAxis")
        for name, help_text, suggested in choices:
            self.axis_combo.addItem(name, suggested)
            self.axis_combo.setItemData(self.axis_combo.count() - 1, help_text, Qt.ItemDataRole.ToolTipRole)
        self.axis_combo.setToolTip("A run setting, or a parameter of a checked plugin (plugin.param)")
        self.values_edit = QLineEdit()
        self.values_edit.setObjectName("sweepValues")
        self.values_edit.setPlaceholderText("values, comma separated: 1, 8, 32")
        self.values_edit.setToolTip("The axis's values as a comma list; each value once")
        self.remove_button = QToolButton()
        self.remove_button.setText("✕")
        self.remove_button.setToolTip("Remove this axis")
        self.remove_button.clicked.connect(lambda: self.removeRequested.emit(self))
        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.axis_combo)
        layout.addWidget(self.values_edit, 1)
        layout.addWidget(self.remove_button)
        self._suggested = ""
        self.axis_combo.currentIndexChanged.connect(self._axis_changed)
        self.values_edit.textChanged.connect(lambda _t: self.changed.emit())

    def _axis_changed(self, _index: int) -> None:
        # a value list the user has not edited follows the axis's suggestion
        if self.values_edit.text() in ("", self._suggested):
            self._suggested = self.axis_combo.currentData() or ""
            self.values_edit.setText(self._suggested)
        self.changed.emit()

    def set_axis(self, name: str, values: str | None = None) -> bool:
        index = self.axis_combo.findText(name)
        if index < 0:
            return False
        self.axis_combo.setCurrentIndex(index)
        self._axis_changed(index)
        if values is not None:
            self.values_edit.setText(values)
        return True

    def axis(self) -> str:
        return self.axis_combo.currentText()

    def text(self) -> str:
        values = ",".join(v.strip() for v in self.values_edit.text().split(","))
        return f"{self.axis()}={values}"


class SweepDialog(QDialog):
    """``plan`` (the core's checked plan) is set while the grid is valid; ``accepted`` means start it."""

    VALIDATE_DELAY_MS = 250

    def __init__(self, bridge: Any, spec: RunSpec, parent: QWidget | None = None, note: str = "") -> None:
        super().__init__(parent)
        self.setObjectName("sweepDialog")
        self.setWindowTitle("Sweep")
        self.bridge, self.spec = bridge, spec
        self.plan: dict | None = None
        self.problem: str | None = None
        self.choices = axis_choices(spec)
        self.rows: list[AxisRow] = []

        chain = spec.describe_chain()
        intro = QLabel(f"<b>{spec.model}</b> · {chain} · {spec.device}, {spec.iters} iterations / "
                       f"{spec.duration_s:g} s per run<br>Each point is a run with the settings of the Run dock and "
                       "the checked plugins, changed by the axes below (the first axis varies slowest)."
                       + (f"<br><i>{note}</i>" if note else ""))
        intro.setWordWrap(True)
        self.rows_layout = QVBoxLayout()
        self.rows_layout.setSpacing(4)
        self.add_button = QPushButton("Add axis")
        self.add_button.setObjectName("addAxisButton")
        self.add_button.clicked.connect(lambda: self.add_axis())
        self.repeat_spin = QSpinBox()
        self.repeat_spin.setObjectName("sweepRepeat")
        self.repeat_spin.setRange(1, 50)
        self.repeat_spin.setToolTip(f"Worker processes per point, interleaved across the points (--repeat). With "
                                    f"{MIN_PROCESSES} or more the run-to-run noise is measured between them; with fewer "
                                    f"the constant ±{RUN_TO_RUN_NOISE * 100:g} % band is used")
        self.repeat_note = QLabel()
        self.name_edit = QLineEdit()
        self.name_edit.setObjectName("sweepName")
        self.name_edit.setPlaceholderText("optional: a name to find it by")
        repeat_row = QHBoxLayout()
        repeat_row.addWidget(self.repeat_spin)
        repeat_row.addWidget(self.repeat_note, 1)
        form = QFormLayout()
        form.addRow("Repeat", repeat_row)
        form.addRow("Name", self.name_edit)
        self.count_label = QLabel()
        self.count_label.setObjectName("sweepCount")
        self.count_label.setWordWrap(True)
        self.estimate_label = QLabel()
        self.estimate_label.setObjectName("sweepEstimate")
        self.estimate_label.setWordWrap(True)
        self.problem_label = QLabel()
        self.problem_label.setObjectName("sweepProblem")
        self.problem_label.setWordWrap(True)
        self.problem_label.setStyleSheet("color: #d32f2f;")
        self.problem_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Cancel)
        self.start_button = self.buttons.addButton("Start sweep", QDialogButtonBox.ButtonRole.AcceptRole)
        self.start_button.setObjectName("startSweepButton")
        self.buttons.accepted.connect(self._start)
        self.buttons.rejected.connect(self.reject)

        axes_header = QHBoxLayout()
        axes_header.addWidget(QLabel("<b>Axes</b>"))
        axes_header.addStretch(1)
        axes_header.addWidget(self.add_button)
        layout = QVBoxLayout(self)
        layout.addWidget(intro)
        layout.addLayout(axes_header)
        layout.addLayout(self.rows_layout)
        layout.addLayout(form)
        layout.addWidget(self.count_label)
        layout.addWidget(self.estimate_label)
        layout.addWidget(self.problem_label)
        layout.addStretch(1)
        layout.addWidget(self.buttons)
        self.resize(620, 420)

        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.setInterval(self.VALIDATE_DELAY_MS)
        self._timer.timeout.connect(self.validate_now)
        self.repeat_spin.valueChanged.connect(lambda _v: self._timer.start())
        self._reference = reference_run(bridge.store, spec.model)
        self.add_axis(default_axis(self.choices))
        self.validate_now()

    # -- axes ------------------------------------------------------------------------------------
    def add_axis(self, name: str | None = None, values: str | None = None) -> AxisRow:
        row = AxisRow(self.choices)
        used = {r.axis() for r in self.rows}
        name = name or next((c[0] for c in self.choices if c[0] not in used), self.choices[0][0])
        row.set_axis(name, values)
        row.changed.connect(self._timer.start)
        row.removeRequested.connect(self.remove_axis)
        self.rows.append(row)
        self.rows_layout.addWidget(row)
        self._timer.start()
        return row

    def remove_axis(self, row: AxisRow) -> None:
        if row in self.rows:
            self.rows.remove(row)
            row.setParent(None)
            row.deleteLater()
            self._timer.start()

    def grid(self) -> list[str]:
        return [row.text() for row in self.rows]

    def repeat(self) -> int:
        return self.repeat_spin.value()

    def name(self) -> str | None:
        return self.name_edit.text().strip() or None

    # -- checking ----------------------------------------------------------------------------------
    def validate_now(self) -> str | None:
        """Plan the grid with the core; returns the problem (None: ``plan`` is ready to start)."""
        self._timer.stop()
        grid, repeat = self.grid(), self.repeat()
        measured = repeat >= MIN_PROCESSES
        self.repeat_note.setText(f"noise measured between {repeat} processes per point" if measured else
                                 f"fewer than {MIN_PROCESSES}: the constant ±{RUN_TO_RUN_NOISE * 100:g} % noise band")
        self.plan, self.problem = None, None
        try:
            self.plan = self.bridge.plan_sweep(self.spec, grid, repeat)
        except WorkbenchError as exc:
            self.problem = str(exc).splitlines()[0]
        if self.plan is not None:
            plan = self.plan
            baselines = sum(p["role"] == "baseline" for p in plan["points"])
            sizes = " × ".join(str(len(a["values"])) for a in plan["axes"])
            runs = len(plan["points"]) * repeat
            self.count_label.setText(
                f"<b>{plan['grid_points']} point(s)</b> ({sizes})" + (f" + {baselines} baseline(s)" if baselines else "")
                + f" × {repeat} repeat(s) = <b>{runs} run(s)</b>")
            seconds, basis = estimate_seconds(plan, self._reference)
            self.estimate_label.setText(f"Estimated time: <b>{duration_text(seconds)}</b> — {basis}")
        else:
            count, sizes = grid_count(grid)
            self.count_label.setText(f"{count} point(s)" + (f" ({sizes})" if sizes else "") + f" × {repeat} repeat(s)")
            self.estimate_label.setText("")
        self.problem_label.setText(f"Cannot start: {self.problem}" if self.problem else "")
        self.problem_label.setVisible(bool(self.problem))
        self.start_button.setEnabled(self.plan is not None)
        return self.problem

    def _start(self) -> None:
        if self.validate_now() is None:
            self.accept()
