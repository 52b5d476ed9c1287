"""The main window: docks for Model, Plugins, Run, Live, Results and Log, menus and shortcuts,
settings, drag-and-drop, and the glue between the panels and the session bridge."""
from __future__ import annotations

import importlib.util
import json
import threading
from pathlib import Path
from typing import Any

from PySide6.QtCore import QByteArray, QObject, QSettings, Qt, QTimer, Signal
from PySide6.QtGui import QAction, QCloseEvent, QKeySequence
from PySide6.QtWidgets import (QDockWidget, QFileDialog, QLabel, QMainWindow, QMessageBox, QScrollArea,
                               QSplitter, QWidget)

from ..errors import SpecError, WorkbenchError
from ..plugin_api import chain_error, discover_plugins
from ..spec import PluginStep, RunSpec
from ..results.store import ResultsStore
from . import errors
from .bridge import SessionBridge
from .live_plots import LivePlots
from .log_dock import LogDock
from .model_panel import FILE_FILTER, ModelPanel, is_model_file, load_demo_catalog
from .plugin_panel import PluginPanel
from .results_view import ComparisonCharts, ResultsView
from .run_panel import RunPanel, summarize_record

MAX_RECENT = 10
SETTINGS_VERSION = 1


def report_available() -> bool:
    try:
        return importlib.util.find_spec("workbench.report") is not None
    except (ImportError, ValueError):
        return False


def gpu_devices(env: dict) -> tuple[list[tuple[str, str]], str | None]:
    """``[(label, cuda device)]`` from ``gpu_environment()`` plus a note when there are none.

    Workers number GPUs in PCI order like NVML; CUDA_VISIBLE_DEVICES (indices or UUIDs) picks and
    renumbers them cuda:0.. in its order (``nvml_index_for_cuda``)."""
    from ..telemetry.nvml import nvml_index_for_cuda
    gpus = [g for g in env.get("gpus") or [] if "error" not in g]
    if env.get("nvml") != "ok":
        return [], f"No NVIDIA GPU: NVML {env.get('nvml') or 'unavailable'}"
    if not gpus:
        return [], "No NVIDIA GPU found by NVML"
    visible = env.get("cuda_visible_devices")
    count = len(gpus) if visible is None else len([v for v in visible.split(",") if v.strip()])
    by_index = {g.get("index", i): g for i, g in enumerate(gpus)}
    devices = []
    for cuda_index in range(count):
        nvml_index = nvml_index_for_cuda(cuda_index, visible, gpus)
        gpu = by_index.get(nvml_index) if nvml_index is not None else None
        if gpu is None:
            continue
        memory = gpu.get("memory_total_bytes") or gpu.get("mem_total_bytes")
        extra = f", {memory / 2**30:.0f} GiB" if memory else ""
        devices.append((f"GPU {cuda_index}: {gpu.get('name', 'NVIDIA GPU')}{extra}", f"cuda:{cuda_index}"))
    return devices, None


class _Background(QObject):
    """Results of short background jobs, delivered in the GUI thread."""

    gpus = Signal(object)
    demos = Signal(object)
    reportDone = Signal(str)
    reportFailed = Signal(str, str)


