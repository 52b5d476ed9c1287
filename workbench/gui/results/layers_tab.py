"""The Results dock's Layers tab: the selected run's layers against the unoptimized model, and the
sensitivity scans stored for it.

* **Layers**: per layer, the output drift (relative error, cosine), what happened to its weights
  (quantized: mean / max |w − q(w)| and ‖w − q(w)‖/‖w‖; pruned: ‖Δw‖/‖w‖) and its parameters and
  FLOPs before → after, in a table beside a bar chart (``layers_chart``).
* **Sensitivity scan**: the layers ranked by the fidelity each costs, and the suggested
  "skip the N most sensitive layers" command, copyable.

Both read what is stored (``result["layers"]`` of a ``--profile`` run, or the files ``workbench
layers`` writes), so an old run is explained later. With a bridge, the Compare layers and Scan
sensitivity buttons run those jobs in a worker (``SessionBridge.explain``), with a progress bar
and a Cancel, and store the answer beside the run as the CLI does.
"""
from __future__ import annotations

import shlex
import time
from typing import Any, Sequence

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (QComboBox, QHBoxLayout, QLabel, QProgressBar, QPushButton, QSplitter,
                               QStackedWidget, QTabWidget, QVBoxLayout, QWidget)

from ... import format as fmt
from ...results.explain import stored_layers, stored_scans
from ...results.store import ResultsStore, RunRecord, default_db_path
from ...spec import PluginStep
from .. import plot_style as style
from .explain_widgets import (Cell, CommandLine, ReadOnlyTable, Selected, TabLayout, command_for, escape, hint_label,
                              pick_run, run_title)
from .layers_chart import LayerBars

NO_RUN = "Select a run in the table to see how far each of its layers moved from the unoptimized model."
# The seed quantities first (drift, weight error), so a narrow pane shows them; type and sizes after.
LAYER_HEADERS = ("layer", "output rel. error", "cosine", "‖Δw‖/‖w‖", "|w − q(w)| mean / max", "weights",
                 "type", "params", "FLOPs")
LAYER_TIPS = ("",
              "‖o − r‖/‖r‖ of the layer's output against the unoptimized layer's, on the run's own inputs",
              "cosine of the layer's output with the unoptimized layer's",
              "quantized: ‖w − q(w)‖/‖w‖; pruned: ‖Δw‖/‖w‖ (the pruning sensitivity)",
              "ε_q = |w − q(w)|: mean and max over the weight (quantized)",
              "what happened to the layer's own weight",
              "the layer's type after the chain (hover: before)", "before → after",
              "multiply-adds ×2 per call, before → after")
SCAN_HEADERS = ("rank", "layer", "type", "fidelity alone", "drop", "output rel. error", "time")
SCAN_TIPS = ("most sensitive first", "", "", "the model's fidelity with the plugin applied to this layer only",
             "1 − top-1 agreement (classifiers), else 1 − cosine: what this layer alone costs",
             "‖o − r‖/‖r‖ of the model's output with this layer alone optimized (orders ties)", "")
ERROR_COLOR = "#c0392b"
WEIGHTS_NOTE = "weights: quantized ε_q = |w − q(w)| (mean / max) and ‖w − q(w)‖/‖w‖; pruned ‖Δw‖/‖w‖"


def is_hookable(run: RunRecord) -> bool:
    """ONNX models and chains run inside ONNX Runtime, where no forward hook reaches a layer."""
    steps = [s.get("name") if isinstance(s, dict) else s for s in run.spec.get("plugins") or []]
    return not (str(run.model).lower().endswith(".onnx") or run.runtime == "onnxruntime" or "onnx_export" in steps)


def scan_steps(run: RunRecord) -> list[dict]:
    return [{"name": s["name"], "params": dict(s.get("params") or {})} for s in run.spec.get("plugins") or []
            if isinstance(s, dict) and s.get("name") != "onnx_export"]


def weight_text(weight: dict | None) -> tuple[str, str]:
    """``(short text, tooltip)`` of a layer's weight change."""
    if not weight:
        return "", ""
    kind = weight["kind"]
    if kind == "quantized":
        return (f"→ {weight.get('to')}",
                f"from {weight.get('from')} to {weight.get('to')}; mean |w − q(w)| / mean |w| = "
                f"{fmt.num(weight.get('mean_relative'), '.2%')}, max |w − q(w)| / max |w| = "
                f"{fmt.num(weight.get('max_relative'), '.2%')}")
    if kind == "pruned":
        return (f"pruned {fmt.pct(weight.get('sparsity_after'), 0)} 0s",
                f"zeros {fmt.pct(weight.get('sparsity_before'), 1)} → {fmt.pct(weight.get('sparsity_after'), 1)}")
    if kind == "channels removed":
        shapes = [("×".join(map(str, weight[k]))) for k in ("shape_before", "shape_after")]
        return (f"channels {shapes[0]} → {shapes[1]}",
                "channels removed (structured pruning); ‖Δw‖/‖w‖ estimated from the norms of what was kept")
    return "changed", "rewritten otherwise (fused, fine-tuned)"


def _change(before: Any, after: Any) -> Cell:
    if before is None and after is None:
        return Cell("—")
    text = fmt.count(before) if before == after else f"{fmt.count(before)} → {fmt.count(after)}"
    return Cell(text, after if after is not None else before, align_right=True)