class MainWindow(QMainWindow):
    def __init__(self, db: str | Path | None = None, settings: QSettings | None = None,
                 restore: bool = True, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("WorkbenchMainWindow")
        self.setWindowTitle("Workbench")
        self.setDockNestingEnabled(True)
        self.setAcceptDrops(True)
        self.confirm_on_close = True
        self.settings = settings if settings is not None else QSettings()
        self.store = ResultsStore(db)
        stale = self.store.settle_orphaned_runs()
        self.bridge = SessionBridge(self.store.path, self)
        self.gpu_env: dict = {"nvml": "not checked yet", "gpus": []}
        self._background = _Background(self)
        self._groups: dict[str, list] = {}
        self._closing = False

        # -- panels ------------------------------------------------------------------------------------
        self.model_panel = ModelPanel(self.bridge)
        self.plugin_panel = PluginPanel(discover_plugins())
        self.run_panel = RunPanel()
        self.live = LivePlots()
        self.results = ResultsView(self.store)
        self.charts = ComparisonCharts()
        self.log = LogDock()
        self.results_split = QSplitter(Qt.Orientation.Horizontal)
        self.results_split.setObjectName("resultsSplit")
        self.results_split.addWidget(self.results)
        self.results_split.addWidget(self.charts)
        self.results_split.setStretchFactor(0, 3)
        self.results_split.setStretchFactor(1, 2)
        self.results_split.setChildrenCollapsible(False)

        self.model_dock = self._dock("Model", "modelDock", self.model_panel, scroll=True)
        self.plugins_dock = self._dock("Plugins", "pluginsDock", self.plugin_panel, scroll=True)
        self.run_dock = self._dock("Run", "runDock", self.run_panel, scroll=True)
        self.live_dock = self._dock("Live", "liveDock", self.live)
        self.results_dock = self._dock("Results", "resultsDock", self.results_split)
        self.log_dock = self._dock("Log", "logDock", self.log)

        self._build_actions()
        self._build_menus()
        self.queue_status = QLabel("idle")
        self.statusBar().addPermanentWidget(self.queue_status)
        db_label = QLabel(f"results: {self.store.path}")
        db_label.setToolTip(str(self.store.path))
        self.statusBar().addPermanentWidget(db_label)

        # -- wiring ------------------------------------------------------------------------------------
        self.model_panel.openRequested.connect(self.open_file_dialog)
        self.model_panel.sourceChanged.connect(self._source_changed)
        self.model_panel.modelChanged.connect(self._update_run_state)
        self.model_panel.errorOccurred.connect(self.show_error)
        self.model_panel.busyChanged.connect(
            lambda busy: self.statusBar().showMessage("Inspecting the model…" if busy else "", 0 if busy else 1))
        self.plugin_panel.chainChanged.connect(self._update_run_state)
        self.run_panel.settingsChanged.connect(self._settings_changed)
        self.run_panel.runRequested.connect(self.start)
        self.run_panel.cancelRequested.connect(self.cancel)
        self.run_panel.removeJobRequested.connect(self.bridge.remove)
        self.run_panel.clearFinishedRequested.connect(self.bridge.clear_finished)
        self.bridge.eventReceived.connect(self._on_event)
        self.bridge.jobStarted.connect(self._job_started)
        self.bridge.jobFinished.connect(self._job_finished)
        self.bridge.queueChanged.connect(self._queue_changed)
        self.bridge.busyChanged.connect(self._busy_changed)
        self.results.selectionChanged.connect(self._selection_changed)
        self._background.gpus.connect(self._gpus_found)
        self._background.demos.connect(self.model_panel.set_demos)
        self._background.reportDone.connect(self._report_done)
        self._background.reportFailed.connect(self.show_error)

        self._refresh_timer = QTimer(self)
        self._refresh_timer.setSingleShot(True)
        self._refresh_timer.setInterval(150)
        self._refresh_timer.timeout.connect(self.results.refresh)
        self._charts_timer = QTimer(self)
        self._charts_timer.setSingleShot(True)
        self._charts_timer.setInterval(60)
        self._charts_timer.timeout.connect(self._update_charts)

        self.resize(1500, 940)
        self._default_layout()
        if restore:
            self.restore_settings()
        self._update_run_state()
        self._start_background_probes()
        if stale:
            self.log.append(f"{stale} run(s) left 'running' by an earlier session were marked failed")
        self.log.append(f"results store: {self.store.path}")

    # -- construction helpers ------------------------------------------------------------------------
    def _dock(self, title: str, name: str, widget: QWidget, scroll: bool = False) -> QDockWidget:
        dock = QDockWidget(title, self)
        dock.setObjectName(name)
        dock.setFeatures(QDockWidget.DockWidgetFeature.DockWidgetMovable
                         | QDockWidget.DockWidgetFeature.DockWidgetFloatable
                         | QDockWidget.DockWidgetFeature.DockWidgetClosable)
        if scroll:
            area = QScrollArea()
            area.setWidgetResizable(True)
            area.setFrameShape(QScrollArea.Shape.NoFrame)
            area.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAsNeeded)
            area.setWidget(widget)
            dock.setWidget(area)
        else:
            dock.setWidget(widget)
        return dock

    def _default_layout(self) -> None:
        for dock in (self.model_dock, self.plugins_dock, self.run_dock, self.live_dock, self.results_dock,
                     self.log_dock):
            dock.setFloating(False)
            dock.show()
        # Top row: Model | Plugins | Run | Live; bottom, full width: Results (table + charts) / Log.
        for corner in (Qt.Corner.BottomLeftCorner, Qt.Corner.BottomRightCorner):
            self.setCorner(corner, Qt.DockWidgetArea.BottomDockWidgetArea)
        for corner in (Qt.Corner.TopLeftCorner, Qt.Corner.TopRightCorner):
            self.setCorner(corner, Qt.DockWidgetArea.TopDockWidgetArea)
        self.addDockWidget(Qt.DockWidgetArea.TopDockWidgetArea, self.model_dock)
        self.splitDockWidget(self.model_dock, self.plugins_dock, Qt.Orientation.Horizontal)
        self.splitDockWidget(self.plugins_dock, self.run_dock, Qt.Orientation.Horizontal)
        self.splitDockWidget(self.run_dock, self.live_dock, Qt.Orientation.Horizontal)
        self.addDockWidget(Qt.DockWidgetArea.BottomDockWidgetArea, self.results_dock)
        self.tabifyDockWidget(self.results_dock, self.log_dock)
        self.results_dock.raise_()
        self._sizes_pending = True
        if self.isVisible():
            QTimer.singleShot(0, self._apply_default_sizes)

    def _apply_default_sizes(self) -> None:
        """Dock sizes in proportion to the window (only meaningful once it is shown)."""
        self._sizes_pending = False
        width, height = max(self.width(), 900), max(self.height(), 600)
        model = max(280, min(380, int(width * 0.19)))
        plugins = max(280, min(380, int(width * 0.19)))
        run = max(300, min(380, int(width * 0.21)))
        self.resizeDocks([self.model_dock, self.plugins_dock, self.run_dock, self.live_dock],
                         [model, plugins, run, max(300, width - model - plugins - run)], Qt.Orientation.Horizontal)
        self.resizeDocks([self.model_dock, self.results_dock], [int(height * 0.57), int(height * 0.43)],
                         Qt.Orientation.Vertical)
        # the comparison charts (three charts in a row) need more room than the table
        self.results_split.setSizes([int(width * 0.34), int(width * 0.66)])

    def showEvent(self, event) -> None:  # noqa: N802 (Qt API)
        super().showEvent(event)
        if getattr(self, "_sizes_pending", False):
            QTimer.singleShot(0, self._apply_default_sizes)

    def _build_actions(self) -> None:
        def action(text: str, slot, shortcut=None, tip: str = "") -> QAction:
            act = QAction(text, self)
            if shortcut is not None:
                if isinstance(shortcut, (list, tuple)):
                    act.setShortcuts([QKeySequence(s) for s in shortcut])
                else:
                    act.setShortcut(QKeySequence(shortcut))
            if tip:
                act.setToolTip(tip)
                act.setStatusTip(tip)
            act.triggered.connect(lambda _checked=False: slot())
            self.addAction(act)          # shortcuts work while the menu bar is hidden too
            return act

        self.open_action = action("&Open model…", self.open_file_dialog, QKeySequence.StandardKey.Open,
                                  "Open a model file (ONNX, TorchScript, .pt2, state_dict, safetensors)")
        self.run_action = action("&Run", lambda: self.start("run"), "Ctrl+R",
                                 "Measure the model with the checked plugins")
        self.pair_action = action("Run &baseline + variant", lambda: self.start("pair"), "Ctrl+Shift+R",
                                  "Measure the plain model and the optimized one")
        self.all_action = action("Run &all combinations", lambda: self.start("all"), None,
                                 "Baseline, each checked plugin alone, and the full chain")
        self.cancel_action = action("&Cancel", self.cancel, ["Esc", "Ctrl+."],
                                    "Stop the running job and clear the queue")
        self.export_action = action("&Export report…", self.export_report, "Ctrl+E",
                                    "Write a report (HTML, PDF, CSV, JSON) of the selected runs")
        if not report_available():
            self.export_action.setEnabled(False)
            tip = "Reports are not available in this build yet (the workbench.report module is missing)"
            self.export_action.setToolTip(tip)
            self.export_action.setStatusTip(tip)
        self.quit_action = action("&Quit", self.close, QKeySequence.StandardKey.Quit)
        self.reset_layout_action = action("Reset &layout", self.reset_layout, None,
                                          "Put every dock back where it started")
        self.refresh_action = action("Re&load results", self.results.refresh, None,
                                     "Read the runs from the results store again (F5 in the table)")
        self.shortcuts_action = action("&Keyboard shortcuts", self._show_shortcuts, None)
        self.about_action = action("&About Workbench", self._about, None)
        self.cancel_action.setEnabled(False)

    def _build_menus(self) -> None:
        bar = self.menuBar()
        file_menu = bar.addMenu("&File")
        file_menu.addAction(self.open_action)
        self.demo_menu = file_menu.addMenu("Open &demo")
        self.demo_menu.aboutToShow.connect(self._fill_demo_menu)
        self.recent_menu = file_menu.addMenu("Open &recent")
        self.recent_menu.aboutToShow.connect(self._fill_recent_menu)
        file_menu.addSeparator()
        file_menu.addAction(self.export_action)
        file_menu.addSeparator()
        file_menu.addAction(self.quit_action)
        run_menu = bar.addMenu("&Run")
        for act in (self.run_action, self.pair_action, self.all_action, self.cancel_action):
            run_menu.addAction(act)
        view_menu = bar.addMenu("&View")
        for dock in (self.model_dock, self.plugins_dock, self.run_dock, self.live_dock, self.results_dock,
                     self.log_dock):
            view_menu.addAction(dock.toggleViewAction())
        view_menu.addSeparator()
        view_menu.addAction(self.refresh_action)
        view_menu.addAction(self.reset_layout_action)
        help_menu = bar.addMenu("&Help")
        help_menu.addAction(self.shortcuts_action)
        help_menu.addAction(self.about_action)

    def _start_background_probes(self) -> None:
        def probe_gpus() -> None:
            try:
                from ..telemetry.nvml import gpu_environment
                env = gpu_environment()
            except Exception as exc:  # never fatal: CPU is always there
                env = {"nvml": f"unavailable: {exc}", "gpus": []}
            self._safe_emit(self._background.gpus, env)

        def probe_demos() -> None:
            self._safe_emit(self._background.demos, _demo_catalog())

        threading.Thread(target=probe_gpus, name="workbench-gpu-probe", daemon=True).start()
        threading.Thread(target=probe_demos, name="workbench-demo-catalog", daemon=True).start()

    @staticmethod
    def _safe_emit(signal, *args) -> None:
        try:
            signal.emit(*args)
        except RuntimeError:      # the window was closed meanwhile
            pass

    def _gpus_found(self, env: dict) -> None:
        self.gpu_env = env
        devices, note = gpu_devices(env)
        self.run_panel.set_devices(devices, note)
        wanted = getattr(self.run_panel, "_wanted_device", None)
        if wanted:
            self.run_panel.set_device(wanted)
        self.log.append(f"devices: CPU{''.join(', ' + label for label, _ in devices)}"
                        + (f" ({note})" if note else ""))

    # -- errors ----------------------------------------------------------------------------------------
    def show_error(self, message: str, details: str | None = None) -> None:
        self.log.append(f"error: {message}")
        errors.show_error(message, details or None, self)

    # -- model ---------------------------------------------------------------------------------------
    def open_file_dialog(self) -> None:
        start = self.settings.value("dialogs/last_dir", str(Path.home()))
        path, _ = QFileDialog.getOpenFileName(self, "Open a model", str(start), FILE_FILTER)
        if path:
            self.settings.setValue("dialogs/last_dir", str(Path(path).parent))
            self.open_model(path)

    def open_model(self, source: str) -> None:
        """Open a file (or demo:NAME): checked here, described in a worker process."""
        source = str(source)
        if not source.startswith("demo:"):
            path = Path(source).expanduser()
            if not path.exists():
                self.show_error(f"Model file not found: {path}")
                self._remove_recent(str(path))
                return
            if path.is_dir():
                self.show_error(f"{path} is a folder, not a model file")
                return
            self._add_recent(str(path))
        self.model_panel.open_source(source)
        self.model_dock.raise_()

    def _source_changed(self, source: str) -> None:
        name = source if source.startswith("demo:") else Path(source).name
        self.setWindowTitle(f"{name} — Workbench")
        self.log.append(f"opened {source}")
        self._update_run_state()

    def recent_files(self) -> list[str]:
        value = self.settings.value("recent_files", [])
        if isinstance(value, str):
            value = [value]
        return [str(v) for v in value or []]

    def _add_recent(self, path: str) -> None:
        files = [path] + [p for p in self.recent_files() if p != path]
        self.settings.setValue("recent_files", files[:MAX_RECENT])

    def _remove_recent(self, path: str) -> None:
        self.settings.setValue("recent_files", [p for p in self.recent_files() if p != path])

    def _fill_recent_menu(self) -> None:
        self.recent_menu.clear()
        files = self.recent_files()
        if not files:
            act = self.recent_menu.addAction("(no recent files)")
            act.setEnabled(False)
            return
        for i, path in enumerate(files):
            act = self.recent_menu.addAction(f"&{(i + 1) % 10} {Path(path).name}")
            act.setToolTip(path)
            act.setStatusTip(path)
            act.triggered.connect(lambda _c=False, p=path: self.open_model(p))
        self.recent_menu.addSeparator()
        self.recent_menu.addAction("Clear list", lambda: self.settings.setValue("recent_files", []))

    def _fill_demo_menu(self) -> None:
        self.demo_menu.clear()
        for name, description in self.model_panel.demos:
            act = self.demo_menu.addAction(name)
            act.setStatusTip(description)
            act.triggered.connect(lambda _c=False, n=name: self.open_model(f"demo:{n}"))

    # -- drag and drop ---------------------------------------------------------------------------------
    @staticmethod
    def _dropped_file(mime) -> str | None:
        if mime is None or not mime.hasUrls():
            return None
        for url in mime.urls():
            if url.isLocalFile():
                return url.toLocalFile()
        return None

    def dragEnterEvent(self, event) -> None:  # noqa: N802 (Qt API)
        path = self._dropped_file(event.mimeData())
        if path:
            event.acceptProposedAction()
            self.statusBar().showMessage(f"Drop to open {Path(path).name}"
                                         + ("" if is_model_file(path) else " (unknown extension)"), 2000)
        else:
            event.ignore()

    def dragMoveEvent(self, event) -> None:  # noqa: N802
        if self._dropped_file(event.mimeData()):
            event.acceptProposedAction()
        else:
            event.ignore()

    def dropEvent(self, event) -> None:  # noqa: N802
        path = self._dropped_file(event.mimeData())
        if not path:
            event.ignore()
            return
        event.acceptProposedAction()
        # Open after the drop returns (the source application waits for the drop to finish).
        QTimer.singleShot(0, lambda: self.open_model(path))

    # -- run state -------------------------------------------------------------------------------------
    def _settings_changed(self) -> None:
        self.plugin_panel.set_context(self.model_panel.model_format(), self.run_panel.device(),
                                      self.run_panel.runtime())
        self._update_run_state()

    def run_problem(self) -> str | None:
        problem = self.model_panel.problem()
        if problem:
            return problem
        error = self.plugin_panel.error()
        if error:
            return f"invalid plugin chain: {error}"
        return None

    def _update_run_state(self) -> None:
        self.plugin_panel.set_context(self.model_panel.model_format(), self.run_panel.device(),
                                      self.run_panel.runtime())
        problem = self.run_problem()
        chain = self.plugin_panel.checked()
        self.run_panel.set_problem(problem, len(chain), self.plugin_panel.error() is None)
        self.run_action.setEnabled(self.run_panel.run_button.isEnabled())
        self.pair_action.setEnabled(self.run_panel.pair_button.isEnabled())
        self.all_action.setEnabled(self.run_panel.all_button.isEnabled())

    def build_spec(self, plugins: list[PluginStep] | None = None) -> RunSpec:
        """The RunSpec of the current panels (``plugins`` overrides the chain). Raises
        WorkbenchError with a clear message when something is missing or invalid."""
        problem = self.model_panel.problem()
        if problem:
            raise SpecError(problem)
        source = self.model_panel.source()
        spec = RunSpec(model=source, factory=self.model_panel.factory(), trust_pickle=self.model_panel.trust(),
                       plugins=list(self.plugin_panel.steps() if plugins is None else plugins),
                       inputs=self.model_panel.inputs())
        self.run_panel.fill(spec)
        spec.validate()
        if spec.plugins:
            error = chain_error(spec.plugins, spec.model_format, spec.device, spec.runtime)
            if error:
                raise SpecError(f"invalid plugin chain: {error}")
        return spec

    def start(self, mode: str = "run") -> list:
        """Queue runs: "run" (the current chain), "pair" (baseline + variant) or "all"
        (baseline, each checked plugin alone, the full chain). Returns the queued jobs."""
        try:
            if mode == "run":
                spec = self.build_spec()
                jobs = self.bridge.enqueue([spec], [spec.describe_chain()], group="run")
            else:
                steps = self.plugin_panel.steps()
                if not steps:
                    raise SpecError("check at least one plugin: a variant needs an optimization to compare")
                specs = [self.build_spec(plugins=[])]
                labels = ["baseline"]
                skipped = []
                if mode == "all":
                    for step in steps:
                        try:
                            specs.append(self.build_spec(plugins=[step]))
                            labels.append(str(step))
                        except WorkbenchError as exc:
                            skipped.append(f"{step.name} alone: {exc}")
                    if len(steps) > 1:
                        specs.append(self.build_spec(plugins=steps))
                        labels.append(specs[-1].describe_chain())
                else:
                    specs.append(self.build_spec(plugins=steps))
                    labels.append(specs[-1].describe_chain())
                for text in skipped:
                    self.log.append(f"skipped {text}")
                jobs = self.bridge.enqueue(specs, labels, group=f"{mode}-{id(specs)}")
                self._groups[jobs[0].group] = jobs
        except WorkbenchError as exc:
            self.show_error(f"Cannot start the run: {exc}")
            return []
        self.live_dock.raise_()
        self.log.append("queued: " + "; ".join(j.label for j in jobs))
        return jobs

    def cancel(self) -> None:
        if self.bridge.is_busy():
            n = self.bridge.cancel_all()
            self.run_panel.cancelling()
            self.log.append("cancel requested" + (f" ({n} job(s))" if n else ""))
            self.statusBar().showMessage("Cancelling…", 3000)

    # -- bridge events -------------------------------------------------------------------------------
    def _on_event(self, event: dict) -> None:
        current = self.bridge.current()
        is_current = current is not None and event.get("job_id") == current.id
        kind = event.get("type")
        if is_current:
            self.live.handle_event(event)
            self.run_panel.handle_event(event)
        self.log.append_event(event)
        if kind == "run_created":
            self._refresh_timer.start()
        elif kind == "phase":
            self._queue_changed()

    def _job_started(self, job) -> None:
        title = f"{job.label} — {job.spec.model} on {job.spec.device}"
        self.live.reset(title)
        self.live.set_telemetry_status(self._expected_telemetry(job.spec.device))
        self.run_panel.job_started(job)
        self.log.append(f"started: {job.label} ({job.spec.describe_chain()}, {job.spec.device})")

    def _expected_telemetry(self, device: str) -> dict:
        if not device.startswith("cuda"):
            return {"nvml": "disabled (no GPU selected)"}
        nvml = self.gpu_env.get("nvml") or "unavailable"
        return {"nvml": nvml if nvml == "ok" else (nvml if nvml.startswith("unavailable") else f"unavailable: {nvml}")}

    def _job_finished(self, job) -> None:
        record = None
        if job.run_id is not None:
            try:
                record = self.store.get_run(job.run_id)
            except WorkbenchError:
                record = None
        if record is not None and self.run_panel._job is job:
            status = (record.result or {}).get("telemetry_status")
            if status:
                self.live.set_telemetry_status(status)
        self.run_panel.job_finished(job, summarize_record(record) if record is not None else "")
        self._refresh_timer.stop()
        self.results.refresh()
        if job.status == "done":
            self.log.append(f"done: {job.label} (run #{job.run_id})"
                            + (f" — {summarize_record(record)}" if record is not None else ""))
        elif job.status == "cancelled":
            self.log.append(f"cancelled: {job.label}" + (f" — {job.message}" if job.message else ""))
        else:
            self.log.append(f"failed: {job.label}: {job.message}")
            if not self._closing:
                errors.show_error(f"Run “{job.label}” failed: {job.message or 'unknown reason'}",
                                  job.detail, self)
        group = self._groups.get(job.group)
        if group and all(j.finished for j in group):
            del self._groups[job.group]
            ids = [j.run_id for j in group if j.run_id is not None and j.status == "done"]
            if len(ids) >= 2:
                self.select_runs(ids)

    def _queue_changed(self) -> None:
        jobs = self.bridge.jobs()
        self.run_panel.update_queue(jobs)
        queued = sum(1 for j in jobs if j.status == "queued")
        current = self.bridge.current()
        if current is not None:
            text = f"running {current.label}" + (f" ({current.phase})" if current.phase else "")
            text += f" · {queued} queued" if queued else ""
        else:
            text = "idle"
        self.queue_status.setText(text)

    def _busy_changed(self, busy: bool) -> None:
        busy = self.bridge.is_busy()
        self.run_panel.set_busy(busy)
        self.cancel_action.setEnabled(busy)
        self._queue_changed()

    # -- results ---------------------------------------------------------------------------------------
    def _selection_changed(self, *args: Any) -> None:
        # Debounced: dragging a selection over many rows redraws the charts once.
        self._charts_timer.start()

    def _update_charts(self) -> None:
        self.charts.show_runs(self.store, self.results.selected_run_ids())

    def select_runs(self, run_ids: list[int]) -> None:
        """Select these runs in the results table (and so show them in the charts)."""
        selector = getattr(self.results, "select_runs", None)
        if callable(selector):
            selector(run_ids)
        self._charts_timer.stop()
        self._update_charts()

    # -- report ----------------------------------------------------------------------------------------
    def export_report(self) -> None:
        if not report_available():
            self.show_error("Reports are not available in this build yet (workbench.report is missing)")
            return
        ids = self.results.selected_run_ids()
        if not ids:
            self.show_error("Select one or more runs in the Results table first, then export the report")
            return
        start = self.settings.value("dialogs/report_dir", str(Path.home()))
        path, chosen = QFileDialog.getSaveFileName(
            self, "Export report", str(Path(str(start)) / "workbench-report.html"),
            "HTML (*.html);;PDF (*.pdf);;CSV (*.csv);;JSON (*.json)")
        if not path:
            return
        if not Path(path).suffix:
            path += {"PDF": ".pdf", "CSV": ".csv", "JSON": ".json"}.get(chosen.split(" ")[0], ".html")
        self.settings.setValue("dialogs/report_dir", str(Path(path).parent))
        self.write_report(ids, path)

    def write_report(self, run_ids: list[int], path: str) -> threading.Thread:
        """Render the report in a thread (it may take seconds); reportDone/reportFailed answer."""
        db_path = self.store.path
        self.statusBar().showMessage(f"Writing {Path(path).name}…")
        self.log.append(f"writing report of runs {', '.join(map(str, run_ids))} to {path}")

        def work() -> None:
            store = None
            try:
                from ..report import write_report
                store = ResultsStore(db_path)
                written = write_report(store, run_ids, path)
                self._safe_emit(self._background.reportDone, str(written or path))
            except WorkbenchError as exc:
                self._safe_emit(self._background.reportFailed, f"Could not write the report: {exc}", "")
            except Exception as exc:
                import traceback
                self._safe_emit(self._background.reportFailed,
                                f"Could not write the report: {type(exc).__name__}: {exc}", traceback.format_exc())
            finally:
                if store is not None:
                    store.close()

        thread = threading.Thread(target=work, name="workbench-report", daemon=True)
        thread.start()
        return thread

    def _report_done(self, path: str) -> None:
        self.statusBar().showMessage(f"Report written: {path}", 8000)
        self.log.append(f"report written: {path}")

    # -- settings ------------------------------------------------------------------------------------
    def save_settings(self) -> None:
        s = self.settings
        s.setValue("window/geometry", self.saveGeometry())
        s.setValue("window/state", self.saveState(SETTINGS_VERSION))
        s.setValue("window/results_split", self.results_split.saveState())
        s.setValue("run/settings", json.dumps(self.run_panel.state()))
        s.setValue("plugins/state", json.dumps(self.plugin_panel.state()))
        s.setValue("model/state", json.dumps(self.model_panel.state()))
        s.sync()

    def restore_settings(self) -> None:
        s = self.settings
        geometry = s.value("window/geometry")
        if isinstance(geometry, QByteArray) and not geometry.isEmpty():
            self.restoreGeometry(geometry)
        state = s.value("window/state")
        if isinstance(state, QByteArray) and not state.isEmpty():
            if self.restoreState(state, SETTINGS_VERSION):
                self._sizes_pending = False      # the user's own layout wins
        split = s.value("window/results_split")
        if isinstance(split, QByteArray) and not split.isEmpty():
            self.results_split.restoreState(split)
        for key, target in (("run/settings", self.run_panel), ("plugins/state", self.plugin_panel)):
            raw = s.value(key)
            if raw:
                try:
                    target.restore_state(json.loads(raw))
                except (ValueError, TypeError, KeyError, AttributeError) as exc:
                    self.log.append(f"ignored unreadable saved setting {key}: {exc}")
        raw = s.value("model/state")
        if raw:
            try:
                model = json.loads(raw)
            except ValueError:
                model = {}
            source = model.get("source")
            if source and (source.startswith("demo:") or Path(source).exists()):
                self.model_panel.open_source(source)
                if model.get("factory"):
                    self.model_panel.factory_edit.setText(model["factory"])

    def reset_layout(self) -> None:
        self._default_layout()

    # -- help ------------------------------------------------------------------------------------------
    def _show_shortcuts(self) -> None:
        rows = [("Ctrl+O", "Open a model"), ("Ctrl+R", "Run"), ("Ctrl+Shift+R", "Run baseline + variant"),
                ("Esc / Ctrl+.", "Cancel the running job and the queue"), ("Ctrl+E", "Export a report"),
                ("F2 / Ctrl+T / Del", "Rename / tag / delete the selected runs (results table)"),
                ("F5", "Reload results (results table)"), ("Ctrl+Q", "Quit")]
        text = "<table>" + "".join(f"<tr><td><b>{k}</b>&nbsp;&nbsp;</td><td>{v}</td></tr>" for k, v in rows) + "</table>"
        box = QMessageBox(QMessageBox.Icon.NoIcon, "Keyboard shortcuts", text, QMessageBox.StandardButton.Ok, self)
        box.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        box.open()

    def _about(self) -> None:
        box = QMessageBox(QMessageBox.Icon.Information, "About Workbench",
                          "Workbench: optimize neural networks (quantize, prune, fuse, distill), measure them "
                          "rigorously in an isolated worker process (latency, memory, power), compare and "
                          f"report.\n\nResults store: {self.store.path}", QMessageBox.StandardButton.Ok, self)
        box.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        box.open()

    # -- closing -----------------------------------------------------------------------------------------
    def closeEvent(self, event: QCloseEvent) -> None:  # noqa: N802
        if self.bridge.is_busy() and self.confirm_on_close:
            answer = QMessageBox.question(
                self, "Quit Workbench", "A run is in progress. Stop it and quit?",
                QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No, QMessageBox.StandardButton.No)
            if answer != QMessageBox.StandardButton.Yes:
                event.ignore()
                return
        self._closing = True
        try:
            self.save_settings()
        except Exception as exc:  # settings must never block quitting
            print(f"workbench: could not save settings: {exc}")
        errors.close_all_error_dialogs()
        self.hide()
        self._refresh_timer.stop()
        self._charts_timer.stop()
        self.bridge.shutdown(timeout_s=8.0)
        super().closeEvent(event)


def _demo_catalog() -> list[tuple[str, str]]:
    return load_demo_catalog()