class LayersTab(QWidget):
    """Per-layer drift and weight error of the selected run, and its stored sensitivity scans."""

    def __init__(self, bridge: Any = None, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("layersTab")
        self.bridge = bridge
        self.store: ResultsStore | None = None
        self.run_ids: list[int] = []
        self.selected: Selected | None = None
        self.report: dict | None = None
        self.scans: list[dict] = []
        self._token: int | None = None
        self._job: str | None = None
        self._cancelling = False
        self._started = 0.0

        self.header = hint_label("layersHeader")
        self.table = ReadOnlyTable(LAYER_HEADERS, LAYER_TIPS)
        self.table.setObjectName("layersTable")
        self.chart = LayerBars()
        split = QSplitter(Qt.Orientation.Horizontal)
        split.setObjectName("layersSplit")
        split.addWidget(self.table)
        split.addWidget(self.chart)
        split.setStretchFactor(0, 3)
        split.setStretchFactor(1, 2)
        split.setChildrenCollapsible(False)
        split.setSizes([600, 400])          # applied in proportion once laid out: the table's columns first
        self.split = split
        self.notes = hint_label("layersNotes")
        self.notes.setStyleSheet(f"color: {style.muted().name()};")
        layers_page = QWidget()
        layers_layout = QVBoxLayout(layers_page)
        layers_layout.setContentsMargins(0, 0, 0, 0)
        layers_layout.setSpacing(0)
        layers_layout.addWidget(split, 1)
        layers_layout.addWidget(self.notes)
        self.layers_hint = hint_label("layersHint")
        self.layers_command = CommandLine("layersHintCommand")
        self.layers_stack = self._stacked(layers_page, self.layers_hint, self.layers_command)

        self.scan_combo = QComboBox()
        self.scan_combo.setObjectName("scanChoice")
        self.scan_combo.currentIndexChanged.connect(lambda _i: self._fill_scan())
        self.scan_summary = hint_label("scanSummary")
        self.scan_table = ReadOnlyTable(SCAN_HEADERS, SCAN_TIPS)
        self.scan_table.setObjectName("scanRanking")
        self.suggestion = hint_label("scanSuggestion")
        self.skip_command = CommandLine("skipCommand")
        self.skip_command.edit.setToolTip("the same run with the suggested layers skipped: paste it in a terminal")
        scan_page = QWidget()
        scan_layout = QVBoxLayout(scan_page)
        scan_layout.setContentsMargins(0, 0, 0, 0)
        scan_layout.setSpacing(2)
        for widget in (self.scan_combo, self.scan_summary, self.scan_table, self.suggestion, self.skip_command):
            scan_layout.addWidget(widget, 1 if widget is self.scan_table else 0)
        self.scan_hint = hint_label("scanHint")
        self.scan_hint_command = CommandLine("scanHintCommand")
        self.scan_stack = self._stacked(scan_page, self.scan_hint, self.scan_hint_command)

        self.views = QTabWidget()
        self.views.setObjectName("layersViews")
        self.views.setDocumentMode(True)
        self.views.addTab(self.layers_stack, "Layers")
        self.views.addTab(self.scan_stack, "Sensitivity scan")

        self.step_combo = QComboBox()
        self.step_combo.setObjectName("scanStep")
        self.step_combo.setToolTip("the plugin step to apply one layer at a time")
        self.compare_button = QPushButton("Compare layers")
        self.compare_button.setObjectName("compareLayersButton")
        self.compare_button.setToolTip("Load the run's model in a worker, apply its chain again and compare every "
                                       "layer with the unoptimized model (workbench layers RUN_ID)")
        self.compare_button.clicked.connect(lambda: self.start("layers"))
        self.scan_button = QPushButton("Scan sensitivity")
        self.scan_button.setObjectName("scanButton")
        self.scan_button.setToolTip("Apply the plugin to one layer at a time in a worker and rank the layers by the "
                                    "fidelity each costs (workbench layers RUN_ID --scan)")
        self.scan_button.clicked.connect(lambda: self.start("scan"))
        self.progress = QProgressBar()
        self.progress.setObjectName("scanProgress")
        self.progress.setRange(0, 1000)
        self.progress.setMaximumHeight(18)
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setObjectName("scanCancel")
        self.cancel_button.clicked.connect(self.cancel)
        self.status = QLabel()
        self.status.setObjectName("scanStatus")
        self.status.setWordWrap(True)
        actions = QHBoxLayout()
        actions.setContentsMargins(6, 2, 6, 2)
        for widget in (self.step_combo, self.compare_button, self.scan_button, self.progress, self.cancel_button):
            actions.addWidget(widget)
        actions.addWidget(self.status, 1)
        self.progress.hide()
        self.cancel_button.hide()

        self.content = QWidget()
        content_layout = QVBoxLayout(self.content)
        content_layout.setContentsMargins(0, 0, 0, 0)
        content_layout.setSpacing(0)
        content_layout.addWidget(self.header)
        content_layout.addWidget(self.views, 1)
        self.hint = hint_label("layersNoRun")
        self.stack = QStackedWidget()
        self.stack.addWidget(self.hint)
        self.stack.addWidget(self.content)
        layout = TabLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(0)
        layout.addWidget(self.stack, 1)
        layout.addLayout(actions)
        if bridge is not None:
            bridge.explainEvent.connect(self._event)
            bridge.explainFinished.connect(self._finished)
            bridge.explainFailed.connect(self._failed)
            bridge.busyChanged.connect(lambda _busy: self._update_actions())
        self._show_hint(NO_RUN)

    @staticmethod
    def _stacked(page: QWidget, hint: QLabel, command: CommandLine) -> QStackedWidget:
        hint_page = QWidget()
        hint_layout = QVBoxLayout(hint_page)
        hint_layout.addWidget(hint)
        hint_layout.addWidget(command)
        hint_layout.addStretch(1)
        stack = QStackedWidget()
        stack.addWidget(hint_page)
        stack.addWidget(page)
        return stack

    # -- public API ------------------------------------------------------------------------------
    def show_runs(self, store: ResultsStore | None, run_ids: Sequence[int]) -> None:
        """Show the stored layer comparison and scans of the selection's run (``pick_run``)."""
        self.store, self.run_ids = store, list(run_ids)
        self.selected = pick_run(store, self.run_ids)
        self.report, self.scans = None, []
        if self.selected is None or store is None:
            self._show_hint(NO_RUN)
        elif self.selected.run.status != "done":
            self._show_hint(f"Run {escape(run_title(self.selected.run))} is {escape(self.selected.run.status)}: only "
                            "a finished run can be explained.")
        else:
            run = self.selected.run
            self.stack.setCurrentIndex(1)
            self.report = stored_layers(store, run)
            self.scans = stored_scans(store, run.id)
            self._fill_layers(run)
            self._fill_scans(run)
        self._update_actions()

    def refresh(self) -> None:
        self.show_runs(self.store, self.run_ids)

    def hint_text(self) -> str:
        """What the Layers view says instead of its table ('' when it shows one)."""
        if self.stack.currentIndex() == 0:
            return self.hint.text()
        return self.layers_hint.text() if self.layers_stack.currentIndex() == 0 else ""

    def busy(self) -> bool:
        return self._token is not None

    # -- layers ------------------------------------------------------------------------------------
    def _show_hint(self, text: str) -> None:
        self.hint.setText(text)
        self.stack.setCurrentIndex(0)

    def _cli(self, *args: str) -> str:
        db = []
        if self.store is not None and self.store.path != default_db_path():
            db = ["--db", str(self.store.path)]
        return shlex.join(["workbench", *db, *args])

    def _fill_layers(self, run: RunRecord) -> None:
        report = self.report or {}
        self.notes.setText("")
        self.layers_command.set_command(None)
        if not run.spec.get("plugins"):
            step = "quantize:method=dynamic_int8"
            self._layers_hint(f"Run {escape(run_title(run))} is a baseline: its layers have nothing to be compared "
                              "with. Select one of its variants. A sensitivity scan shows what a plugin would cost "
                              "per layer:", self._cli("layers", str(run.id), "--scan", step))
            self.header.setText(f"<b>{escape(run_title(run))}</b> · {escape(run.model)}")
            return
        self.header.setText(f"<b>{escape(run_title(run))}</b> · {escape(run.model)} vs the unoptimized model")
        if "rows" in report:
            self._show_report(run, report)
            return
        if report.get("unavailable"):
            self._layers_hint(f"No layer comparison for run {escape(run_title(run))}: {escape(report['unavailable'])}")
            if is_hookable(run):
                self.layers_command.set_command(self._cli("layers", str(run.id)))
            return
        if not is_hookable(run):
            self._layers_hint(f"Run {escape(run_title(run))} runs in ONNX Runtime, where no forward hook reaches its "
                              "layers; run the same chain on the torch model (without onnx_export, runtime torch) "
                              "to compare layers.")
            return
        failed = f"Its layer comparison failed ({escape(report['error'])}). " if report.get("error") else ""
        self._layers_hint(f"Run {escape(run_title(run))} stored no layer comparison. {failed}Press <b>Compare "
                          "layers</b> (a worker loads the model and applies the chain again), run with "
                          "<b>Profile</b> ticked, or from a terminal:", self._cli("layers", str(run.id)))

    def _layers_hint(self, text: str, command: str | None = None) -> None:
        self.layers_hint.setText(text)
        self.layers_command.set_command(command)
        self.layers_stack.setCurrentIndex(0)

    def _show_report(self, run: RunRecord, report: dict) -> None:
        rows = [r for r in report.get("rows") or [] if r.get("leaf") or r.get("weight")]
        summary = report.get("summary") or {}
        most = ", ".join((summary.get("most_drift") or [])[:3])
        self.header.setText(
            f"<b>{escape(run_title(run))}</b> · {escape(run.model)} vs the unoptimized model, on "
            f"{report.get('samples')} samples ({escape(report.get('inputs') or 'the run inputs')}): "
            f"{summary.get('layers', len(rows))} layers, {summary.get('weights_changed', 0)} weights changed"
            + (f"; most drift: {escape(most)}" if most else ""))
        table_rows = []
        for row in rows:
            drift = row.get("drift") or {}
            weight = row.get("weight") or {}
            text, tip = weight_text(row.get("weight"))
            if "shape_changed" in drift:
                shapes = " → ".join("×".join(map(str, s)) for s in drift["shape_changed"])
                error, cosine = Cell(f"shape {shapes}", tip="the output shape changed: not comparable"), Cell("")
            else:
                rel = drift.get("relative_error")
                error = Cell(fmt.num(rel, ".2e"), rel, align_right=True)
                cosine = Cell(fmt.num(drift.get("cosine"), ".5f"), drift.get("cosine"), align_right=True)
            mean_max = (f"{weight['mean_abs']:.2g} / {weight['max_abs']:.2g}"
                        if "mean_abs" in weight and "max_abs" in weight else "")
            relative = weight.get("relative")
            estimated = "≈" if weight.get("estimated") else ""
            flops = _change(row.get("flops_before"), row.get("flops_after"))
            if row.get("flops_after_estimated"):
                flops.tip = "after: the same multiply-adds in lower precision (not counted by torch)"
            table_rows.append([
                Cell(row["name"]), error, cosine,
                Cell(estimated + fmt.num(relative, ".2%") if relative is not None else "", relative, align_right=True),
                Cell(mean_max, weight.get("mean_abs"), align_right=True), Cell(text, tip=tip),
                Cell(row.get("type_after") or row["type"], tip=f"before: {row['type']}"),
                _change(row.get("params_before"), row.get("params_after")), flops])
        self.table.set_rows(table_rows)
        self.chart.set_rows(rows)
        notes = [WEIGHTS_NOTE]
        notes += list(report.get("notes") or [])
        self.notes.setText("<br>".join(escape(n) for n in notes))
        self.layers_stack.setCurrentIndex(1)

    # -- scans -------------------------------------------------------------------------------------
    def _fill_scans(self, run: RunRecord) -> None:
        self.scan_combo.blockSignals(True)
        self.scan_combo.clear()
        for saved in self.scans:
            when = time.strftime("%Y-%m-%d %H:%M", time.localtime(saved.get("created_at") or 0))
            self.scan_combo.addItem(f"{saved.get('step')}  ({when})")
        self.scan_combo.blockSignals(False)
        self.scan_combo.setVisible(len(self.scans) > 1)
        steps = scan_steps(run)
        self.step_combo.clear()
        for step in steps:
            self.step_combo.addItem(str(PluginStep(step["name"], step["params"])), step)
        self.step_combo.setVisible(len(steps) > 1)
        if self.scans:
            self._fill_scan()
            return
        step = self.step_combo.currentText() or "quantize:method=dynamic_int8"
        press = "Press <b>Scan sensitivity</b> (a worker applies" if steps and is_hookable(run) else "A scan applies"
        self.scan_hint.setText(f"No sensitivity scan is stored for run {escape(run_title(run))}. {press} "
                               f"{escape(step)} to one layer at a time and ranks the layers by the fidelity each costs"
                               f"{')' if press.startswith('Press') else ''}, or from a terminal:")
        self.scan_hint_command.set_command(self._cli("layers", str(run.id), "--scan", step))
        self.scan_stack.setCurrentIndex(0)

    def _fill_scan(self) -> None:
        if not self.scans or self.selected is None:
            return
        saved = self.scans[max(0, self.scan_combo.currentIndex())]
        scan, step, run = saved["scan"], str(saved.get("step")), self.selected.run
        metric = "top-1 agreement" if scan.get("metric") == "top1_agreement" else "cosine"
        whole = scan.get("all_layers") or {}
        layers = scan.get("layers") or []
        self.scan_summary.setText(
            f"<b>{escape(step)}</b>, one layer at a time ({scan.get('how')}): {len(layers)} layers, "
            f"{scan.get('samples')} samples, {scan.get('seconds', 0):.1f} s. All layers: {metric} "
            f"{fmt.num(whole.get(scan.get('metric')), '.4f')}, output rel. error "
            f"{fmt.num(whole.get('output_error'), '.2e')}"
            + (" — <b>cancelled</b>: the ranking covers part of the layers" if scan.get("cancelled") else ""))
        self.scan_table.horizontalHeaderItem(3).setText(f"{metric} alone")
        by_name = {r["name"]: r for r in layers}
        rows = []
        for rank, name in enumerate(scan.get("ranking") or [], 1):
            row = by_name.get(name)
            if row is None:
                continue
            value = (row.get("fidelity") or {}).get(scan.get("metric"))
            rows.append([Cell(str(rank), rank, align_right=True), Cell(name), Cell(row.get("type") or ""),
                         Cell(fmt.num(value, ".4f"), value, align_right=True),
                         Cell(fmt.num(row.get("drop"), ".4f"), row.get("drop"), align_right=True),
                         Cell(fmt.num(row.get("output_error"), ".2e"), row.get("output_error"), align_right=True),
                         Cell(f"{row.get('seconds', 0):.1f} s", row.get("seconds"))])
        self.scan_table.set_rows(rows)
        self._fill_suggestion(scan, run, whole)
        self.scan_stack.setCurrentIndex(1)

    def _fill_suggestion(self, scan: dict, run: RunRecord, whole: dict) -> None:
        suggestion = scan.get("suggestion")
        notes = [escape(n) for n in scan.get("notes") or []]
        if not suggestion:
            self.suggestion.setText("<br>".join(notes) or "No suggestion: no layer costs fidelity on its own.")
            self.skip_command.set_command(None)
            return
        n = len(suggestion["skip"])
        after = (suggestion.get("fidelity") or {}).get("output_error")
        text = (f"<b>Skip the {n} most sensitive layer{'s' if n > 1 else ''}</b> "
                f"({escape(', '.join(suggestion['skip']))}): drop {fmt.num(suggestion.get('all_layers_drop'), '.4f')} "
                f"→ {fmt.num(suggestion.get('drop'), '.4f')}, "
                f"output rel. error {fmt.num(whole.get('output_error'), '.2e')} → {fmt.num(after, '.2e')}, "
                f"{suggestion.get('layers_still_optimized')} layers still optimized")
        command = None
        if scan.get("how") == "skip":
            skipped = {"name": scan.get("plugin"), "params": dict(suggestion.get("params") or {})}
            command = command_for({**run.spec, "plugins": [skipped]})
        self.suggestion.setText("<br>".join([text] + notes))
        self.skip_command.set_command(command)

    # -- the worker jobs ---------------------------------------------------------------------------
    def _update_actions(self) -> None:
        run = self.selected.run if self.selected else None
        usable = (self.bridge is not None and run is not None and run.status == "done"
                  and bool(run.spec.get("plugins")) and is_hookable(run))
        for button in (self.compare_button, self.scan_button):
            button.setVisible(self.bridge is not None)
        running = self.busy()
        measuring = self.bridge is not None and self.bridge.is_busy()
        why = ("a run is being measured: a job beside it would disturb its timings" if measuring else
               "select a finished variant run (not ONNX)" if not usable else "")
        has_steps = self.step_combo.count() > 0
        self.scan_button.setEnabled(usable and has_steps and not running and not measuring)
        self.compare_button.setEnabled(usable and not running and not measuring)
        stored = bool(self.report and "rows" in self.report)
        self.compare_button.setText("Compare layers again" if stored else "Compare layers")
        self.step_combo.setEnabled(not running)
        for button in (self.scan_button, self.compare_button):
            button.setStatusTip(why)
        self.progress.setVisible(running)
        self.cancel_button.setVisible(running)
        self.cancel_button.setEnabled(running and not self._cancelling)

    def start(self, job: str) -> bool:
        """Start the layers (``"layers"``) or scan (``"scan"``) job of the selected run in a worker."""
        if self.bridge is None or self.selected is None or self.busy():
            return False
        run = self.selected.run
        step = self.step_combo.currentData() if job == "scan" else None
        if job == "scan" and step is None:
            return False
        try:
            self._token = self.bridge.explain(job, run.id, step)
        except Exception as exc:   # noqa: BLE001 - a refusal is said in the status line
            self._set_status(str(exc), error=True)
            return False
        self._job, self._cancelling, self._started = job, False, time.monotonic()
        self.progress.setRange(0, 0)
        self.progress.setFormat("")
        what = f"scanning {self.step_combo.currentText()}" if job == "scan" else "comparing layers"
        self._set_status(f"run #{run.id}: {what}… (the model is loaded in a worker)")
        self.views.setCurrentIndex(1 if job == "scan" else 0)
        self._update_actions()
        return True

    def cancel(self) -> None:
        if self.bridge is not None and self.busy():
            self._cancelling = True
            self.bridge.cancel_explain()
            self._set_status("cancelling…")
            self._update_actions()

    def _event(self, token: int, event: dict) -> None:
        if token != self._token:
            return
        if event.get("type") == "progress":
            self.progress.setRange(0, 1000)
            self.progress.setValue(int(1000 * max(0.0, min(1.0, float(event.get("fraction") or 0.0)))))
            self.progress.setFormat(f"%p%  {event.get('message') or ''}".rstrip())
        elif event.get("type") == "phase" and not self._cancelling:
            self._set_status(str(event.get("message") or event.get("phase") or ""))

    def _finished(self, token: int, answer: dict) -> None:
        if token != self._token:
            return
        seconds = time.monotonic() - self._started
        self._token = None
        what = f"scan of {answer.get('step')}" if answer.get("job") == "scan" else "layer comparison"
        self._set_status(f"run #{answer.get('run_id')}: {what} done in {seconds:.0f} s, stored with the run")
        self.refresh()
        self.views.setCurrentIndex(1 if answer.get("job") == "scan" else 0)

    def _failed(self, token: int, message: str, details: str) -> None:
        if token != self._token:
            return
        self._token = None
        if self._cancelling:
            self._set_status("cancelled: nothing was stored")
        else:
            self._set_status(message, error=True, details=details)
        self._update_actions()

    def _set_status(self, text: str, error: bool = False, details: str = "") -> None:
        self.status.setText(text)
        self.status.setToolTip(details or text)
        self.status.setStyleSheet(f"color: {ERROR_COLOR};" if error else "")
